"""The persona engine: a chat's message in, the persona's bubbles out, typed at her pace.

Transports (Telegram, WhatsApp, the terminal) hand every incoming message to `handle`; the
engine stores it, asks the persona's backend (a `FallbackChain`) for the next turn, keeps
the bubbles within the transport's limits, draws a typing plan from the persona's profile
and plays it through the transport's `Delivery`. A message that arrives while the reply is
still being written or typed cancels that delivery and joins the same user turn, so two
quick messages get one reply that answers both, as a person reading both would write.
Bubbles already sent stay sent and are stored as the persona's turn. `respond` is the same
without delivery, for callers that play the plan themselves.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from bot.backends.base import Backend, ChatTurn, Prompt, Reply
from bot.bubbles import split_bubbles
from bot.errors import BackendError
from bot.personas import UnknownPersonaError
from bot.typing_plan import DEFAULT_MIN_WAIT_S, TypingPlan, perform, plan_typing

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.store import Store, StoredTurn
    from style.profile import Profile

__all__ = [
    "AT_ONCE_S",
    "HISTORY_CHARS",
    "HISTORY_TURNS",
    "Delivery",
    "PersonaEngine",
    "PersonaResolver",
    "PersonaRuntime",
    "PlannedReply",
]

logger = logging.getLogger(__name__)

HISTORY_TURNS = 24
"""Most turns of the conversation a prompt carries (the training samples hold ~20)."""
HISTORY_CHARS = 6000
"""Most characters of conversation a prompt carries; older turns give way first."""
AT_ONCE_S = 0.1
"""A bubble its plan sends sooner than this (idle wait plus typing) goes out without
"typing…": under 0.1 s reads as instant (Nielsen's response-time limit), so the indicator
would go unseen, and on Telegram it costs a request against the bot's 30 a second."""
_BUBBLE_SEPARATOR = "\n\n"


@dataclass(slots=True)
class PersonaRuntime:
    """One persona as the engine uses it: who answers, how she types, how closely to copy her.

    `strength` runs from 0 ("inspired by") to 1 ("exact replication"); change it in place
    to change the next replies.
    """

    name: str
    backend: Backend
    profile: Profile | None = None
    strength: float = 1.0


PersonaResolver = Callable[[str], PersonaRuntime]
"""Gives the runtime of a persona by name; raises `UnknownPersonaError` for none."""


@dataclass(frozen=True, slots=True)
class PlannedReply:
    """The persona's reply (its bubbles as they will be sent) and when to type and send each."""

    reply: Reply
    plan: TypingPlan


class Delivery(Protocol):
    """Where `handle` sends one chat's reply: the transport's typing indicator and messages."""

    async def typing(self, on: bool) -> None:
        """Show (True) or hide (False) "typing…"."""

    async def send(self, bubble: str, reply: Reply) -> None:
        """Send one bubble; `reply` says which backend and model wrote it."""

    async def failed(self, error: BackendError) -> None:
        """No backend could answer (the user's turn stays unanswered in the store)."""


@dataclass(slots=True)
class _Chat:
    """One chat's pending reply; the lock makes its messages take turns."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None


class PersonaEngine:
    """Answers as the personas, one conversation per chat, stored in `store`.

    Args:
        store: where conversations are kept.
        personas: runtimes by name, or a resolver called once per persona (results cached).
        settings: typing speed and longest wait.
        clock: the persona's local wall-clock time (naive, like the exports' timestamps).
        rng: every random draw (bubble caps, typing plans); seed it in tests.
        sleep: how `handle` waits while "typing"; inject a fake one in tests.
        simulate_typing: False sends the bubbles at once (plans are still drawn). True
            plays the plan; a bubble due in under `AT_ONCE_S` gets no "typing…".
        history_turns: most turns a prompt carries.
        history_chars: most characters a prompt carries (the last user turn always goes).
    """

    def __init__(
        self,
        store: Store,
        personas: Mapping[str, PersonaRuntime] | PersonaResolver,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = datetime.now,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        simulate_typing: bool = True,
        history_turns: int = HISTORY_TURNS,
        history_chars: int = HISTORY_CHARS,
    ) -> None:
        self.store = store
        self.settings = settings
        self.simulate_typing = simulate_typing
        self.history_turns = history_turns
        self.history_chars = history_chars
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._resolve = personas.__getitem__ if isinstance(personas, Mapping) else personas
        self._runtimes: dict[str, PersonaRuntime] = {}
        self._chats: dict[str, _Chat] = {}

    def persona(self, name: str) -> PersonaRuntime:
        """The runtime of persona `name`, resolved once and kept."""
        runtime = self._runtimes.get(name)
        if runtime is None:
            try:
                runtime = self._resolve(name)
            except KeyError as exc:
                raise UnknownPersonaError(f"no persona named {name!r} is loaded") from exc
            self._runtimes[name] = runtime
        return runtime

    def forget_persona(self, name: str) -> None:
        """Drop the cached runtime (after the persona was rebuilt or deleted)."""
        self._runtimes.pop(name, None)

    # --- one turn, no delivery ------------------------------------------------------------

    async def respond(self, chat_id: str, persona: str, incoming: ChatTurn) -> PlannedReply:
        """Store the user's turn, get the persona's reply and its typing plan, store the reply.

        The reply is stored as sent at the end of its plan. When the backend fails, the
        user's turn stays unanswered and the next one joins it.
        """
        if incoming.role != "user" or not incoming.bubbles:
            raise ValueError("respond takes the user's turn, with at least one bubble")
        runtime = self.persona(persona)
        chat = self._chat(chat_id)
        async with chat.lock:
            await _cancelled(chat.task)
            self._add_user_bubbles(chat_id, runtime.name, incoming.bubbles, incoming.at)
            planned = await self._answer(chat_id, runtime)
            due = self._clock() + timedelta(seconds=planned.plan.total_s)
            self._store_reply(chat_id, runtime.name, planned.reply, planned.reply.bubbles, due)
        return planned

    # --- messages in, bubbles out ---------------------------------------------------------

    async def handle(
        self, chat_id: str, persona: str, bubbles: Sequence[str], deliver: Delivery
    ) -> None:
        """Take the user's messages and start the reply (returns once it is under way).

        A reply still being written or typed for this chat is cancelled first; its unsent
        bubbles are dropped and the new messages join the user's turn, so the next reply
        answers everything the user said since the persona's last sent bubble.
        """
        bubbles = tuple(bubble for bubble in bubbles if bubble.strip())
        if not bubbles:
            return
        runtime = self.persona(persona)
        chat = self._chat(chat_id)
        async with chat.lock:
            await _cancelled(chat.task)
            self._add_user_bubbles(chat_id, runtime.name, bubbles, self._clock())
            chat.task = asyncio.create_task(
                self._reply_and_deliver(chat_id, runtime, deliver), name=f"reply-{chat_id}"
            )
            chat.task.add_done_callback(_log_failure)

    async def wait(self, chat_id: str) -> None:
        """Wait until the chat's pending reply is delivered, failed or cancelled.

        An unexpected error of the delivery (not a backend failure) is raised here.
        """
        task = self._chats[chat_id].task if chat_id in self._chats else None
        if task is None:
            return
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def reset(self, chat_id: str) -> int:
        """Cancel the chat's pending reply and forget its conversation; return turns removed."""
        chat = self._chat(chat_id)
        async with chat.lock:
            await _cancelled(chat.task)
            return self.store.reset(chat_id)

    async def close(self) -> None:
        """Cancel every pending reply (what was sent stays stored)."""
        for chat in self._chats.values():
            await _cancelled(chat.task)

    # --- steps ----------------------------------------------------------------------------

    async def _reply_and_deliver(
        self, chat_id: str, runtime: PersonaRuntime, deliver: Delivery
    ) -> None:
        sent: list[str] = []
        reply: Reply | None = None
        try:
            planned = await self._answer(chat_id, runtime)
            reply = planned.reply

            async def send(bubble: str) -> None:
                await deliver.send(bubble, planned.reply)
                sent.append(bubble)

            if self.simulate_typing:
                for step in planned.plan.steps:
                    due_s = step.wait_s + step.typing_s
                    shown = deliver.typing if due_s >= AT_ONCE_S else None
                    await perform(TypingPlan((step,)), send=send, typing=shown, sleep=self._sleep)
            else:
                for bubble in planned.reply.bubbles:
                    await send(bubble)
        except BackendError as exc:
            logger.warning("no reply in chat %s: %s", chat_id, type(exc).__name__)
            await deliver.failed(exc)
        finally:
            if sent and reply is not None:
                self._store_reply(chat_id, runtime.name, reply, sent, self._clock())

    async def _answer(self, chat_id: str, runtime: PersonaRuntime) -> PlannedReply:
        """Ask the persona's backend for the next turn of the stored conversation."""
        history = tuple(turn.turn for turn in self._history(chat_id, runtime.name))
        prompt = Prompt(
            persona=runtime.name,
            chat_id=chat_id,
            history=history,
            now=self._clock(),
            strength=runtime.strength,
        )
        reply = await runtime.backend.reply(prompt)
        # Backends split their own text the persona's way (Claude, retrieval's real
        # bubbles); here only blank lines split and the transport's caps apply.
        bubbles = split_bubbles(_BUBBLE_SEPARATOR.join(reply.bubbles), None, rng=self._rng)
        if not bubbles:
            raise BackendError(f"backend {reply.backend} returned an empty reply")
        logger.debug("chat %s: %s answered with %d bubbles", chat_id, reply.backend, len(bubbles))
        reply = replace(reply, bubbles=bubbles)
        max_wait = max(self.settings.typing_max_wait_s, 1e-3)
        plan = plan_typing(
            runtime.profile,
            bubbles,
            now=self._clock(),
            history=history,
            speed=self.settings.typing_speed,
            max_wait_s=max_wait,
            min_wait_s=min(DEFAULT_MIN_WAIT_S, max_wait),
            rng=self._rng,
        )
        return PlannedReply(reply, plan)

    def _history(self, chat_id: str, persona: str) -> list[StoredTurn]:
        """The conversation's last turns within the turn and character bounds."""
        turns = self.store.history(chat_id, self.history_turns, persona=persona)
        chars = sum(len(turn.turn.text) for turn in turns)
        while len(turns) > 1 and chars > self.history_chars:
            chars -= len(turns.pop(0).turn.text)
        return turns

    def _add_user_bubbles(
        self, chat_id: str, persona: str, bubbles: Sequence[str], at: datetime
    ) -> None:
        """Append the user's turn, or extend it while the persona has not answered yet."""
        last = self.store.history(chat_id, 1, persona=persona)
        if last and last[0].role == "user":
            self.store.extend_turn(last[0].id, bubbles, at)
        else:
            self.store.append_turn(chat_id, persona, ChatTurn("user", tuple(bubbles), at))

    def _store_reply(
        self, chat_id: str, persona: str, reply: Reply, bubbles: Sequence[str], at: datetime
    ) -> None:
        self.store.append_turn(
            chat_id,
            persona,
            ChatTurn("assistant", tuple(bubbles), at),
            backend=reply.backend,
            model=reply.model,
        )

    def _chat(self, chat_id: str) -> _Chat:
        return self._chats.setdefault(chat_id, _Chat())


async def _cancelled(task: asyncio.Task[None] | None) -> None:
    """Cancel `task` and wait until it has stopped (its cleanup included)."""
    if task is None or task.done():
        return
    task.cancel()
    await asyncio.wait({task})


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("delivering a reply failed (%s)", task.get_name(), exc_info=error)
