"""Failure modes of generated replies: sameness, loops, silence, rambling and memorised text.

Words are the style profile's word keys (`style.profile.lexicon`: lowercased runs of letters
and apostrophes, numbers left out). Copies are found with hash sets: one of the training
replies' normalised texts, one of their `COPY_NGRAM`-word runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from style.profile.lexicon import WORD_RE, clean
from training.dataset.samples import BUBBLE_SEPARATOR
from training.evaluate.style_distance import EmptyReplySetError, Turns

COPY_NGRAM = 8
"""A run of this many words shared with a training reply counts as copied."""
REPEAT_NGRAM = 3
"""Word n-gram size of the within-reply repetition rate."""
LOOP_NGRAM = 4
LOOP_REPEATS = 3
"""A reply loops when one word `LOOP_NGRAM`-gram occurs `LOOP_REPEATS` times or more in it."""
RUNAWAY_QUANTILE = 99.0
"""A reply longer (in characters) than this percentile of the reference replies runs away."""

Gram = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Degeneration:
    """How generated replies degenerate; shares are of generated replies unless noted."""

    replies: int
    tokens: int
    distinct_1: float
    """Distinct words / words over all replies, 0..1; higher = more varied."""
    distinct_2: float
    """Distinct word pairs / pairs (pairs inside one reply), 0..1; higher = more varied."""
    self_repetition: float
    """Share of non-empty replies identical to an earlier generated reply, 0..1; lower better."""
    repeated_ngram_rate: float
    """Share of word 3-grams that repeat an earlier 3-gram of the same reply, 0..1; lower."""
    copied_replies: float
    """Share equal to a training reply after light normalisation, 0..1 (short ones included)."""
    copied_ngram_replies: float
    """Share holding an 8-word run of some training reply, 0..1: memorisation; lower better."""
    empty: float
    """Share with no visible text, 0..1; lower better."""
    runaway: float
    """Share longer than `runaway_chars` or looping, 0..1; lower better."""
    runaway_chars: float | None
    """The length limit: the reference replies' 99th percentile in characters (None: none)."""

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of every field."""
        return asdict(self)


def measure_degeneration(
    generated: Turns,
    *,
    training_replies: Iterable[str],
    reference: Turns | None = None,
) -> Degeneration:
    """Measure repetition, copying, empty and runaway replies among `generated` turns.

    Args:
        generated: the generated replies, each a list of bubbles.
        training_replies: the persona's training replies, as text (bubbles joined by
            `BUBBLE_SEPARATOR`, as in the dataset files); read once.
        reference: the persona's real replies to the same prompts; their length sets the
            runaway limit. Default: the training replies' lengths.
    """
    if not generated:
        raise EmptyReplySetError("the generated replies are empty; give at least one turn")
    seen_texts: set[str] = set()
    seen_grams: set[Gram] = set()
    training_lengths: list[int] = []
    for reply in training_replies:
        seen_texts.add(normalise(reply))
        seen_grams.update(_ngrams(words(reply), COPY_NGRAM))
        training_lengths.append(len(reply))
    lengths = training_lengths if reference is None else [len(_text(turn)) for turn in reference]
    limit = float(np.percentile(lengths, RUNAWAY_QUANTILE)) if lengths else None

    texts = [_text(turn) for turn in generated]
    tokens = [words(text) for text in texts]
    empty = [not text.strip() for text in texts]
    pairs = [gram for reply in tokens for gram in _ngrams(reply, 2)]
    all_words = [word for reply in tokens for word in reply]
    repeats = [_repeats(_ngrams(reply, REPEAT_NGRAM)) for reply in tokens]
    grams = sum(max(0, len(reply) - REPEAT_NGRAM + 1) for reply in tokens)
    seen: set[str] = set()
    repeated = 0
    for text, blank in zip(texts, empty, strict=True):
        repeated += not blank and text in seen
        seen.add(text)
    runaway = [
        (limit is not None and len(text) > limit) or loops(reply)
        for text, reply in zip(texts, tokens, strict=True)
    ]
    copied_grams = [
        any(gram in seen_grams for gram in _ngrams(reply, COPY_NGRAM)) for reply in tokens
    ]
    copied = sum(
        not blank and normalise(text) in seen_texts
        for text, blank in zip(texts, empty, strict=True)
    )
    n = len(generated)
    return Degeneration(
        replies=n,
        tokens=len(all_words),
        distinct_1=_ratio(len(set(all_words)), len(all_words)),
        distinct_2=_ratio(len(set(pairs)), len(pairs)),
        self_repetition=_ratio(repeated, n - sum(empty)),
        repeated_ngram_rate=_ratio(sum(repeats), grams),
        copied_replies=copied / n,
        copied_ngram_replies=sum(copied_grams) / n,
        empty=sum(empty) / n,
        runaway=sum(runaway) / n,
        runaway_chars=limit,
    )


def normalise(text: str) -> str:
    """A reply for exact comparison: case folded, every run of whitespace one space."""
    return " ".join(text.casefold().split())


def words(text: str) -> list[str]:
    """The profile's word keys of `text`, in order (numbers left out)."""
    return [key for key in map(clean, WORD_RE.findall(text.lower())) if key]


def loops(tokens: Sequence[str]) -> bool:
    """True when one word `LOOP_NGRAM`-gram occurs `LOOP_REPEATS` times or more."""
    counts = Counter(_ngrams(tokens, LOOP_NGRAM))
    return bool(counts) and max(counts.values()) >= LOOP_REPEATS


def _text(turn: Sequence[str]) -> str:
    return BUBBLE_SEPARATOR.join(turn)


def _ngrams(tokens: Sequence[str], n: int) -> list[Gram]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _repeats(grams: list[Gram]) -> int:
    """How many n-grams repeat an earlier one of the same list."""
    return len(grams) - len(set(grams))


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
