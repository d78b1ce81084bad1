"""The persona engine: stored turns, bounded prompts, fallback, folding quick messages, typing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.backends.base import ChatTurn, Prompt, Reply
from bot.backends.fallback import FallbackChain
from bot.engine import PersonaEngine, PersonaRuntime
from bot.errors import BackendError, BackendUnavailable
from bot.personas import UnknownPersonaError
from bot.settings import Settings
from bot.store import Store
from bot.typing_plan import plan_typing
from style.parse import load_chats
from style.profile import Profile, build_profile
from style.sample import sample_paths
from training.db import connect

pytestmark = pytest.mark.anyio

START = datetime(2024, 3, 12, 21, 0)


@pytest.fixture(scope="module")
def maya() -> Profile:
    chats = [chat for path in sample_paths() for chat in load_chats(path)]
    return build_profile(chats, "Maya")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(connect(tmp_path / "wa-persona.db"))


class Clock:
    """The persona's wall clock, moved by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Echo:
    """Answers with the bubbles of the user turn it was asked about, and records each prompt."""

    def __init__(self, name: str = "echo") -> None:
        self.name = name
        self.prompts: list[Prompt] = []

    async def reply(self, prompt: Prompt) -> Reply:
        self.prompts.append(prompt)
        last = prompt.history[-1]
        return Reply(bubbles=("got: " + " + ".join(last.bubbles), "ok"), backend=self.name)


class Down:
    name = "down"

    def __init__(self) -> None:
        self.calls = 0

    async def reply(self, prompt: Prompt) -> Reply:
        self.calls += 1
        raise BackendUnavailable("down for the test")


