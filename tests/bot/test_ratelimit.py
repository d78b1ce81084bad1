"""Per-chat rate limiting: the token bucket's arithmetic, and the service dropping a flood."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.metrics import Metrics
from bot.ratelimit import ChatRateLimiter
from bot.service import chat_address
from bot.settings import Settings
from tests.bot.test_service import (
    STRANGER,
    FakeOutbox,
    copy_of,
    incoming,
    make_service,
    teach_maya,
)

NOTICE = "That's a lot of messages at once"


@pytest.fixture(scope="module")
def maya_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return teach_maya(tmp_path_factory.mktemp("maya"))


@pytest.fixture
def ready(maya_dir: Path, tmp_path: Path) -> Settings:
    return copy_of(maya_dir, tmp_path)


class Clock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_the_bucket_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = ChatRateLimiter(per_minute=20, burst=10, clock=clock)

    assert all(limiter.admit("telegram", "1").allowed for _ in range(10))
    refused = limiter.admit("telegram", "1")
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(3.0)  # one token every 60/20 s

    clock.now += 2.9
    assert not limiter.admit("telegram", "1").allowed
    clock.now += 0.2  # 3.1 s since the bucket ran dry: one token back
    assert limiter.admit("telegram", "1").allowed
    assert not limiter.admit("telegram", "1").allowed

    clock.now += 3600  # refills to the burst, never beyond
    assert sum(limiter.admit("telegram", "1").allowed for _ in range(15)) == 10


def test_each_chat_and_channel_has_its_own_bucket() -> None:
    limiter = ChatRateLimiter(per_minute=1, burst=2, clock=Clock())
    assert [limiter.admit("telegram", "1").allowed for _ in range(3)] == [True, True, False]
    assert limiter.admit("telegram", "2").allowed
    assert limiter.admit("whatsapp", "1").allowed


def test_a_refused_chat_is_notified_once_per_window() -> None:
    clock = Clock()
    limiter = ChatRateLimiter(per_minute=1, burst=1, clock=clock, notice_every_s=60)
    assert limiter.admit("telegram", "1").allowed

    notices = [limiter.admit("telegram", "1").notify for _ in range(5)]
    assert notices == [True, False, False, False, False]
    clock.now += 30
    assert limiter.admit("telegram", "1").notify is False
    clock.now += 31  # a minute after the notice; the token that came back is spent here
    assert limiter.admit("telegram", "1").allowed
    refused = limiter.admit("telegram", "1")
    assert not refused.allowed and refused.notify


def test_a_rate_of_zero_turns_the_limit_off() -> None:
    limiter = ChatRateLimiter(per_minute=0, burst=1, clock=Clock())
    assert not limiter.enabled
    assert all(limiter.admit("telegram", "1").allowed for _ in range(100))


def test_impossible_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        ChatRateLimiter(per_minute=20, burst=0)


@pytest.mark.anyio
async def test_the_service_drops_the_eleventh_quick_message_and_says_so_once(
    ready: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    metrics = Metrics()
    service = make_service(ready, metrics=metrics, rate_clock=clock)
    outbox = FakeOutbox()
    chat = "300"
    texts = [f"secret words number {n}" for n in range(13)]

    with caplog.at_level(logging.DEBUG, logger="bot.service"):
        for text in texts:
            await service.handle(incoming(text, user=STRANGER, chat=chat), outbox)
        await service.engine.wait(chat_address("telegram", chat))

    user_turns = [
        turn.turn.bubbles
        for turn in service.store.history(chat_address("telegram", chat), 100)
        if turn.role == "user"
    ]
    assert [bubble for turn in user_turns for bubble in turn] == texts[:10]
    notices = [t for t in outbox.texts(chat) if t.startswith(NOTICE)]
    assert notices == [
        "That's a lot of messages at once; I'm skipping some. Give me about 3 seconds, "
        "then write again."
    ]
    assert metrics.rate_limited == 3
    assert metrics.requests["telegram"] == 13
    assert not any("secret words" in record.getMessage() for record in caplog.records)
    assert any("over its rate limit" in record.getMessage() for record in caplog.records)

    clock.now += 3.1  # a token came back: the next message is answered
    await service.handle(incoming("back again", user=STRANGER, chat=chat), outbox)
    history = service.store.history(chat_address("telegram", chat), 100)
    assert any("back again" in turn.turn.bubbles for turn in history)
    await service.close()


@pytest.mark.anyio
async def test_admins_are_not_rate_limited(ready: Settings) -> None:
    service, outbox = make_service(ready, chat_rate_burst=1, chat_rate_per_minute=1), FakeOutbox()

    for _ in range(3):
        await service.handle(incoming("/help"), outbox)

    assert len(outbox.texts()) == 3
    assert not any(t.startswith(NOTICE) for t in outbox.texts())
    await service.close()
