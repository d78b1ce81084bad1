"""`wa-persona serve` end to end: the real service, transports, jobs, scheduler and database.

Telegram runs against the fake Bot API (tests/fakes/telegram_server.py) by long polling;
WhatsApp's webhook server really listens and gets signed POSTs, and answers through the fake
Graph API (tests/fakes/graph_server.py). Personas answer with the retrieval backend (no keys,
no model), typing as fast as the settings allow.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from typer.testing import CliRunner

from bot.app import ServeError, configure_logging, configured_transports, serve
from bot.cli import app as cli
from bot.doctor import heartbeat_path
from bot.errors import TransportError
from bot.personas import load_persona
from bot.service import chat_address
from bot.settings import Settings
from bot.store import Store
from bot.whatsapp import WEBHOOK_PATH, signature
from style.sample import sample_paths
from tests.bot.test_service import authored, teach_maya
from tests.fakes.graph_server import FakeGraph
from tests.fakes.telegram_server import (
    FakeTelegram,
    callback_query,
    document_message,
    text_message,
)
from training.db import connect

pytestmark = pytest.mark.anyio

PAIR_EXPORT, GROUP_EXPORT = sample_paths()  # Maya and Sam; Maya's group chat of four
ADMIN = 1  # the admin teach_maya uses: telegram:1, chat 100
STRANGER = 2
WA_ADMIN = "447700900123"
WA_STRANGER = "4915112345678"
APP_SECRET = "app-secret-for-tests"
VERIFY_TOKEN = "verify-me-please"
FAST = {"typing_speed": 1000.0, "typing_max_wait_s": 0.0}
T = TypeVar("T")


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test passes counts: no WA_PERSONA_* from the environment, no .env."""
    for name in list(os.environ):
        if name.startswith("WA_PERSONA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def maya_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return teach_maya(tmp_path_factory.mktemp("maya"))


@pytest.fixture
def maya_dir(maya_template: Path, tmp_path: Path) -> Path:
    """A data dir where the admin already taught Maya (from the pair chat) in chat 100."""
    return Path(shutil.copytree(maya_template, tmp_path / "data"))


def settings_for(data_dir: Path, **values: Any) -> Settings:
    values.setdefault("admin_ids", [f"telegram:{ADMIN}"])
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        backends=["retrieval"],
        http_host="127.0.0.1",
        **values,
    )


def telegram_settings(data_dir: Path, fake: FakeTelegram, **values: Any) -> Settings:
    values.setdefault("telegram_token", fake.token)
    return settings_for(
        data_dir,
        telegram_base_url=fake.base_url,
        telegram_base_file_url=fake.base_file_url,
        **values,
    )


async def until(probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Wait until `probe()` returns something truthy, and return it."""
    async with asyncio.timeout(timeout):
        while not (found := probe()):
            await asyncio.sleep(0.02)
    return found


@asynccontextmanager
async def serving(settings: Settings, **options: Any) -> AsyncIterator[asyncio.Event]:
    """`serve` as a task; its `stop` event is yielded, and set (and the task awaited) at exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop=stop, **options))
    try:
        yield stop
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task


def maya_replies(settings: Settings) -> set[tuple[str, ...]]:
    """Every reply (as bubbles) Maya really wrote in the export she was built from."""
    return {exchange.reply for exchange in load_persona(settings, "Maya").index.exchanges}


def stored_reply(settings: Settings, address: str) -> tuple[str, ...] | None:
    """The persona's last stored reply in a chat (stored once all its bubbles were sent)."""
    db = connect(settings.database_path())
    try:
        turns = Store(db).history(address)
    finally:
        db.close()
    return turns[-1].bubbles if turns and turns[-1].role == "assistant" else None


def user_turns(settings: Settings, address: str) -> list[tuple[str, ...]]:
    db = connect(settings.database_path())
    try:
        return [turn.bubbles for turn in Store(db).history(address) if turn.role == "user"]
    finally:
        db.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Telegram ------------------------------------------------------------------------------


def questions(fake: FakeTelegram) -> list[dict[str, Any]]:
    return [call for call in fake.calls_to("sendMessage") if "reply_markup" in call]


