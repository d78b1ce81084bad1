"""Cut a backend's raw reply into the bubbles the persona would send.

Blank lines (the training data's bubble separator) always split. A single text from a
backend that knows nothing of bubbles is split at sentence and clause boundaries when the
persona usually sends several messages per turn. Caps keep a runaway generation from
flooding a chat. See docs/typing.md.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from style.profile import EMOJI_RE, Profile

__all__ = ["MAX_BUBBLES", "MAX_BUBBLE_CHARS", "split_bubbles"]

MAX_BUBBLES = 8
"""More bubbles than this are merged into the last one."""
MAX_BUBBLE_CHARS = 1000
"""A longer bubble is cut at a word boundary and ends with "…"."""
BURSTY_SHARE = 0.5
"""A persona is bursty when at least half of her turns have two or more messages."""
MIN_SAMPLES = 20
"""Turns (and text messages) needed before the persona's burst and length numbers count."""
CLAUSE_PENALTY = 0.3
"""A clause boundary must sit this many target lengths closer than a sentence boundary."""
BLANK_LINE = re.compile(r"\n\s*\n")
SPACE = re.compile(r"\s+")
SENTENCE_END = frozenset(".!?…")
CLAUSE_END = frozenset(",;:-–—")
CLOSERS = "\"')]»”’"


@dataclass(frozen=True, slots=True)
class Boundary:
    """A run of whitespace where the text may be cut; `strength` 0 is a sentence, 1 a clause."""

    start: int
    end: int
    strength: int


def split_bubbles(
    text: str,
    profile: Profile | None,
    *,
    rng: random.Random,
    max_bubbles: int = MAX_BUBBLES,
    max_chars: int = MAX_BUBBLE_CHARS,
) -> tuple[str, ...]:
    """The bubbles of `text`, split the way the persona splits her turns.

    Args:
        text: the backend's reply; blank lines separate bubbles.
        profile: the persona's profile; None splits only at blank lines.
        rng: draws the number of bubbles from the persona's burst sizes.
        max_bubbles: bubbles beyond this are merged into the last one (joined by a newline).
        max_chars: a bubble longer than this is cut at a word boundary, ending with "…".
    """
    if max_bubbles < 1 or max_chars < 2:
        raise ValueError(
            f"need max_bubbles >= 1 and max_chars >= 2, not {max_bubbles}, {max_chars}"
        )
    pieces = [piece.strip() for piece in BLANK_LINE.split(text)]
    pieces = [piece for piece in pieces if piece]
    if len(pieces) == 1 and profile is not None and bursty(profile):
        count = min(bubble_count(pieces[0], profile, rng), max_bubbles)
        pieces = split_text(pieces[0], count)
    if len(pieces) > max_bubbles:
        pieces = [*pieces[: max_bubbles - 1], "\n".join(pieces[max_bubbles - 1 :])]
    return tuple(truncate(piece, max_chars) for piece in pieces)


def bursty(profile: Profile) -> bool:
    """Whether the persona usually sends several messages per turn."""
    share = profile.length.multi_message_share
    enough = profile.length.burst_size.count >= MIN_SAMPLES
    return enough and share is not None and share >= BURSTY_SHARE


def bubble_count(text: str, profile: Profile, rng: random.Random) -> int:
    """A burst size drawn from the persona's, raised so pieces fit her long messages (p90)."""
    drawn = max(1, round(profile.length.burst_size.sample(rng)))
    chars = profile.length.chars
    if chars.count < MIN_SAMPLES or not chars.p90:
        return drawn
    return max(drawn, math.ceil(len(text) / chars.p90))


def split_text(text: str, count: int) -> list[str]:
    """Cut `text` into up to `count` pieces of similar length at its best boundaries.

    Each cut goes to the boundary nearest its ideal position (k / count of the text), a
    clause boundary counting CLAUSE_PENALTY target lengths further away than a sentence one.
    Cuts fall only on whitespace, so no word is ever broken or lost.
    """
    boundaries = find_boundaries(text)
    target = len(text) / max(count, 1)
    cuts: list[Boundary] = []
    next_option = 0
    for k in range(1, count):
        if next_option >= len(boundaries):
            break
        ideal = k * target
        chosen = min(
            range(next_option, len(boundaries)),
            key=lambda i: (
                abs(boundaries[i].start - ideal) / target + CLAUSE_PENALTY * boundaries[i].strength
            ),
        )
        cuts.append(boundaries[chosen])
        next_option = chosen + 1
    starts = [0, *(cut.end for cut in cuts)]
    ends = [*(cut.start for cut in cuts), len(text)]
    return [text[a:b] for a, b in zip(starts, ends, strict=True)]


def find_boundaries(text: str) -> list[Boundary]:
    """Whitespace after a sentence end, a newline or an emoji (strength 0), or a clause (1)."""
    emoji_ends = {match.end() for match in EMOJI_RE.finditer(text)}
    boundaries = []
    for space in SPACE.finditer(text):
        start, end = space.span()
        before = text[max(0, start - 8) : start].rstrip(CLOSERS)[-1:]
        if "\n" in space.group() or before in SENTENCE_END or start in emoji_ends:
            boundaries.append(Boundary(start, end, 0))
        elif before in CLAUSE_END:
            boundaries.append(Boundary(start, end, 1))
    return boundaries


def truncate(bubble: str, max_chars: int) -> str:
    """`bubble`, or its first words up to `max_chars` characters followed by "…"."""
    if len(bubble) <= max_chars:
        return bubble
    head = bubble[: max_chars - 1]
    cut = max(head.rfind(" "), head.rfind("\n"))
    return (head[:cut] if cut > 0 else head).rstrip() + "…"
