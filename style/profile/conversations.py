"""Messages as columns, cut into conversations (by silences) and turns (by author).

A *conversation* is a run of messages in one chat with no silence longer than the gap; a
*turn* is a run of consecutive messages by one author inside a conversation. A turn of the
persona is a *burst*. Everything is computed on numpy arrays, one pass per question.

The gap is chosen from the data (see `choose_gap`): in chats, the silences between messages
have two populations, seconds-to-minutes inside a conversation and hours between them, so
the log10 of the gaps is bimodal; the gap is the valley between the two modes.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import repeat

import numpy as np
import numpy.typing as npt

from style.messages import Chat, MessageKind
from style.profile.distributions import GAP_EDGES, histogram_of
from style.profile.model import Histogram

EPOCH = datetime(1970, 1, 1)
PERSONA = 0
"""The persona's author id in a `Timeline`; everyone else has a positive id."""

TEXT, MEDIA, DELETED = 0, 1, 2
_KIND_CODES = {MessageKind.TEXT: TEXT, MessageKind.MEDIA: MEDIA, MessageKind.DELETED: DELETED}
_TS = operator.attrgetter("ts")
_AUTHOR = operator.attrgetter("author")
_KIND = operator.attrgetter("kind")
_TEXT = operator.attrgetter("text")

MIN_GAP_S = 10 * 60.0
MAX_GAP_S = 12 * 3600.0
DEFAULT_GAP_S = 3600.0
MIN_GAPS = 20
"""With fewer silences than this the distribution says nothing; the default gap is used."""
VALLEY_DEPTH = 0.5
"""The valley must be at most this fraction of the lower of the two peaks around it."""
SMOOTHING_BINS = 1.5

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(slots=True)
class Timeline:
    """Every authored, non-system message of the persona's chats, in chat and file order."""

    t: FloatArray
    """Seconds since 1970-01-01 of the export's local wall-clock time."""
    author: IntArray
    kind: IntArray
    chars: IntArray
    question: BoolArray
    chat: IntArray
    fine: BoolArray
    """True for messages from chats whose clock has seconds (not whole minutes)."""
    texts: list[str]

    @property
    def size(self) -> int:
        """Number of messages."""
        return int(self.t.size)


@dataclass(slots=True)
class GapChoice:
    """The conversation gap and how it was found."""

    gap_s: float
    method: str
    gaps: int
    histogram: Histogram


@dataclass(slots=True)
class Conversations:
    """Conversation and turn structure of a `Timeline` (indices into its arrays)."""

    opens: BoolArray
    """True at the first message of every conversation."""
    conv: IntArray
    """Conversation index of every message."""
    new_turn: BoolArray
    turn_first: IntArray
    turn_end: IntArray
    """One past the last message of each turn."""
    turn_author: IntArray
    turn_conv: IntArray
    conv_first: IntArray
    conv_last: IntArray

    @property
    def count(self) -> int:
        """Number of conversations."""
        return int(self.conv_first.size)


def chat_columns(chat: Chat, persona: str, *, first_author: int) -> tuple[Timeline, int, str]:
    """One chat as a `Timeline` (others numbered from `first_author`).

    Returns the timeline, the next free author id, and the SHA-256 of the chat's authored
    messages (their times, authors, kinds and texts), which identifies the chat's content
    without storing it.
    """
    system = MessageKind.SYSTEM
    messages = [m for m in chat.messages if m.author is not None and m.kind != system]
    n = len(messages)
    stamps = list(map(_TS, messages))
    if stamps and stamps[0].tzinfo is not None:
        stamps = [ts.replace(tzinfo=None) for ts in stamps]
    t = np.fromiter(
        map(timedelta.total_seconds, map(operator.sub, stamps, repeat(EPOCH))), np.float64, n
    )
    names = list(map(_AUTHOR, messages))
    ids: dict[str | None, int] = {}
    next_id = first_author
    for name in dict.fromkeys(names):
        if name == persona:
            ids[name] = PERSONA
        else:
            ids[name] = next_id
            next_id += 1
    author = np.fromiter(map(ids.__getitem__, names), np.int64, n)
    kinds = list(map(_KIND, messages))
    kind = np.fromiter(map(_KIND_CODES.__getitem__, kinds), np.int64, n)
    texts = list(map(_TEXT, messages))
    for i in np.flatnonzero(kind != TEXT).tolist():
        texts[i] = ""  # only text messages carry words (the contract says so; be sure)
    chars = np.fromiter(map(len, texts), np.int64, n)
    question = np.fromiter(map(operator.contains, texts, repeat("?")), np.bool_, n)
    fine = bool(np.any(np.mod(t, 60.0) != 0.0))
    timeline = Timeline(
        t=t,
        author=author,
        kind=kind,
        chars=chars,
        question=question,
        chat=np.zeros(n, dtype=np.int64),
        fine=np.full(n, fine, dtype=np.bool_),
        texts=texts,
    )
    digest = hashlib.sha256(t.tobytes())
    digest.update(kind.tobytes())
    digest.update("\x1f".join(map(str, names)).encode("utf-8", "replace"))
    for start in range(0, n, 20_000):  # chunks: one giant join of mixed-width text is slow
        piece = "\x1e".join(texts[start : start + 20_000]) + "\x1e"
        digest.update(piece.encode("utf-8", "replace"))
    return timeline, next_id, digest.hexdigest()


