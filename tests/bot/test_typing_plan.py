"""The typing plan follows the persona's timing; perform() plays it and stops when cancelled."""

from __future__ import annotations

import asyncio
import random
import statistics
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from bot.backends.base import ChatTurn
from bot.typing_plan import (
    DEFAULT_LATENCY_S,
    TypingPlan,
    TypingStep,
    perform,
    plan_typing,
)
from style.messages import Chat, Message
from style.profile import (
    Distribution,
    Profile,
    ProfileWarning,
    TypingSpeed,
    build_profile,
    profile_exports,
)
from style.sample import sample_paths

SEEDS = range(1500)
NOON = datetime(2024, 5, 1, 12, 0)


@pytest.fixture(scope="module")
def maya() -> Profile:
    return profile_exports(sample_paths(), "Maya")


def constant(value: float) -> Distribution:
    """Every stored statistic (mean, min, p10 ... max) is `value`."""
    return Distribution(100, *[value] * 8)


def arrivals(profile: Profile | None, hour: int, **kwargs: object) -> list[float]:
    """When the first (short) bubble arrives, over many seeds."""
    now = NOON.replace(hour=hour)
    plans = [
        plan_typing(profile, ("ok",), now=now, rng=random.Random(seed), **kwargs)  # type: ignore[arg-type]
        for seed in SEEDS
    ]
    return [plan.steps[0].wait_s + plan.steps[0].typing_s for plan in plans]


def quantile(values: list[float], q: float) -> float:
    return sorted(values)[int(q * (len(values) - 1))]


@pytest.mark.parametrize("hour", [12, 18, 22])
def test_first_bubble_arrives_after_the_hours_latency(maya: Profile, hour: int) -> None:
    expected = maya.timing.latency_by_hour[hour]
    assert expected.count >= 20
    drawn = arrivals(maya, hour, max_wait_s=1e6)
    for q, value in ((0.25, expected.p25), (0.5, expected.median), (0.75, expected.p75)):
        assert quantile(drawn, q) == pytest.approx(value, rel=0.15)


def test_slow_hours_give_longer_waits_than_quick_ones(maya: Profile) -> None:
    assert maya.timing.latency_by_hour[18].median > 3 * maya.timing.latency_by_hour[12].median
    assert statistics.median(arrivals(maya, 18)) > 2.5 * statistics.median(arrivals(maya, 12))


def test_hours_with_few_replies_fall_back_to_all_hours(maya: Profile) -> None:
    assert maya.timing.latency_by_hour[3].count == 0
    assert 0 < maya.timing.latency_by_hour[7].count < 20
    at_night, early = arrivals(maya, 3), arrivals(maya, 7)
    assert at_night == early
    assert statistics.median(at_night) == pytest.approx(maya.timing.latency_s.median, rel=0.15)
    assert at_night != arrivals(maya, 18)


def test_a_thin_profile_uses_the_default_timing() -> None:
    start = datetime(2024, 5, 1, 20)
    messages = [
        Message(ts=start + timedelta(seconds=37 * i), author="Ana" if i % 2 else "Ben", text="hi")
        for i in range(12)
    ]
    with pytest.warns(ProfileWarning):
        thin = build_profile(Chat(source="tiny", dialect="test", messages=messages), "Ana")
    drawn = arrivals(thin, 20, max_wait_s=1e6)
    assert statistics.median(drawn) == pytest.approx(DEFAULT_LATENCY_S.median, rel=0.15)
    assert drawn == arrivals(None, 20, max_wait_s=1e6)
    typing = plan_typing(thin, ("x" * 300,), now=NOON, rng=random.Random(1), max_wait_s=1e6)
    assert 60 < typing.steps[0].typing_s < 200  # about 3 characters a second


def history_with_gaps(gaps: list[float], end: datetime) -> list[ChatTurn]:
    """Alternating turns ending with a user turn at `end`, separated by `gaps` seconds."""
    times = [end]
    for gap in reversed(gaps):
        times.insert(0, times[0] - timedelta(seconds=gap))
    roles = ["user" if (len(times) - i) % 2 else "assistant" for i in range(len(times))]
    return [ChatTurn(role, ("hey",), at) for role, at in zip(roles, times, strict=True)]  # type: ignore[arg-type]


