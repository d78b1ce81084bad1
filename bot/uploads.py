"""Chat exports people sent the bot, and their messages, kept so a persona can be rebuilt.

Each uploaded file is kept once, by content (`<data_dir>/uploads/<sha256>.<ext>`, readable by
us only), and its messages go into `messages`: one row per message, keyed by a content hash
that is unique per persona. Re-uploading an export that overlaps an earlier one (the same
chat exported again a month later, or as a .zip after a .txt) adds only the new messages;
the rest are counted as duplicates. A re-exported chat is recognised by the messages it
shares with a stored one, so its new messages join the same chat. A persona is rebuilt from
these rows (`rebuild_persona`), never from the files.

An upload waiting for its sender's answers (who is the persona, may we use the data) is a
`PendingUpload` in `pending_uploads`, its file under `uploads/pending/`, so a restart of the
service loses nothing. Tables are created by `training.db.migrate` (component "uploads");
every connection that uses them deletes with `secure_delete` on, so forgotten text does not
stay behind in free pages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from bot.personas import (
    PersonaAssets,
    PersonaError,
    SourceFile,
    load_persona,
    prepare_persona_from_chats,
)
from style.messages import Chat, Media, MediaType, Message, MessageKind
from training.db import connect, migrate
from training.registry import persona_slug

if TYPE_CHECKING:
    from bot.personas import ProgressCallback
    from bot.settings import Settings

__all__ = [
    "COMPONENT",
    "MIGRATIONS",
    "PENDING_TTL",
    "Forgotten",
    "PendingUpload",
    "StoredUpload",
    "UploadStore",
    "file_sha256",
    "rebuild_persona",
    "refresh_persona",
    "store_upload",
    "uploads_dir",
]

logger = logging.getLogger(__name__)

COMPONENT = "uploads"

MIGRATIONS = [
    """
    CREATE TABLE uploads (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL,
        sender TEXT NOT NULL,
        persona TEXT NOT NULL,
        file TEXT NOT NULL,
        size INTEGER NOT NULL,
        messages INTEGER NOT NULL,
        new_messages INTEGER NOT NULL,
        duplicates INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX uploads_by_persona ON uploads (persona, id);
    CREATE INDEX uploads_by_sha256 ON uploads (sha256);
    CREATE TABLE message_chats (
        persona TEXT NOT NULL,
        chat_key TEXT NOT NULL,
        dialect TEXT NOT NULL,
        upload_id INTEGER NOT NULL,
        PRIMARY KEY (persona, chat_key)
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        persona TEXT NOT NULL,
        chat_key TEXT NOT NULL,
        upload_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        ts TEXT NOT NULL,
        author TEXT NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL,
        media_type TEXT,
        caption TEXT,
        content_hash TEXT NOT NULL,
        UNIQUE (persona, content_hash)
    );
    CREATE INDEX messages_by_chat ON messages (persona, chat_key, ts, upload_id, seq);
    CREATE INDEX messages_by_upload ON messages (upload_id);
    CREATE TABLE pending_uploads (
        id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        file TEXT NOT NULL,
        file_name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        participants TEXT NOT NULL,
        persona TEXT,
        created_at TEXT NOT NULL
    );
    """,
]

PENDING_TTL = timedelta(days=1)
"""An upload nobody answered for this long is discarded (its file deleted)."""
_HASH_CHUNK = 1 << 20
_QUERY_CHUNK = 500
_MATCHES_TO_JOIN = 3
"""Stored messages a new chat must share with a stored chat to be taken as the same chat."""


def uploads_dir(settings: Settings) -> Path:
    """Where uploaded exports are kept (`pending/` holds those still waiting for answers)."""
    return settings.data_dir / "uploads"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """An upload waiting for its sender: who the persona is, then consent to use the data."""

    id: str
    channel: str
    chat_id: str
    sender: str
    path: Path
    file_name: str
    sha256: str
    size: int
    participants: tuple[tuple[str, int], ...]
    """Authors with their message counts, most active first."""
    persona: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredUpload:
    """An upload as stored: how many of its messages were new and how many already known."""

    id: int
    persona: str
    sha256: str
    messages: int
    new_messages: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What `UploadStore.forget` removed."""

    messages: int
    uploads: int
    files: int


class UploadStore:
    """Uploads, their messages and pending uploads in the wa-persona database.

    Args:
        db: the database; `secure_delete` is switched on for this connection.
        folder: where files are kept (`uploads_dir(settings)`).
    """

    def __init__(self, db: Database, folder: Path) -> None:
        self.db = db
        self.folder = folder
        db.execute("PRAGMA secure_delete = ON")
        migrate(db, COMPONENT, MIGRATIONS)

    @property
    def pending_dir(self) -> Path:
        """Where files of pending uploads wait."""
        return self.folder / "pending"

    # --- pending uploads ------------------------------------------------------------------

    def new_pending_path(self, suffix: str) -> tuple[str, Path]:
        """A fresh pending id and the path its file should be downloaded to."""
        _private_dir(self.pending_dir)
        upload_id = secrets.token_hex(6)
        return upload_id, self.pending_dir / f"{upload_id}{suffix}"

    def add_pending(
        self,
        upload_id: str,
        *,
        channel: str,
        chat_id: str,
        sender: str,
        path: Path,
        file_name: str,
        participants: Sequence[tuple[str, int]],
    ) -> PendingUpload:
        """Remember a parsed upload until its sender has answered the questions.

        `path` is the one `new_pending_path` gave; `file_name` the name the sender gave it.
        """
        if path.parent != self.pending_dir:
            raise ValueError(f"{path} is not in {self.pending_dir}; use new_pending_path")
        path.chmod(0o600)
        pending = PendingUpload(
            id=upload_id,
            channel=channel,
            chat_id=chat_id,
            sender=sender,
            path=path,
            file_name=file_name,
            sha256=file_sha256(path),
            size=path.stat().st_size,
            participants=tuple((name, count) for name, count in participants),
            persona=None,
            created_at=datetime.now(UTC),
        )
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO pending_uploads (id, channel, chat_id, sender, file, file_name,"
                " sha256, size, participants, persona, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                [
                    pending.id,
                    channel,
                    chat_id,
                    sender,
                    path.name,
                    file_name,
                    pending.sha256,
                    pending.size,
                    json.dumps([list(p) for p in pending.participants], ensure_ascii=False),
                    pending.created_at.isoformat(),
                ],
            )
        return pending

    def pending(self, upload_id: str) -> PendingUpload | None:
        """The pending upload `upload_id`, or None when it was finished, discarded or expired."""
        row = self.db.execute(
            f"SELECT {_PENDING_COLUMNS} FROM pending_uploads WHERE id = ?", [upload_id]
        ).fetchone()
        return None if row is None else self._pending_from_row(row)

    def choose_persona(self, upload_id: str, persona: str) -> PendingUpload | None:
        """Record who the persona is; None when the upload is no longer pending."""
        with self.db.atomic():
            cursor = self.db.execute(
                "UPDATE pending_uploads SET persona = ? WHERE id = ?", [persona, upload_id]
            )
        return self.pending(upload_id) if cursor.rowcount else None

    def claim(self, upload_id: str) -> PendingUpload | None:
        """Take the upload out of the pending ones (once: a second press gets None)."""
        with self.db.atomic():
            found = self.pending(upload_id)
            if found is None:
                return None
            self.db.execute("DELETE FROM pending_uploads WHERE id = ?", [upload_id])
        return found

    def discard(self, upload_id: str) -> bool:
        """Drop a pending upload and delete its file; False when it was not pending."""
        found = self.claim(upload_id)
        if found is None:
            return False
        found.path.unlink(missing_ok=True)
        return True

    def expire(self, now: datetime | None = None) -> int:
        """Discard pending uploads older than `PENDING_TTL`; return how many."""
        cutoff = (now or datetime.now(UTC)) - PENDING_TTL
        rows = self.db.execute(
            "SELECT id FROM pending_uploads WHERE created_at < ?", [cutoff.isoformat()]
        ).fetchall()
        return sum(self.discard(row[0]) for row in rows)

    # --- stored uploads and messages ------------------------------------------------------

    def add(self, pending: PendingUpload, chats: Sequence[Chat]) -> StoredUpload:
        """Store a confirmed upload's messages (new ones only) and keep its file.

        `chats` is the pending file parsed; messages without an author and system notices
        are not kept (nothing downstream reads them).
        """
        if pending.persona is None:
            raise ValueError("choose the persona before storing the upload")
        persona = pending.persona
        suffix = pending.path.suffix.lower()
        kept = self.folder / f"{pending.sha256}{suffix}"
        with self.db.atomic():
            cursor = self.db.execute(
                "INSERT INTO uploads (sha256, sender, persona, file, size, messages,"
                " new_messages, duplicates, created_at) VALUES (?, ?, ?, ?, ?, 0, 0, 0, ?)",
                [
                    pending.sha256,
                    pending.sender,
                    persona,
                    kept.name,
                    pending.size,
                    datetime.now(UTC).isoformat(),
                ],
            )
            upload_id = cursor.lastrowid
            assert upload_id is not None
            total = new = 0
            for chat in chats:
                rows = _message_rows(chat)
                if not rows:
                    continue
                source = _source_name(chat, pending)
                key = self._chat_key(persona, source, rows)
                self.db.execute(
                    "INSERT OR IGNORE INTO message_chats (persona, chat_key, dialect, upload_id)"
                    " VALUES (?, ?, ?, ?)",
                    [persona, key, chat.dialect, upload_id],
                )
                inserted = self.db.conn.executemany(
                    "INSERT OR IGNORE INTO messages (persona, chat_key, upload_id, seq, ts,"
                    " author, kind, text, media_type, caption, content_hash)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        (persona, key, upload_id, seq, *row.values, _content_hash(key, row))
                        for seq, row in enumerate(rows)
                    ),
                )
                total += len(rows)
                new += inserted.rowcount
            self.db.execute(
                "UPDATE uploads SET messages = ?, new_messages = ?, duplicates = ? WHERE id = ?",
                [total, new, total - new, upload_id],
            )
            self.db.execute("DELETE FROM pending_uploads WHERE id = ?", [pending.id])
        _private_dir(self.folder)
        if kept.exists():
            pending.path.unlink(missing_ok=True)
        else:
            pending.path.replace(kept)
        logger.info(
            "stored upload %d for %s: %d new, %d known",
            upload_id,
            persona_slug(persona),
            new,
            total - new,
        )
        return StoredUpload(upload_id, persona, pending.sha256, total, new, total - new)

    def remove(self, upload_id: int) -> None:
        """Take back a stored upload: the messages it added, its row, its file if unshared."""
        with self.db.atomic():
            row = self.db.execute(
                "SELECT sha256, file FROM uploads WHERE id = ?", [upload_id]
            ).fetchone()
            if row is None:
                return
            self.db.execute("DELETE FROM messages WHERE upload_id = ?", [upload_id])
            self.db.execute("DELETE FROM message_chats WHERE upload_id = ?", [upload_id])
            self.db.execute("DELETE FROM uploads WHERE id = ?", [upload_id])
            shared = self.db.execute(
                "SELECT COUNT(*) FROM uploads WHERE sha256 = ?", [row[0]]
            ).fetchone()[0]
        if not shared:
            (self.folder / row[1]).unlink(missing_ok=True)

    def message_count(self, persona: str) -> int:
        """How many distinct messages are stored for `persona`."""
        row = self.db.execute("SELECT COUNT(*) FROM messages WHERE persona = ?", [persona])
        return int(row.fetchone()[0])

    def upload_count(self, persona: str) -> int:
        """How many uploads `persona` was built from."""
        row = self.db.execute("SELECT COUNT(*) FROM uploads WHERE persona = ?", [persona])
        return int(row.fetchone()[0])

    def personas(self) -> list[str]:
        """Personas with stored messages, by name."""
        rows = self.db.execute("SELECT DISTINCT persona FROM uploads ORDER BY persona").fetchall()
        return [row[0] for row in rows]

    def sources(self, persona: str) -> list[SourceFile]:
        """The distinct files `persona`'s messages came from (hash and size), oldest first."""
        rows = self.db.execute(
            "SELECT sha256, size FROM uploads WHERE persona = ? GROUP BY sha256 ORDER BY MIN(id)",
            [persona],
        ).fetchall()
        return [SourceFile(sha256, int(size)) for sha256, size in rows]

    def chats(self, persona: str) -> list[Chat]:
        """`persona`'s stored messages as chats again, one per chat key, in time order."""
        chats = []
        keys = self.db.execute(
            "SELECT chat_key, dialect FROM message_chats WHERE persona = ? ORDER BY upload_id",
            [persona],
        ).fetchall()
        for key, dialect in keys:
            rows = self.db.execute(
                "SELECT seq, ts, author, kind, text, media_type, caption FROM messages"
                " WHERE persona = ? AND chat_key = ? ORDER BY ts, upload_id, seq",
                [persona, key],
            ).fetchall()
            messages = [_message_from_row(row) for row in rows]
            if messages:
                chats.append(
                    Chat(
                        source=f"upload:{key}",
                        dialect=dialect,
                        messages=messages,
                        participants=list(dict.fromkeys(m.author for m in messages if m.author)),
                    )
                )
        return chats

    def forget(self, persona: str) -> Forgotten:
        """Delete `persona`'s messages, uploads, pending uploads and the files only it used."""
        with self.db.atomic():
            uploads = self.db.execute(
                "SELECT sha256, file FROM uploads WHERE persona = ?", [persona]
            ).fetchall()
            pending = self.db.execute(
                "SELECT file FROM pending_uploads WHERE persona = ?", [persona]
            ).fetchall()
            messages = self.db.execute("DELETE FROM messages WHERE persona = ?", [persona])
            self.db.execute("DELETE FROM message_chats WHERE persona = ?", [persona])
            self.db.execute("DELETE FROM uploads WHERE persona = ?", [persona])
            self.db.execute("DELETE FROM pending_uploads WHERE persona = ?", [persona])
            still_used = {
                row[0]
                for row in self.db.execute(
                    "SELECT DISTINCT sha256 FROM uploads WHERE sha256 IN"
                    f" ({', '.join('?' * len(uploads))})",
                    [sha for sha, _ in uploads],
                ).fetchall()
            }
        files = 0
        paths = {self.folder / name for sha, name in uploads if sha not in still_used}
        for path in [*paths, *(self.pending_dir / row[0] for row in pending)]:
            if path.exists():
                path.unlink()
                files += 1
        return Forgotten(messages=messages.rowcount, uploads=len(uploads), files=files)

    # --- steps ----------------------------------------------------------------------------

    def _pending_from_row(self, row: tuple[Any, ...]) -> PendingUpload:
        upload_id, channel, chat_id, sender, file, name, sha256, size, people, persona, at = row
        return PendingUpload(
            id=upload_id,
            channel=channel,
            chat_id=chat_id,
            sender=sender,
            path=self.pending_dir / file,
            file_name=name,
            sha256=sha256,
            size=int(size),
            participants=tuple((str(n), int(c)) for n, c in json.loads(people)),
            persona=persona,
            created_at=datetime.fromisoformat(at),
        )

    def _chat_key(self, persona: str, source: str, rows: list[_Row]) -> str:
        """The stored chat these messages continue, else a new key from the chat's source."""
        keys = self.db.execute(
            "SELECT chat_key FROM message_chats WHERE persona = ?", [persona]
        ).fetchall()
        best, best_matches = None, 0
        for (key,) in keys:
            matches = self._stored(persona, (_content_hash(key, row) for row in rows))
            if matches > best_matches:
                best, best_matches = key, matches
        if best is not None and best_matches >= min(_MATCHES_TO_JOIN, len(rows)):
            return str(best)
        authors = sorted({row.author for row in rows})
        identity = json.dumps([source, authors], ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(identity).hexdigest()[:16]

    def _stored(self, persona: str, hashes: Iterable[str]) -> int:
        """How many of `hashes` are stored for `persona`."""
        found = 0
        batch: list[str] = []
        for digest in [*hashes, None]:
            if digest is not None:
                batch.append(digest)
            if batch and (digest is None or len(batch) == _QUERY_CHUNK):
                row = self.db.execute(
                    "SELECT COUNT(*) FROM messages WHERE persona = ? AND content_hash IN"
                    f" ({', '.join('?' * len(batch))})",
                    [persona, *batch],
                ).fetchone()
                found += int(row[0])
                batch = []
        return found


def rebuild_persona(
    settings: Settings,
    db: Database,
    persona: str,
    *,
    on_progress: ProgressCallback | None = None,
) -> PersonaAssets:
    """Rebuild `persona`'s profile, dataset and index from its stored, de-duplicated messages.

    Raises `PersonaError` (the previous assets kept) when they cannot be built.
    """
    store = UploadStore(db, uploads_dir(settings))
    return prepare_persona_from_chats(
        settings,
        persona,
        store.chats(persona),
        store.sources(persona),
        on_progress=on_progress,
    )


def refresh_persona(settings: Settings, persona: str) -> None:
    """Rebuild `persona` from its stored messages, on a connection of its own.

    The retrain job's `rebuild` step (module-level, so it pickles into the worker). A persona
    prepared from files (`wa-persona persona add`) has no stored messages and is left as it is.
    """
    db = connect(settings.database_path())
    try:
        if UploadStore(db, uploads_dir(settings)).message_count(persona):
            rebuild_persona(settings, db, persona)
    finally:
        db.close()


def store_upload(
    settings: Settings, pending: PendingUpload, *, on_progress: ProgressCallback | None = None
) -> tuple[StoredUpload, PersonaAssets]:
    """Parse a confirmed upload, store its new messages and rebuild its persona.

    Runs in a worker thread with its own connection. When the persona cannot be built, the
    upload is taken back (its messages, row and file) and `PersonaError` says why; the
    persona's earlier assets and messages stay as they were. An upload with nothing new
    reuses the persona's assets as they are.
    """
    from style.parse import load_chats

    if pending.persona is None:
        raise ValueError("choose the persona before storing the upload")
    chats = load_chats(pending.path, limits=settings.export_limits())
    db = connect(settings.database_path())
    try:
        store = UploadStore(db, uploads_dir(settings))
        stored = store.add(pending, chats)
        del chats
        if not stored.new_messages:
            try:
                return stored, load_persona(settings, pending.persona, load_index=True)
            except PersonaError:
                logger.info("%s has no usable assets; rebuilding", persona_slug(stored.persona))
        try:
            assets = rebuild_persona(settings, db, stored.persona, on_progress=on_progress)
        except PersonaError:
            store.remove(stored.id)
            raise
        return stored, assets
    finally:
        db.close()


# --- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    """One message as stored, plus its rank among identical messages of its chat."""

    values: tuple[str, str, str, str, str | None, str | None]
    """ts, author, kind, text, media type, caption: the `messages` columns in order."""
    ordinal: int

    @property
    def author(self) -> str:
        return self.values[1]


def _message_rows(chat: Chat) -> list[_Row]:
    """The chat's authored, non-system messages as rows; identical ones numbered apart."""
    seen: Counter[tuple[Any, ...]] = Counter()
    rows = []
    for message in chat.messages:
        if message.author is None or message.kind is MessageKind.SYSTEM:
            continue
        media = message.media
        values = (
            message.ts.isoformat(),
            message.author,
            message.kind.value,
            message.text,
            None if media is None else media.type.value,
            None if media is None else media.caption,
        )
        rows.append(_Row(values, seen[values]))
        seen[values] += 1
    return rows


def _content_hash(chat_key: str, row: _Row) -> str:
    """The message's identity within a persona: chat, content and rank among its twins.

    The rank keeps two real "ok"s sent in the same minute apart, while the same message in
    an overlapping export hashes the same.
    """
    raw = json.dumps([chat_key, *row.values, row.ordinal], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _source_name(chat: Chat, pending: PendingUpload) -> str:
    """The chat's source as the sender named it (their file name, not our pending path)."""
    where = str(pending.path)
    inside = chat.source[len(where) :] if chat.source.startswith(where) else ""
    return pending.file_name + inside


def _message_from_row(row: tuple[Any, ...]) -> Message:
    seq, ts, author, kind, text, media_type, caption = row
    media = None if media_type is None else Media(MediaType(media_type), caption=caption)
    return Message(
        ts=datetime.fromisoformat(ts),
        author=author,
        text=text,
        kind=MessageKind(kind),
        media=media,
        line=int(seq),
    )


_PENDING_COLUMNS = (
    "id, channel, chat_id, sender, file, file_name, sha256, size, participants, persona, created_at"
)


def _private_dir(folder: Path) -> None:
    """Create `folder` readable only by us (exports are other people's messages too)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
