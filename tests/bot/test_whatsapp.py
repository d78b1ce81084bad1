"""The WhatsApp transport: a real aiohttp webhook server, a real client, a fake Graph API."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.channels import Choice, DocumentRef, Incoming, Outbox
from bot.errors import DownloadError, TransportError
from bot.seen import SeenUpdates
from bot.settings import Settings
from bot.whatsapp import (
    WEBHOOK,
    GraphClient,
    Handler,
    NumberedChoices,
    WhatsAppNotConfigured,
    WhatsAppOutbox,
    run_whatsapp,
    signature,
    whatsapp_app,
)
from tests.fakes.graph_server import PHONE_NUMBER_ID, TOKEN, FakeGraph
from training.db import connect

pytestmark = pytest.mark.anyio

APP_SECRET = "app-secret-for-tests"
VERIFY_TOKEN = "verify-me-please"
PATH = "/whatsapp/webhook"
MAYA = "447700900123"
SECRET_TEXT = "my pin is 4921, dont tell anyone"


class Recorder:
    """The service's handler stand-in: records what arrives, optionally fails on a text."""

    def __init__(self, *, fail_on: str | None = None) -> None:
        self.received: list[Incoming] = []
        self.outboxes: list[Outbox] = []
        self.fail_on = fail_on

    async def __call__(self, incoming: Incoming, outbox: Outbox) -> None:
        self.received.append(incoming)
        self.outboxes.append(outbox)
        if self.fail_on is not None and incoming.text == self.fail_on:
            raise RuntimeError("the service broke")


@pytest.fixture
async def fake_graph() -> AsyncIterator[FakeGraph]:
    async with FakeGraph() as server:
        yield server


@pytest.fixture
async def graph(fake_graph: FakeGraph) -> AsyncIterator[GraphClient]:
    async with GraphClient(
        token=TOKEN,
        phone_number_id=PHONE_NUMBER_ID,
        base_url=fake_graph.base_url,
        api_version="v23.0",
        backoff_s=0.01,
    ) as client:
        yield client


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


@pytest.fixture
async def webhook(
    recorder: Recorder, graph: GraphClient, db_path: Path
) -> AsyncIterator[TestClient]:
    async with _webhook_client(recorder, graph, db_path) as client:
        yield client


@asynccontextmanager
async def _webhook_client(
    handler: Handler, graph: GraphClient, db_path: Path
) -> AsyncIterator[TestClient]:
    """A real server on 127.0.0.1 running `whatsapp_app`, and a real client for it."""
    app = whatsapp_app(
        handler,
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
        seen=SeenUpdates(connect(db_path)),
        graph=graph,
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


def text(message_id: str, body: str, sender: str = MAYA) -> dict[str, Any]:
    return {
        "from": sender,
        "id": message_id,
        "timestamp": "1739321024",
        "type": "text",
        "text": {"body": body},
    }


def change(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Sam"}, "wa_id": MAYA}],
        **({"messages": list(messages)} if messages else {}),
        **extra,
    }
    return {"value": value, "field": "messages"}


def delivery(*changes: dict[str, Any], entries: int = 1) -> dict[str, Any]:
    per_entry = [list(changes)] if entries == 1 else [[c] for c in changes]
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": part} for part in per_entry],
    }


async def post(
    client: TestClient, payload: dict[str, Any] | bytes, *, secret: str | None = APP_SECRET
) -> aiohttp.ClientResponse:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = signature(secret, body)
    return await client.post(PATH, data=body, headers=headers)


async def settle(client: TestClient) -> None:
    """Wait until every handler the webhook started has finished."""
    await client.app[WEBHOOK].join()


# --- verification ------------------------------------------------------------------------


async def test_verification_echoes_the_challenge(webhook: TestClient) -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = await webhook.get(PATH, params=query)
    assert response.status == 200
    assert await response.text() == "1158201444"


