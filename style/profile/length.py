"""How long the persona's messages and bursts are."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from style.profile.conversations import PERSONA, Conversations, FloatArray, Timeline
from style.profile.distributions import (
    CHAR_EDGES,
    COUNT_EDGES,
    LATENCY_EDGES,
    WORD_EDGES,
    share,
    summarise,
)
from style.profile.model import Distribution, LengthProfile


def length_profile(
    timeline: Timeline, conversations: Conversations, texts: Sequence[str]
) -> LengthProfile:
    """Characters and words per text message; messages, characters and pauses per burst.

    `texts` are the persona's text messages. Characters are Unicode code points (an emoji
    with a skin tone counts 2); words are whitespace-separated pieces. Pauses inside a burst
    come only from chats whose clock has seconds.
    """
    chars, words = text_lengths(texts)
    mine = conversations.turn_author == PERSONA
    sizes = (conversations.turn_end - conversations.turn_first)[mine]
    turn_chars = np.add.reduceat(timeline.chars, conversations.turn_first)[mine]
    return LengthProfile(
        chars=chars,
        words=words,
        burst_size=summarise(sizes, COUNT_EDGES),
        burst_gap_s=summarise(burst_gaps(timeline, conversations), LATENCY_EDGES, log=True),
        multi_message_share=share(int((sizes > 1).sum()), int(sizes.size)),
        turn_chars=summarise(turn_chars, CHAR_EDGES),
    )


def text_lengths(texts: Sequence[str]) -> tuple[Distribution, Distribution]:
    """Characters (code points) and words (whitespace-separated) per message."""
    chars = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    words = np.fromiter(map(len, map(str.split, texts)), dtype=np.int64, count=len(texts))
    return summarise(chars, CHAR_EDGES), summarise(words, WORD_EDGES)


def burst_gaps(timeline: Timeline, conversations: Conversations) -> FloatArray:
    """Seconds between consecutive persona messages of one turn (second-resolution chats)."""
    inside = np.flatnonzero(~conversations.new_turn & (timeline.author == PERSONA) & timeline.fine)
    return timeline.t[inside] - timeline.t[inside - 1]