def test_a_quick_back_and_forth_shortens_the_wait(maya: Profile) -> None:
    quick = history_with_gaps([9, 12, 8], NOON.replace(hour=18))
    hurried = arrivals(maya, 18, history=quick)
    assert max(hurried) <= 2 * 9 + 1e-9
    assert statistics.median(hurried) < statistics.median(arrivals(maya, 18)) / 4


def test_a_slow_chat_or_a_user_back_after_hours_is_not_hurried(maya: Profile) -> None:
    end = NOON.replace(hour=18)
    relaxed = arrivals(maya, 18)
    slow = history_with_gaps([3600, 5400, 4000], end)
    back_after_hours = history_with_gaps([8, 10, 7200], end)
    assert arrivals(maya, 18, history=slow) == pytest.approx(relaxed)
    assert arrivals(maya, 18, history=back_after_hours) == pytest.approx(relaxed)


def test_time_already_spent_counts_toward_the_latency(maya: Profile) -> None:
    arrived = NOON - timedelta(seconds=30)
    history = [ChatTurn("user", ("so?",), arrived)]
    kwargs = {"now": NOON, "max_wait_s": 1e6, "min_wait_s": 0.0}
    for seed in range(50):
        fresh = plan_typing(maya, ("ok",), history=(), rng=random.Random(seed), **kwargs)  # type: ignore[arg-type]
        later = plan_typing(maya, ("ok",), history=history, rng=random.Random(seed), **kwargs)  # type: ignore[arg-type]
        assert later.steps[0].wait_s == pytest.approx(max(0.0, fresh.steps[0].wait_s - 30))


def test_typing_time_scales_with_length_and_the_persona_speed(maya: Profile) -> None:
    fast = replace(maya, timing=replace(maya.timing, typing=TypingSpeed(6.0, 100, constant(6.0))))
    short, long = "x" * 12, "x" * 48

    def typing_s(profile: Profile, bubble: str) -> float:
        plans = [
            plan_typing(profile, (bubble,), now=NOON, rng=random.Random(s), max_wait_s=1e6)
            for s in range(300)
        ]
        return statistics.median(plan.steps[0].typing_s for plan in plans)

    cps = maya.timing.typing.chars_per_second
    assert cps is not None
    assert typing_s(maya, long) == pytest.approx(48 / cps, rel=0.05)
    assert typing_s(maya, long) == pytest.approx(4 * typing_s(maya, short), rel=0.01)
    assert typing_s(fast, long) == pytest.approx(48 / 6.0, rel=0.05)


def test_later_bubbles_follow_the_pauses_inside_a_turn(maya: Profile) -> None:
    pauses = []
    for seed in SEEDS:
        plan = plan_typing(maya, ("ok", "k"), now=NOON, rng=random.Random(seed), max_wait_s=1e6)
        pauses.append(plan.steps[1].wait_s + plan.steps[1].typing_s)
    assert statistics.median(pauses) == pytest.approx(maya.length.burst_gap_s.median, rel=0.15)
    assert max(pauses) <= 120  # "came back to add something" pauses are not drawn
    assert maya.length.burst_gap_s.max is not None and maya.length.burst_gap_s.max > 1000


def test_speed_two_halves_every_duration(maya: Profile) -> None:
    bubbles = ("omg", "did u see what he posted", "im dying")
    for seed in range(30):
        normal, fast = (
            plan_typing(
                maya,
                bubbles,
                now=NOON,
                rng=random.Random(seed),
                speed=speed,
                max_wait_s=1e6,
                min_wait_s=0.0,
            )
            for speed in (1.0, 2.0)
        )
        assert fast.total_s == pytest.approx(normal.total_s / 2)
        for a, b in zip(normal.steps, fast.steps, strict=True):
            assert (b.wait_s, b.typing_s) == pytest.approx((a.wait_s / 2, a.typing_s / 2))


def test_max_wait_squeezes_idle_waits_and_keeps_typing_times(maya: Profile) -> None:
    bubbles = ("omg", "did u see what he posted", "im dying")
    squeezed = 0
    for seed in range(200):
        free = plan_typing(maya, bubbles, now=NOON, rng=random.Random(seed), max_wait_s=1e6)
        capped = plan_typing(maya, bubbles, now=NOON, rng=random.Random(seed), max_wait_s=40)
        assert capped.total_s <= 40 + 1e-9
        assert capped.bubbles == bubbles
        if free.total_s > 40 and sum(step.typing_s for step in free.steps) < 40:
            squeezed += 1
            for a, b in zip(free.steps, capped.steps, strict=True):
                assert b.typing_s == pytest.approx(a.typing_s)
                assert b.wait_s <= a.wait_s + 1e-9
    assert squeezed > 50


