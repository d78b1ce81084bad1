"""Small-data augmentation that stays honest: the same real reply with less context.

For each trained reply of a training sample and each N in `augment_contexts`, one extra
sample keeps only the last N user turns before that reply (and the persona's turns between
them), with only that reply trained. Nothing is invented or paraphrased: every copy is a
contiguous slice of the sample's own conversation inside the sample's window, so it holds no
text the sample did not already hold, and only training samples (from training
conversations) are copied. A copy is made only when it is shorter than the context the
reply has in its sample; it is marked `augmented=True`, `meta["turn"]` is the reply's index
in its conversation and `meta["context_user_turns"]` how many user turns it kept.

What it does to training: the reply carries loss once more per copy (like one more epoch on
it, with the older context dropped), which teaches the model to answer from a short
history, as the bot often must after a restart or at the start of a chat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from training.dataset.samples import Sample, Turn


def context_cuts(available: int, contexts: Sequence[int]) -> list[int]:
    """Turns each shorter copy keeps (2N for N user turns), longest first.

    `available` is how many turns, the reply included, its sample holds up to the reply;
    only copies shorter than that are made. Turns alternate user/assistant, so keeping the
    last N user turns before a reply is keeping its last 2N turns.
    """
    return [2 * n for n in sorted(set(contexts), reverse=True) if 2 * n < available]


def augmented_copy(base: Sample, turns: tuple[Turn, ...], turn: int) -> Sample:
    """A copy of `base` holding `turns` (ending with the trained reply at index `turn`)."""
    return replace(
        base,
        turns=turns,
        augmented=True,
        meta={**base.meta, "turn": str(turn), "context_user_turns": str(len(turns) // 2)},
    )
