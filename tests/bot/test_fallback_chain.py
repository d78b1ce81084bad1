"""The fallback chain: order, deadlines, circuit breakers, and which errors it swallows."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from bot.backends.base import ChatTurn, Prompt, Reply
from bot.backends.fallback import (
    AllBackendsFailed,
    BreakerOpen,
    BreakerState,
    FallbackChain,
)
from bot.errors import BackendError, BackendUnavailable

pytestmark = pytest.mark.anyio

NOW = datetime(2024, 3, 12, 21, 0, tzinfo=UTC)
PROMPT = Prompt(
    persona="Maya",
    chat_id="chat-1",
    history=(ChatTurn("user", ("are you coming tonight?",), NOW),),
    now=NOW,
)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """A backend that answers, raises or hangs as told, and counts its calls."""

    def __init__(self, name: str, *outcomes: str | BaseException | float) -> None:
        self.name = name
        self.outcomes = list(outcomes)
        self.calls = 0

    async def reply(self, prompt: Prompt) -> Reply:
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, float):
            await asyncio.sleep(outcome)
            return Reply(bubbles=("too late",), backend=self.name)
        return Reply(bubbles=(outcome,), backend=self.name)


def chain(*backends: Scripted, clock: Clock | None = None, **options: float) -> FallbackChain:
    settings = {"deadline_s": 1.0, "failures_to_open": 3, "reset_s": 60.0, **options}
    return FallbackChain(
        backends,
        deadline_s=settings["deadline_s"],
        failures_to_open=int(settings["failures_to_open"]),
        reset_s=settings["reset_s"],
        clock=clock or Clock(),
    )


async def test_next_backend_answers_when_the_first_is_down() -> None:
    down = Scripted("local", BackendUnavailable("no GPU"))
    up = Scripted("claude", "yes!!")
    reply = await chain(down, up).reply(PROMPT)
    assert reply.bubbles == ("yes!!",)
    assert reply.backend == "claude"
    assert (down.calls, up.calls) == (1, 1)


async def test_first_backend_that_answers_is_the_only_one_called() -> None:
    first, second = Scripted("local", "hii"), Scripted("claude", "hello")
    reply = await chain(first, second).reply(PROMPT)
    assert reply.backend == "local"
    assert second.calls == 0


async def test_backend_past_the_deadline_counts_as_down() -> None:
    slow = Scripted("local", 5.0)
    up = Scripted("retrieval", "omw")
    started = asyncio.get_running_loop().time()
    fallback = chain(slow, up, deadline_s=0.05)
    reply = await fallback.reply(PROMPT)
    assert reply.backend == "retrieval"
    assert asyncio.get_running_loop().time() - started < 1.0
    assert fallback.health()[0].last_error == "TimeoutError"
    assert fallback.health()[0].consecutive_failures == 1


async def test_breaker_opens_after_failures_in_a_row_and_skips_the_backend() -> None:
    down = Scripted("local", BackendUnavailable("down"))
    up = Scripted("retrieval", "ok")
    fallback = chain(down, up, failures_to_open=2)
    for _ in range(2):
        await fallback.reply(PROMPT)
    assert fallback.health()[0].state is BreakerState.OPEN
    reply = await fallback.reply(PROMPT)
    assert reply.backend == "retrieval"
    assert down.calls == 2  # skipped while open
    assert up.calls == 3


async def test_failures_that_are_not_in_a_row_do_not_open_the_breaker() -> None:
    flaky = Scripted("local", BackendUnavailable("down"), "hi", BackendUnavailable("down"), "hi")
    fallback = chain(flaky, Scripted("retrieval", "ok"), failures_to_open=2)
    backends = [(await fallback.reply(PROMPT)).backend for _ in range(4)]
    assert backends == ["retrieval", "local", "retrieval", "local"]
    assert fallback.health()[0].state is BreakerState.CLOSED


async def test_open_breaker_allows_one_trial_after_reset_and_closes_on_success() -> None:
    clock = Clock()
    recovering = Scripted("local", BackendUnavailable("down"), "back again")
    fallback = chain(recovering, Scripted("retrieval", "ok"), clock=clock, failures_to_open=1)
    await fallback.reply(PROMPT)
    clock.now += 59.0
    assert (await fallback.reply(PROMPT)).backend == "retrieval"
    assert recovering.calls == 1
    assert fallback.health()[0].retry_in_s == pytest.approx(1.0)
    clock.now += 1.0
    reply = await fallback.reply(PROMPT)
    assert reply.backend == "local"
    assert recovering.calls == 2
    health = fallback.health()[0]
    assert (health.state, health.consecutive_failures) == (BreakerState.CLOSED, 0)
    assert health.last_success is not None


async def test_failed_trial_reopens_the_breaker_for_another_reset_period() -> None:
    clock = Clock()
    down = Scripted("local", BackendUnavailable("down"))
    fallback = chain(down, Scripted("retrieval", "ok"), clock=clock, failures_to_open=1)
    await fallback.reply(PROMPT)
    clock.now += 60.0
    await fallback.reply(PROMPT)  # the trial
    assert down.calls == 2
    assert fallback.health()[0].state is BreakerState.OPEN
    clock.now += 30.0
    await fallback.reply(PROMPT)
    assert down.calls == 2


async def test_half_open_breaker_lets_only_one_trial_through_at_a_time() -> None:
    clock = Clock()
    slow = Scripted("local", BackendUnavailable("down"), 0.2)
    fallback = chain(slow, Scripted("retrieval", "ok"), clock=clock, failures_to_open=1)
    await fallback.reply(PROMPT)
    clock.now += 60.0
    trial = asyncio.create_task(fallback.reply(PROMPT))
    await asyncio.sleep(0.01)
    assert fallback.health()[0].state is BreakerState.HALF_OPEN
    other = await fallback.reply(PROMPT)
    assert other.backend == "retrieval"
    assert (await trial).backend == "local"
    assert slow.calls == 2


async def test_all_backends_down_raises_with_every_cause() -> None:
    fallback = chain(
        Scripted("local", BackendUnavailable("no model")),
        Scripted("claude", 5.0),
        deadline_s=0.05,
    )
    with pytest.raises(AllBackendsFailed) as caught:
        await fallback.reply(PROMPT)
    assert [name for name, _ in caught.value.causes] == ["local", "claude"]
    assert isinstance(caught.value.causes[0][1], BackendUnavailable)
    assert isinstance(caught.value.causes[1][1], TimeoutError)
    assert isinstance(caught.value, BackendUnavailable)
    assert "local: BackendUnavailable" in str(caught.value)


async def test_skipped_backends_are_named_among_the_causes() -> None:
    down = Scripted("local", BackendUnavailable("down"))
    fallback = chain(down, failures_to_open=1)
    with pytest.raises(AllBackendsFailed):
        await fallback.reply(PROMPT)
    with pytest.raises(AllBackendsFailed) as caught:
        await fallback.reply(PROMPT)
    assert isinstance(caught.value.causes[0][1], BreakerOpen)
    assert down.calls == 1


async def test_a_rejected_request_propagates_and_the_next_backend_is_not_tried() -> None:
    broken = Scripted("claude", BackendError("400 invalid_request_error"))
    after = Scripted("retrieval", "ok")
    fallback = chain(broken, after, failures_to_open=1)
    with pytest.raises(BackendError) as caught:
        await fallback.reply(PROMPT)
    assert not isinstance(caught.value, BackendUnavailable)
    assert after.calls == 0
    health = fallback.health()[0]
    assert (health.state, health.last_error) == (BreakerState.CLOSED, "BackendError")


async def test_failures_are_logged_with_name_and_class_but_no_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    private = "call me on 07700 900123"
    fallback = chain(Scripted("local", BackendUnavailable(private)), Scripted("retrieval", "ok"))
    with caplog.at_level(logging.DEBUG, logger="bot.backends.fallback"):
        await fallback.reply(PROMPT)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "local" in warnings[0].getMessage()
    assert "BackendUnavailable" in warnings[0].getMessage()
    assert private not in caplog.text


async def test_health_lists_every_backend_in_chain_order() -> None:
    fallback = chain(Scripted("local", "hi"), Scripted("claude", "hi"))
    await fallback.reply(PROMPT)
    health = fallback.health()
    assert [h.name for h in health] == ["local", "claude"]
    assert health[0].last_success is not None
    assert health[1].last_success is None
    assert all(h.state is BreakerState.CLOSED and h.retry_in_s is None for h in health)
