"""`wa-persona serve`: the service, its transports, jobs and scheduler on one event loop.

Start: check that at least one messenger is fully configured (before anything is opened),
open the database, build the job runner, the retrain scheduler and the `PersonaService`,
start Telegram (polling, or its webhook) and the WhatsApp webhook server (with `/healthz`
and `/metrics`), tell the chats whose jobs the last run left unfinished, and write the
heartbeat `bot.doctor` reads (`service.heartbeat` in the data dir, every 30 s).

Stop (SIGTERM, SIGINT or the `stop` event): Telegram stops fetching updates; handlers and
replies already under way get `drain_s` to finish, then are cancelled; the scheduler stops
firing; running jobs are ended and marked interrupted (their chats told while the messengers
are still up); the transports close, then the backends, the database, and the heartbeat is
removed. A second signal during that ends the process at once.

Every transport calls one `_InFlight` wrapper around `PersonaService.handle`, which is what
lets shutdown know what is still being answered. Logging is configured once, by the CLI,
with `configure_logging`; modules log message text only at DEBUG.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import SecretStr
from sqlite_utils import Database
from telegram.ext import Application

from bot.channels import Incoming, Outbox
from bot.doctor import HEARTBEAT_INTERVAL_S, clear_heartbeat, write_heartbeat
from bot.errors import BotError, TransportError
from bot.jobs import JobRunner
from bot.metrics import Metrics
from bot.scheduler import RetrainScheduler
from bot.seen import SeenUpdates
from bot.service import PersonaService, chat_address
from bot.settings import Settings
from bot.telegram import build_application, outbox_of, run_telegram
from bot.uploads import refresh_persona
from bot.whatsapp import WhatsAppOutbox, run_whatsapp
from training.db import connect

if TYPE_CHECKING:
    from bot.jobs import JobUpdate

__all__ = [
    "DRAIN_S",
    "LOG_FORMAT",
    "ServeError",
    "Transports",
    "configure_logging",
    "configured_transports",
    "serve",
]

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DRAIN_S = 10.0
"""How long replies under way may take to finish on shutdown (systemd waits 30 s in all)."""
PRUNE_EVERY_S = 24 * 3600.0
"""How often ids of handled updates older than the platforms' retry windows are dropped."""
WHATSAPP_SETTINGS = (
    "whatsapp_token",
    "whatsapp_phone_number_id",
    "whatsapp_app_secret",
    "whatsapp_verify_token",
)
"""Everything WhatsApp needs; with only some of them set, the service refuses to start."""
_QUIET_LOGGERS = ("httpx", "httpcore")
"""Their request lines carry the Telegram bot token in the URL: warnings only."""


class ServeError(BotError):
    """The service cannot start with these settings."""


@dataclass(frozen=True, slots=True)
class Transports:
    """Which messengers the settings set up."""

    telegram: bool
    telegram_webhook: bool
    """Telegram by webhook rather than long polling."""
    whatsapp: bool

    def describe(self) -> str:
        """For the log: "telegram (polling), whatsapp"."""
        parts = []
        if self.telegram:
            parts.append(f"telegram ({'webhook' if self.telegram_webhook else 'polling'})")
        if self.whatsapp:
            parts.append("whatsapp")
        return ", ".join(parts)


def configured_transports(settings: Settings) -> Transports:
    """The messengers `settings` set up; `ServeError` says what to set when none or half is."""
    telegram = _is_set(settings.telegram_token)
    whatsapp_missing = [name for name in WHATSAPP_SETTINGS if not _is_set(getattr(settings, name))]
    whatsapp = not whatsapp_missing
    if whatsapp_missing and len(whatsapp_missing) < len(WHATSAPP_SETTINGS):
        raise ServeError(
            f"WhatsApp is only half set up: also set {_names(whatsapp_missing)}, or unset the "
            "others to run without WhatsApp (docs/whatsapp.md)."
        )
    if not (telegram or whatsapp):
        raise ServeError(
            "No messenger is set up. For Telegram set WA_PERSONA_TELEGRAM_TOKEN; for WhatsApp "
            f"set {_names(WHATSAPP_SETTINGS)} (in the environment or .env; see .env.example "
            "and docs/serve.md). To talk to a persona without a messenger: wa-persona chat."
        )
    webhook = telegram and _is_set(settings.telegram_webhook_url)
    if webhook and not _is_set(settings.telegram_webhook_secret):
        raise ServeError(
            "Telegram webhook mode needs WA_PERSONA_TELEGRAM_WEBHOOK_SECRET (without it anyone "
            "who finds the URL could post updates); or unset WA_PERSONA_TELEGRAM_WEBHOOK_URL "
            "to use long polling."
        )
    if webhook and whatsapp and settings.telegram_webhook_port == settings.http_port:
        raise ServeError(
            f"The Telegram webhook and the WhatsApp webhook both want port {settings.http_port}; "
            "set WA_PERSONA_TELEGRAM_WEBHOOK_PORT and WA_PERSONA_HTTP_PORT to different ports."
        )
    return Transports(telegram=telegram, telegram_webhook=webhook, whatsapp=whatsapp)