@pytest.mark.parametrize(
    ("mode", "token"), [("subscribe", "wrong-token"), ("unsubscribe", VERIFY_TOKEN), ("", "")]
)
async def test_verification_with_a_wrong_token_or_mode_is_forbidden(
    webhook: TestClient, mode: str, token: str
) -> None:
    query = {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444"}
    response = await webhook.get(PATH, params=query)
    assert response.status == 403
    assert "1158201444" not in await response.text()


async def test_healthz_answers(webhook: TestClient) -> None:
    response = await webhook.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


# --- signatures ----------------------------------------------------------------------------


async def test_a_signed_delivery_is_handled(webhook: TestClient, recorder: Recorder) -> None:
    response = await post(webhook, delivery(change(text("wamid.A1", "hey"))))
    await settle(webhook)
    assert response.status == 200
    [incoming] = recorder.received
    assert incoming.channel == "whatsapp"
    assert (incoming.chat_id, incoming.user_id, incoming.message_id) == (MAYA, MAYA, "wamid.A1")
    assert incoming.text == "hey"
    assert incoming.user_name == "Sam"
    assert incoming.at.timestamp() == 1739321024
    assert incoming.sender == f"whatsapp:{MAYA}"


@pytest.mark.parametrize("secret", [None, "another-apps-secret"])
async def test_a_missing_or_wrong_signature_is_refused_and_not_handled(
    webhook: TestClient, recorder: Recorder, secret: str | None
) -> None:
    response = await post(webhook, delivery(change(text("wamid.A1", "hey"))), secret=secret)
    await settle(webhook)
    assert response.status == 401
    assert recorder.received == []


async def test_the_signature_covers_the_raw_bytes(webhook: TestClient, recorder: Recorder) -> None:
    payload = delivery(change(text("wamid.A1", "héllo 👋")))
    signed = json.dumps(payload).encode()  # ASCII escapes, spaces after separators
    sent = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    assert json.loads(signed) == json.loads(sent)
    response = await webhook.post(
        PATH,
        data=sent,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature(APP_SECRET, signed),
        },
    )
    await settle(webhook)
    assert response.status == 401
    assert recorder.received == []
    response = await post(webhook, sent)
    await settle(webhook)
    assert response.status == 200
    assert [i.text for i in recorder.received] == ["héllo 👋"]


async def test_signed_garbage_is_a_bad_request(webhook: TestClient, recorder: Recorder) -> None:
    for body in (b"{not json", b"\xff\xfe\x00", b"[1, 2]"):
        response = await post(webhook, body)
        assert response.status == 400
    await settle(webhook)
    assert recorder.received == []


# --- deliveries ------------------------------------------------------------------------------


async def test_every_message_of_a_batched_delivery_is_handled(
    webhook: TestClient, recorder: Recorder
) -> None:
    document = {
        "from": "491701234567",
        "id": "wamid.B2",
        "timestamp": "1739321030",
        "type": "document",
        "document": {
            "filename": "WhatsApp Chat with Maya.zip",
            "mime_type": "application/zip",
            "sha256": "abc",
            "id": "1013859600285441",
        },
    }
    button = {
        "from": MAYA,
        "id": "wamid.B3",
        "timestamp": "1739321040",
        "type": "interactive",
        "interactive": {
            "type": "button_reply",
            "button_reply": {"id": "persona:maya", "title": "Maya"},
        },
    }
    payload = delivery(change(text("wamid.B1", "first"), document), change(button), entries=2)
    assert len(payload["entry"]) == 2
    response = await post(webhook, payload)
    await settle(webhook)
    assert response.status == 200
    by_id = {incoming.message_id: incoming for incoming in recorder.received}
    assert sorted(by_id) == ["wamid.B1", "wamid.B2", "wamid.B3"]
    assert by_id["wamid.B1"].text == "first"
    assert by_id["wamid.B2"].document == DocumentRef(
        file_id="1013859600285441",
        file_name="WhatsApp Chat with Maya.zip",
        mime_type="application/zip",
        size=None,
    )
    assert by_id["wamid.B2"].text is None
    assert by_id["wamid.B3"].choice == "persona:maya"
    assert by_id["wamid.B3"].text is None


async def test_list_replies_and_template_buttons_become_choices(
    webhook: TestClient, recorder: Recorder
) -> None:
    list_reply = {
        "from": MAYA,
        "id": "wamid.L1",
        "timestamp": "1739321040",
        "type": "interactive",
        "interactive": {"type": "list_reply", "list_reply": {"id": "row-7", "title": "Seven"}},
    }
    template_button = {
        "from": MAYA,
        "id": "wamid.L2",
        "timestamp": "1739321041",
        "type": "button",
        "button": {"payload": "retrain:yes", "text": "Yes"},
    }
    await post(webhook, delivery(change(list_reply, template_button)))
    await settle(webhook)
    assert sorted(i.choice or "" for i in recorder.received) == ["retrain:yes", "row-7"]


