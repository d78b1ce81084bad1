"""Blind A/B tests: people pick between two replies to the same moment of a chat.

Numbers only go so far; the last word on "does it write like her?" is people who know her.
`write_abtest` writes the pairs for raters, each pair's sides shuffled by a seed, and the
answer key in a separate file that raters must not see:

- `questions.md`: per question, the last turns of the conversation, then reply 1 and reply 2
  (message text: private, written readable by the owner only);
- `answers.csv`: `question,choice,rater`, one row per question with `choice` left blank for a
  rater to fill with 1 or 2 (copy the rows for more raters, with their name in `rater`);
- `key.json`: which side is which; labels only, no text. Keep it away from the raters.

`score_abtest` reads a filled answer file with the key: how often each side was picked, an
exact two-sided binomial test against 50/50, and a Wilson 95% interval. With "real" against a
model the question is "which did she really write?": a model indistinguishable from her is
picked about half the time.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.dataset.samples import CONVERSATION_START, Turn
from training.errors import TrainingError
from training.evaluate.report import write_private

__all__ = [
    "ABItem",
    "ABResult",
    "ABTestError",
    "ABTestFiles",
    "binomial_p_value",
    "score_abtest",
    "wilson_interval",
    "write_abtest",
]

KEY_VERSION = 1
CONTEXT_TURNS = 4
"""Turns of the conversation shown before the two replies."""
Z_95 = 1.959963984540054


class ABTestError(TrainingError):
    """An A/B test cannot be written or scored as given."""


@dataclass(frozen=True, slots=True)
class ABItem:
    """One moment of a chat and two replies to it, by the first and the second system."""

    context: tuple[Turn, ...]
    first: tuple[str, ...]
    second: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ABTestFiles:
    """Where `write_abtest` wrote the test."""

    questions: Path
    answers: Path
    key: Path


@dataclass(frozen=True, slots=True)
class ABResult:
    """How raters chose between the two sides."""

    labels: tuple[str, str]
    picks: dict[str, int]
    """Times each side was picked."""
    judged: int
    """Rows with a choice."""
    skipped: int
    """Rows left blank."""
    p_value: float
    """Exact two-sided binomial test of the first side's picks against 50/50."""
    interval: tuple[float, float]
    """Wilson 95% interval of the first side's share of picks."""

    @property
    def shares(self) -> dict[str, float]:
        """Each side's share of the picks (0 when nothing was judged)."""
        total = self.judged or 1
        return {label: self.picks[label] / total for label in self.labels}

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "labels": list(self.labels),
            "picks": dict(self.picks),
            "shares": self.shares,
            "judged": self.judged,
            "skipped": self.skipped,
            "p_value": self.p_value,
            "interval": list(self.interval),
        }


