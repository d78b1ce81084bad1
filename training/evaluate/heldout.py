"""What an evaluation reads from a dataset folder: held-out turns to answer, training texts.

The held-out turns are every trained persona turn of the eval split (whole conversations
held out by time, docs/dataset.md), each with the context a model would have had: the
system card and the turns before it. The training split gives the persona's training
replies (to measure copying) and the texts the discriminator learns from. Nothing of the
eval split reaches the training texts.

`openai_eval.jsonl` / `openai_train.jsonl` are read when present: their assistant turns
carry `weight` 0/1, so each trained turn is found exactly once. Without them the plain
`eval.jsonl` / `train.jsonl` are read and only the last assistant turn of each line counts
(a line always ends with a trained turn; earlier ones may be context repeated elsewhere).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.dataset.samples import BUBBLE_SEPARATOR, CONVERSATION_START, Turn
from training.errors import DatasetError

__all__ = [
    "HeldOutTurn",
    "TrainingTexts",
    "load_heldout",
    "load_training_texts",
    "strip_speakers",
    "training_replies",
]

_EVAL_FILES = ("openai_eval.jsonl", "eval.jsonl")
_TRAIN_FILES = ("openai_train.jsonl", "train.jsonl")
_SPEAKER = re.compile(r"([^\s:][^:\n]{0,39}): ")
MIN_SPEAKER_TURNS = 2
"""A "Name: " prefix is a speaker's name only when it heads every bubble of at least this many
user turns; a lone "note: ..." in a one-to-one chat is left alone."""


@dataclass(frozen=True, slots=True)
class HeldOutTurn:
    """One real persona reply of the eval split, with what came before it."""

    index: int
    """Position in the held-out list (0-based)."""
    line: int
    """Line of the eval file the turn was found in (1-based)."""
    system: str
    """The system prompt of that line: the persona card."""
    context: tuple[Turn, ...]
    """The turns before the reply, oldest first; the last is the user turn being answered."""
    reference: tuple[str, ...]
    """The bubbles the persona really sent."""

    @property
    def last_user_turn(self) -> Turn:
        """The user turn the reply answers."""
        return self.context[-1]


@dataclass(frozen=True, slots=True)
class TrainingTexts:
    """The training split's texts: the persona's trained replies and everyone else's turns."""

    persona: list[tuple[str, ...]]
    """Every trained persona turn, as bubbles, in file order."""
    others: list[tuple[str, ...]]
    """Distinct user turns without "Name: " prefixes and without `CONVERSATION_START`."""

    @property
    def replies(self) -> list[str]:
        """The persona's replies as text (bubbles joined by `BUBBLE_SEPARATOR`)."""
        return [BUBBLE_SEPARATOR.join(turn) for turn in self.persona]


def load_heldout(dataset_dir: Path, *, limit: int | None = None) -> list[HeldOutTurn]:
    """Every trained persona turn of the eval split with its context, in file order.

    With `limit`, that many turns evenly spread over the split (the split is ordered by
    time, so the first N would all come from the oldest held-out conversations).
    """
    path = _find(dataset_dir, _EVAL_FILES, "eval")
    weighted = path.name.startswith("openai_")
    found: list[HeldOutTurn] = []
    for number, messages in _lines(path):
        system, turns = _split_system(messages, path, number)
        for position in _trained(messages, turns, weighted):
            found.append(
                HeldOutTurn(
                    index=0,
                    line=number,
                    system=system,
                    context=tuple(turns[:position]),
                    reference=turns[position].bubbles,
                )
            )
    if not found:
        raise DatasetError(
            f"{path} holds no trained persona turn; rebuild the dataset with eval_share > 0"
        )
    if limit is not None:
        if limit < 1:
            raise DatasetError(f"limit must be at least 1, not {limit}")
        if limit < len(found):
            picks = np.linspace(0, len(found) - 1, limit).round().astype(int)
            found = [found[i] for i in picks]
    return [HeldOutTurn(i, t.line, t.system, t.context, t.reference) for i, t in enumerate(found)]