async def test_other_types_arrive_empty_and_reactions_are_dropped(
    webhook: TestClient, recorder: Recorder
) -> None:
    image = {
        "from": MAYA,
        "id": "wamid.I1",
        "timestamp": "1739321040",
        "type": "image",
        "image": {"caption": "look", "mime_type": "image/jpeg", "sha256": "x", "id": "55"},
    }
    reaction = {
        "from": MAYA,
        "id": "wamid.R1",
        "timestamp": "1739321041",
        "type": "reaction",
        "reaction": {"message_id": "wamid.out1", "emoji": "😂"},
    }
    await post(webhook, delivery(change(image, reaction)))
    await settle(webhook)
    [incoming] = recorder.received
    assert incoming.message_id == "wamid.I1"
    assert (incoming.text, incoming.document, incoming.choice) == (None, None, None)


async def test_users_without_a_visible_number_are_answered_by_business_scoped_id(
    webhook: TestClient, recorder: Recorder, graph: GraphClient, fake_graph: FakeGraph
) -> None:
    message = text("wamid.U1", "hi")
    del message["from"]
    message["from_user_id"] = "US.13491208655302741918"
    await post(webhook, delivery(change(message)))
    await settle(webhook)
    [incoming] = recorder.received
    assert incoming.chat_id == "US.13491208655302741918"
    await graph.send_text(incoming.chat_id, "hey")
    [sent] = fake_graph.messages
    assert sent["recipient"] == "US.13491208655302741918"
    assert "to" not in sent


async def test_statuses_are_ignored(webhook: TestClient, recorder: Recorder) -> None:
    statuses = [{"id": "wamid.out1", "status": "delivered", "timestamp": "1739321050"}]
    response = await post(webhook, delivery(change(statuses=statuses)))
    await settle(webhook)
    assert response.status == 200
    assert recorder.received == []


async def test_messages_for_another_phone_number_are_ignored(
    webhook: TestClient, recorder: Recorder
) -> None:
    foreign = change(text("wamid.F1", "hi"))
    foreign["value"]["metadata"]["phone_number_id"] = "999999999"
    response = await post(webhook, delivery(foreign))
    await settle(webhook)
    assert response.status == 200
    assert recorder.received == []


async def test_a_redelivery_is_handled_once_also_after_a_restart(
    recorder: Recorder, graph: GraphClient, db_path: Path
) -> None:
    payload = delivery(change(text("wamid.D1", "only once")))
    async with _webhook_client(recorder, graph, db_path) as client:
        assert (await post(client, payload)).status == 200
        assert (await post(client, payload)).status == 200
        await settle(client)
    assert [i.message_id for i in recorder.received] == ["wamid.D1"]
    async with _webhook_client(recorder, graph, db_path) as client:
        assert (await post(client, payload)).status == 200
        await post(client, delivery(change(text("wamid.D2", "new"))))
        await settle(client)
    assert [i.message_id for i in recorder.received] == ["wamid.D1", "wamid.D2"]