def concatenate(parts: Sequence[Timeline]) -> Timeline:
    """Several chats' timelines back to back; `chat` numbers them in order."""
    return Timeline(
        t=np.concatenate([p.t for p in parts]),
        author=np.concatenate([p.author for p in parts]),
        kind=np.concatenate([p.kind for p in parts]),
        chars=np.concatenate([p.chars for p in parts]),
        question=np.concatenate([p.question for p in parts]),
        chat=np.concatenate([np.full(p.size, i, dtype=np.int64) for i, p in enumerate(parts)]),
        fine=np.concatenate([p.fine for p in parts]),
        texts=[text for p in parts for text in p.texts],
    )


def silences(timeline: Timeline) -> FloatArray:
    """Seconds between consecutive messages of the same chat (negative steps count as 0)."""
    same_chat = timeline.chat[1:] == timeline.chat[:-1]
    steps = np.maximum(np.diff(timeline.t), 0.0)
    return steps[same_chat]


def choose_gap(gaps_s: npt.ArrayLike, *, override_s: float | None = None) -> GapChoice:
    """The silence (seconds) that separates conversations, read off the gap distribution.

    1. Histogram log10(gap) in tenth-of-a-decade bins and smooth it (Gaussian, 1.5 bins).
    2. In the window 10 minutes .. 12 hours, take the lowest point (the middle of the lowest
       stretch when it is flat). If it is at most half of the highest point on each side, it
       is the valley between "reply" silences and "new conversation" silences: method
       "valley".
    3. Otherwise (one mode only, or too few long silences), a Tukey fence in log space:
       gaps beyond Q3 + 1.5 IQR of log10(gap) are outliers of the in-conversation rhythm,
       clamped to the same window: method "tukey".
    With fewer than 20 silences, 1 hour ("default"); `override_s` wins ("override").
    """
    gaps = np.asarray(gaps_s, dtype=np.float64)
    histogram = histogram_of(gaps, GAP_EDGES, log=True)
    if override_s is not None:
        return GapChoice(float(override_s), "override", int(gaps.size), histogram)
    if gaps.size < MIN_GAPS:
        return GapChoice(DEFAULT_GAP_S, "default", int(gaps.size), histogram)
    valley = _valley(np.asarray(histogram.counts, dtype=np.float64))
    if valley is not None:
        return GapChoice(valley, "valley", int(gaps.size), histogram)
    logs = np.log10(np.maximum(gaps, 1.0))
    q1, q3 = np.percentile(logs, [25, 75])
    fence = 10 ** (q3 + 1.5 * (q3 - q1))
    gap = float(np.clip(round(fence), MIN_GAP_S, MAX_GAP_S))
    return GapChoice(gap, "tukey", int(gaps.size), histogram)


def segment(timeline: Timeline, gap_s: float) -> Conversations:
    """Cut a timeline into conversations (silence > gap_s or a new chat) and turns."""
    n = timeline.size
    opens = np.ones(n, dtype=np.bool_)
    if n > 1:
        steps = np.diff(timeline.t)
        opens[1:] = (steps > gap_s) | (timeline.chat[1:] != timeline.chat[:-1])
    new_turn = opens.copy()
    if n > 1:
        new_turn[1:] |= timeline.author[1:] != timeline.author[:-1]
    conv = np.cumsum(opens) - 1
    turn_first = np.flatnonzero(new_turn)
    turn_end = np.append(turn_first[1:], n)
    conv_first = np.flatnonzero(opens)
    conv_last = np.append(conv_first[1:], n) - 1
    return Conversations(
        opens=opens,
        conv=conv,
        new_turn=new_turn,
        turn_first=turn_first,
        turn_end=turn_end,
        turn_author=timeline.author[turn_first],
        turn_conv=conv[turn_first],
        conv_first=conv_first,
        conv_last=conv_last,
    )


def _valley(counts: FloatArray) -> float | None:
    radius = 4
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / SMOOTHING_BINS) ** 2)
    smooth = np.convolve(counts, kernel / kernel.sum(), mode="same")
    edges = np.log10(np.asarray(GAP_EDGES))
    centres = (edges[:-1] + edges[1:]) / 2
    window = np.flatnonzero((centres >= np.log10(MIN_GAP_S)) & (centres <= np.log10(MAX_GAP_S)))
    lowest = smooth[window].min()
    flat = window[smooth[window] <= lowest + 1e-9 * max(1.0, smooth.max())]
    stretches = np.split(flat, np.flatnonzero(np.diff(flat) > 1) + 1)
    longest = max(stretches, key=len)  # the first of the longest flat stretches
    v = int(longest[len(longest) // 2])
    left, right = smooth[:v].max(initial=0.0), smooth[v + 1 :].max(initial=0.0)
    if min(left, right) <= 0 or smooth[v] > VALLEY_DEPTH * min(left, right):
        return None
    if counts[v + 1 :].sum() < 3:  # a "mode" of one or two silences is noise
        return None
    return float(round(10 ** centres[v]))
