"""When the persona writes, how fast she answers and how fast she types.

Reply latency is measured from the other side's last message to the persona's first
message of her turn, inside one conversation (so it never exceeds the conversation gap).
Hours and weekdays are the export's wall-clock time, as the phone showed it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from style.profile.conversations import PERSONA, TEXT, Conversations, Timeline
from style.profile.distributions import LATENCY_EDGES, RATE_EDGES, r4, share, summarise
from style.profile.model import TimingProfile, TypingSpeed

MIN_FINE_REPLIES = 20
"""Latencies come from second-resolution chats alone once they hold this many replies."""
PARTS_OF_DAY = {"night": (0, 6), "morning": (6, 12), "afternoon": (12, 18), "evening": (18, 24)}
WITHIN = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}
DAY = 86400.0


def hour_of(t: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Hour of day (0-23) of wall-clock seconds since 1970."""
    return (np.mod(t, DAY) // 3600).astype(np.int64)


def weekday_of(t: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Weekday (0 = Monday) of wall-clock seconds since 1970 (a Thursday)."""
    return ((t // DAY).astype(np.int64) + 3) % 7


def replies(timeline: Timeline, conversations: Conversations) -> npt.NDArray[np.int64]:
    """Turn numbers of the persona's turns that answer someone in the same conversation."""
    first = conversations.turn_first
    return np.flatnonzero((conversations.turn_author == PERSONA) & ~conversations.opens[first])


def use_fine_only(timeline: Timeline, conversations: Conversations) -> bool:
    """Whether second-resolution chats hold enough replies to time latencies on their own."""
    first = conversations.turn_first[replies(timeline, conversations)]
    if not first.size:
        return bool(timeline.fine[timeline.author == PERSONA].any())
    fine = int(timeline.fine[first].sum())
    return fine >= MIN_FINE_REPLIES or fine == first.size


def timing_profile(
    timeline: Timeline, conversations: Conversations, *, fine_only: bool
) -> TimingProfile:
    """Latency (overall and by the hour of the message answered), activity and typing speed."""
    first = conversations.turn_first[replies(timeline, conversations)]
    if fine_only:
        first = first[timeline.fine[first]]
    latency = timeline.t[first] - timeline.t[first - 1]
    answered_hour = hour_of(timeline.t[first - 1])
    mine = np.flatnonzero(timeline.author == PERSONA)
    stamps = timeline.t[mine]
    hours, weekdays = hour_of(stamps), weekday_of(stamps)
    activity = np.bincount(weekdays * 24 + hours, minlength=168).reshape(7, 24)
    by_hour = np.bincount(hours, minlength=24)
    total = int(mine.size)
    opened = conversations.conv_first[timeline.author[conversations.conv_first] == PERSONA]
    closed = conversations.conv_last[timeline.author[conversations.conv_last] == PERSONA]
    return TimingProfile(
        resolution_s=1 if fine_only else 60,
        latency_s=summarise(latency, LATENCY_EDGES, log=True),
        latency_by_hour=[summarise(latency[answered_hour == h]) for h in range(24)],
        replied_within={
            k: share(int((latency <= s).sum()), latency.size) for k, s in WITHIN.items()
        },
        activity=activity.tolist(),
        hours=[r4(n / total) if total else 0.0 for n in by_hour],
        weekdays=[r4(n / total) if total else 0.0 for n in activity.sum(axis=1)],
        part_of_day={
            name: r4(by_hour[a:b].sum() / total) if total else 0.0
            for name, (a, b) in PARTS_OF_DAY.items()
        },
        typing=typing_speed(timeline, conversations),
        starts_by_hour=np.bincount(hour_of(timeline.t[opened]), minlength=24).tolist(),
        ends_by_hour=np.bincount(hour_of(timeline.t[closed]), minlength=24).tolist(),
    )


def typing_speed(timeline: Timeline, conversations: Conversations) -> TypingSpeed:
    """Characters per second while composing a burst.

    For each pair of consecutive text messages in one persona turn (second-resolution chats,
    at least one second apart), the second message's length divided by the pause before it.
    The pause holds reading and thinking as well as typing, so this is an effective speed, a
    lower bound on raw typing speed; the median is reported.
    """
    author, kind = timeline.author, timeline.kind
    inside = np.flatnonzero(~conversations.new_turn & (author == PERSONA) & timeline.fine)
    inside = inside[(kind[inside] == TEXT) & (kind[inside - 1] == TEXT)]
    pause = timeline.t[inside] - timeline.t[inside - 1]
    keep = pause >= 1.0
    rates = timeline.chars[inside][keep] / pause[keep]
    rate = summarise(rates, RATE_EDGES)
    return TypingSpeed(chars_per_second=rate.median, pairs=int(rates.size), rate=rate)
