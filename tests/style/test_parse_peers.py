"""The peer parsers' own fixtures and expectations (whatstk, chat-miner), met by ours.

Where a peer loses information (drops system lines, joins lines with a space), we compare
what it keeps: messages, authors and timestamps.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest

from style.messages import MessageKind
from style.parse import load_chat

HFORMATS = "whatstk/tests/chats/hformats"


def _hformat_files(peers: Path, suffix: str) -> list[Path]:
    return sorted((peers / HFORMATS).glob(f"*{suffix}"))


def _comparable(path: Path) -> list[tuple[datetime, str | None, str]]:
    return [(m.ts.replace(second=0), m.author, m.text) for m in load_chat(path).messages]


def test_whatstk_ships_96_header_formats(peers: Path) -> None:
    assert len(_hformat_files(peers, ".txt")) == 96


def test_whatstk_96_header_formats_all_give_the_same_500_messages(peers: Path) -> None:
    files = _hformat_files(peers, ".txt")
    reference = _comparable(files[0])
    assert len(reference) == 500
    assert reference[0] == (datetime(2019, 9, 5, 3, 50), "John", "Eu esse exercitation ullamco. ")
    assert reference[-1][0] == datetime(2020, 1, 1, 0, 0)
    different = [f.name for f in files[1:] if _comparable(f) != reference]
    assert different == []


def test_whatstk_formats_with_seconds_keep_them(peers: Path) -> None:
    chat = load_chat(peers / HFORMATS / "[%y.%d.%m_%I;%M;%S_%p]_%name;.txt")
    assert chat.messages[0].ts == datetime(2019, 9, 5, 3, 50, 8)


@pytest.mark.parametrize(
    "zipped", ["%m-%d-%y,_%H;%M;%S_-_%name;.zip", "%y.%d.%m,_%I;%M_%p_-_%name;.zip"]
)
def test_whatstk_zip_gives_the_same_messages_as_its_text(peers: Path, zipped: str) -> None:
    archive = peers / HFORMATS / zipped
    assert _comparable(archive) == _comparable(archive.with_suffix(".txt"))


def test_whatstk_pokemon_keeps_19_messages_and_marks_the_group_name_system(peers: Path) -> None:
    chat = load_chat(peers / "whatstk/chats/whatsapp/pokemon.txt")
    authored = [m for m in chat.messages if m.author is not None]  # whatstk's 19 rows
    assert len(authored) == 19
    assert len({m.author for m in authored}) == 9
    spoken = [m for m in authored if m.kind is not MessageKind.SYSTEM]
    assert len(chat.participants) == 8  # the group's own name is not a participant
    assert {"Prof. Oak", "Jessie & James"} <= set(chat.participants)
    first = chat.messages[0]
    assert (first.ts, first.author, first.kind) == (
        datetime(2016, 4, 15, 15, 4),
        "Pokemon Chat",
        MessageKind.SYSTEM,
    )
    assert [(m.ts, m.author) for m in spoken[:3]] == [
        (datetime(2016, 8, 6, 13, 23), "Ash Ketchum"),
        (datetime(2016, 8, 6, 13, 25), "Brock"),
        (datetime(2016, 8, 6, 13, 30), "Misty"),
    ]


def test_whatstk_lorem_first_row(peers: Path) -> None:
    chat = load_chat(peers / "whatstk/chats/whatsapp/lorem.txt")
    first = chat.messages[0]
    assert (first.ts, first.author, first.text.strip()) == (
        datetime(2020, 1, 15, 2, 22, 56),
        "Mary",
        "Nostrud exercitation magna id.",
    )
    assert len(chat.messages) == 500
    assert "+1 123 456 789" in chat.participants


def test_whatstk_lorem_2000_without_comma_or_seconds(peers: Path) -> None:
    chat = load_chat(peers / "whatstk/chats/whatsapp/lorem-2000.txt")
    assert len(chat.messages) == 2000
    assert (chat.messages[0].ts, chat.messages[0].author) == (
        datetime(2019, 4, 16, 2, 9),
        "+1 123 456 789",
    )


@pytest.mark.parametrize("name", ["lorem-merge-part1.txt", "lorem-merge-part2.txt"])
def test_whatstk_merge_parts_have_300_messages(peers: Path, name: str) -> None:
    assert len(load_chat(peers / "whatstk/chats/whatsapp" / name).messages) == 300


CHAT_MINER_FILES = [
    "test_[mmddyy]_24hrs.txt",
    "test_ddmmyy_24hrs.txt",
    "test_mmddyy_24hrs.txt",
    "test_mmddyyyy_12hrs.txt",
    "test_yyyymmdd_24hrs.txt",
]


@pytest.mark.parametrize("name", CHAT_MINER_FILES)
def test_chat_miner_files_give_its_six_target_messages(peers: Path, name: str) -> None:
    folder = peers / "chat-miner/test/whatsapp"
    target = json.loads((folder / "target.json").read_text(encoding="utf-8"))
    expected = sorted(
        (datetime.fromisoformat(t["timestamp"]), t["author"], t["message"]) for t in target
    )
    chat = load_chat(folder / name)
    text = [
        (m.ts, m.author, m.text.replace("\n", " "))
        for m in chat.messages
        if m.kind is MessageKind.TEXT
    ]
    assert text == expected


@pytest.mark.parametrize("name", CHAT_MINER_FILES)
def test_chat_miner_files_keep_what_chat_miner_drops(peers: Path, name: str) -> None:
    chat = load_chat(peers / "chat-miner/test/whatsapp" / name)
    kept = [(m.kind, m.author, m.notice) for m in chat.messages if m.kind is not MessageKind.TEXT]
    assert kept == [
        (MessageKind.DELETED, "John Doe", None),
        (MessageKind.SYSTEM, None, '+12 345 578 created group "Groupname"'),
        (MessageKind.SYSTEM, None, "You were added"),
    ]


HISTORY = [f"test_dateformat{i}" for i in range(1, 7)] + ["test_unicode"]


@pytest.mark.parametrize("name", HISTORY)
def test_chat_miner_history_targets(peers: Path, name: str) -> None:
    folder = peers / "chat-miner/history/6dd0987_parent"
    with (folder / f"{name}_target.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    expected = sorted(
        (datetime.fromisoformat(r["timestamp"]), r["author"], " ".join(r["message"].split()))
        for r in rows
        if r["author"] != "System" and r["message"] != "<Disappearing Message>"
    )
    chat = load_chat(folder / f"{name}.txt")
    got = sorted(
        (m.ts, m.author, " ".join(m.text.split()))
        for m in chat.messages
        if m.kind is MessageKind.TEXT
    )
    assert got == expected
