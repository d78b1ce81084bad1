"""Requests per reply and bursts: the engine over the real PTB application and a fake Bot API.

Telegram allows a bot about 30 requests a second, so a "typing…" action nobody could see is a
wasted request, and a burst of replies must wait for a connection rather than fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.backends.base import Prompt, Reply
from bot.channels import Incoming, Outbox
from bot.engine import PersonaEngine, PersonaRuntime
from bot.errors import BackendError
from bot.settings import Settings
from bot.store import Store
from bot.telegram import build_application, outbox_of, run_telegram
from tests.fakes.telegram_server import FakeTelegram, text_message
from training.db import connect

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


class Fixed:
    """A backend that answers every prompt with one bubble."""

    name = "fixed"

    async def reply(self, prompt: Prompt) -> Reply:
        return Reply(bubbles=("on my way",), backend=self.name)


class ChatDelivery:
    """The engine's `Delivery` onto one Telegram chat, as the service's is."""

    def __init__(self, outbox: Outbox, chat_id: str) -> None:
        self.outbox, self.chat_id = outbox, chat_id

    async def typing(self, on: bool) -> None:
        await self.outbox.typing(self.chat_id, on)

    async def send(self, bubble: str, reply: Reply) -> None:
        await self.outbox.send_text(self.chat_id, bubble)

    async def failed(self, error: BackendError) -> None:
        raise AssertionError(f"the backend failed: {error}")


async def capped_sleep(seconds: float) -> None:
    """Real waits, at most 0.3 s each, so a plan with typing runs in about a second."""
    await asyncio.sleep(min(seconds, 0.3))


async def reply_once(server: FakeTelegram, tmp_path: Path, settings: Settings) -> list[str]:
    """Serve one text through PTB and the engine; the Bot API methods it caused, in order."""
    engine = PersonaEngine(
        Store(connect(tmp_path / "wa-persona.db")),
        {"Maya": PersonaRuntime("Maya", Fixed())},
        settings,
        sleep=capped_sleep,
    )

    async def handle(incoming: Incoming, outbox: Outbox) -> None:
        delivery = ChatDelivery(outbox, incoming.chat_id)
        await engine.handle(incoming.chat_id, "Maya", [incoming.text or ""], delivery)

    application = build_application(
        handle, token=server.token, base_url=server.base_url, base_file_url=server.base_file_url
    )
    async with run_telegram(application, poll_timeout=1):
        server.push_update(message=text_message(text="where are u", chat_id=7, user_id=7))
        await server.wait_for("sendMessage")
        await engine.wait("7")
        await engine.close()
    replying = {"sendChatAction", "sendMessage"}
    return [call.method for call in server.calls if call.method in replying]


async def test_a_reply_sent_at_once_costs_one_request_without_typing(
    server: FakeTelegram, tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, typing_speed=1e9, typing_max_wait_s=0.0)  # type: ignore[call-arg]

    assert await reply_once(server, tmp_path, settings) == ["sendMessage"]


async def test_a_reply_with_typing_time_shows_typing_before_it_is_sent(
    server: FakeTelegram, tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, typing_speed=1.0, typing_max_wait_s=90.0)  # type: ignore[call-arg]

    methods = await reply_once(server, tmp_path, settings)

    assert methods[-1] == "sendMessage"
    assert methods.count("sendMessage") == 1
    assert methods[0] == "sendChatAction"
    assert server.calls_to("sendChatAction")[0]["action"] == "typing"


class SlowTelegram(FakeTelegram):
    """The fake Bot API taking 1.1 s over each `sendMessage`."""

    async def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(1.1)
        return await super()._sendMessage(params)


async def test_a_burst_waits_for_a_free_connection_instead_of_failing() -> None:
    async def ignore(incoming: Incoming, outbox: Outbox) -> None:
        return None

    async with SlowTelegram() as server:
        application = build_application(
            ignore,
            token=server.token,
            base_url=server.base_url,
            base_file_url=server.base_file_url,
            connection_pool_size=1,
        )
        async with run_telegram(application, poll_timeout=1) as app:
            outbox = outbox_of(app)
            # Two messages, one connection: the second waits 1.1 s for it, longer than
            # PTB's default pool timeout (1 s), which failed it with "Pool timeout".
            await asyncio.gather(*(outbox.send_text(str(chat), "hi") for chat in range(2)))
        sent = sorted(call["chat_id"] for call in server.calls_to("sendMessage"))
    assert sent == ["0", "1"]