def configure_logging(level: str) -> None:
    """Log to stderr at `level` (the CLI calls this once; a host that set up logging keeps it).

    The format has no place for message text: modules log it only at DEBUG, as part of the
    message. httpx and httpcore stay at WARNING at every level (their lines show the token).
    """
    numeric = logging.getLevelName(level.strip().upper())
    if not isinstance(numeric, int):
        raise ServeError(
            f"WA_PERSONA_LOG_LEVEL is {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL."
        )
    logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger().setLevel(numeric)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    drain_s: float = DRAIN_S,
    heartbeat_s: float = HEARTBEAT_INTERVAL_S,
) -> None:
    """Answer in every configured messenger until `stop` is set or SIGTERM/SIGINT arrives.

    Raises `ServeError` (before opening anything) when no messenger is set up, and
    `TransportError` when one refuses to start (a rejected token, a port in use).
    """
    transports = configured_transports(settings)
    stop = stop if stop is not None else asyncio.Event()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        stack.enter_context(_signals_set(stop))
        db = connect(settings.database_path())
        stack.callback(db.close)
        stack.callback(clear_heartbeat, settings)

        async def notify(update: JobUpdate) -> None:
            await service.notify(update)  # `service` is built below; it needs the runner

        def message_count(persona: str) -> int:
            return service.uploads.message_count(persona)

        jobs = JobRunner(
            settings,
            db,
            notify=notify,
            message_count=message_count,
            rebuild=refresh_persona,
            train_config=settings.train_config,
            max_concurrent_jobs=settings.max_concurrent_jobs,
        )
        stack.push_async_callback(jobs.aclose)
        scheduler = RetrainScheduler(
            settings, jobs, min_new_messages=settings.retrain_min_new_messages
        )
        metrics = Metrics()
        service = PersonaService(
            settings,
            jobs=jobs,
            scheduler=scheduler,
            uploads_from_anyone=settings.uploads_from_anyone,
            metrics=metrics,
            chat_rate_per_minute=settings.chat_rate_per_minute,
            chat_rate_burst=settings.chat_rate_burst,
            max_text_chars=settings.max_text_chars,
        )
        stack.push_async_callback(service.close)
        scheduler.start()
        stack.push_async_callback(scheduler.shutdown)

        seen = SeenUpdates(db)
        inflight = _InFlight(service)
        stop_receiving = await _start_transports(
            stack, transports, settings, db, seen, service, inflight
        )
        await jobs.announce_interrupted()  # the chats can hear of it now the messengers are up
        keep_alive = asyncio.create_task(_keep_alive(settings, seen, heartbeat_s))
        logger.info(
            "serving %s from %s; %d personas",
            transports.describe(),
            settings.data_dir,
            len(service.persona_names()),
        )
        try:
            await stop.wait()
            logger.info("stopping")
        finally:
            keep_alive.cancel()
            await asyncio.wait({keep_alive})
            for halt in stop_receiving:
                await halt()
            await inflight.drain(drain_s)
            await scheduler.shutdown()
            await jobs.aclose()  # while the messengers are up, so chats hear of it
    logger.info("stopped")


