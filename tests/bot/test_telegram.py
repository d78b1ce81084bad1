"""The Telegram transport: the real python-telegram-bot application against a fake Bot API."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from telegram.ext import Application

from bot.channels import Choice, DocumentRef, Incoming, Outbox
from bot.errors import DownloadError, TransportError
from bot.seen import SeenUpdates
from bot.telegram import (
    CLOUD_DOWNLOAD_LIMIT,
    COMMANDS,
    build_application,
    outbox_of,
    run_telegram,
)
from tests.fakes.telegram_server import (
    FakeTelegram,
    callback_query,
    document_message,
    text_message,
)
from training.db import connect

pytestmark = pytest.mark.anyio

SENT_AT = datetime(2024, 3, 12, 21, 0, tzinfo=UTC)
SECRET = "s3cret-Token_for-tests"


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


class Service:
    """Stands in for the persona service: keeps every `Incoming`, runs a scripted reply."""

    def __init__(self, reply: Callable[[Incoming, Outbox], Awaitable[None]] | None = None):
        self.reply = reply
        self.received: asyncio.Queue[Incoming] = asyncio.Queue()

    async def __call__(self, incoming: Incoming, outbox: Outbox) -> None:
        self.received.put_nowait(incoming)
        if self.reply is not None:
            await self.reply(incoming, outbox)

    async def next(self) -> Incoming:
        async with asyncio.timeout(5):
            return await self.received.get()


def application_for(server: FakeTelegram, service: Service, **options: Any) -> Application:
    return build_application(
        service,
        token=server.token,
        base_url=server.base_url,
        base_file_url=server.base_file_url,
        **options,
    )


@asynccontextmanager
async def polling(
    server: FakeTelegram, service: Service, **options: Any
) -> AsyncIterator[Application]:
    async with run_telegram(application_for(server, service, **options), poll_timeout=1) as app:
        yield app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keyboard_data(call: dict[str, Any]) -> list[str]:
    return [row[0]["callback_data"] for row in call["reply_markup"]["inline_keyboard"]]


async def test_text_message_reaches_the_handler_as_incoming(
    server: FakeTelegram,
) -> None:
    service = Service()
    async with polling(server, service):
        server.push_update(
            message=text_message(
                text="hey, you around?",
                chat_id=7,
                user_id=42,
                message_id=5,
                first_name="Alex",
                last_name="Smith",
            )
        )
        incoming = await service.next()
    assert incoming == Incoming(
        channel="telegram",
        chat_id="7",
        user_id="42",
        message_id="7:5",
        at=SENT_AT,
        text="hey, you around?",
        user_name="Alex Smith",
    )
    assert incoming.sender == "telegram:42"
    getupdates = server.calls_to("getUpdates")[0]
    assert getupdates["allowed_updates"] == ["message", "callback_query"]


async def test_bubbles_are_sent_as_separate_messages_in_order(server: FakeTelegram) -> None:
    async def reply(incoming: Incoming, outbox: Outbox) -> None:
        for bubble in ("haha", "no way", "tell me everything"):
            await outbox.send_text(incoming.chat_id, bubble)

    async with polling(server, Service(reply)):
        server.push_update(message=text_message(text="guess what", chat_id=7, user_id=7))
        await server.wait_for("sendMessage", 3)
    sent = server.calls_to("sendMessage")
    assert [call["text"] for call in sent] == ["haha", "no way", "tell me everything"]
    assert {call["chat_id"] for call in sent} == {"7"}


async def test_text_above_telegram_limit_is_split_at_line_breaks(server: FakeTelegram) -> None:
    lines = [f"line {number:04d} " + "x" * 40 for number in range(200)]
    async with polling(server, Service()) as app:
        await outbox_of(app).send_text("7", "\n".join(lines))
    sent = [call["text"] for call in server.calls_to("sendMessage")]
    assert len(sent) == 3
    assert all(len(part) <= 4096 for part in sent)
    assert "\n".join(sent).splitlines() == lines


async def test_typing_is_renewed_while_on_and_stops_when_off(server: FakeTelegram) -> None:
    async with polling(server, Service(), typing_refresh_s=0.05) as app:
        outbox = outbox_of(app)
        await outbox.typing("7", True)
        await outbox.typing("7", True)  # already on: no second refresher
        await asyncio.sleep(0.3)
        await outbox.typing("7", False)
        while_on = server.calls_to("sendChatAction")
        await asyncio.sleep(0.3)
        after_off = server.calls_to("sendChatAction")
    assert 3 <= len(while_on) <= 8
    assert {(call["chat_id"], call["action"]) for call in while_on} == {("7", "typing")}
    assert after_off == while_on


async def test_sending_a_message_ends_the_typing_indicator(server: FakeTelegram) -> None:
    async with polling(server, Service(), typing_refresh_s=0.05) as app:
        outbox = outbox_of(app)
        await outbox.typing("7", True)
        await asyncio.sleep(0.12)
        await outbox.send_text("7", "ok")
        before = len(server.calls_to("sendChatAction"))
        await asyncio.sleep(0.2)
        assert len(server.calls_to("sendChatAction")) == before >= 2


async def test_choices_are_buttons_and_a_press_returns_the_payload(server: FakeTelegram) -> None:
    long_payload = "upload:confirm:" + "persona=Maya;" * 10
    choices = [Choice("retrain:yes", "Yes"), Choice(long_payload, "Yes, as Maya")]
    service = Service()
    async with polling(server, service) as app:
        await outbox_of(app).send_choices("7", "Retrain now?", choices)
        (sent,) = server.calls_to("sendMessage")
        data = keyboard_data(sent)
        assert data[0] == "retrain:yes"
        assert len(data[1].encode()) <= 64
        labels = [row[0]["text"] for row in sent["reply_markup"]["inline_keyboard"]]
        assert labels == ["Yes", "Yes, as Maya"]
        short_id = server.push_update(
            callback_query=callback_query(data=data[0], chat_id=7, user_id=42, query_id="q1")
        )
        server.push_update(
            callback_query=callback_query(data=data[1], chat_id=7, user_id=42, query_id="q2")
        )
        pressed = [await service.next(), await service.next()]
        await server.wait_for("answerCallbackQuery", 2)
    assert [incoming.choice for incoming in pressed] == ["retrain:yes", long_payload]
    assert pressed[0].message_id == str(short_id)
    assert (pressed[0].chat_id, pressed[0].user_id, pressed[0].text) == ("7", "42", None)
    answered = [call["callback_query_id"] for call in server.calls_to("answerCallbackQuery")]
    assert sorted(answered) == ["q1", "q2"]


async def test_an_expired_long_button_is_answered_and_not_forwarded(
    server: FakeTelegram,
) -> None:
    service = Service()
    async with polling(server, service):
        server.push_update(callback_query=callback_query(data="~" + "0" * 32, chat_id=7, user_id=7))
        server.push_update(message=text_message(text="hello?", chat_id=7, user_id=7))
        assert (await service.next()).text == "hello?"
        await server.wait_for("answerCallbackQuery")
    assert "expired" in server.calls_to("answerCallbackQuery")[0]["text"]
    assert service.received.empty()


async def test_a_sent_document_is_downloaded_with_its_bytes(
    server: FakeTelegram, tmp_path: Path
) -> None:
    content = b"PK\x03\x04 a whatsapp export" * 1000
    server.add_file("doc-1", content)
    service = Service()
    async with polling(server, service) as app:
        server.push_update(
            message=document_message(
                file_id="doc-1",
                file_name="WhatsApp Chat with Maya.zip",
                file_size=len(content),
                caption="this is us",
                chat_id=7,
                user_id=7,
            )
        )
        incoming = await service.next()
        assert incoming.document == DocumentRef(
            "doc-1", "WhatsApp Chat with Maya.zip", "application/zip", len(content)
        )
        assert incoming.text == "this is us"
        path = await outbox_of(app).download(
            incoming.document, tmp_path / "uploads" / "1.zip", max_bytes=CLOUD_DOWNLOAD_LIMIT
        )
    assert path == tmp_path / "uploads" / "1.zip"
    assert path.read_bytes() == content
    assert sorted(path.parent.iterdir()) == [path]


async def test_a_file_above_the_cloud_limit_is_refused_before_get_file(
    server: FakeTelegram, tmp_path: Path
) -> None:
    server.add_file("big", b"", file_size=25_000_000)
    async with polling(server, Service()) as app:
        with pytest.raises(DownloadError) as refused:
            await outbox_of(app).download(
                DocumentRef("big", "chat.zip", size=25_000_000),
                tmp_path / "chat.zip",
                max_bytes=100_000_000,
            )
    message = str(refused.value)
    assert "25 MB" in message and "20 MB" in message
    assert "telegram-bot-api --local" in message
    assert server.calls_to("getFile") == []
    assert not (tmp_path / "chat.zip").exists()


async def test_a_size_only_get_file_reports_is_refused_before_downloading(
    server: FakeTelegram, tmp_path: Path
) -> None:
    server.add_file("unsized", b"x" * 10, file_size=3_000_000)
    async with polling(server, Service()) as app:
        with pytest.raises(DownloadError, match="WA_PERSONA_MAX_UPLOAD_MB"):
            await outbox_of(app).download(
                DocumentRef("unsized"), tmp_path / "chat.zip", max_bytes=2_000_000
            )
    assert len(server.calls_to("getFile")) == 1
    assert server.calls_to("file") == []


async def test_local_mode_downloads_files_above_20_mb(server: FakeTelegram, tmp_path: Path) -> None:
    served = tmp_path / "bot-api-server" / "documents" / "file_3.zip"
    served.parent.mkdir(parents=True)
    with served.open("wb") as out:
        out.write(b"PK-start")
        out.seek(25_000_000)
        out.write(b"end")
    server.add_file("big", file_size=served.stat().st_size, local_path=served)
    async with polling(server, Service(), local_mode=True) as app:
        path = await outbox_of(app).download(
            DocumentRef("big", "chat.zip", size=served.stat().st_size),
            tmp_path / "uploads" / "chat.zip",
            max_bytes=100_000_000,
        )
    assert path.stat().st_size == 25_000_003
    assert path.read_bytes()[:8] == b"PK-start"
    assert path.read_bytes()[-3:] == b"end"


# PTB 22 warns on every RetryAfter that `retry_after` will become a timedelta in v23.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_flood_control_is_waited_out_and_the_message_sent(server: FakeTelegram) -> None:
    server.fail_next("sendMessage", retry_after=1)
    async with polling(server, Service()) as app:
        await outbox_of(app).send_text("7", "made it")
    attempts = [call for call in server.calls if call.method == "sendMessage"]
    assert [call.params["text"] for call in attempts] == ["made it", "made it"]
    assert attempts[1].at - attempts[0].at >= 1.0


async def test_a_refused_message_is_a_transport_error(server: FakeTelegram) -> None:
    server.refuse_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    async with polling(server, Service()) as app:
        with pytest.raises(TransportError, match="blocked by the user"):
            await outbox_of(app).send_text("7", "hi")


async def test_every_command_is_forwarded_as_text(server: FakeTelegram) -> None:
    service = Service()
    async with polling(server, service):
        for number, name in enumerate(COMMANDS, start=1):
            server.push_update(
                message=text_message(
                    text=f"/{name} maya now", chat_id=7, user_id=7, message_id=number
                )
            )
        server.push_update(
            message=text_message(text="/status@maya_persona_bot", chat_id=7, user_id=7)
        )
        server.push_update(message=text_message(text="/status@other_bot", chat_id=7, user_id=7))
        server.push_update(message=text_message(text="the end", chat_id=7, user_id=7))
        texts = [(await service.next()).text for _ in range(len(COMMANDS) + 2)]
    assert texts == [f"/{name} maya now" for name in COMMANDS] + ["/status", "the end"]


async def test_a_slow_reply_does_not_block_the_next_update(server: FakeTelegram) -> None:
    second_arrived = asyncio.Event()

    async def reply(incoming: Incoming, outbox: Outbox) -> None:
        if incoming.text == "first":
            async with asyncio.timeout(3):  # a blocking transport never delivers "second"
                await second_arrived.wait()
            await outbox.send_text(incoming.chat_id, "answer to first")
        else:
            second_arrived.set()

    service = Service(reply)
    async with polling(server, service):
        server.push_update(message=text_message(text="first", chat_id=7, user_id=7))
        server.push_update(message=text_message(text="second", chat_id=8, user_id=8))
        await server.wait_for("sendMessage")
    assert second_arrived.is_set()


async def test_a_failing_handler_is_logged_without_the_message_text(
    server: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    async def reply(incoming: Incoming, outbox: Outbox) -> None:
        raise ValueError("the service broke")

    caplog.set_level(logging.INFO)
    service = Service(reply)
    async with polling(server, service):
        update_id = server.push_update(
            message=text_message(text="my secret plans", chat_id=7, user_id=7)
        )
        await service.next()
        async with asyncio.timeout(5):
            while not any(record.levelno == logging.ERROR for record in caplog.records):
                await asyncio.sleep(0.01)
    (error,) = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert error.name == "bot.telegram"
    assert str(update_id) in error.getMessage()
    assert error.exc_info is not None and isinstance(error.exc_info[1], ValueError)
    assert not any("my secret plans" in record.getMessage() for record in caplog.records)


async def webhook_post(port: int, update: dict[str, Any], secret: str | None) -> tuple[int, Any]:
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port}/telegram/hook", json=update, headers=headers) as r,
    ):
        return r.status, await r.read()


def update(update_id: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": text_message(text=text, chat_id=7, user_id=7, message_id=update_id),
    }


@asynccontextmanager
async def webhook(
    server: FakeTelegram, service: Service, port: int, **options: Any
) -> AsyncIterator[Application]:
    application = application_for(server, service, **options)
    async with run_telegram(
        application,
        webhook_url="https://bot.example.test/telegram/hook",
        secret=SECRET,
        listen="127.0.0.1",
        port=port,
    ) as app:
        yield app


async def test_webhook_refuses_requests_without_the_secret_token(server: FakeTelegram) -> None:
    service = Service()
    port = free_port()
    async with webhook(server, service, port):
        (registered,) = server.calls_to("setWebhook")
        assert registered["url"] == "https://bot.example.test/telegram/hook"
        assert registered["secret_token"] == SECRET
        assert registered["allowed_updates"] == ["message", "callback_query"]
        missing = await webhook_post(port, update(1, "no secret"), None)
        wrong = await webhook_post(port, update(2, "wrong secret"), "guessed")
        right = await webhook_post(port, update(3, "right secret"), SECRET)
        incoming = await service.next()
    assert (missing[0], wrong[0], right[0]) == (403, 403, 200)
    assert incoming.text == "right secret"
    assert service.received.empty()


async def test_webhook_redelivery_is_handled_once(server: FakeTelegram, tmp_path: Path) -> None:
    db = connect(tmp_path / "wa-persona.db")
    service = Service()
    port = free_port()
    async with webhook(server, service, port, seen=SeenUpdates(db)):
        statuses = [
            (await webhook_post(port, update(10, "once"), SECRET))[0],
            (await webhook_post(port, update(10, "once"), SECRET))[0],
            (await webhook_post(port, update(11, "twice?"), SECRET))[0],
        ]
        texts = [(await service.next()).text, (await service.next()).text]
    assert statuses == [200, 200, 200]
    assert texts == ["once", "twice?"]
    assert service.received.empty()
    db.close()


async def test_webhook_mode_needs_a_secret(server: FakeTelegram) -> None:
    application = application_for(server, Service())
    with pytest.raises(TransportError, match="WEBHOOK_SECRET"):
        async with run_telegram(application, webhook_url="https://bot.example.test/hook"):
            pass
    assert server.calls == []


async def test_a_rejected_token_is_a_transport_error_that_hides_the_token(
    server: FakeTelegram,
) -> None:
    application = build_application(Service(), token="999:not-the-token", base_url=server.base_url)
    with pytest.raises(TransportError, match="BotFather") as refused:
        async with run_telegram(application):
            pass
    assert "not-the-token" not in str(refused.value)
    assert refused.value.__cause__ is None


async def test_shutdown_finishes_replies_and_leaves_no_tasks(
    server: FakeTelegram, recwarn: pytest.WarningsRecorder
) -> None:
    async def reply(incoming: Incoming, outbox: Outbox) -> None:
        await outbox.typing(incoming.chat_id, True)  # never switched off by the service
        await asyncio.sleep(0.1)
        await outbox.send_text(incoming.chat_id, "bye")
        await outbox.typing(incoming.chat_id, True)

    before = asyncio.all_tasks()
    service = Service(reply)
    started = time.monotonic()
    async with polling(server, service, typing_refresh_s=0.05) as app:
        server.push_update(message=text_message(text="gotta go", chat_id=7, user_id=7))
        await service.next()
    assert time.monotonic() - started < 5
    assert [call["text"] for call in server.calls_to("sendMessage")] == ["bye"]
    assert not app.running
    assert not (app.updater and app.updater.running)
    left = {
        task
        for task in asyncio.all_tasks() - before
        if task.get_coro().__qualname__ != "RequestHandler.start"  # the fake server's side
    }
    assert left == set()
    assert [str(warning.message) for warning in recwarn] == []
