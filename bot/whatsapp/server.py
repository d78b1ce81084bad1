"""Start and stop the WhatsApp webhook server from settings (what `wa-persona serve` uses).

    async with run_whatsapp(service.handle, settings, db) as server:
        await stop_event.wait()

On exit the server stops accepting deliveries, running handlers get time to finish, then
the Graph client closes. aiohttp's access log is off: the verification request carries the
verify token in its query string. Given the service's `Metrics`, the server also answers
`GET /metrics` with them as JSON (counts and latencies only, no text or chat ids).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import SecretStr

from bot.errors import BotError
from bot.metrics import Metrics
from bot.seen import SeenUpdates
from bot.whatsapp.choices import NumberedChoices
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.webhook import WEBHOOK, WEBHOOK_PATH, Handler, WhatsAppWebhook, whatsapp_app

if TYPE_CHECKING:
    from sqlite_utils import Database

    from bot.settings import Settings

__all__ = ["WhatsAppNotConfigured", "WhatsAppServer", "run_whatsapp"]

REQUIRED = (
    "whatsapp_token",
    "whatsapp_phone_number_id",
    "whatsapp_app_secret",
    "whatsapp_verify_token",
)
METRICS_PATH = "/metrics"


class WhatsAppNotConfigured(BotError):
    """A setting WhatsApp needs is missing."""


@dataclass(frozen=True, slots=True)
class WhatsAppServer:
    """The running server: where it listens and what it runs."""

    host: str
    port: int
    path: str
    graph: GraphClient
    webhook: WhatsAppWebhook

    @property
    def url(self) -> str:
        """The local webhook URL (put a public HTTPS tunnel or proxy in front of it)."""
        return f"http://{self.host}:{self.port}{self.path}"


@asynccontextmanager
async def run_whatsapp(
    handler: Handler,
    settings: Settings,
    db: Database,
    *,
    path: str = WEBHOOK_PATH,
    metrics: Metrics | None = None,
) -> AsyncIterator[WhatsAppServer]:
    """Serve the webhook on `settings.http_host`/`http_port` (port 0: any free port)."""
    values = {name: _setting(settings, name) for name in REQUIRED}
    missing = [f"WA_PERSONA_{name.upper()}" for name, value in values.items() if not value]
    if missing:
        raise WhatsAppNotConfigured(
            f"WhatsApp is not set up: set {', '.join(missing)} (see docs/whatsapp.md)"
        )
    graph = GraphClient(
        token=values["whatsapp_token"],
        phone_number_id=values["whatsapp_phone_number_id"],
        base_url=settings.whatsapp_graph_url,
        api_version=settings.whatsapp_api_version,
        numbered=NumberedChoices(db),
    )
    app = whatsapp_app(
        handler,
        app_secret=values["whatsapp_app_secret"],
        verify_token=values["whatsapp_verify_token"],
        seen=SeenUpdates(db),
        graph=graph,
        path=path,
    )
    if metrics is not None:
        app.router.add_get(METRICS_PATH, _metrics_route(metrics))
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        port = runner.addresses[0][1]
        yield WhatsAppServer(settings.http_host, port, path, graph, app[WEBHOOK])
    finally:
        await runner.cleanup()
        await graph.close()


def _metrics_route(metrics: Metrics) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def show(request: web.Request) -> web.Response:
        """The service's counters and reply latencies as JSON."""
        return web.json_response(metrics.snapshot().to_json())

    return show


def _setting(settings: Settings, name: str) -> str:
    """A WhatsApp setting as plain text ("" when unset); secrets are unwrapped here only."""
    value = getattr(settings, name)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value or ""
