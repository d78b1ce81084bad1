"""Blind A/B tests: files for raters with the key apart, and scoring a filled answer file."""

from __future__ import annotations

import csv
import json
import stat
from pathlib import Path

import pytest

from training.dataset import CONVERSATION_START, Turn
from training.evaluate import ABItem, ABTestError, score_abtest, write_abtest
from training.evaluate.abtest import binomial_p_value, wilson_interval

ITEMS = [
    ABItem(
        context=(Turn("user", (f"Sam: are u coming {i}?",)),),
        first=(f"real reply {i}", "second bubble"),
        second=(f"model reply {i}",),
    )
    for i in range(8)
] + [
    ABItem((Turn("user", (CONVERSATION_START,)),), ("real opener",), ("model opener",)),
    ABItem(
        (Turn("user", ("hi",)), Turn("assistant", ("heyyy",)), Turn("user", ("wyd",))),
        ("nothing much",),
        ("just chilling",),
    ),
]
LABELS = ("real", "maya-v3")


def _write(tmp_path: Path, seed: int = 7):
    return write_abtest(
        ITEMS,
        tmp_path / "test",
        labels=LABELS,
        question="Which did Maya write?",
        seed=seed,
        persona="Maya",
    )


def test_questions_hold_both_replies_and_no_label(tmp_path: Path) -> None:
    files = _write(tmp_path)
    text = files.questions.read_text(encoding="utf-8")
    assert text.startswith("# Which did Maya write?")
    assert text.count("## Question") == len(ITEMS)
    for item in ITEMS:
        assert f"> {item.first[0]}" in text and f"> {item.second[0]}" in text
    assert "maya-v3" not in text and "real)" not in text and "real:" not in text.lower()
    assert "*(a new conversation starts)*" in text
    assert "**Maya:**\n> heyyy" in text and "**Them:**\n> wyd" in text
    assert stat.S_IMODE(files.questions.stat().st_mode) == 0o600


def test_the_key_is_a_separate_file_of_labels_without_text(tmp_path: Path) -> None:
    files = _write(tmp_path)
    key = json.loads(files.key.read_text(encoding="utf-8"))
    assert files.key.name == "key.json" and files.key != files.answers
    assert key["labels"] == list(LABELS)
    assert sorted(map(int, key["questions"])) == list(range(1, len(ITEMS) + 1))
    assert all(sorted(sides) == sorted(LABELS) for sides in key["questions"].values())
    assert "reply" not in files.key.read_text(encoding="utf-8")
    rows = list(csv.DictReader(files.answers.read_text(encoding="utf-8").splitlines()))
    assert [r["question"] for r in rows] == [str(n) for n in range(1, len(ITEMS) + 1)]
    assert all(r["choice"] == "" for r in rows)


def test_sides_and_order_are_shuffled_by_the_seed(tmp_path: Path) -> None:
    first = json.loads(_write(tmp_path / "a", seed=1).key.read_text(encoding="utf-8"))
    again = json.loads(_write(tmp_path / "b", seed=1).key.read_text(encoding="utf-8"))
    other = json.loads(_write(tmp_path / "c", seed=2).key.read_text(encoding="utf-8"))
    assert first["questions"] == again["questions"]
    assert first["questions"] != other["questions"]
    swapped = [s for s in first["questions"].values() if tuple(s) == LABELS[::-1]]
    assert len(swapped) == len(ITEMS) // 2  # always picking reply 1 favours neither side


def test_the_key_can_be_written_elsewhere(tmp_path: Path) -> None:
    files = write_abtest(
        ITEMS, tmp_path / "raters", labels=LABELS, question="q", key_path=tmp_path / "me/key.json"
    )
    assert files.key == tmp_path / "me" / "key.json" and files.key.is_file()
    assert not (tmp_path / "raters" / "key.json").exists()


def _fill(files, pick: str, *, blank: set[str] = frozenset()) -> Path:
    """Answer every question by choosing the side labelled `pick`, leaving `blank` empty."""
    key = json.loads(files.key.read_text(encoding="utf-8"))["questions"]
    lines = ["question,choice,rater"]
    for number, sides in key.items():
        choice = "" if number in blank else str(sides.index(pick) + 1)
        lines.append(f"{number},{choice},ana")
    files.answers.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files.answers


def test_scoring_counts_picks_per_side_skips_blanks_and_tests_them(tmp_path: Path) -> None:
    files = _write(tmp_path)
    result = score_abtest(_fill(files, "real", blank={"3"}), files.key)
    assert result.picks == {"real": 9, "maya-v3": 0}
    assert (result.judged, result.skipped) == (9, 1)
    assert result.shares == {"real": 1.0, "maya-v3": 0.0}
    assert result.p_value == pytest.approx(2 / 2**9)
    low, high = result.interval
    assert 0.65 < low < 0.75 and high == 1.0


def test_a_bad_choice_or_unknown_question_names_the_line(tmp_path: Path) -> None:
    files = _write(tmp_path)
    files.answers.write_text("question,choice,rater\n1,A,ana\n", encoding="utf-8")
    with pytest.raises(ABTestError, match="line 2: choice must be 1 or 2"):
        score_abtest(files.answers, files.key)
    files.answers.write_text("question,choice,rater\n99,1,ana\n", encoding="utf-8")
    with pytest.raises(ABTestError, match="question '99' is not in the key"):
        score_abtest(files.answers, files.key)


def test_binomial_and_wilson_on_known_values() -> None:
    assert binomial_p_value(5, 10) == 1.0
    assert binomial_p_value(9, 10) == pytest.approx(22 / 1024)
    assert binomial_p_value(0, 0) == 1.0
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)


def test_nothing_to_write_and_equal_labels_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ABTestError, match="no pairs"):
        write_abtest([], tmp_path, labels=LABELS, question="q")
    with pytest.raises(ABTestError, match="different labels"):
        write_abtest(ITEMS, tmp_path, labels=("a", "a"), question="q")