def texts_to(fake: FakeTelegram, chat: int, since: int = 0) -> list[str]:
    sent = fake.calls_to("sendMessage")[since:]
    return [call["text"] for call in sent if call["chat_id"] == str(chat)]


def press(fake: FakeTelegram, question: dict[str, Any], label: str, *, user: int) -> None:
    """Press the inline button of `question` whose text starts with `label`."""
    buttons = [row[0] for row in question["reply_markup"]["inline_keyboard"]]
    button = next(b for b in buttons if b["text"].startswith(label))
    fake.push_update(
        callback_query=callback_query(
            data=button["callback_data"], chat_id=user, user_id=user, query_id=f"q-{label}"
        )
    )


async def test_telegram_upload_consent_chat_and_admin_commands_end_to_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    counts = authored(PAIR_EXPORT)
    export = PAIR_EXPORT.read_bytes()
    started = time.monotonic()
    before = asyncio.all_tasks()
    async with FakeTelegram() as fake:
        settings = telegram_settings(tmp_path / "data", fake, **FAST)
        task = asyncio.create_task(serve(settings))
        await until(lambda: fake.calls_to("getUpdates") and heartbeat_path(settings).exists())

        fake.add_file("export-1", export)
        document = document_message(
            file_id="export-1",
            file_name=PAIR_EXPORT.name,
            file_size=len(export),
            mime_type="text/plain",
            chat_id=ADMIN,
            user_id=ADMIN,
        )
        fake.push_update(message=document)
        who = (await until(lambda: questions(fake)))[0]
        summary = texts_to(fake, ADMIN)[0]
        assert summary.startswith(f"{PAIR_EXPORT.name}: 1 chat")
        assert f"Maya: {counts['Maya']:,} messages" in summary
        labels = [row[0]["text"] for row in who["reply_markup"]["inline_keyboard"]]
        assert labels == [
            f"Maya ({counts['Maya']:,} messages)",
            f"Sam ({counts['Sam']:,} messages)",
        ]

        press(fake, who, "Maya", user=ADMIN)
        consent = (await until(lambda: questions(fake)[1:]))[0]
        assert "right to use these messages" in consent["text"]
        press(fake, consent, "Yes", user=ADMIN)
        ready = await until(
            lambda: [t for t in texts_to(fake, ADMIN) if t.startswith("Maya is ready")]
        )
        assert ready[0].startswith(f"Maya is ready: {counts.total():,} new messages stored")

        calls_before_chat = len(fake.calls)
        sent_before_chat = len(fake.calls_to("sendMessage"))
        fake.push_update(
            message=text_message(text="hey how are u", chat_id=ADMIN, user_id=ADMIN, message_id=2)
        )
        address = chat_address("telegram", str(ADMIN))
        reply = await until(lambda: stored_reply(settings, address))
        assert tuple(texts_to(fake, ADMIN, since=sent_before_chat)) == reply
        assert reply in maya_replies(settings)  # her own words, one message per bubble
        actions = [c.params for c in fake.calls[calls_before_chat:] if c.method == "sendChatAction"]
        assert actions == []  # FAST settings send the reply at once: no "typing…" to show

        sent = len(fake.calls_to("sendMessage"))
        fake.push_update(message=text_message(text="/status", chat_id=ADMIN, user_id=ADMIN))
        status = (await until(lambda: texts_to(fake, ADMIN, since=sent)))[0]
        assert status.startswith(
            f"Maya: {counts.total():,} messages from 1 upload; no trained model active"
        )
        assert "Running: nothing" in status

        fake.push_update(
            message=text_message(text="/forget Maya", chat_id=STRANGER, user_id=STRANGER)
        )
        refusal = await until(lambda: texts_to(fake, STRANGER))
        assert refusal == ["Sorry, /forget is only for the bot's admins."]

        os.kill(os.getpid(), signal.SIGTERM)  # what systemd or docker stop sends
        async with asyncio.timeout(15):
            await task
        assert load_persona(settings, "Maya").name == "Maya"  # the refusal deleted nothing
    assert time.monotonic() - started < 30
    assert not heartbeat_path(settings).exists()  # a clean stop removes it
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    left = {t for t in asyncio.all_tasks() - before if not t.done()} - {asyncio.current_task()}
    assert left == set()
    loud = [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG]
    assert not [line for line in loud if "hey how are u" in line]
    assert any("serving telegram (polling)" in line for line in loud)
    assert "stopped" in loud