async def test_a_failing_handler_still_answers_200_and_is_logged(
    graph: GraphClient, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(fail_on="boom")
    async with _webhook_client(recorder, graph, db_path) as client:
        with caplog.at_level(logging.ERROR, logger="bot.whatsapp"):
            response = await post(client, delivery(change(text("wamid.E1", "boom"))))
            await settle(client)
        assert response.status == 200
        [record] = [r for r in caplog.records if "wamid.E1" in r.getMessage()]
        assert record.exc_info is not None
        assert "the service broke" in str(record.exc_info[1])
        await post(client, delivery(change(text("wamid.E2", "still alive"))))
        await settle(client)
    assert [i.message_id for i in recorder.received] == ["wamid.E1", "wamid.E2"]


async def test_message_text_is_never_logged_at_info(
    graph: GraphClient,
    fake_graph: FakeGraph,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(fail_on=SECRET_TEXT)
    fake_graph.fail_next(429, 130429, retry_after=0)
    with caplog.at_level(logging.INFO):
        async with _webhook_client(recorder, graph, db_path) as client:
            await post(client, delivery(change(text("wamid.P1", SECRET_TEXT))))
            await post(client, delivery(change(text("wamid.P1", SECRET_TEXT))))
            await post(client, json.dumps({"entry": SECRET_TEXT}).encode(), secret="wrong")
            await settle(client)
            await graph.send_text(MAYA, SECRET_TEXT)
    assert recorder.received
    assert any(r.levelno >= logging.INFO for r in caplog.records)
    assert SECRET_TEXT not in caplog.text
    assert "4921" not in caplog.text


# --- the Graph client ------------------------------------------------------------------------


async def test_send_text_posts_the_cloud_api_body(
    graph: GraphClient, fake_graph: FakeGraph
) -> None:
    ids = await graph.send_text(MAYA, "hey you 👋 https://example.org")
    [request] = [r for r in fake_graph.requests if r.method == "POST"]
    assert request.path == f"/v23.0/{PHONE_NUMBER_ID}/messages"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": MAYA,
        "type": "text",
        "text": {"body": "hey you 👋 https://example.org", "preview_url": False},
    }
    assert ids == ["wamid.fake1"]


async def test_a_long_text_goes_as_several_messages(
    graph: GraphClient, fake_graph: FakeGraph
) -> None:
    paragraphs = [f"paragraph {n} " + "word " * 300 for n in range(10)]
    long_text = "\n\n".join(p.strip() for p in paragraphs)
    assert len(long_text) > 3 * 4096
    ids = await graph.send_text(MAYA, long_text)
    bodies = [m["text"]["body"] for m in fake_graph.messages]
    assert len(ids) == len(bodies) == 5  # two ~1.5k paragraphs per message, cut between them
    assert all(len(body) <= 4096 for body in bodies)
    assert all(body.startswith("paragraph") and body.endswith("word") for body in bodies)
    assert " ".join(long_text.split()) == " ".join(" ".join(bodies).split())


async def test_a_text_without_spaces_is_cut_hard(graph: GraphClient, fake_graph: FakeGraph) -> None:
    await graph.send_text(MAYA, "x" * 5000)
    assert [len(m["text"]["body"]) for m in fake_graph.messages] == [4096, 904]


async def test_up_to_three_short_choices_are_reply_buttons(
    graph: GraphClient, fake_graph: FakeGraph
) -> None:
    choices = [Choice("persona:maya", "Maya"), Choice("persona:sam", "Sam")]
    await graph.send_choices(MAYA, "Who should answer?", choices)
    [body] = fake_graph.messages
    assert body["type"] == "interactive"
    assert body["interactive"] == {
        "type": "button",
        "body": {"text": "Who should answer?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "persona:maya", "title": "Maya"}},
                {"type": "reply", "reply": {"id": "persona:sam", "title": "Sam"}},
            ]
        },
    }


async def test_up_to_ten_choices_are_a_list(graph: GraphClient, fake_graph: FakeGraph) -> None:
    choices = [Choice(f"chat:{n}", f"Chat number {n}") for n in range(1, 8)]
    await graph.send_choices(MAYA, "Which chat is yours?", choices)
    [body] = fake_graph.messages
    interactive = body["interactive"]
    assert interactive["type"] == "list"
    assert interactive["body"] == {"text": "Which chat is yours?"}
    [section] = interactive["action"]["sections"]
    assert [row["id"] for row in section["rows"]] == [c.payload for c in choices]
    assert [row["title"] for row in section["rows"]] == [c.label for c in choices]


async def test_too_many_choices_are_numbered_and_a_number_comes_back_as_the_choice(
    webhook: TestClient, recorder: Recorder, graph: GraphClient, fake_graph: FakeGraph
) -> None:
    choices = [Choice(f"chat:{n}", f"The group chat called number {n}") for n in range(1, 13)]
    await graph.send_choices(MAYA, "Which chat is yours?", choices)
    [body] = fake_graph.messages
    sent = body["text"]["body"]
    assert body["type"] == "text"
    assert sent.startswith("Which chat is yours?\n\n1. The group chat called number 1\n")
    assert "12. The group chat called number 12" in sent
    await post(webhook, delivery(change(text("wamid.N0", "13"))))
    await post(webhook, delivery(change(text("wamid.N1", " 2. "))))
    await post(webhook, delivery(change(text("wamid.N2", "2"))))
    await settle(webhook)
    got = {i.message_id: (i.text, i.choice) for i in recorder.received}
    assert got == {
        "wamid.N0": ("13", None),
        "wamid.N1": (None, "chat:2"),
        "wamid.N2": ("2", None),
    }


