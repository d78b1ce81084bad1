"""Open chat exports on disk: plain text, zip archives, Telegram JSON; safely and in streams.

This is the only module in `style.parse` that touches files. It finds the chat inside a
container, refuses unsafe or oversized input with one clear `ExportError`, decodes the
text, and hands blocks of it to the pure parsers in `whatsapp.py` and `telegram_json.py`.
"""

from __future__ import annotations

import codecs
import io
import json
import posixpath
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from style.errors import ExportError, NotAChatError, UnsafeArchiveError
from style.messages import Chat, Message, MessageKind
from style.parse.telegram_json import parse_telegram_export
from style.parse.whatsapp import ParseStats, detect_dialect, parse_whatsapp

BLOCK_CHARS = 1 << 20
"""Text is decoded and parsed a megabyte at a time: memory stays flat on any file size."""


@dataclass(frozen=True, slots=True)
class ExportLimits:
    """How much input we accept; exports are user uploads, so every size is bounded."""

    max_bytes: int = 512 * 2**20
    """Largest chat file (or zip member holding the chat) read, uncompressed."""
    max_archive_bytes: int = 4 * 2**30
    """Largest total uncompressed size of a zip's entries (media included)."""
    max_entries: int = 100_000
    max_ratio: float = 200.0
    """Largest compression ratio of one zip entry above 1 MB: more smells like a zip bomb."""


@dataclass(slots=True)
class ChatStream:
    """One chat being read: metadata known up front, messages streamed on iteration.

    `stats` (lines, unparsed lines) is complete once iteration has finished.
    """

    source: str
    dialect: str
    _messages: Callable[[], Iterator[Message]]
    stats: ParseStats = field(default_factory=ParseStats)

    def __iter__(self) -> Iterator[Message]:
        return self._messages()


