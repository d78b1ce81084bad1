"""Base capability retention: does a fine-tuned persona still answer simple general questions?

Fine-tuning on chat messages can wear away what the base model knew. A small bundled set of
general prompts (`data/capability.jsonl`: arithmetic, facts, replying in another language,
following a format) each comes with automatic checks, so no judge model is needed. The
caller asks both models (say the local backend with and without the adapter) and scores
the answers; the drop from base to fine-tuned is the retention the champion rule limits.

    prompts = capability_prompts()
    answers = [ask(p.prompt) for p in prompts]
    score_capability(answers)  # share of prompts whose every check passes, 0..1

Checks are lenient about style (a persona may answer "paris obv 😂"): words are matched
case-insensitively on word boundaries, numbers as digits or listed words.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from style.profile.languages import language_shares
from style.profile.lexicon import WORD_RE, clean
from training.errors import TrainingError

__all__ = [
    "CHECK_KINDS",
    "CapabilityError",
    "CapabilityPrompt",
    "capability_prompts",
    "check_answer",
    "check_capability",
    "score_capability",
]

DATA_FILE = "capability.jsonl"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class CapabilityError(TrainingError):
    """The capability prompts or the answers given for them are not usable."""


@dataclass(frozen=True, slots=True)
class CapabilityPrompt:
    """One general question and the checks its answer must all pass."""

    id: str
    prompt: str
    checks: tuple[Mapping[str, Any], ...]


def capability_prompts() -> list[CapabilityPrompt]:
    """The bundled prompts, in file order."""
    return list(_load())


def check_capability(answers: Sequence[str]) -> dict[str, bool]:
    """Whether each prompt's answer passes, by prompt id; `answers` follow `capability_prompts`."""
    prompts = _load()
    if len(answers) != len(prompts):
        raise CapabilityError(
            f"{len(answers)} answers for {len(prompts)} capability prompts; give one per prompt"
        )
    return {p.id: check_answer(p, answer) for p, answer in zip(prompts, answers, strict=True)}


def score_capability(answers: Sequence[str]) -> float:
    """The share of capability prompts answered correctly, 0..1."""
    passed = check_capability(answers)
    return sum(passed.values()) / len(passed)


def check_answer(prompt: CapabilityPrompt, answer: str) -> bool:
    """True when `answer` passes every check of `prompt`."""
    return all(_CHECKS[check["kind"]](check, answer.strip()) for check in prompt.checks)


# --- checks --------------------------------------------------------------------------------


def _contains(check: Mapping[str, Any], answer: str) -> bool:
    return any(_has(answer, text) for text in check["any"])


def _absent(check: Mapping[str, Any], answer: str) -> bool:
    return not _contains(check, answer)


def _number(check: Mapping[str, Any], answer: str) -> bool:
    value = float(check["value"])
    numbers = {float(n.replace(",", "")) for n in _NUMBER.findall(answer) if n.strip("-,")}
    return value in numbers or any(_has(answer, word) for word in check.get("words", ()))


def _language(check: Mapping[str, Any], answer: str) -> bool:
    words = Counter(clean(token) for token in WORD_RE.findall(answer.lower()))
    shares = language_shares(words)
    return bool(shares) and next(iter(shares)) == check["language"]


def _lines(check: Mapping[str, Any], answer: str) -> bool:
    return len([line for line in answer.splitlines() if line.strip()]) == check["count"]


def _max_words(check: Mapping[str, Any], answer: str) -> bool:
    return 0 < len(WORD_RE.findall(answer)) <= check["count"]


def _uppercase(_check: Mapping[str, Any], answer: str) -> bool:
    letters = [c for c in answer if c.isalpha()]
    return len(letters) >= 3 and all(c.isupper() for c in letters)


def _json_keys(check: Mapping[str, Any], answer: str) -> bool:
    fenced = _FENCE.match(answer)
    try:
        value = json.loads(fenced.group(1) if fenced else answer)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and all(key in value for key in check["keys"])


def _regex(check: Mapping[str, Any], answer: str) -> bool:
    return re.search(check["pattern"], answer) is not None


def _starts_with(check: Mapping[str, Any], answer: str) -> bool:
    return answer.casefold().startswith(str(check["prefix"]).casefold())


def _has(answer: str, text: str) -> bool:
    """`text` in `answer`, case-insensitive, not inside a longer word."""
    return re.search(rf"(?<!\w){re.escape(text)}(?!\w)", answer, re.IGNORECASE) is not None


_CHECKS = {
    "absent": _absent,
    "contains": _contains,
    "json_keys": _json_keys,
    "language": _language,
    "lines": _lines,
    "max_words": _max_words,
    "number": _number,
    "regex": _regex,
    "starts_with": _starts_with,
    "uppercase": _uppercase,
}
CHECK_KINDS = tuple(_CHECKS)
"""The check kinds a prompt may use."""


@functools.cache
def _load() -> tuple[CapabilityPrompt, ...]:
    text = resources.files("training.evaluate").joinpath("data", DATA_FILE).read_text("utf-8")
    prompts = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        checks = tuple(record["checks"])
        unknown = [c.get("kind") for c in checks if c.get("kind") not in _CHECKS]
        if unknown or not checks:
            raise CapabilityError(f"{DATA_FILE}, line {number}: unknown check kinds {unknown}")
        prompts.append(CapabilityPrompt(record["id"], record["prompt"], checks))
    return tuple(prompts)