def test_a_numbered_question_survives_a_restart_and_expires_after_a_day(tmp_path: Path) -> None:
    now = [1_000_000.0]
    choices = [Choice("persona:Maya", "Maya"), Choice("persona:Sam", "Sam")]
    before = NumberedChoices(connect(tmp_path / "bot.db"), clock=lambda: now[0])
    before.ask(MAYA, choices)
    before.ask("491701234567", choices)
    before.db.close()  # the bot restarts between the question and the answer

    after = NumberedChoices(connect(tmp_path / "bot.db"), clock=lambda: now[0] + 60)
    assert after.answer(MAYA, "3") is None and len(after) == 2  # not a choice: still pending
    assert after.answer(MAYA, "2") == "persona:Sam"
    assert after.answer(MAYA, "2") is None  # settled
    now[0] += 24 * 3600
    assert after.answer("491701234567", "1") is None and len(after) == 0  # WhatsApp's window


async def test_a_number_from_another_chat_is_just_text(
    webhook: TestClient, recorder: Recorder, graph: GraphClient
) -> None:
    choices = [Choice(f"chat:{n}", f"The group chat called number {n}") for n in range(1, 13)]
    await graph.send_choices(MAYA, "Which chat is yours?", choices)
    await post(webhook, delivery(change(text("wamid.O1", "2", sender="491701234567"))))
    await settle(webhook)
    assert (recorder.received[0].text, recorder.received[0].choice) == ("2", None)


async def test_mark_read_shows_the_typing_indicator(
    graph: GraphClient, fake_graph: FakeGraph
) -> None:
    await graph.mark_read("wamid.A1")
    await graph.mark_read("wamid.A2", typing=False)
    assert fake_graph.messages == [
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.A1",
            "typing_indicator": {"type": "text"},
        },
        {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.A2"},
    ]


@pytest.mark.parametrize(("status", "code"), [(429, 130429), (400, 131056), (400, 80007)])
async def test_rate_limits_are_retried_with_backoff(
    fake_graph: FakeGraph, status: int, code: int
) -> None:
    waits: list[float] = []

    async def record_sleep(seconds: float) -> None:
        waits.append(seconds)

    fake_graph.fail_next(status, code, times=2)
    async with GraphClient(
        token=TOKEN,
        phone_number_id=PHONE_NUMBER_ID,
        base_url=fake_graph.base_url,
        backoff_s=0.5,
        sleep=record_sleep,
    ) as client:
        assert await client.send_text(MAYA, "hey") == ["wamid.fake1"]
    assert waits == [0.5, 1.0]
    assert len([r for r in fake_graph.requests if r.method == "POST"]) == 3


async def test_rate_limit_retries_are_bounded(fake_graph: FakeGraph, graph: GraphClient) -> None:
    fake_graph.fail_next(429, 130429, "(#130429) Rate limit hit", times=10)
    with pytest.raises(TransportError, match=r"130429.*still rate-limited after 3 retries"):
        await graph.send_text(MAYA, "hey")
    assert len(fake_graph.requests) == 4


async def test_graph_errors_carry_the_message_code_and_what_to_do(
    fake_graph: FakeGraph, graph: GraphClient
) -> None:
    fake_graph.fail_next(400, 131047, "Re-engagement message")
    with pytest.raises(TransportError, match=r"Re-engagement message \(code 131047.*24 hours"):
        await graph.send_text(MAYA, "hey")
    assert len(fake_graph.requests) == 1


async def test_a_wrong_token_is_reported(fake_graph: FakeGraph) -> None:
    async with GraphClient(
        token="expired", phone_number_id=PHONE_NUMBER_ID, base_url=fake_graph.base_url
    ) as client:
        with pytest.raises(TransportError, match=r"code 190.*WA_PERSONA_WHATSAPP_TOKEN"):
            await client.send_text(MAYA, "hey")


