"""The bundled sample exports: reproducible, in sync with the generator, and Maya sounds
like Maya. Lines are read with small regexes here, not with the package's parser."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from style.sample import (
    GROUP_FILE,
    PAIR_FILE,
    PERSONA,
    generate_sample,
    main,
    sample_paths,
    write_sample,
)

ANDROID_HEADER = re.compile(r"^(\d\d)/(\d\d)/(\d{4}), (\d\d):(\d\d) - (?:([^:]+): )?(.*)$")
IOS_HEADER = re.compile(
    r"^\[(\d{1,2})/(\d{1,2})/(\d\d), (\d{1,2}):(\d\d):(\d\d)\u202f(AM|PM)\] ([^:]+): (.*)$"
)
EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
NOT_WORDS = {"Missed voice call", "This message was deleted", "You deleted this message"}
OTHERS = {PAIR_FILE: ["Sam"], GROUP_FILE: ["Sam", "Jonas Weber", "Priya"]}


@dataclass
class Entry:
    ts: datetime
    author: str | None
    text: str


def read_android(text: str) -> list[Entry]:
    entries: list[Entry] = []
    for line in text.splitlines():
        if match := ANDROID_HEADER.match(line):
            day, month, year, hour, minute, author, body = match.groups()
            ts = datetime(int(year), int(month), int(day), int(hour), int(minute))
            entries.append(Entry(ts, author, body))
        else:
            entries[-1].text += "\n" + line
    return entries


def read_ios(text: str) -> list[Entry]:
    entries: list[Entry] = []
    for line in text.splitlines():
        if match := IOS_HEADER.match(line):
            month, day, year, hour, minute, second, half, author, body = match.groups()
            hour24 = int(hour) % 12 + (12 if half == "PM" else 0)
            ts = datetime(2000 + int(year), int(month), int(day), hour24, int(minute), int(second))
            entries.append(Entry(ts, author, body))
        else:
            entries[-1].text += "\n" + line
    return entries


@pytest.fixture(scope="module")
def sample() -> dict[str, str]:
    return generate_sample()


@pytest.fixture(scope="module")
def chats(sample: dict[str, str]) -> dict[str, list[Entry]]:
    return {PAIR_FILE: read_android(sample[PAIR_FILE]), GROUP_FILE: read_ios(sample[GROUP_FILE])}


def words_of(entries: list[Entry], author: str) -> list[str]:
    """The author's own text messages, without media, deleted and call lines."""
    texts = [
        e.text.removesuffix(" <This message was edited>") for e in entries if e.author == author
    ]
    return [t for t in texts if t and not t.startswith(("<", "\u200e")) and t not in NOT_WORDS]


def others_words(entries: list[Entry], name: str) -> list[str]:
    return [text for other in OTHERS[name] for text in words_of(entries, other)]


def lowercase_share(texts: list[str]) -> float:
    starts = [t[0] for t in texts if t[0].isalpha()]
    return sum(c.islower() for c in starts) / len(starts)


def emoji_rate(texts: list[str]) -> float:
    return sum(len(EMOJI.findall(t)) for t in texts) / len(texts)


# Reproducible and in sync


def test_same_seed_gives_identical_files():
    assert generate_sample(3, days=45) == generate_sample(3, days=45)


def test_different_seeds_give_different_files():
    first, second = generate_sample(3, days=45), generate_sample(4, days=45)
    assert first[PAIR_FILE] != second[PAIR_FILE]
    assert first[GROUP_FILE] != second[GROUP_FILE]


def test_bundled_files_equal_the_generator_output(sample):
    paths = sample_paths()
    assert [p.name for p in paths] == [PAIR_FILE, GROUP_FILE]
    for path in paths:
        assert path.read_bytes().decode("utf-8") == sample[path.name], (
            f"{path} drifted; run: python -m style.sample {path.parent}"
        )


def test_write_sample_writes_exact_bytes(tmp_path):
    paths = write_sample(tmp_path, seed=5, days=20)
    expected = generate_sample(5, days=20)
    assert [p.name for p in paths] == list(expected)
    for path in paths:
        assert path.read_bytes() == expected[path.name].encode("utf-8")