def test_typing_alone_longer_than_max_wait_scales_everything(maya: Profile) -> None:
    bubbles = ("a much longer message that takes a good while to type out on a phone",) * 3
    capped = plan_typing(maya, bubbles, now=NOON, rng=random.Random(1), max_wait_s=10)
    assert capped.total_s == pytest.approx(10)
    assert all(step.typing_s < 10 for step in capped.steps)


def test_replies_never_arrive_instantly(maya: Profile) -> None:
    for seed in range(100):
        plan = plan_typing(maya, ("ok", "sure"), now=NOON, rng=random.Random(seed), speed=1000)
        assert plan.steps[0].wait_s + plan.steps[0].typing_s == pytest.approx(1.0)
        tight = plan_typing(
            maya, ("ok", "sure"), now=NOON, rng=random.Random(seed), max_wait_s=2, min_wait_s=1.5
        )
        assert tight.steps[0].wait_s + tight.steps[0].typing_s >= 1.5 - 1e-9
        assert tight.total_s <= 2 + 1e-9
        assert all(s.wait_s >= 0 and s.typing_s > 0 for s in (*plan.steps, *tight.steps))


def test_a_seed_gives_the_same_plan(maya: Profile) -> None:
    def draw(seed: int) -> TypingPlan:
        return plan_typing(maya, ("a", "bb", "ccc"), now=NOON, rng=random.Random(seed))

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_bad_knobs_are_refused(maya: Profile) -> None:
    with pytest.raises(ValueError, match="speed"):
        plan_typing(maya, ("a",), now=NOON, rng=random.Random(0), speed=0)
    with pytest.raises(ValueError, match="max_wait_s"):
        plan_typing(maya, ("a",), now=NOON, rng=random.Random(0), max_wait_s=1, min_wait_s=2)
    assert plan_typing(maya, (), now=NOON, rng=random.Random(0)) == TypingPlan(())


PLAN = TypingPlan((TypingStep(2.0, 1.5, "hey"), TypingStep(0.0, 0.5, "u there?")))


def recorder() -> tuple[list[tuple[str, object]], dict[str, object]]:
    """Callbacks that log each call instead of waiting or sending."""
    events: list[tuple[str, object]] = []

    async def sleep(seconds: float) -> None:
        events.append(("sleep", seconds))

    async def send(bubble: str) -> None:
        events.append(("send", bubble))

    async def typing(on: bool) -> None:
        events.append(("typing", on))

    return events, {"sleep": sleep, "send": send, "typing": typing}


def test_perform_waits_types_and_sends_in_order() -> None:
    events, callbacks = recorder()
    asyncio.run(perform(PLAN, **callbacks))  # type: ignore[arg-type]
    assert events == [
        ("sleep", 2.0),
        ("typing", True),
        ("sleep", 1.5),
        ("typing", False),
        ("send", "hey"),
        ("typing", True),
        ("sleep", 0.5),
        ("typing", False),
        ("send", "u there?"),
    ]


def test_perform_without_a_typing_signal_only_waits_and_sends() -> None:
    events, callbacks = recorder()
    del callbacks["typing"]
    asyncio.run(perform(PLAN, **callbacks))  # type: ignore[arg-type]
    assert events == [
        ("sleep", 2.0),
        ("sleep", 1.5),
        ("send", "hey"),
        ("sleep", 0.5),
        ("send", "u there?"),
    ]


def test_cancelling_mid_plan_stops_typing_and_sending() -> None:
    events, callbacks = recorder()

    async def scenario() -> None:
        second_bubble_typing = asyncio.Event()

        async def sleep(seconds: float) -> None:
            events.append(("sleep", seconds))
            if seconds == 0.5:
                second_bubble_typing.set()
                await asyncio.Event().wait()  # a long wait the cancel interrupts

        task = asyncio.create_task(perform(PLAN, **{**callbacks, "sleep": sleep}))  # type: ignore[arg-type]
        await second_bubble_typing.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert [bubble for kind, bubble in events if kind == "send"] == ["hey"]
    assert events[-2:] == [("sleep", 0.5), ("typing", False)]
