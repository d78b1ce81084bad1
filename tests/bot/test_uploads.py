"""Stored uploads: de-duplicated messages, chats rebuilt from rows, pending uploads, forgetting."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.personas import PersonaError, load_persona, prepare_persona
from bot.settings import Settings
from bot.uploads import (
    PENDING_TTL,
    PendingUpload,
    StoredUpload,
    UploadStore,
    file_sha256,
    rebuild_persona,
    refresh_persona,
    store_upload,
    uploads_dir,
)
from style.messages import MessageKind
from style.parse import load_chats
from style.sample import sample_paths
from tests.bot.prepared import settings_for
from training.db import connect

SAMPLE = sample_paths()[0]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path / "data")


@pytest.fixture
def uploads(settings: Settings) -> Iterator[UploadStore]:
    db = connect(settings.database_path())
    yield UploadStore(db, uploads_dir(settings))
    db.close()


def pending(
    uploads: UploadStore, source: Path, persona: str | None = "Maya", name: str | None = None
) -> PendingUpload:
    """`source` as a pending upload, with its persona chosen."""
    upload_id, path = uploads.new_pending_path(source.suffix)
    shutil.copyfile(source, path)
    found = uploads.add_pending(
        upload_id,
        channel="telegram",
        chat_id="100",
        sender="telegram:1",
        path=path,
        file_name=name or source.name,
        participants=[("Maya", 1), ("Sam", 1)],
    )
    if persona is None:
        return found
    chosen = uploads.choose_persona(upload_id, persona)
    assert chosen is not None
    return chosen


def store(
    uploads: UploadStore, source: Path, persona: str = "Maya", name: str | None = None
) -> StoredUpload:
    waiting = pending(uploads, source, persona, name)
    return uploads.add(waiting, load_chats(waiting.path))


def kept_files(uploads: UploadStore) -> list[str]:
    return sorted(p.name for p in uploads.folder.iterdir() if p.is_file())


def authored(path: Path) -> int:
    return sum(
        1
        for chat in load_chats(path)
        for m in chat.messages
        if m.author and m.kind is not MessageKind.SYSTEM
    )


def test_the_same_export_twice_stores_each_message_once(uploads: UploadStore) -> None:
    first = store(uploads, SAMPLE)
    again = store(uploads, SAMPLE)

    assert (first.new_messages, first.duplicates) == (authored(SAMPLE), 0)
    assert (again.new_messages, again.duplicates) == (0, authored(SAMPLE))
    assert uploads.message_count("Maya") == authored(SAMPLE)
    assert len(uploads.sources("Maya")) == 1  # one file, kept once
    assert len(list(uploads.folder.glob("*.txt"))) == 1


def test_an_overlapping_export_joins_the_stored_chat(uploads: UploadStore, tmp_path: Path) -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    early, late = tmp_path / "early.txt", tmp_path / "late.txt"
    early.write_text("".join(lines[:3000]), encoding="utf-8")
    late.write_text("".join(lines[2000:]), encoding="utf-8")

    store(uploads, early, name="WhatsApp Chat with Sam.txt")
    second = store(uploads, late, name="WhatsApp Chat with Sam (1).txt")

    assert second.new_messages == authored(SAMPLE) - authored(early)
    assert second.duplicates == authored(late) - second.new_messages
    [chat] = uploads.chats("Maya")
    whole = [m for m in load_chats(SAMPLE)[0].messages if m.kind is not MessageKind.SYSTEM]
    assert [(m.ts, m.author, m.text) for m in chat.messages] == [
        (m.ts, m.author, m.text) for m in whole
    ]


def test_the_same_message_twice_in_a_minute_is_kept_twice(
    uploads: UploadStore, tmp_path: Path
) -> None:
    export = tmp_path / "chat.txt"
    export.write_text(
        "12/03/2024, 21:00 - Sam: coming?\n12/03/2024, 21:01 - Maya: ok\n"
        "12/03/2024, 21:01 - Maya: ok\n12/03/2024, 21:02 - Sam: 👍\n",
        encoding="utf-8",
    )
    stored = store(uploads, export)
    again = store(uploads, export)

    assert (stored.new_messages, again.new_messages) == (4, 0)
    [chat] = uploads.chats("Maya")
    assert [m.text for m in chat.messages] == ["coming?", "ok", "ok", "👍"]


def test_different_chats_stay_apart(uploads: UploadStore) -> None:
    store(uploads, sample_paths()[0])
    store(uploads, sample_paths()[1])

    chats = uploads.chats("Maya")
    assert [sorted(chat.participants) for chat in chats] == [
        ["Maya", "Sam"],
        ["Jonas Weber", "Maya", "Priya", "Sam"],
    ]
    assert [chat.dialect for chat in chats] == [
        load_chats(path)[0].dialect for path in sample_paths()
    ]


def test_a_persona_rebuilt_from_stored_messages_matches_one_built_from_the_file(
    settings: Settings, uploads: UploadStore
) -> None:
    store(uploads, SAMPLE)
    rebuilt = rebuild_persona(settings, uploads.db, "Maya")

    direct = prepare_persona(settings_for(settings.data_dir.parent / "direct"), "Maya", [SAMPLE])
    for count in ("persona_messages", "train_samples", "eval_samples", "exchanges"):
        assert rebuilt.info.counts[count] == direct.info.counts[count], count
    assert rebuilt.card == direct.card
    assert [s.sha256 for s in rebuilt.info.sources] == [s.sha256 for s in direct.info.sources]
    assert load_persona(settings, "Maya").info == rebuilt.info


def test_refresh_rebuilds_from_stored_messages_and_leaves_file_personas_alone(
    settings: Settings, uploads: UploadStore
) -> None:
    prepare_persona(settings, "Sam", [SAMPLE])
    sam = (settings.data_dir / "personas" / "sam" / "persona.json").read_bytes()
    store(uploads, SAMPLE)

    refresh_persona(settings, "Maya")
    refresh_persona(settings, "Sam")

    assert load_persona(settings, "Maya").info.counts["messages"] > 0
    assert (settings.data_dir / "personas" / "sam" / "persona.json").read_bytes() == sam


def test_store_upload_takes_the_upload_back_when_the_persona_cannot_be_built(
    settings: Settings, uploads: UploadStore, tmp_path: Path
) -> None:
    store(uploads, SAMPLE)
    tiny = tmp_path / "zed.txt"
    tiny.write_text("12/03/2024, 21:00 - Zed: hi\n12/03/2024, 21:01 - Maya: hey\n")

    with pytest.raises(PersonaError):
        store_upload(settings, pending(uploads, tiny, "Zed"))

    assert uploads.message_count("Zed") == 0
    assert uploads.upload_count("Zed") == 0
    assert uploads.message_count("Maya") == authored(SAMPLE)
    assert kept_files(uploads) == [f"{file_sha256(SAMPLE)}.txt"]


def test_files_are_readable_by_us_only(uploads: UploadStore) -> None:
    store(uploads, SAMPLE)

    [kept] = uploads.folder.glob("*.txt")
    assert kept.stat().st_mode & 0o777 == 0o600
    assert uploads.folder.stat().st_mode & 0o777 == 0o700
    assert uploads.pending_dir.stat().st_mode & 0o777 == 0o700


def test_pending_uploads_expire_with_their_files(uploads: UploadStore) -> None:
    waiting = pending(uploads, SAMPLE, persona=None)

    assert uploads.expire(datetime.now(UTC)) == 0
    assert uploads.pending(waiting.id) == waiting
    assert uploads.expire(datetime.now(UTC) + PENDING_TTL + timedelta(minutes=1)) == 1
    assert uploads.pending(waiting.id) is None
    assert not waiting.path.exists()


def test_forget_deletes_rows_and_files_but_keeps_a_file_another_persona_uses(
    uploads: UploadStore,
) -> None:
    store(uploads, SAMPLE, "Maya")
    store(uploads, SAMPLE, "Sam")
    store(uploads, sample_paths()[1], "Maya")
    waiting = pending(uploads, sample_paths()[1], "Maya")

    forgotten = uploads.forget("Maya")

    assert forgotten.uploads == 2 and forgotten.messages > authored(SAMPLE)
    assert uploads.message_count("Maya") == 0 and uploads.chats("Maya") == []
    assert uploads.message_count("Sam") == authored(SAMPLE)
    assert kept_files(uploads) == [f"{file_sha256(SAMPLE)}.txt"]
    assert uploads.pending(waiting.id) is None and not waiting.path.exists()