class Sleeper:
    """An injected `sleep` that waits until the test lets it go, recording every duration."""

    def __init__(self) -> None:
        self.waiting: list[tuple[float, asyncio.Future[None]]] = []
        self.durations: list[float] = []

    async def __call__(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (seconds, future)
        self.waiting.append(entry)
        self.durations.append(seconds)
        try:
            await future
        finally:
            if entry in self.waiting:
                self.waiting.remove(entry)

    def release(self) -> None:
        """Let the oldest pending sleep finish."""
        _, future = self.waiting.pop(0)
        future.set_result(None)


class Outbox:
    """A `Delivery` that records what the transport would show."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    async def typing(self, on: bool) -> None:
        self.events.append(("typing", on))

    async def send(self, bubble: str, reply: Reply) -> None:
        self.events.append(("send", (bubble, reply.backend)))

    async def failed(self, error: BackendError) -> None:
        self.events.append(("failed", type(error).__name__))

    @property
    def sent(self) -> list[tuple[str, str]]:
        return [item for kind, item in self.events if kind == "send"]  # type: ignore[misc]


async def play_out(bot: PersonaEngine, chat_id: str, sleeper: Sleeper) -> None:
    """Let every typing pause pass until the chat's reply is delivered."""
    done = asyncio.create_task(bot.wait(chat_id))
    while not done.done():
        if sleeper.waiting:
            sleeper.release()
        await asyncio.sleep(0)
    await done


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


def chain(*backends: object) -> FallbackChain:
    return FallbackChain(backends, deadline_s=5.0, failures_to_open=3, reset_s=60.0)  # type: ignore[arg-type]


def engine(
    store: Store,
    *backends: object,
    profile: Profile | None = None,
    clock: Clock | None = None,
    seed: int = 1,
    **options: object,
) -> PersonaEngine:
    runtime = PersonaRuntime("Maya", chain(*backends), profile, strength=0.7)
    return PersonaEngine(
        store,
        {"Maya": runtime},
        Settings(typing_speed=1.0, typing_max_wait_s=90.0),
        clock=clock or Clock(),
        rng=random.Random(seed),
        **options,  # type: ignore[arg-type]
    )


def user(*bubbles: str, at: datetime = START) -> ChatTurn:
    return ChatTurn("user", bubbles, at)


async def test_reply_goes_through_the_chain_and_is_stored_with_its_backend(store: Store) -> None:
    echo = Echo("retrieval")
    planned = await engine(store, echo).respond("c1", "Maya", user("hey"))

    assert planned.reply.bubbles == ("got: hey", "ok")
    assert planned.reply.backend == "retrieval"
    assert echo.prompts[0].strength == 0.7
    assert echo.prompts[0].now == START
    turns = store.history("c1")
    assert [(t.role, t.bubbles, t.backend) for t in turns] == [
        ("user", ("hey",), None),
        ("assistant", ("got: hey", "ok"), "retrieval"),
    ]
    assert turns[1].at == START + timedelta(seconds=planned.plan.total_s)


async def test_prompt_history_is_bounded_and_ends_with_the_user_turn(store: Store) -> None:
    clock = Clock()
    echo = Echo()
    bot = engine(store, echo, clock=clock, history_turns=5, history_chars=60)
    for n in range(6):
        clock.advance(60)
        await bot.respond("c1", "Maya", user(f"message number {n}", at=clock()))

    history = echo.prompts[-1].history
    assert history[-1] == ChatTurn("user", ("message number 5",), clock())
    assert len(history) <= 5
    assert sum(len(turn.text) for turn in history) <= 60
    assert [turn.role for turn in history] == ["user", "assistant", "user"]  # 3 turns fit 60


async def test_the_last_user_turn_is_sent_even_when_longer_than_the_bound(store: Store) -> None:
    echo = Echo()
    long = "x" * 500
    await engine(store, echo, history_chars=60).respond("c1", "Maya", user(long))
    assert echo.prompts[0].history == (ChatTurn("user", (long,), START),)


async def test_fallback_records_the_backend_that_answered(store: Store) -> None:
    down, echo = Down(), Echo("retrieval")
    planned = await engine(store, down, echo).respond("c1", "Maya", user("hey"))

    assert down.calls == 1
    assert planned.reply.backend == "retrieval"
    assert store.history("c1")[-1].backend == "retrieval"


async def test_failed_reply_leaves_the_user_turn_and_the_next_message_joins_it(
    store: Store,
) -> None:
    bot = engine(store, Down())
    with pytest.raises(BackendUnavailable):
        await bot.respond("c1", "Maya", user("hey"))
    with pytest.raises(BackendUnavailable):
        await bot.respond("c1", "Maya", user("hello??"))
    assert [(t.role, t.bubbles) for t in store.history("c1")] == [("user", ("hey", "hello??"))]


async def test_typing_plan_comes_from_the_personas_profile(store: Store, maya: Profile) -> None:
    clock = Clock()
    planned = await engine(store, Echo(), profile=maya, clock=clock, seed=5).respond(
        "c1", "Maya", user("are u coming tonight")
    )

    expected = plan_typing(
        maya,
        planned.reply.bubbles,
        now=clock(),
        history=(user("are u coming tonight"),),
        speed=1.0,
        max_wait_s=90.0,
        rng=random.Random(5),
    )
    assert planned.plan == expected
    without_profile = plan_typing(
        None,
        planned.reply.bubbles,
        now=clock(),
        history=(user("are u coming tonight"),),
        speed=1.0,
        max_wait_s=90.0,
        rng=random.Random(5),
    )
    assert planned.plan != without_profile


async def test_bubbles_are_capped_and_split_at_blank_lines(store: Store) -> None:
    class Chatty:
        name = "chatty"

        async def reply(self, prompt: Prompt) -> Reply:
            return Reply(bubbles=("one\n\ntwo", *(f"b{i}" for i in range(10)), "   "), backend="x")

    planned = await engine(store, Chatty()).respond("c1", "Maya", user("hey"))
    assert planned.reply.bubbles[:3] == ("one", "two", "b0")
    assert len(planned.reply.bubbles) == 8


async def test_two_quick_messages_get_one_reply_that_answers_both(store: Store) -> None:
    echo, sleeper, outbox = Echo("retrieval"), Sleeper(), Outbox()
    bot = engine(store, echo, sleep=sleeper)

    await bot.handle("c1", "Maya", ["hey"], outbox)
    await until(lambda: bool(sleeper.waiting))  # the first reply is written and waiting
    await bot.handle("c1", "Maya", ["are u coming tonight?"], outbox)
    await play_out(bot, "c1", sleeper)

    assert outbox.sent == [("got: hey + are u coming tonight?", "retrieval"), ("ok", "retrieval")]
    assert echo.prompts[-1].history[-1].bubbles == ("hey", "are u coming tonight?")
    assert [(t.role, t.bubbles) for t in store.history("c1")] == [
        ("user", ("hey", "are u coming tonight?")),
        ("assistant", ("got: hey + are u coming tonight?", "ok")),
    ]
    assert outbox.events[0] == ("typing", True)  # the plan is played: typing, then the bubble
    assert all(seconds >= 0 for seconds in sleeper.durations)


async def test_message_after_the_first_bubble_keeps_what_was_sent_and_starts_a_new_turn(
    store: Store,
) -> None:
    echo, sleeper, outbox = Echo(), Sleeper(), Outbox()
    bot = engine(store, echo, sleep=sleeper)

    await bot.handle("c1", "Maya", ["hey"], outbox)
    while not outbox.sent:  # play the plan up to the first bubble
        await until(lambda: bool(sleeper.waiting) or bool(outbox.sent))
        if not outbox.sent:
            sleeper.release()
    await until(lambda: bool(sleeper.waiting))  # "ok" is still to come
    await bot.handle("c1", "Maya", ["wait what"], outbox)
    await play_out(bot, "c1", sleeper)

    assert [(t.role, t.bubbles) for t in store.history("c1")] == [
        ("user", ("hey",)),
        ("assistant", ("got: hey",)),
        ("user", ("wait what",)),
        ("assistant", ("got: wait what", "ok")),
    ]
    assert outbox.sent == [("got: hey", "echo"), ("got: wait what", "echo"), ("ok", "echo")]


async def test_without_typing_bubbles_are_sent_at_once(store: Store) -> None:
    outbox, sleeper = Outbox(), Sleeper()
    bot = engine(store, Echo(), sleep=sleeper, simulate_typing=False)
    await bot.handle("c1", "Maya", ["hey"], outbox)
    await bot.wait("c1")
    assert outbox.events == [("send", ("got: hey", "echo")), ("send", ("ok", "echo"))]
    assert sleeper.durations == []


async def test_when_no_backend_answers_the_transport_is_told(store: Store) -> None:
    outbox = Outbox()
    bot = engine(store, Down(), simulate_typing=False)
    await bot.handle("c1", "Maya", ["hey"], outbox)
    await bot.wait("c1")
    assert outbox.events == [("failed", "AllBackendsFailed")]
    assert [t.role for t in store.history("c1")] == ["user"]


async def test_reset_cancels_the_pending_reply_and_forgets_the_chat(store: Store) -> None:
    sleeper, outbox = Sleeper(), Outbox()
    bot = engine(store, Echo(), sleep=sleeper)
    await bot.handle("c1", "Maya", ["hey"], outbox)
    await until(lambda: bool(sleeper.waiting))
    await bot.reset("c1")
    assert store.history("c1") == []
    assert outbox.sent == []


async def test_conversations_are_kept_per_chat(store: Store) -> None:
    echo = Echo()
    bot = engine(store, echo)
    await bot.respond("c1", "Maya", user("hey"))
    await bot.respond("c2", "Maya", user("yo"))
    assert echo.prompts[-1].history == (user("yo"),)
    assert echo.prompts[-1].chat_id == "c2"


async def test_unknown_persona_is_a_clear_error(store: Store) -> None:
    with pytest.raises(UnknownPersonaError, match="Sam"):
        await engine(store, Echo()).respond("c1", "Sam", user("hey"))