async def test_a_reply_being_typed_at_shutdown_is_finished_first(maya_dir: Path) -> None:
    async with FakeTelegram() as fake:
        settings = telegram_settings(maya_dir, fake, typing_speed=5.0, typing_max_wait_s=1.0)
        async with serving(settings, drain_s=10.0):
            await until(lambda: fake.calls_to("getUpdates"))
            fake.push_update(message=text_message(text="u up?", chat_id=100, user_id=ADMIN))
            await until(lambda: fake.calls_to("sendChatAction"))
        address = chat_address("telegram", "100")
        reply = stored_reply(settings, address)
        assert reply is not None and reply in maya_replies(settings)
        assert tuple(texts_to(fake, 100)) == reply


async def test_shutdown_waits_for_replies_only_so_long(maya_dir: Path) -> None:
    address = chat_address("telegram", "100")
    async with FakeTelegram() as fake:
        settings = telegram_settings(maya_dir, fake, typing_speed=0.05, typing_max_wait_s=60.0)
        async with serving(settings, drain_s=0.3):
            await until(lambda: fake.calls_to("getUpdates"))
            fake.push_update(message=text_message(text="u up?", chat_id=100, user_id=ADMIN))
            await until(lambda: user_turns(settings, address))  # her reply is under way
            stopping = time.monotonic()
        assert time.monotonic() - stopping < 5
        assert fake.calls_to("sendMessage") == []  # cancelled before her first bubble
        assert stored_reply(settings, address) is None


async def test_the_cli_serves_until_sigint_and_never_logs_the_token(tmp_path: Path) -> None:
    async with FakeTelegram() as fake:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "WA_PERSONA_DATA_DIR": str(tmp_path / "data"),
            "WA_PERSONA_TELEGRAM_TOKEN": fake.token,
            "WA_PERSONA_TELEGRAM_BASE_URL": fake.base_url,
            "WA_PERSONA_TELEGRAM_BASE_FILE_URL": fake.base_file_url,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "serve",
            env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await until(lambda: fake.calls_to("getUpdates"), timeout=30)
            process.send_signal(signal.SIGINT)  # Ctrl-C; systemd's KillSignal
            async with asyncio.timeout(15):
                _, stderr = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    log = stderr.decode()
    assert process.returncode == 0, log
    assert "INFO bot.app: serving telegram (polling)" in log
    assert "SIGINT received: shutting down" in log and log.rstrip().endswith("bot.app: stopped")
    assert fake.token not in log  # httpx's request lines carry it in the URL


# --- WhatsApp ------------------------------------------------------------------------------


def wa_message(message_id: str, sender: str, **content: Any) -> dict[str, Any]:
    return {"from": sender, "id": message_id, "timestamp": "1739321024", **content}


def wa_delivery(message: dict[str, Any], phone_number_id: str) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Alex"}, "wa_id": message["from"]}],
        "messages": [message],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }
    return json.dumps(payload).encode()


def wa_texts(graph: FakeGraph, to: str, since: int = 0) -> list[str]:
    return [
        body["text"]["body"]
        for body in graph.messages[since:]
        if body.get("type") == "text" and body.get("to") == to
    ]


