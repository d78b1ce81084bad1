"""Base capability: the bundled general prompts and their automatic checks on literal answers."""

from __future__ import annotations

import pytest

from training.evaluate import (
    CapabilityError,
    capability_prompts,
    check_capability,
    score_capability,
)
from training.evaluate.capability import CHECK_KINDS

GOOD = {
    "add": "its 42 obv",
    "multiply": "144",
    "subtract": "sixty-three",
    "word-problem": "12 apples 🍎",
    "week": "seven days lol",
    "capital-france": "paris ofc 😂",
    "capital-japan": "Tokyo",
    "red-planet": "mars!!",
    "ocean": "the pacific",
    "shakespeare": "shakespeare",
    "colours": "green",
    "odd": "odd",
    "backwards": "tac",
    "reply-french": "Bonjour ! Comment ça va, tu es bien ?",
    "translate-spanish": "muchas gracias",
    "answer-german": "Dienstag",
    "three-lines": "apple\nbanana\npear",
    "one-word": "cold",
    "capitals": "HELLO",
    "json": '```json\n{"name": "Ana", "age": 30}\n```',
    "count-commas": "1, 2, 3, 4, 5",
    "starts-with": "Sure: red",
}


def _answers(overrides: dict[str, str]) -> list[str]:
    return [overrides.get(p.id, GOOD[p.id]) for p in capability_prompts()]


def test_the_bundled_set_is_about_twenty_prompts_with_known_checks() -> None:
    prompts = capability_prompts()
    assert 18 <= len(prompts) <= 30
    assert len({p.id for p in prompts}) == len(prompts)
    assert {c["kind"] for p in prompts for c in p.checks} <= set(CHECK_KINDS)
    assert set(GOOD) == {p.id for p in prompts}


def test_right_answers_in_a_persona_voice_all_pass() -> None:
    assert score_capability(_answers({})) == 1.0


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [
        ("add", "idk like 40?"),
        ("multiply", "1440"),
        ("capital-france", "lyon"),
        ("odd", "its even"),
        ("reply-french", "good morning! how are you?"),
        ("three-lines", "apple, banana, pear"),
        ("one-word", "cold obviously"),
        ("capitals", "Hello"),
        ("json", "name: Ana, age: 30"),
        ("starts-with", "red"),
        ("backwards", "attack"),
    ],
)
def test_wrong_answers_fail_their_check(prompt: str, answer: str) -> None:
    passed = check_capability(_answers({prompt: answer}))
    assert [name for name, ok in passed.items() if not ok] == [prompt]


def test_the_score_is_the_share_of_prompts_passed() -> None:
    wrong = {"add": "no idea", "capital-japan": "Kyoto"}
    total = len(capability_prompts())
    assert score_capability(_answers(wrong)) == pytest.approx((total - 2) / total)
    assert score_capability(["idk"] * total) == 0.0


def test_answers_must_follow_the_prompts_one_to_one() -> None:
    with pytest.raises(CapabilityError, match="one per prompt"):
        score_capability(["42"])