def write_abtest(
    items: Sequence[ABItem],
    out_dir: Path,
    *,
    labels: tuple[str, str],
    question: str,
    seed: int = 0,
    key_path: Path | None = None,
    persona: str = "Persona",
) -> ABTestFiles:
    """Write `questions.md`, `answers.csv` and the key (`key_path`, default out_dir/key.json).

    Questions come in a shuffled order, and half of them show the second side first; the
    same seed writes the same test. The context's turns are headed "Them" and `persona`.
    Files holding message text are made readable by the owner only.
    """
    if not items:
        raise ABTestError("no pairs to write; give at least one")
    if labels[0] == labels[1]:
        raise ABTestError(f"the two sides need different labels, both are {labels[0]!r}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    # Exactly half the pairs (rounded down) show the second side first, so a rater who
    # always picks reply 1 scores 50/50 instead of favouring one side.
    swaps = rng.permutation(np.arange(len(items)) < len(items) // 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    key: dict[str, list[str]] = {}
    parts = [f"# {question}\n", "For every question, pick reply 1 or reply 2 in answers.csv.\n"]
    for number, (index, swap) in enumerate(zip(order, swaps, strict=True), 1):
        item = items[index]
        replies = (item.second, item.first) if swap else (item.first, item.second)
        key[str(number)] = [labels[1], labels[0]] if swap else [labels[0], labels[1]]
        parts.append(_question_md(number, item.context, replies, persona))
    answers = io.StringIO()
    writer = csv.writer(answers, lineterminator="\n")
    writer.writerow(["question", "choice", "rater"])
    writer.writerows([number, "", ""] for number in key)
    files = ABTestFiles(
        questions=out_dir / "questions.md",
        answers=out_dir / "answers.csv",
        key=key_path or out_dir / "key.json",
    )
    write_private(files.questions, "\n".join(parts))
    write_private(files.answers, answers.getvalue())
    files.key.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "version": KEY_VERSION,
        "labels": list(labels),
        "question": question,
        "seed": seed,
        "questions": key,
    }
    files.key.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return files


def score_abtest(answers_file: Path, key_file: Path) -> ABResult:
    """Count the raters' picks in a filled `answers.csv` against `key.json`."""
    try:
        key = json.loads(key_file.read_text(encoding="utf-8"))
        labels = (str(key["labels"][0]), str(key["labels"][1]))
        sides: dict[str, list[str]] = key["questions"]
    except (OSError, json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise ABTestError(f"{key_file}: not an A/B test key ({exc})") from exc
    picks: Counter[str] = Counter({label: 0 for label in labels})
    skipped = 0
    try:
        rows = list(csv.DictReader(answers_file.read_text(encoding="utf-8").splitlines()))
    except OSError as exc:
        raise ABTestError(f"{answers_file}: cannot read ({exc})") from exc
    for line, row in enumerate(rows, 2):
        number = (row.get("question") or "").strip()
        choice = (row.get("choice") or "").strip()
        if number not in sides:
            raise ABTestError(
                f"{answers_file}, line {line}: question {number!r} is not in the key; "
                "use the answers.csv written with this key"
            )
        if not choice:
            skipped += 1
            continue
        if choice not in ("1", "2"):
            raise ABTestError(f"{answers_file}, line {line}: choice must be 1 or 2, not {choice!r}")
        picks[sides[number][int(choice) - 1]] += 1
    judged = sum(picks.values())
    return ABResult(
        labels=labels,
        picks=dict(picks),
        judged=judged,
        skipped=skipped,
        p_value=binomial_p_value(picks[labels[0]], judged),
        interval=wilson_interval(picks[labels[0]], judged),
    )


def binomial_p_value(successes: int, trials: int) -> float:
    """Exact two-sided binomial test against p = 1/2 (1.0 with no trials)."""
    if trials == 0:
        return 1.0
    tail = min(successes, trials - successes)
    mass = sum(math.comb(trials, k) for k in range(tail + 1))
    return min(1.0, 2 * mass / 2**trials)


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion ((0, 1) with no trials)."""
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    scale = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / scale
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def _question_md(
    number: int, context: Sequence[Turn], replies: tuple[tuple[str, ...], ...], persona: str
) -> str:
    lines = [f"## Question {number}", ""]
    for turn in context[-CONTEXT_TURNS:]:
        if turn.bubbles == (CONVERSATION_START,):
            lines += ["*(a new conversation starts)*", ""]
            continue
        who = "Them" if turn.role == "user" else persona
        lines += [f"**{who}:**", *_quoted(turn.bubbles), ""]
    for side, bubbles in enumerate(replies, 1):
        lines += [f"**Reply {side}:**", *_quoted(bubbles), ""]
    return "\n".join(lines)


def _quoted(bubbles: Sequence[str]) -> list[str]:
    """Bubbles as a Markdown quote, one paragraph each; "(no reply)" for none."""
    if not bubbles:
        return ["> *(no reply)*"]
    lines: list[str] = []
    for i, bubble in enumerate(bubbles):
        if i:
            lines.append(">")
        lines += [f"> {line}" for line in bubble.splitlines() or [""]]
    return lines