def test_cli_writes_both_files(tmp_path, capsys):
    main([str(tmp_path / "out"), "--seed", "2", "--scale", "0.3"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([PAIR_FILE, GROUP_FILE])
    assert PAIR_FILE in capsys.readouterr().out


def test_scale_adds_conversations():
    small = generate_sample(days=60)[PAIR_FILE].count("\n")
    large = generate_sample(days=60, scale=2.0)[PAIR_FILE].count("\n")
    assert large > 1.2 * small


def test_rejects_empty_range():
    with pytest.raises(ValueError, match="days"):
        generate_sample(days=0)


# Export format


def test_android_file_opens_with_the_encryption_notice(sample):
    assert sample[PAIR_FILE].split("\n", 1)[0] == (
        "01/01/2024, 09:12 - Messages and calls are end-to-end encrypted. No one outside of "
        "this chat, not even WhatsApp, can read or listen to them. Tap to learn more."
    )


def test_ios_file_opens_with_encryption_and_group_creation(sample):
    lines = sample[GROUP_FILE].split("\r\n")
    assert lines[0] == (
        "[1/2/24, 10:00:00\u202fAM] Weekend Crew: \u200eMessages and calls are end-to-end "
        "encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them."
    )
    assert lines[1] == (
        "[1/2/24, 10:00:00\u202fAM] Jonas Weber: \u200eJonas Weber created group “Weekend Crew”"
    )
    assert "Jonas Weber: \u200eJonas Weber added Maya" in lines[2]


def test_ios_file_uses_crlf_and_narrow_no_break_space(sample):
    text = sample[GROUP_FILE]
    assert text.endswith("\r\n")
    assert text.count("\n") == text.count("\r\n")
    headers = [line for line in text.split("\r\n") if line.startswith("[")]
    assert all("\u202fAM]" in h or "\u202fPM]" in h for h in headers)


def test_android_file_uses_lf_only(sample):
    assert "\r" not in sample[PAIR_FILE]


@pytest.mark.parametrize("name", [PAIR_FILE, GROUP_FILE])
def test_few_lines_are_continuations(sample, chats, name):
    lines = sample[name].splitlines()
    assert len(lines) - len(chats[name]) < 20


@pytest.mark.parametrize("name", [PAIR_FILE, GROUP_FILE])
def test_a_multiline_message_keeps_its_blank_line(chats, name):
    assert any("\n\n" in e.text for e in chats[name])


@pytest.mark.parametrize("name", [PAIR_FILE, GROUP_FILE])
def test_dates_span_the_year_in_order(chats, name):
    stamps = [e.ts for e in chats[name]]
    assert stamps == sorted(stamps)
    assert stamps[0].date() <= date(2024, 1, 2)
    assert date(2024, 12, 24) <= stamps[-1].date() <= date(2024, 12, 31)


def test_message_counts_per_file(chats):
    assert 6000 <= len(chats[PAIR_FILE]) <= 9000
    assert 3000 <= len(chats[GROUP_FILE]) <= 5000
    assert {e.author for e in chats[GROUP_FILE]} == {
        "Weekend Crew",
        "Maya",
        "Sam",
        "Jonas Weber",
        "Priya",
    }


def test_android_file_has_media_deleted_edited_and_missed_calls(chats):
    bodies = [e.text for e in chats[PAIR_FILE]]
    assert 50 <= bodies.count("<Media omitted>") <= 0.05 * len(bodies)
    assert "This message was deleted" in bodies
    assert "You deleted this message" in bodies
    assert any(b.endswith(" <This message was edited>") for b in bodies)
    calls = [e for e in chats[PAIR_FILE] if e.text == "Missed voice call"]
    assert PERSONA in {e.author for e in calls}


def test_ios_file_has_lrm_placeholders_and_deleted_messages(chats):
    bodies = [e.text for e in chats[GROUP_FILE]]
    for placeholder in ("image omitted", "sticker omitted", "audio omitted"):
        assert f"\u200e{placeholder}" in bodies
    assert "\u200eThis message was deleted." in bodies


def test_contact_details_are_fictional(sample):
    text = "\n".join(sample.values())
    phones = re.findall(r"\+\d[\d ]{9,}\d", text)
    emails = re.findall(r"[\w.]+@[\w.]+\w", text)
    urls = re.findall(r"https?://[^\s/]+", text)
    assert phones and emails and urls
    assert all(p.startswith("+44 7700 900") for p in phones)
    assert all(e.endswith("@example.com") for e in emails)
    assert all(u.endswith("://example.com") for u in urls)


# Maya's measurable style


@pytest.mark.parametrize("name", [PAIR_FILE, GROUP_FILE])
def test_maya_starts_lowercase_and_the_others_capitalise(chats, name):
    assert lowercase_share(words_of(chats[name], PERSONA)) > 0.85
    for other in OTHERS[name]:
        assert lowercase_share(words_of(chats[name], other)) < 0.2


@pytest.mark.parametrize("name", [PAIR_FILE, GROUP_FILE])
def test_maya_rarely_ends_with_a_full_stop(chats, name):
    maya = words_of(chats[name], PERSONA)
    others = others_words(chats[name], name)
    assert sum(t.endswith(".") for t in maya) / len(maya) < 0.05
    assert sum(t.endswith((".", "!", "?")) for t in others) / len(others) > 0.8


@pytest.mark.parametrize("name", [PAIR_FILE, GROUP_FILE])
def test_maya_uses_far_more_emoji(chats, name):
    maya = emoji_rate(words_of(chats[name], PERSONA))
    others = emoji_rate(others_words(chats[name], name))
    assert maya > 0.3
    assert maya > 5 * others


@pytest.mark.parametrize("name", [PAIR_FILE, GROUP_FILE])
def test_maya_writes_shorter_messages(chats, name):
    maya = statistics.median(len(t) for t in words_of(chats[name], PERSONA))
    others = statistics.median(len(t) for t in others_words(chats[name], name))
    assert maya < 0.7 * others


@pytest.mark.parametrize("name", [PAIR_FILE, GROUP_FILE])
def test_maya_talks_mostly_between_seven_and_one(chats, name):
    hours = [e.ts.hour for e in chats[name] if e.author == PERSONA]
    assert sum(h >= 19 or h < 1 for h in hours) / len(hours) > 0.6


@pytest.mark.parametrize("name", [PAIR_FILE, GROUP_FILE])
def test_maya_sends_bursts_of_three_or_more(chats, name):
    runs: dict[str, list[int]] = {}
    previous, length = None, 0
    for entry in [*chats[name], Entry(datetime.min, None, "")]:
        if entry.author == previous:
            length += 1
            continue
        if previous is not None:
            runs.setdefault(previous, []).append(length)
        previous, length = entry.author, 1
    bursts = {author: sum(n >= 3 for n in lengths) for author, lengths in runs.items()}
    assert bursts[PERSONA] >= 100
    assert bursts[PERSONA] / len(runs[PERSONA]) > 0.15
    assert all(bursts[other] < bursts[PERSONA] / 5 for other in OTHERS[name])


@pytest.mark.parametrize("name", [PAIR_FILE, GROUP_FILE])
def test_maya_replies_in_minutes_and_the_others_slower(chats, name):
    waits: dict[str, list[timedelta]] = {}
    for before, after in pairwise(chats[name]):
        if before.author and after.author and before.author != after.author:
            waits.setdefault(after.author, []).append(after.ts - before.ts)
    assert statistics.median(waits[PERSONA]) <= timedelta(minutes=2)
    for other in OTHERS[name]:
        assert statistics.median(waits[other]) >= timedelta(minutes=5)


def test_maya_laughs_and_uses_her_slang(chats):
    maya = " ".join(words_of(chats[PAIR_FILE], PERSONA))
    for habit in ("hahah", "lmaooo", "😂😂", "omg", "tbh", "ngl", "idk", " rn", " u ", " ur "):
        assert habit in maya, habit
    for stretched in ("sooo", "noooo", "yesss"):
        assert stretched in maya, stretched
    for phrase in ("no bc", "literally", "wait what"):
        assert phrase in maya, phrase


def test_sample_paths_point_at_bundled_files():
    for path in sample_paths():
        assert isinstance(path, Path)
        assert path.is_file()
        assert path.stat().st_size < 1_000_000