async def test_whatsapp_webhook_flow_with_numbered_choices_and_redelivery(tmp_path: Path) -> None:
    counts = authored(GROUP_EXPORT)
    port = free_port()
    async with (
        FakeGraph() as graph,
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
    ):
        settings = settings_for(
            tmp_path / "data",
            admin_ids=[f"whatsapp:{WA_ADMIN}"],
            whatsapp_token=graph.token,
            whatsapp_phone_number_id=graph.phone_number_id,
            whatsapp_app_secret=APP_SECRET,
            whatsapp_verify_token=VERIFY_TOKEN,
            whatsapp_graph_url=graph.base_url,
            http_port=port,
            **FAST,
        )

        async def deliver(message: dict[str, Any]) -> int:
            body = wa_delivery(message, graph.phone_number_id)
            headers = {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": signature(APP_SECRET, body),
            }
            async with http.post(WEBHOOK_PATH, data=body, headers=headers) as response:
                return response.status

        async def healthy() -> bool:
            try:
                async with http.get("/healthz") as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        async with serving(settings) as stop:
            async with asyncio.timeout(10):
                while not await healthy():
                    await asyncio.sleep(0.05)
            challenge = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}
            async with http.get(WEBHOOK_PATH, params={**challenge, "hub.challenge": "42"}) as r:
                assert (r.status, await r.text()) == (200, "42")

            graph.add_media("media-1", GROUP_EXPORT.read_bytes(), mime_type="text/plain")
            document = wa_message(
                "wamid.doc",
                WA_ADMIN,
                type="document",
                document={
                    "id": "media-1",
                    "filename": GROUP_EXPORT.name,
                    "mime_type": "text/plain",
                },
            )
            assert await deliver(document) == 200
            assert await deliver(document) == 200  # Meta redelivers what it thinks failed
            numbered = await until(
                lambda: [t for t in wa_texts(graph, WA_ADMIN) if "Reply with a number." in t]
            )
            # "Jonas Weber (898 messages)" is too long for a list row: a numbered question.
            assert f"1. Maya ({counts['Maya']:,} messages)" in numbered[0]
            assert f"2. Jonas Weber ({counts['Jonas Weber']:,} messages)" in numbered[0]

            assert (
                await deliver(wa_message("wamid.2", WA_ADMIN, type="text", text={"body": "1"}))
                == 200
            )
            consent = await until(
                lambda: [b for b in graph.messages if b.get("type") == "interactive"]
            )
            buttons = [b["reply"] for b in consent[0]["interactive"]["action"]["buttons"]]
            yes = next(b for b in buttons if b["title"].startswith("Yes"))
            answer = {"type": "button_reply", "button_reply": yes}
            await deliver(wa_message("wamid.3", WA_ADMIN, type="interactive", interactive=answer))
            await until(
                lambda: [t for t in wa_texts(graph, WA_ADMIN) if t.startswith("Maya is ready")]
            )

            mark = len(graph.messages)
            hey = wa_message("wamid.4", WA_ADMIN, type="text", text={"body": "hey how are u"})
            await deliver(hey)
            address = chat_address("whatsapp", WA_ADMIN)
            reply = await until(lambda: stored_reply(settings, address))
            assert tuple(wa_texts(graph, WA_ADMIN, since=mark)) == reply
            assert reply in maya_replies(settings)
            receipts = [b for b in graph.messages[mark:] if b.get("status") == "read"]
            assert [r["message_id"] for r in receipts] == ["wamid.4"]  # read once, then answered
            assert "typing_indicator" not in receipts[0]  # at once (FAST): no "typing…"
            assert await deliver(hey) == 200  # redelivered: not answered again

            mark = len(graph.messages)
            await deliver(wa_message("wamid.5", WA_ADMIN, type="text", text={"body": "/status"}))
            status = (await until(lambda: wa_texts(graph, WA_ADMIN, since=mark)))[0]
            assert status.startswith(f"Maya: {counts.total():,} messages from 1 upload")

            forget = wa_message("wamid.6", WA_STRANGER, type="text", text={"body": "/forget Maya"})
            await deliver(forget)
            refusal = await until(lambda: wa_texts(graph, WA_STRANGER))
            assert refusal == ["Sorry, /forget is only for the bot's admins."]
            stop.set()
        assert not await healthy()  # the webhook server is gone
    summaries = [t for t in wa_texts(graph, WA_ADMIN) if t.startswith(f"{GROUP_EXPORT.name}:")]
    assert len(summaries) == 1  # the redelivered document was handled once
    assert user_turns(settings, address) == [("hey how are u",)]
    assert len(graph.downloads) == 1
    assert not heartbeat_path(settings).exists()


# --- configuration -------------------------------------------------------------------------


async def test_without_any_messenger_serve_says_what_to_set_and_opens_nothing(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path / "data")
    with pytest.raises(ServeError) as refused:
        await serve(settings)
    message = str(refused.value)
    for name in (
        "WA_PERSONA_TELEGRAM_TOKEN",
        "WA_PERSONA_WHATSAPP_TOKEN",
        "WA_PERSONA_WHATSAPP_PHONE_NUMBER_ID",
        "WA_PERSONA_WHATSAPP_APP_SECRET",
        "WA_PERSONA_WHATSAPP_VERIFY_TOKEN",
    ):
        assert name in message
    assert "wa-persona chat" in message
    assert not (tmp_path / "data").exists()


