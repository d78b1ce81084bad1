"""The webhook routes Meta calls: verification, signed message deliveries, and `/healthz`.

A delivery is answered 200 as soon as it is checked and its messages are handed to
background tasks: Meta redelivers what is not acknowledged quickly, and a handler error
must never become a 500 for the same reason (it is logged with its traceback instead).
Redeliveries are recognised by message id in `SeenUpdates`, so they are dropped also after a
restart. Message text is never logged above DEBUG.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.channels import Incoming, Outbox
from bot.seen import SeenUpdates
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.outbox import WhatsAppOutbox
from bot.whatsapp.updates import parse_notification, valid_signature

__all__ = ["WEBHOOK", "WEBHOOK_PATH", "Handler", "WhatsAppWebhook", "whatsapp_app"]

logger = logging.getLogger(__name__)

Handler = Callable[[Incoming, Outbox], Awaitable[None]]
WEBHOOK_PATH = "/whatsapp/webhook"
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Deliveries are small JSON (files come by media id); anything bigger is refused."""
DRAIN_TIMEOUT_S = 30.0
"""On shutdown, handlers still running get this long to finish before they are cancelled."""


class WhatsAppWebhook:
    """The routes' state: secrets, the handler, the tasks running it, each chat's last message.

    `latest` maps a chat to the id of the last message received in it: the message a
    typing indicator marks read.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        app_secret: str,
        verify_token: str,
        seen: SeenUpdates,
        graph: GraphClient,
    ) -> None:
        if not app_secret or not verify_token:
            raise ValueError("the WhatsApp webhook needs an app secret and a verify token")
        self.handler = handler
        self.seen = seen
        self.graph = graph
        self.latest: dict[str, str] = {}
        self._app_secret = app_secret
        self._verify_token = verify_token
        self._tasks: set[asyncio.Task[None]] = set()

    async def verify(self, request: web.Request) -> web.Response:
        """Answer Meta's subscription check: echo `hub.challenge` for the right token."""
        query = request.query
        token = query.get("hub.verify_token", "")
        if query.get("hub.mode") == "subscribe" and hmac.compare_digest(
            token.encode(), self._verify_token.encode()
        ):
            logger.info("WhatsApp webhook verified")
            return web.Response(text=query.get("hub.challenge", ""))
        logger.warning("refused a WhatsApp webhook verification (wrong mode or verify token)")
        return web.Response(status=403, text="forbidden")

    async def receive(self, request: web.Request) -> web.Response:
        """Check the signature over the raw body, then hand each new message to the handler."""
        body = await request.read()
        if not valid_signature(self._app_secret, body, request.headers.get("X-Hub-Signature-256")):
            logger.warning("refused a WhatsApp delivery with a missing or wrong signature")
            return web.Response(status=401, text="bad signature")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            return web.Response(status=400, text="not JSON")
        if not isinstance(payload, dict):
            return web.Response(status=400, text="not a notification")
        notification = parse_notification(payload, phone_number_id=self.graph.phone_number_id)
        if notification.statuses:
            logger.debug("ignored %d WhatsApp status updates", notification.statuses)
        for incoming in notification.messages:
            if not self.seen.first_time("whatsapp", incoming.message_id):
                logger.debug("dropped redelivered WhatsApp message %s", incoming.message_id)
                continue
            self._dispatch(self._with_numbered_choice(incoming))
        return web.Response(text="ok")

    async def join(self) -> None:
        """Wait until every handler started so far has finished."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Let running handlers finish for up to `timeout_s`, then cancel the rest."""
        try:
            await asyncio.wait_for(self.join(), timeout_s)
        except TimeoutError:
            logger.warning("cancelling %d WhatsApp handlers still running", len(self._tasks))
            for task in list(self._tasks):
                task.cancel()
            await self.join()

    def _with_numbered_choice(self, incoming: Incoming) -> Incoming:
        """A number answering a numbered question becomes that choice, like a pressed button."""
        if incoming.text is None or incoming.choice is not None:
            return incoming
        payload = self.graph.numbered.answer(incoming.chat_id, incoming.text)
        if payload is None:
            return incoming
        return dataclasses.replace(incoming, text=None, choice=payload)

    def _dispatch(self, incoming: Incoming) -> None:
        self.latest[incoming.chat_id] = incoming.message_id
        logger.debug("WhatsApp message %s: %r", incoming.message_id, incoming.text)
        task = asyncio.create_task(
            self._handle(incoming), name=f"whatsapp-message-{incoming.message_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, incoming: Incoming) -> None:
        outbox = WhatsAppOutbox(self.graph, self.latest)
        try:
            await self.handler(incoming, outbox)
        except Exception:
            # The boundary of a background task: nothing above it would see the error.
            logger.exception("handling WhatsApp message %s failed", incoming.message_id)
        finally:
            await outbox.close()


WEBHOOK = web.AppKey("whatsapp_webhook", WhatsAppWebhook)
"""Where `whatsapp_app` keeps its `WhatsAppWebhook` (tests `join()` it)."""


async def healthz(request: web.Request) -> web.Response:
    """Liveness for the deployment's healthcheck: the server answers."""
    return web.json_response({"status": "ok"})


def whatsapp_app(
    handler: Handler,
    *,
    app_secret: str,
    verify_token: str,
    seen: SeenUpdates,
    graph: GraphClient,
    path: str = WEBHOOK_PATH,
) -> web.Application:
    """The aiohttp application: `GET`/`POST path` for Meta and `GET /healthz`.

    The caller owns `graph` (and closes it); running handlers are drained on shutdown.
    """
    webhook = WhatsAppWebhook(
        handler, app_secret=app_secret, verify_token=verify_token, seen=seen, graph=graph
    )
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[WEBHOOK] = webhook
    app.router.add_get(path, webhook.verify)
    app.router.add_post(path, webhook.receive)
    app.router.add_get("/healthz", healthz)

    async def drain(app: web.Application) -> None:
        await app[WEBHOOK].drain()

    app.on_shutdown.append(drain)
    return app
