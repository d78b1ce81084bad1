"""Service metrics: counters and latency percentiles, `GET /metrics` on the running webhook
server while the real service answers a WhatsApp message, and the `/status` summary."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from bot.metrics import Metrics, percentile
from bot.service import chat_address
from bot.settings import Settings
from bot.whatsapp import run_whatsapp, signature
from tests.bot.test_service import (
    FakeOutbox,
    copy_of,
    incoming,
    make_service,
    teach_maya,
)
from tests.fakes.graph_server import PHONE_NUMBER_ID, TOKEN, FakeGraph

APP_SECRET = "app-secret-for-tests"
SENDER = "447700900123"


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def maya_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return teach_maya(tmp_path_factory.mktemp("maya"))


@pytest.fixture
def ready(maya_dir: Path, tmp_path: Path) -> Settings:
    return copy_of(maya_dir, tmp_path)


@pytest.fixture
async def fake_graph() -> AsyncIterator[FakeGraph]:
    async with FakeGraph() as server:
        yield server


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([0.2], 99) == 0.2
    with pytest.raises(ValueError):
        percentile([], 50)


def test_counters_and_latencies_add_up() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock)
    for channel in ("telegram", "telegram", "whatsapp"):
        metrics.record_request(channel)
    for n in range(1, 101):
        metrics.record_reply("local" if n % 2 else "retrieval", n / 100)
    metrics.record_failed_reply()
    metrics.record_rate_limited()
    metrics.record_too_long()
    metrics.record_upload("received")
    clock.now += 12.5

    data = metrics.snapshot().to_json()

    assert data == {
        "uptime_s": 12.5,
        "requests": {"telegram": 2, "whatsapp": 1},
        "replies": {"local": 50, "retrieval": 50},
        "failed_replies": 1,
        "rate_limited": 1,
        "too_long": 1,
        "uploads": {"received": 1},
        "reply_latency_s": {"count": 100, "window_s": 900.0, "p50": 0.5, "p95": 0.95, "p99": 0.99},
    }


def test_latencies_leave_the_window_and_the_sample_cap() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock, window_s=60, max_samples=3)
    metrics.record_reply("retrieval", 9.0)
    clock.now += 61
    for seconds in (0.1, 0.2, 0.3, 0.4):
        metrics.record_reply("retrieval", seconds)

    latency = metrics.latency()
    assert (latency.count, latency.p50, latency.p99) == (3, 0.3, 0.4)
    clock.now += 61
    assert metrics.latency().count == 0 and metrics.latency().p50 is None
    assert metrics.replies["retrieval"] == 5  # counters are never windowed


@pytest.mark.anyio
async def test_metrics_are_served_as_json_while_the_service_answers_whatsapp(
    ready: Settings, fake_graph: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ready.model_copy(
        update={
            "whatsapp_token": SecretStr(TOKEN),
            "whatsapp_phone_number_id": PHONE_NUMBER_ID,
            "whatsapp_app_secret": SecretStr(APP_SECRET),
            "whatsapp_verify_token": SecretStr("verify"),
            "whatsapp_graph_url": fake_graph.base_url,
            "http_host": "127.0.0.1",
            "http_port": 0,
        }
    )
    metrics = Metrics()
    service = make_service(settings, metrics=metrics)
    message = {
        "from": SENDER,
        "id": "wamid.M1",
        "timestamp": "1739321024",
        "type": "text",
        "text": {"body": "are u coming tonight?"},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Sam"}, "wa_id": SENDER}],
        "messages": [message],
    }
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()

    with caplog.at_level(logging.INFO, logger="bot.service"):
        async with (
            run_whatsapp(service.handle, settings, service.db, metrics=metrics) as server,
            aiohttp.ClientSession() as http,
        ):
            headers = {"X-Hub-Signature-256": signature(APP_SECRET, body)}
            async with http.post(server.url, data=body, headers=headers) as response:
                assert response.status == 200
            await server.webhook.join()
            await service.engine.wait(chat_address("whatsapp", SENDER))
            async with http.get(f"http://127.0.0.1:{server.port}/metrics") as response:
                assert response.status == 200
                served = await response.json()

    assert served["requests"] == {"whatsapp": 1}
    assert served["replies"] == {"retrieval": 1}
    assert served["failed_replies"] == 0
    assert served["reply_latency_s"]["count"] == 1
    assert 0 < served["reply_latency_s"]["p50"] < 5
    assert [m["to"] for m in fake_graph.messages if m.get("type") == "text"]
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reply ")]
    assert "backend=retrieval" in line and "bubbles=" in line and "latency=" in line
    assert SENDER not in line and "tonight" not in line
    await service.close()


@pytest.mark.anyio
async def test_status_shows_the_traffic_summary(ready: Settings) -> None:
    metrics = Metrics()
    service, outbox = make_service(ready, metrics=metrics, max_text_chars=50), FakeOutbox()
    await service.handle(incoming("hey"), outbox)
    await service.engine.wait(chat_address("telegram", "100"))
    await service.handle(incoming("x" * 51), outbox)

    await service.handle(incoming("/status"), outbox)

    summary = outbox.texts()[-1].splitlines()[-1]
    assert summary.startswith(
        "Traffic since start: 3 messages, replies by retrieval 1, 0 failed, 0 rate-limited, "
        "1 too long, 0 uploads; reply time p50 "
    )
    await service.close()