def load_training_texts(dataset_dir: Path) -> TrainingTexts:
    """The persona's trained replies and the others' turns of the training split."""
    path = _find(dataset_dir, _TRAIN_FILES, "train")
    weighted = path.name.startswith("openai_")
    persona: list[tuple[str, ...]] = []
    others: dict[tuple[str, ...], None] = {}
    for number, messages in _lines(path):
        _, turns = _split_system(messages, path, number)
        persona.extend(turns[position].bubbles for position in _trained(messages, turns, weighted))
        for turn in turns:
            if turn.role == "user" and turn.bubbles != (CONVERSATION_START,):
                others[turn.bubbles] = None
    if not persona:
        raise DatasetError(f"{path} holds no trained persona turn; rebuild the dataset")
    return TrainingTexts(persona=persona, others=strip_speakers(list(others)))


def training_replies(dataset_dir: Path) -> list[str]:
    """The persona's training replies as text, for the copy rate of `measure_degeneration`."""
    return load_training_texts(dataset_dir).replies


def strip_speakers(turns: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """User turns without their speakers' "Name: " prefixes (group chats), deduplicated.

    A prefix counts as a speaker's name when it heads every bubble of `MIN_SPEAKER_TURNS`
    turns or more; generated replies never carry one, so a judge must not learn from it.
    """
    heads: Counter[str] = Counter()
    for turn in turns:
        matches = [_SPEAKER.match(bubble) for bubble in turn]
        if all(matches):
            heads.update({m.group(1) for m in matches if m})
    names = {name for name, count in heads.items() if count >= MIN_SPEAKER_TURNS}
    stripped: dict[tuple[str, ...], None] = {}
    for turn in turns:
        bubbles = tuple(_strip(bubble, names) for bubble in turn)
        if any(bubbles):
            stripped[bubbles] = None
    return list(stripped)


def _strip(bubble: str, names: set[str]) -> str:
    match = _SPEAKER.match(bubble)
    return bubble[match.end() :] if match and match.group(1) in names else bubble


def _find(dataset_dir: Path, names: tuple[str, ...], split: str) -> Path:
    for name in names:
        if (dataset_dir / name).is_file():
            return dataset_dir / name
    raise DatasetError(
        f"{dataset_dir} has no {names[-1]}; build the dataset first (wa-persona dataset)"
        + (" with eval_share > 0" if split == "eval" else "")
    )


def _lines(path: Path) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(line number, messages) of every non-blank line of a chat JSONL file."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                messages = json.loads(line)["messages"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DatasetError(
                    f"{path}, line {number}: not a chat sample ({exc}); rebuild the dataset"
                ) from exc
            if not isinstance(messages, list):
                raise DatasetError(f"{path}, line {number}: `messages` is not a list")
            yield number, messages


def _split_system(
    messages: list[dict[str, Any]], path: Path, number: int
) -> tuple[str, list[Turn]]:
    """The system prompt ("" without one) and the turns of one line."""
    system = ""
    turns: list[Turn] = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if not isinstance(content, str) or role not in ("system", "user", "assistant"):
            raise DatasetError(f"{path}, line {number}: a message without role or text")
        if role == "system":
            system = content
        else:
            turns.append(Turn(role, tuple(content.split(BUBBLE_SEPARATOR))))
    return system, turns


def _trained(messages: list[dict[str, Any]], turns: list[Turn], weighted: bool) -> list[int]:
    """Positions in `turns` of the trained assistant turns that follow a user turn."""
    if weighted:
        weights = [m.get("weight", 1) for m in messages if m.get("role") != "system"]
        pairs = enumerate(zip(turns, weights, strict=True))
        positions = [i for i, (t, w) in pairs if t.role == "assistant" and w == 1]
    else:
        positions = [i for i, t in enumerate(turns) if t.role == "assistant"][-1:]
    return [i for i in positions if i > 0 and turns[i - 1].role == "user"]