async def _start_transports(
    stack: AsyncExitStack,
    transports: Transports,
    settings: Settings,
    db: Database,
    seen: SeenUpdates,
    service: PersonaService,
    handle: _InFlight,
) -> list[Callable[[], Awaitable[None]]]:
    """Start each configured messenger (closed by `stack`); what stops each one receiving."""
    stop_receiving: list[Callable[[], Awaitable[None]]] = []
    if transports.telegram:
        assert settings.telegram_token is not None
        application = build_application(
            handle,
            token=settings.telegram_token.get_secret_value(),
            base_url=settings.telegram_base_url,
            base_file_url=settings.telegram_base_file_url,
            local_mode=settings.telegram_local_mode,
            seen=seen,
        )
        service.register_outbox("telegram", outbox_of(application))
        secret = settings.telegram_webhook_secret
        await stack.enter_async_context(
            run_telegram(
                application,
                webhook_url=settings.telegram_webhook_url if transports.telegram_webhook else None,
                secret=None if secret is None else secret.get_secret_value(),
                listen=settings.http_host,
                port=settings.telegram_webhook_port,
            )
        )
        stop_receiving.append(lambda: _stop_updates(application))
    if transports.whatsapp:
        try:
            server = await stack.enter_async_context(
                run_whatsapp(handle, settings, db, metrics=service.metrics)
            )
        except OSError as exc:
            raise TransportError(
                f"Cannot listen for WhatsApp webhook calls on {settings.http_host}:"
                f"{settings.http_port} ({exc.strerror or exc}); choose another "
                "WA_PERSONA_HTTP_PORT."
            ) from exc
        outbox = WhatsAppOutbox(server.graph, server.webhook.latest)
        stack.push_async_callback(outbox.close)
        service.register_outbox("whatsapp", outbox)
        logger.info("WhatsApp webhook listening on %s", server.url)
    return stop_receiving


async def _stop_updates(application: Application) -> None:
    """Stop fetching Telegram updates (polling or webhook); handlers keep running."""
    updater = application.updater
    if updater is not None and updater.running:
        await updater.stop()


class _InFlight:
    """The service's `handle` as every transport calls it, tracking what is still under way.

    A handler call may leave a reply being typed (the engine's task per chat), so draining
    waits for both: first the calls, then each chat's pending reply.
    """

    def __init__(self, service: PersonaService) -> None:
        self.service = service
        self._calls: set[asyncio.Task[object]] = set()
        self._chats: set[str] = set()

    async def __call__(self, incoming: Incoming, outbox: Outbox) -> None:
        """Answer one message (each transport runs this in a task of its own)."""
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        self._chats.add(chat_address(incoming.channel, incoming.chat_id))
        try:
            await self.service.handle(incoming, outbox)
        finally:
            self._calls.discard(task)

    async def drain(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for calls and replies under way, then cancel the rest."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._settled()
        except TimeoutError:
            logger.warning(
                "cancelling %d handlers and any reply still being written after %.1f s",
                len(self._calls),
                timeout_s,
            )
            calls = set(self._calls)
            for task in calls:
                task.cancel()
            if calls:
                await asyncio.wait(calls)
            await self.service.engine.close()

    async def _settled(self) -> None:
        while True:
            if self._calls:
                await asyncio.wait(set(self._calls))
                continue
            for chat in sorted(self._chats):
                try:
                    await self.service.engine.wait(chat)
                except BotError as exc:  # already logged by the engine
                    logger.debug("a reply in %s ended with %s", chat, type(exc).__name__)
            if not self._calls:
                return


async def _keep_alive(settings: Settings, seen: SeenUpdates, every_s: float) -> None:
    """Write the heartbeat every `every_s`; once a day, forget old update ids."""
    pruned_at: float | None = None
    loop = asyncio.get_running_loop()
    while True:
        try:
            write_heartbeat(settings)
        except OSError as exc:
            logger.warning("cannot write the heartbeat (%s); the healthcheck will fail", exc)
        if pruned_at is None or loop.time() - pruned_at >= PRUNE_EVERY_S:
            pruned_at = loop.time()
            dropped = seen.prune()
            if dropped:
                logger.info("forgot %d handled update ids older than 30 days", dropped)
        await asyncio.sleep(every_s)


@contextlib.contextmanager
def _signals_set(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop`; the first one puts the default handlers back."""
    loop = asyncio.get_running_loop()
    handled = (signal.SIGTERM, signal.SIGINT)

    def restore() -> None:
        for number in handled:
            loop.remove_signal_handler(number)

    def on_signal(number: signal.Signals) -> None:
        logger.info("%s received: shutting down (send it again to stop at once)", number.name)
        restore()
        stop.set()

    try:
        for number in handled:
            loop.add_signal_handler(number, on_signal, number)
    except (NotImplementedError, RuntimeError, ValueError) as exc:  # Windows, another thread
        logger.warning("signals are not handled here (%s); stop the service another way", exc)
        restore()
    try:
        yield
    finally:
        restore()


def _is_set(value: SecretStr | str | None) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return bool(value and value.strip())


def _names(fields: tuple[str, ...] | list[str]) -> str:
    names = [f"WA_PERSONA_{name.upper()}" for name in fields]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
