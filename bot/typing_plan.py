"""When each bubble of a reply is typed and sent, drawn from the persona's own timing.

The profile measures send times, so the plan reproduces send times: the first bubble arrives
after a reply latency drawn for the hour, each later bubble after a pause drawn from the
persona's pauses inside a turn, and the typing indicator fills the last part of each interval
(never less than the bubble takes to type). `perform` is the one place a plan is executed.
See docs/typing.md.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from bot.backends.base import ChatTurn
from style.profile import Distribution, Profile

__all__ = [
    "DEFAULT_MAX_WAIT_S",
    "DEFAULT_MIN_WAIT_S",
    "TypingPlan",
    "TypingStep",
    "perform",
    "plan_typing",
]

MIN_SAMPLES = 20
"""Fewer observations than this and a measure is noise: use the fallback instead."""
DEFAULT_MAX_WAIT_S = 300.0
"""The whole plan (first wait to last bubble) is squeezed into five minutes by default."""
DEFAULT_MIN_WAIT_S = 1.0
"""The first bubble never arrives sooner than this after the plan starts."""
DEFAULT_CHARS_PER_SECOND = 3.0
"""Mobile typing speed when the persona's is unknown: 36 words a minute (Palin et al. 2019)."""
TYPING_JITTER = 0.15
"""Typing time is multiplied by exp(N(0, 0.15)): about ±30% around the persona's speed."""
MIN_TYPING_S = 0.5
"""Even "k" shows the typing indicator for a moment."""
QUICK_FACTOR = 2.0
"""In a quick back-and-forth the latency is capped at this multiple of the chat's pace."""
RECENT_GAPS = 3
"""The chat's pace is read from the gaps between the last four turns."""
BURST_PAUSE_LIMIT_S = 120.0
"""Pauses inside a turn longer than this are "came back to add something", not typing rhythm."""
DEFAULT_LATENCY_S = Distribution(
    count=7, min=3.0, p10=8.0, p25=15.0, median=40.0, p75=120.0, p90=600.0, max=1800.0
)
"""Reply latency for a persona with fewer than MIN_SAMPLES timed replies: a quick texter."""
DEFAULT_BURST_PAUSE_S = Distribution(
    count=7, min=2.0, p10=3.0, p25=5.0, median=10.0, p75=20.0, p90=40.0, max=120.0
)
"""Send-to-send pause inside a turn when the persona's is unknown."""


@dataclass(frozen=True, slots=True)
class TypingStep:
    """One bubble: idle for `wait_s`, show typing for `typing_s`, then send `bubble`."""

    wait_s: float
    typing_s: float
    bubble: str


@dataclass(frozen=True, slots=True)
class TypingPlan:
    """The bubbles of one reply in order, with the pauses that make them look typed."""

    steps: tuple[TypingStep, ...]

    @property
    def total_s(self) -> float:
        """Seconds from the start of the plan to the last bubble sent."""
        return sum(step.wait_s + step.typing_s for step in self.steps)

    @property
    def bubbles(self) -> tuple[str, ...]:
        """The bubbles in the order they are sent."""
        return tuple(step.bubble for step in self.steps)


def plan_typing(
    profile: Profile | None,
    bubbles: Sequence[str],
    *,
    now: datetime,
    history: Sequence[ChatTurn] = (),
    speed: float = 1.0,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
    min_wait_s: float = DEFAULT_MIN_WAIT_S,
    rng: random.Random,
) -> TypingPlan:
    """Draw when each bubble is typed and sent, the way the persona would.

    Args:
        profile: the persona's profile; None (or a thin one) uses the documented defaults.
        bubbles: the reply's bubbles, in order.
        now: the persona's local time (the same clock as the history's `at`); its hour
            picks the latency distribution.
        history: the chat so far, oldest first, ending with the turn being answered. Time
            already passed since that turn counts toward the latency; quick recent gaps
            shorten it.
        speed: 2.0 plays the whole plan twice as fast.
        max_wait_s: longer plans are squeezed to fit, idle waits first.
        min_wait_s: the first bubble never arrives sooner than this.
        rng: every random draw comes from it, so a seed gives the same plan.
    """
    if speed <= 0:
        raise ValueError(f"speed must be positive, not {speed}")
    if max_wait_s <= 0 or not 0 <= min_wait_s <= max_wait_s:
        raise ValueError(
            f"need 0 <= min_wait_s <= max_wait_s and max_wait_s > 0, "
            f"not min_wait_s={min_wait_s}, max_wait_s={max_wait_s}"
        )
    if not bubbles:
        return TypingPlan(())
    cps = typing_speed(profile)
    typing = [typing_time(bubble, cps, rng) for bubble in bubbles]
    latency = min(reply_latency(profile, now.hour, rng), quick_cap(history))
    first = latency - already_waited(history, now)
    intervals = [first, *(burst_pause(profile, rng) for _ in bubbles[1:])]
    waits = [max(0.0, interval - t) for interval, t in zip(intervals, typing, strict=True)]
    steps = fit(list(zip(waits, typing, strict=True)), speed, max_wait_s, min_wait_s)
    return TypingPlan(
        tuple(TypingStep(w, t, bubble) for (w, t), bubble in zip(steps, bubbles, strict=True))
    )