async def test_an_unreachable_graph_is_a_transport_error() -> None:
    async with GraphClient(
        token=TOKEN, phone_number_id=PHONE_NUMBER_ID, base_url="http://127.0.0.1:9"
    ) as client:
        with pytest.raises(TransportError, match="unreachable"):
            await client.send_text(MAYA, "hey")


# --- downloads -------------------------------------------------------------------------------


async def test_a_document_downloads_through_the_media_endpoint(
    fake_graph: FakeGraph, graph: GraphClient, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 1000
    fake_graph.add_media("1013859600285441", data)
    dest = tmp_path / "uploads" / "export.zip"
    assert await graph.download("1013859600285441", dest, max_bytes=1_000_000) == dest
    assert dest.read_bytes() == data
    info, download = fake_graph.requests
    assert info.path == "/v23.0/1013859600285441"
    assert info.query == {"phone_number_id": PHONE_NUMBER_ID}
    assert download.query["mid"] == "1013859600285441"
    assert download.headers["Authorization"] == f"Bearer {TOKEN}"
    assert list(dest.parent.iterdir()) == [dest]


async def test_a_too_big_file_is_refused_before_downloading(
    fake_graph: FakeGraph, graph: GraphClient, tmp_path: Path
) -> None:
    fake_graph.add_media("77", b"x" * 3_000_000)
    with pytest.raises(DownloadError, match=r"it is 2\.9 MB and this bot takes up to 1\.0 MB"):
        await graph.download("77", tmp_path / "big.zip", max_bytes=1024 * 1024)
    assert fake_graph.downloads == []
    assert not (tmp_path / "big.zip").exists()


async def test_a_file_lying_about_its_size_is_cut_off(
    fake_graph: FakeGraph, graph: GraphClient, tmp_path: Path
) -> None:
    fake_graph.add_media("78", b"x" * 300_000, declared_size=1000)
    with pytest.raises(DownloadError, match="more than"):
        await graph.download("78", tmp_path / "liar.zip", max_bytes=100_000)
    assert len(fake_graph.downloads) == 1
    assert list(tmp_path.iterdir()) == []


async def test_unknown_media_is_a_download_error(graph: GraphClient, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="does not exist"):
        await graph.download("404", tmp_path / "gone.zip", max_bytes=1000)


# --- the outbox ------------------------------------------------------------------------------


async def test_the_outbox_sends_and_downloads_through_graph(
    fake_graph: FakeGraph, graph: GraphClient, tmp_path: Path
) -> None:
    fake_graph.add_media("90", b"chat export")
    outbox = WhatsAppOutbox(graph, {MAYA: "wamid.in1"})
    await outbox.send_text(MAYA, "hi")
    await outbox.send_choices(MAYA, "ok?", [Choice("yes", "Yes")])
    path = await outbox.download(DocumentRef("90"), tmp_path / "e.txt", max_bytes=100)
    await outbox.close()
    receipt, *sent = fake_graph.messages
    assert receipt == {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in1"}
    assert [m["type"] for m in sent] == ["text", "interactive"]  # read once, before the first
    assert path.read_bytes() == b"chat export"


async def test_typing_marks_the_latest_message_read_and_is_not_repeated_within_20s(
    fake_graph: FakeGraph, graph: GraphClient
) -> None:
    latest = {MAYA: "wamid.in1"}
    outbox = WhatsAppOutbox(graph, latest)
    await outbox.typing(MAYA, True)
    await outbox.typing(MAYA, False)
    latest[MAYA] = "wamid.in2"
    await outbox.typing(MAYA, True)
    await outbox.typing(MAYA, False)
    await outbox.send_text(MAYA, "hey")
    await outbox.typing(MAYA, True)
    await outbox.close()
    receipts = [m for m in fake_graph.messages if m.get("status") == "read"]
    # in2 arrived while in1's indicator still showed: the reply marks it read (plainly) first.
    assert [(r["message_id"], "typing_indicator" in r) for r in receipts] == [
        ("wamid.in1", True),
        ("wamid.in2", False),
        ("wamid.in2", True),
    ]


async def test_typing_is_kept_up_while_on_and_stops_when_off(
    fake_graph: FakeGraph, graph: GraphClient
) -> None:
    outbox = WhatsAppOutbox(graph, {MAYA: "wamid.in1"}, refresh_s=0.05)
    started = asyncio.get_running_loop().time()
    await outbox.typing(MAYA, True)
    async with asyncio.timeout(5):
        while len(fake_graph.messages) < 3:
            await asyncio.sleep(0.01)
    await outbox.typing(MAYA, False)
    elapsed = asyncio.get_running_loop().time() - started
    shown = len(fake_graph.messages)
    await asyncio.sleep(0.15)
    assert len(fake_graph.messages) == shown
    assert shown <= elapsed / 0.05 + 1
    assert {m["message_id"] for m in fake_graph.messages} == {"wamid.in1"}


async def test_typing_without_a_received_message_sends_nothing(
    fake_graph: FakeGraph, graph: GraphClient
) -> None:
    outbox = WhatsAppOutbox(graph, {})
    await outbox.typing(MAYA, True)
    await outbox.close()
    assert fake_graph.requests == []


async def test_a_failed_typing_indicator_does_not_break_the_reply(
    fake_graph: FakeGraph, graph: GraphClient
) -> None:
    fake_graph.fail_next(400, 100, "(#100) Invalid parameter")
    outbox = WhatsAppOutbox(graph, {MAYA: "wamid.in1"})
    await outbox.typing(MAYA, True)
    await outbox.send_text(MAYA, "hey")
    await outbox.close()
    assert [m["type"] for m in fake_graph.messages] == ["text"]


async def test_the_webhook_gives_the_handler_an_outbox_for_the_latest_message(
    fake_graph: FakeGraph, graph: GraphClient, db_path: Path
) -> None:
    async def reply(incoming: Incoming, outbox: Outbox) -> None:
        await outbox.typing(incoming.chat_id, True)
        await outbox.typing(incoming.chat_id, False)
        await outbox.send_text(incoming.chat_id, "hii")

    async with _webhook_client(reply, graph, db_path) as client:
        await post(client, delivery(change(text("wamid.W1", "hey maya"))))
        await settle(client)
    assert fake_graph.messages[0]["message_id"] == "wamid.W1"
    assert fake_graph.messages[1]["text"]["body"] == "hii"


# --- serving ---------------------------------------------------------------------------------


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, http_host="127.0.0.1", http_port=0, **values
    )


async def test_run_whatsapp_serves_the_webhook_until_exit(
    fake_graph: FakeGraph, recorder: Recorder, tmp_path: Path
) -> None:
    config = settings(
        tmp_path,
        whatsapp_token=TOKEN,
        whatsapp_phone_number_id=PHONE_NUMBER_ID,
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY_TOKEN,
        whatsapp_graph_url=fake_graph.base_url,
    )
    async with (
        run_whatsapp(recorder, config, connect(tmp_path / "bot.db")) as server,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"http://127.0.0.1:{server.port}/healthz") as response:
            assert response.status == 200
        body = json.dumps(delivery(change(text("wamid.S1", "hey")))).encode()
        headers = {"X-Hub-Signature-256": signature(APP_SECRET, body)}
        async with http.post(server.url, data=body, headers=headers) as response:
            assert response.status == 200
        await server.webhook.join()
        await server.graph.send_text(MAYA, "hi")
    assert [i.message_id for i in recorder.received] == ["wamid.S1"]
    assert fake_graph.messages[0]["to"] == MAYA
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"http://127.0.0.1:{server.port}/healthz")


async def test_run_whatsapp_names_the_missing_settings(recorder: Recorder, tmp_path: Path) -> None:
    config = settings(tmp_path, whatsapp_token=TOKEN)
    with pytest.raises(WhatsAppNotConfigured) as error:
        async with run_whatsapp(recorder, config, connect(tmp_path / "bot.db")):
            pass
    message = str(error.value)
    assert "WA_PERSONA_WHATSAPP_PHONE_NUMBER_ID" in message
    assert "WA_PERSONA_WHATSAPP_APP_SECRET" in message
    assert "WA_PERSONA_WHATSAPP_VERIFY_TOKEN" in message
    assert "WA_PERSONA_WHATSAPP_TOKEN," not in message