def iter_chats(path: str | Path, *, limits: ExportLimits = ExportLimits()) -> Iterator[ChatStream]:
    """Yield each chat in an export (a WhatsApp export has one, a Telegram export many)."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise ExportError(source, "no such file")
    if path.is_dir():
        raise ExportError(source, "is a folder; give the export file (.txt, .zip or .json)")
    size = path.stat().st_size
    if zipfile.is_zipfile(path):
        yield from _zip_chats(path, limits)
        return
    if size > limits.max_bytes:
        raise ExportError(source, f"is {_mb(size)}, over the {_mb(limits.max_bytes)} limit")
    if size == 0:
        raise NotAChatError(source, "is empty")
    with path.open("rb") as raw:
        start = raw.read(4096)
    _refuse_binary(source, start)
    if _looks_like_json(start):
        yield from _telegram_chats(source, path.read_bytes())
        return
    yield _whatsapp_stream(source, lambda: path.open("rb"))


def iter_messages(path: str | Path, *, limits: ExportLimits = ExportLimits()) -> Iterator[Message]:
    """Stream every message of an export, chat after chat, in constant memory."""
    for chat in iter_chats(path, limits=limits):
        yield from chat


def load_chats(path: str | Path, *, limits: ExportLimits = ExportLimits()) -> list[Chat]:
    """Read every chat of an export into memory."""
    chats = []
    for stream in iter_chats(path, limits=limits):
        messages = list(stream)
        chats.append(
            Chat(
                source=stream.source,
                dialect=stream.dialect,
                messages=messages,
                participants=participants(messages),
                unparsed_lines=stream.stats.unparsed_lines,
            )
        )
    return chats


def load_chat(
    path: str | Path, *, chat: str | None = None, limits: ExportLimits = ExportLimits()
) -> Chat:
    """Read the one chat of an export, or the one named `chat` in a multi-chat export."""
    chats = load_chats(path, limits=limits)
    if chat is not None:
        chats = [c for c in chats if c.source.rsplit("#", 1)[-1] == chat]
        if not chats:
            raise ExportError(str(path), f"has no chat named {chat!r}")
    if len(chats) > 1:
        names = ", ".join(repr(c.source.rsplit("#", 1)[-1]) for c in chats)
        raise ExportError(str(path), f"holds {len(chats)} chats ({names}); pick one with chat=")
    return chats[0]


def participants(messages: list[Message]) -> list[str]:
    """Authors of non-system messages, in order of first appearance."""
    seen: dict[str, None] = {}
    for message in messages:
        if message.author is not None and message.kind is not MessageKind.SYSTEM:
            seen.setdefault(message.author)
    return list(seen)


def _whatsapp_stream(
    source: str,
    open_binary: Callable[[], IO[bytes]],
    media: dict[str, str] | None = None,
) -> ChatStream:
    with open_binary() as raw:
        dialect = detect_dialect(_blocks(source, raw), source=source)
    stats = ParseStats()

    def messages() -> Iterator[Message]:
        with open_binary() as raw:
            for message in parse_whatsapp(_blocks(source, raw), dialect, stats=stats):
                if media and message.media is not None and message.media.filename in media:
                    message.media.path = media[message.media.filename]
                yield message

    return ChatStream(source, dialect.name, messages, stats)


def _blocks(source: str, raw: IO[bytes]) -> Iterator[str]:
    """Decode a byte stream a block at a time: UTF-8 (BOM or not), or UTF-16 with a BOM."""
    head = raw.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        decoder = codecs.getincrementaldecoder("utf-16")()
    else:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
    chunk = head + _read(source, raw)
    lines = 0
    while chunk:
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            line = lines + chunk.count(b"\n", 0, exc.start) + 1
            raise ExportError(source, "is not UTF-8 text (undecodable bytes)", line) from exc
        if "\x00" in text:
            raise ExportError(source, "contains NUL bytes; is it a binary file?")
        lines += chunk.count(b"\n")
        yield text
        chunk = _read(source, raw)
    try:
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ExportError(source, "ends in the middle of a UTF-8 character", lines + 1) from exc
    if tail:
        yield tail


def _read(source: str, raw: IO[bytes]) -> bytes:
    try:
        return raw.read(BLOCK_CHARS)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ExportError(source, f"is damaged and cannot be read ({exc})") from exc


def _refuse_binary(source: str, start: bytes) -> None:
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return
    if b"\x00" in start:
        raise ExportError(source, "is a binary file, not a chat export")


def _looks_like_json(start: bytes) -> bool:
    return start.lstrip(codecs.BOM_UTF8 + b" \t\r\n")[:1] == b"{"


def _telegram_chats(source: str, data: bytes) -> Iterator[ChatStream]:
    try:
        loaded = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ExportError(source, "is not UTF-8 text (undecodable bytes)") from exc
    except json.JSONDecodeError as exc:
        raise ExportError(source, f"is not valid JSON ({exc.msg})", exc.lineno) from exc
    for chat in parse_telegram_export(loaded, source=source):
        yield ChatStream(chat.source, chat.dialect, chat.messages.__iter__)


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


# --- zip archives -------------------------------------------------------------------------

_CHAT_NAMES = ("_chat.txt", "result.json")


def _zip_chats(path: Path, limits: ExportLimits) -> Iterator[ChatStream]:
    source = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ExportError(source, f"is a damaged zip archive ({exc})") from exc
    with archive:
        members = _checked_members(source, archive, limits)
        chat = _find_chat_member(source, members)
        where = f"{source}:{chat.filename}"
        if chat.file_size == 0:
            raise NotAChatError(where, "is empty")
        if chat.file_size > limits.max_bytes:
            raise ExportError(
                where, f"is {_mb(chat.file_size)}, over the {_mb(limits.max_bytes)} limit"
            )
        with archive.open(chat) as raw:
            start = _read(where, raw)
        _refuse_binary(where, start)
        if _looks_like_json(start):
            yield from _telegram_chats(where, _read_member(archive, chat))
            return
        media = {posixpath.basename(m.filename): m.filename for m in members if m is not chat}
        stream = _whatsapp_stream(where, lambda: _reopen(path, chat.filename), media)
    yield stream


def _reopen(path: Path, member: str) -> IO[bytes]:
    """Open one member of a zip in its own archive handle, so a stream can outlive the scan."""
    archive = zipfile.ZipFile(path)
    try:
        raw = archive.open(member)
    except BaseException:
        archive.close()
        raise
    return _ClosingMember(raw, archive)


class _ClosingMember(io.BufferedIOBase):
    """A zip member stream that also closes its archive."""

    def __init__(self, raw: IO[bytes], archive: zipfile.ZipFile) -> None:
        super().__init__()
        self._raw = raw
        self._archive = archive

    def read(self, size: int | None = -1) -> bytes:
        return self._raw.read(size)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
        self._archive.close()
        super().close()


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    with archive.open(member) as raw:
        return raw.read()


def _checked_members(
    source: str, archive: zipfile.ZipFile, limits: ExportLimits
) -> list[zipfile.ZipInfo]:
    """Every file entry, after refusing path escapes and zip bombs (by declared sizes)."""
    entries = archive.infolist()
    if len(entries) > limits.max_entries:
        raise UnsafeArchiveError(source, f"has {len(entries)} entries, over {limits.max_entries}")
    total = 0
    members = []
    for entry in entries:
        name = entry.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise UnsafeArchiveError(source, f"entry {name!r} points outside the archive")
        if entry.is_dir() or parts[0] == "__MACOSX" or posixpath.basename(name).startswith("._"):
            continue
        total += entry.file_size
        if total > limits.max_archive_bytes:
            raise UnsafeArchiveError(
                source, f"expands to more than {_mb(limits.max_archive_bytes)}"
            )
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > 2**20 and ratio > limits.max_ratio:
            raise UnsafeArchiveError(
                source, f"entry {name!r} expands {ratio:.0f}x; refusing a likely zip bomb"
            )
        members.append(entry)
    return members


def _find_chat_member(source: str, members: list[zipfile.ZipInfo]) -> zipfile.ZipInfo:
    """`_chat.txt` (iOS), `WhatsApp Chat with NAME.txt` (Android) or `result.json` (Telegram)."""
    by_name = {posixpath.basename(m.filename): m for m in members}
    for name in _CHAT_NAMES:
        if name in by_name:
            return by_name[name]
    texts = [m for m in members if m.filename.lower().endswith(".txt")]
    if len(texts) == 1:
        return texts[0]
    whatsapp = [m for m in texts if "whatsapp" in m.filename.lower()]
    if len(whatsapp) == 1:
        return whatsapp[0]
    if not texts:
        raise NotAChatError(source, "is a zip without a chat (.txt or result.json) inside")
    names = ", ".join(repr(m.filename) for m in texts[:5])
    raise NotAChatError(source, f"holds several text files ({names}); which one is the chat?")