def typing_speed(profile: Profile | None) -> float:
    """The persona's characters per second, or the default when too few pairs were timed."""
    if profile is None:
        return DEFAULT_CHARS_PER_SECOND
    typing = profile.timing.typing
    if typing.pairs < MIN_SAMPLES or not typing.chars_per_second:
        return DEFAULT_CHARS_PER_SECOND
    return typing.chars_per_second


def typing_time(bubble: str, chars_per_second: float, rng: random.Random) -> float:
    """Seconds to type `bubble` (code points, as the profile counts them), jittered."""
    jitter = math.exp(rng.gauss(0.0, TYPING_JITTER))
    return max(MIN_TYPING_S, len(bubble) / chars_per_second * jitter)


def reply_latency(profile: Profile | None, hour: int, rng: random.Random) -> float:
    """A latency drawn for this hour, else from all hours, else from the default."""
    if profile is None:
        return DEFAULT_LATENCY_S.sample(rng)
    timing = profile.timing
    for distribution in (timing.latency_by_hour[hour], timing.latency_s):
        if distribution.count >= MIN_SAMPLES:
            return distribution.sample(rng)
    return DEFAULT_LATENCY_S.sample(rng)


def burst_pause(profile: Profile | None, rng: random.Random) -> float:
    """A send-to-send pause inside a turn, drawn below BURST_PAUSE_LIMIT_S."""
    pauses = DEFAULT_BURST_PAUSE_S
    if profile is not None and profile.length.burst_gap_s.count >= MIN_SAMPLES:
        pauses = profile.length.burst_gap_s
    return pauses.quantile(rng.random() * cdf(pauses, BURST_PAUSE_LIMIT_S))


def cdf(distribution: Distribution, value: float) -> float:
    """The share of the distribution at or below `value` (inverse of `quantile`)."""
    knots = distribution.knots()
    if value < knots[0][1]:
        return 0.0
    for (q0, v0), (q1, v1) in pairwise(knots):
        if value < v1:
            return q0 + (q1 - q0) * (value - v0) / (v1 - v0)
    return 1.0


def quick_cap(history: Sequence[ChatTurn]) -> float:
    """The longest latency a quick back-and-forth allows; infinite when the chat is slow.

    The pace is the larger of the median of the last RECENT_GAPS gaps between turns and the
    latest gap, so one quick exchange long ago, or a user back after hours, does not count.
    """
    recent = history[-(RECENT_GAPS + 1) :]
    gaps = [max(0.0, (b.at - a.at).total_seconds()) for a, b in pairwise(recent)]
    if len(gaps) < 2:
        return math.inf
    return QUICK_FACTOR * max(statistics.median(gaps), gaps[-1])


def already_waited(history: Sequence[ChatTurn], now: datetime) -> float:
    """Seconds since the user's turn being answered arrived (0 without one)."""
    if not history or history[-1].role != "user":
        return 0.0
    return max(0.0, (now - history[-1].at).total_seconds())


def fit(
    steps: list[tuple[float, float]], speed: float, max_wait_s: float, min_wait_s: float
) -> list[tuple[float, float]]:
    """Apply the speed, squeeze into max_wait_s, then hold the first arrival to min_wait_s.

    Raising the first arrival can overflow max_wait_s again; then the later steps give way.
    """
    steps = squeezed([(w / speed, t / speed) for w, t in steps], max_wait_s)
    (wait, typing), rest = steps[0], steps[1:]
    if wait + typing < min_wait_s:
        wait = min_wait_s - typing
        rest = squeezed(rest, max_wait_s - min_wait_s)
    return [(wait, typing), *rest]


def squeezed(steps: list[tuple[float, float]], budget_s: float) -> list[tuple[float, float]]:
    """The steps shortened to last at most `budget_s`: idle waits first, typing only if needed.

    A person who answers late still types at their own speed, so typing times are kept as
    long as they fit; only when typing alone overflows is everything scaled.
    """
    idle = sum(w for w, _ in steps)
    typing_s = sum(t for _, t in steps)
    if idle + typing_s <= budget_s:
        return steps
    if typing_s < budget_s:
        factor = (budget_s - typing_s) / idle
        return [(w * factor, t) for w, t in steps]
    factor = budget_s / (idle + typing_s)
    return [(w * factor, t * factor) for w, t in steps]


async def perform(
    plan: TypingPlan,
    *,
    send: Callable[[str], Awaitable[None]],
    typing: Callable[[bool], Awaitable[None]] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Play a plan: wait, show typing, stop typing, send; bubble after bubble.

    `typing(True)` is called once per bubble; a transport whose indicator expires (Telegram's
    lasts 5 s) keeps it alive until `typing(False)`. When the task is cancelled mid-plan,
    typing is switched off and nothing more is sent.
    """
    typing_on = False
    try:
        for step in plan.steps:
            if step.wait_s > 0:
                await sleep(step.wait_s)
            if typing is not None:
                typing_on = True
                await typing(True)
            await sleep(step.typing_s)
            if typing is not None:
                await typing(False)
                typing_on = False
            await send(step.bubble)
    finally:
        if typing_on and typing is not None:
            await typing(False)