async def test_a_rejected_token_stops_serve_at_start_and_closes_what_it_opened(
    tmp_path: Path,
) -> None:
    async with FakeTelegram() as fake:
        wrong = telegram_settings(tmp_path / "data", fake, telegram_token="999:not-the-token")
        with pytest.raises(TransportError, match="BotFather"):
            await serve(wrong)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        right = telegram_settings(tmp_path / "data", fake)
        async with serving(right):  # the scheduler and the database were let go
            await until(lambda: fake.calls_to("getUpdates"))
    assert not heartbeat_path(right).exists()


async def test_a_webhook_port_in_use_says_which_setting_to_change(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = settings_for(
            tmp_path / "data",
            whatsapp_token="EAAG",
            whatsapp_phone_number_id="1065",
            whatsapp_app_secret="s",
            whatsapp_verify_token="v",
            http_port=taken.getsockname()[1],
        )
        with pytest.raises(TransportError, match="WA_PERSONA_HTTP_PORT"):
            await serve(settings)


def test_half_a_whatsapp_setup_names_what_is_missing(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, telegram_token="123:abc", whatsapp_token="EAAG", whatsapp_app_secret="s"
    )
    with pytest.raises(ServeError, match="only half set up") as refused:
        configured_transports(settings)
    assert "WA_PERSONA_WHATSAPP_PHONE_NUMBER_ID and WA_PERSONA_WHATSAPP_VERIFY_TOKEN" in str(
        refused.value
    )


def test_a_telegram_webhook_needs_its_secret(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, telegram_token="123:abc", telegram_webhook_url="https://bot.example.test/tg"
    )
    with pytest.raises(ServeError, match="WA_PERSONA_TELEGRAM_WEBHOOK_SECRET"):
        configured_transports(settings)
    with_secret = settings.model_copy(update={"telegram_webhook_secret": "s3cret"})
    assert configured_transports(with_secret).describe() == "telegram (webhook)"


def test_the_cli_without_messengers_exits_2_with_the_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve"], env={"WA_PERSONA_DATA_DIR": str(tmp_path / "d")})
    assert result.exit_code == 2
    assert "Error: No messenger is set up" in result.stderr
    assert "WA_PERSONA_TELEGRAM_TOKEN" in result.stderr and "wa-persona chat" in result.stderr


def test_logging_hides_the_token_bearing_http_lines_and_refuses_unknown_levels() -> None:
    root, httpx = logging.getLogger(), logging.getLogger("httpx")
    saved = (root.level, httpx.level)
    try:
        configure_logging("debug")
        assert root.level == logging.DEBUG
        assert httpx.getEffectiveLevel() == logging.WARNING
    finally:
        root.setLevel(saved[0])
        httpx.setLevel(saved[1])
    with pytest.raises(ServeError, match="WA_PERSONA_LOG_LEVEL"):
        configure_logging("chatty")


async def test_an_admins_retrain_runs_as_a_job_whose_news_reaches_the_chat(maya_dir: Path) -> None:
    async with FakeTelegram() as fake:
        settings = telegram_settings(maya_dir, fake, train_config="no-such-preset")
        async with serving(settings):
            await until(lambda: fake.calls_to("getUpdates"))
            fake.push_update(message=text_message(text="/retrain", chat_id=100, user_id=ADMIN))
            await until(lambda: [t for t in texts_to(fake, 100) if "failed" in t], timeout=30)
    said = texts_to(fake, 100)
    assert said[:3] == [
        "Retraining Maya (job 1). I'll report progress here.",
        "Maya: retraining started (job 1, with no-such-preset)",  # WA_PERSONA_TRAIN_CONFIG
        "Maya: refreshing the persona's data",
    ]
    assert said[3].startswith("Maya: retraining (job 1) failed: 'no-such-preset' is neither")
    db = connect(settings.database_path())
    ((status, request),) = db.execute("SELECT status, request FROM jobs").fetchall()
    db.close()
    assert status == "failed"
    assert json.loads(request)["messages"] == authored(PAIR_EXPORT).total()  # the upload store's
