"""The Telegram transport: python-telegram-bot updates in, `Incoming` out; `TelegramOutbox` back.

Wiring follows PTB's examples: one small handler per intent (text, document, button press,
command), each turning the update into an `Incoming` and passing it to the service's
`handle(incoming, outbox)`. Handlers run with `block=False`, so every update gets its own
task and a persona that is still "typing" never holds up the next update. `run_telegram`
receives updates by long polling, or by webhook (PTB's server, checking the secret token)
when a public URL is configured. Message text is never logged above DEBUG.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import shutil
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatAction, FileSizeLimit, MessageLimit
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.channels import Choice, DocumentRef, Incoming, Outbox
from bot.errors import DownloadError, TransportError
from bot.seen import SeenUpdates

__all__ = [
    "ALLOWED_UPDATES",
    "CLOUD_DOWNLOAD_LIMIT",
    "COMMANDS",
    "CONNECTION_POOL_SIZE",
    "POOL_TIMEOUT_S",
    "Handle",
    "TelegramOutbox",
    "build_application",
    "outbox_of",
    "run_telegram",
]

logger = logging.getLogger(__name__)

Handle = Callable[[Incoming, Outbox], Awaitable[None]]
"""The service's entry point: one call per incoming message, in its own task."""

COMMANDS = (
    "start",
    "help",
    "retrain",
    "evaluate",
    "status",
    "models",
    "use",
    "persona",
    "schedule",
    "forget",
)
"""Commands forwarded to the service as text; it decides who may run the admin ones."""
ALLOWED_UPDATES = ("message", "callback_query")
"""The update kinds asked from Telegram; edits, channel posts and the rest are not."""
CLOUD_DOWNLOAD_LIMIT = int(FileSizeLimit.FILESIZE_DOWNLOAD)
"""Largest file the cloud Bot API lets bots download (20 MB); a local server has no limit."""
FLOOD_RETRIES = 2
"""How often a call answered with 429 is retried after waiting `retry_after`."""
CONNECTION_POOL_SIZE = 256
"""HTTP connections to the Bot API for replies (PTB's default, named here)."""
POOL_TIMEOUT_S = 60.0
"""How long a request may wait for a free connection. PTB's default (1 s) turned a burst of
replies into "Pool timeout" errors, i.e. lost replies; a burst now queues instead."""
TYPING_REFRESH_S = 4.0
"""Telegram shows a chat action for 5 s; it is sent again this often while typing is on."""
MAX_CALLBACK_BYTES = 64
"""Telegram's limit on `callback_data`; longer payloads travel as a short token."""
_WIRING = "wa_persona_wiring"
_COMMAND_TARGET = re.compile(r"^(/\w+)@\w+")
_TOKEN_PREFIX = "~"


class _ButtonPayloads:
    """Button payloads that do not fit in `callback_data`, kept behind short tokens.

    Tokens live in memory (the newest `capacity`); a button pressed after a restart or after
    its token was evicted is answered with "expired". Short payloads travel as they are.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._long: OrderedDict[str, str] = OrderedDict()

    def encode(self, payload: str) -> str:
        """The `callback_data` for `payload`."""
        size = len(payload.encode("utf-8"))
        if 0 < size <= MAX_CALLBACK_BYTES and not payload.startswith(_TOKEN_PREFIX):
            return payload
        token = _TOKEN_PREFIX + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]
        self._long[token] = payload
        self._long.move_to_end(token)
        while len(self._long) > self.capacity:
            self._long.popitem(last=False)
        return token

    def decode(self, data: str) -> str | None:
        """The payload behind `callback_data`; None when its token is no longer known."""
        if not data.startswith(_TOKEN_PREFIX):
            return data
        return self._long.get(data)


@dataclass
class _Typing:
    stop: asyncio.Event
    task: asyncio.Task[None]


class TelegramOutbox:
    """`bot.channels.Outbox` over the Bot API: messages, inline buttons, typing, downloads.

    Flood control (429 `retry_after`) is handled by PTB's `AIORateLimiter`, which
    `build_application` installs: it waits as told and retries up to `FLOOD_RETRIES` times.
    Whatever Telegram still refuses becomes a `TransportError`.
    """

    def __init__(
        self, bot: Bot, *, local_mode: bool = False, typing_refresh_s: float = TYPING_REFRESH_S
    ) -> None:
        self.bot = bot
        self.local_mode = local_mode
        self.typing_refresh_s = typing_refresh_s
        self.payloads = _ButtonPayloads()
        self._typing: dict[str, _Typing] = {}

    @property
    def download_limit(self) -> int | None:
        """The Bot API server's own download limit in bytes (None: a local server has none)."""
        return None if self.local_mode else CLOUD_DOWNLOAD_LIMIT

    async def send_text(self, chat_id: str, text: str) -> None:
        """Send one bubble as one message (split only above Telegram's 4096 characters)."""
        await self._stop_typing(chat_id)
        for part in _split_message(text):
            await self._send(chat_id, part)

    async def send_choices(self, chat_id: str, text: str, choices: list[Choice]) -> None:
        """Send `text` with one inline button per choice, one per row."""
        await self._stop_typing(chat_id)
        rows = [
            [InlineKeyboardButton(choice.label, callback_data=self.payloads.encode(choice.payload))]
            for choice in choices
        ]
        await self._send(chat_id, text, InlineKeyboardMarkup(rows))

    async def typing(self, chat_id: str, on: bool) -> None:
        """Show "typing…" (renewed every `typing_refresh_s` until switched off) or stop it."""
        if not on:
            await self._stop_typing(chat_id)
            return
        current = self._typing.get(chat_id)
        if current is not None and not current.task.done():
            return
        stop = asyncio.Event()
        task = asyncio.create_task(self._keep_typing(chat_id, stop), name=f"typing:{chat_id}")
        self._typing[chat_id] = _Typing(stop, task)

    async def download(self, document: DocumentRef, dest: Path, *, max_bytes: int) -> Path:
        """Save a sent file as `dest`; too big (for `max_bytes` or the Bot API) is refused
        before anything is fetched, with a message for the person who sent it.

        The bytes land in a `.part` file beside `dest` first, so `dest` is whole or absent.
        """
        self._refuse_if_too_big(document.size, max_bytes)
        try:
            file = await self.bot.get_file(document.file_id)
        except TelegramError as exc:
            raise DownloadError(f"Telegram could not find the file you sent ({exc}).") from exc
        self._refuse_if_too_big(file.file_size, max_bytes)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        try:
            if file.file_path is not None and _is_local_file(file.file_path):
                # A local Bot API server hands out its own path; copy off the event loop.
                await asyncio.to_thread(shutil.copyfile, file.file_path, part)
            else:
                await file.download_to_drive(part)
            self._refuse_if_too_big(part.stat().st_size, max_bytes)  # a size that lied
            part.replace(dest)
        except (TelegramError, OSError) as exc:
            raise DownloadError(f"Downloading the file you sent failed ({exc}).") from exc
        finally:
            part.unlink(missing_ok=True)
        return dest

    async def close(self) -> None:
        """Stop every typing indicator (call before the application shuts down)."""
        for chat_id in list(self._typing):
            await self._stop_typing(chat_id)

    async def _send(
        self, chat_id: str, text: str, keyboard: InlineKeyboardMarkup | None = None
    ) -> None:
        try:
            await self.bot.send_message(chat_id, text, reply_markup=keyboard)
        except TelegramError as exc:
            raise TransportError(f"Telegram refused a message to chat {chat_id}: {exc}") from exc

    async def _keep_typing(self, chat_id: str, stop: asyncio.Event) -> None:
        """Send the typing action until `stop` is set; a refusal only ends the indicator."""
        while not stop.is_set():
            try:
                await self.bot.send_chat_action(chat_id, ChatAction.TYPING)
            except TelegramError as exc:
                logger.warning("typing indicator for chat %s stopped: %s", chat_id, exc)
                return
            try:
                async with asyncio.timeout(self.typing_refresh_s):
                    await stop.wait()
            except TimeoutError:
                pass

    async def _stop_typing(self, chat_id: str) -> None:
        """Stop the chat's indicator and wait until no chat action is in flight."""
        current = self._typing.pop(chat_id, None)
        if current is not None:
            current.stop.set()
            await asyncio.wait([current.task])

    def _refuse_if_too_big(self, size: int | None, max_bytes: int) -> None:
        if size is None:
            return
        platform = self.download_limit
        if platform is not None and size > platform and platform <= max_bytes:
            raise DownloadError(
                f"This file is {_megabytes(size)}; Telegram lets bots download files up to "
                f"{_megabytes(platform)}. Send a smaller export (export the chat without "
                "media), or ask the bot's admin to run a self-hosted Telegram Bot API server "
                "(telegram-bot-api --local), which lifts that limit."
            )
        if size > max_bytes:
            raise DownloadError(
                f"This file is {_megabytes(size)}; this bot accepts files up to "
                f"{_megabytes(max_bytes)}. Send a smaller export (export the chat without "
                "media), or ask the bot's admin to raise WA_PERSONA_MAX_UPLOAD_MB."
            )


@dataclass(frozen=True, slots=True)
class _Wiring:
    handle: Handle
    outbox: TelegramOutbox
    seen: SeenUpdates | None


def build_application(
    handle: Handle,
    *,
    token: str,
    base_url: str = "https://api.telegram.org/bot",
    base_file_url: str = "https://api.telegram.org/file/bot",
    local_mode: bool = False,
    seen: SeenUpdates | None = None,
    typing_refresh_s: float = TYPING_REFRESH_S,
    connection_pool_size: int = CONNECTION_POOL_SIZE,
    pool_timeout_s: float = POOL_TIMEOUT_S,
) -> Application:
    """Build the PTB application that passes every message and button press to `handle`.

    Args:
        base_url, base_file_url: the Bot API server; a self-hosted one runs with `local_mode`.
        seen: drops redelivered update ids (webhook retries, a restart before polling
            confirmed its offset).
        typing_refresh_s: how often "typing…" is renewed (shorter in tests).
        connection_pool_size, pool_timeout_s: connections for calls other than
            `getUpdates`, and how long a call waits for one before it fails.
    """
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .base_file_url(base_file_url)
        .local_mode(local_mode)
        .rate_limiter(AIORateLimiter(max_retries=FLOOD_RETRIES))
        .connection_pool_size(connection_pool_size)
        .pool_timeout(pool_timeout_s)
        .job_queue(None)  # scheduling is bot/scheduler.py's job
        .build()
    )
    outbox = TelegramOutbox(
        application.bot, local_mode=local_mode, typing_refresh_s=typing_refresh_s
    )
    application.bot_data[_WIRING] = _Wiring(handle, outbox, seen)
    if seen is not None:
        application.add_handler(TypeHandler(Update, drop_redelivered), group=-1)
    new_message = filters.UpdateType.MESSAGE
    application.add_handlers(
        [
            CommandHandler(COMMANDS, command, filters=new_message, block=False),
            MessageHandler(
                new_message & filters.TEXT & ~filters.COMMAND, text_message, block=False
            ),
            MessageHandler(new_message & filters.Document.ALL, document_message, block=False),
            CallbackQueryHandler(button_press, block=False),
        ]
    )
    application.add_error_handler(log_error)
    return application


def outbox_of(application: Application) -> TelegramOutbox:
    """The outbox `build_application` made, e.g. to message an admin outside a reply."""
    wiring: _Wiring = application.bot_data[_WIRING]
    return wiring.outbox


@asynccontextmanager
async def run_telegram(
    application: Application,
    *,
    webhook_url: str | None = None,
    secret: str | None = None,
    listen: str = "0.0.0.0",
    port: int = 8443,
    url_path: str | None = None,
    poll_timeout: int = 10,
) -> AsyncIterator[Application]:
    """Receive updates until the block ends, then stop and shut down cleanly.

    With `webhook_url`, PTB's webhook server listens on `listen:port` (behind your HTTPS
    proxy), registers the URL with Telegram and refuses (403) requests without `secret` in
    the `X-Telegram-Bot-Api-Secret-Token` header; `url_path` defaults to the URL's path.
    Without it, long polling (`poll_timeout` seconds per request). Pending updates are kept.
    Replies still being written when the block ends are awaited.
    """
    if webhook_url is not None:
        _check_secret(secret)
    await _initialize(application)
    try:
        await application.start()
        try:
            await _start_receiving(
                application, webhook_url, secret, listen, port, url_path, poll_timeout
            )
        except TelegramError as exc:
            raise TransportError(f"Telegram refused to deliver updates: {exc}") from exc
        except OSError as exc:
            raise TransportError(
                f"Cannot listen for webhook calls on {listen}:{port} ({exc}); "
                "choose another WA_PERSONA_TELEGRAM_WEBHOOK_PORT."
            ) from exc
        yield application
    finally:
        updater = application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if application.running:
            await application.stop()
        await outbox_of(application).close()
        await application.shutdown()


async def _initialize(application: Application) -> None:
    """Check the token (getMe); a bad token or an unreachable server is a `TransportError`."""
    try:
        await application.initialize()
    except InvalidToken:
        await application.bot.shutdown()
        # `from None`: PTB's message contains the token itself.
        raise TransportError(
            "Telegram rejected the bot token; copy it again from @BotFather into "
            "WA_PERSONA_TELEGRAM_TOKEN."
        ) from None
    except TelegramError as exc:
        await application.bot.shutdown()
        raise TransportError(
            f"Cannot reach the Telegram Bot API ({exc}); check the network and "
            "WA_PERSONA_TELEGRAM_BASE_URL."
        ) from exc


async def _start_receiving(
    application: Application,
    webhook_url: str | None,
    secret: str | None,
    listen: str,
    port: int,
    url_path: str | None,
    poll_timeout: int,
) -> None:
    updater = application.updater
    if updater is None:
        raise TransportError("This application was built without an updater; it cannot receive.")
    if webhook_url is None:
        await updater.start_polling(
            timeout=poll_timeout,
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=False,
        )
        logger.info("receiving Telegram updates by long polling")
        return
    path = url_path if url_path is not None else urlsplit(webhook_url).path.strip("/")
    await updater.start_webhook(
        listen=listen,
        port=port,
        url_path=path,
        webhook_url=webhook_url,
        secret_token=secret,
        allowed_updates=ALLOWED_UPDATES,
        drop_pending_updates=False,
    )
    logger.info("receiving Telegram updates by webhook on %s:%d/%s", listen, port, path)


def _check_secret(secret: str | None) -> None:
    """A webhook without a secret would let anyone post updates, admin commands included."""
    if secret is None or not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
        raise TransportError(
            "Webhook mode needs WA_PERSONA_TELEGRAM_WEBHOOK_SECRET: 1-256 characters of "
            "A-Z, a-z, 0-9, _ and - (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`)."
        )


# --- handlers: one per intent -----------------------------------------------------------


async def text_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Pass a text message to the service."""
    message = update.effective_message
    if message is not None and message.text is not None:
        await _forward(update, context, text=message.text)


async def command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Pass a /command (admin ones too) to the service as text, without any @botname."""
    message = update.effective_message
    if message is not None and message.text is not None:
        await _forward(update, context, text=_COMMAND_TARGET.sub(r"\1", message.text))


async def document_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Pass a sent file (a chat export, usually) and its caption to the service."""
    message = update.effective_message
    if message is None or message.document is None:
        return
    sent = message.document
    ref = DocumentRef(
        file_id=sent.file_id,
        file_name=sent.file_name,
        mime_type=sent.mime_type,
        size=sent.file_size,
    )
    await _forward(update, context, text=message.caption, document=ref)


async def button_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a button press and pass its payload to the service as `Incoming.choice`."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    payload = _wiring(context).outbox.payloads.decode(query.data)
    if payload is None:
        await query.answer("This button has expired; please ask again.")
        logger.info("update %d: pressed button has expired", update.update_id)
        return
    await query.answer()
    await _forward(update, context, choice=payload, message_id=str(update.update_id))


async def drop_redelivered(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stop an update Telegram delivered before (a webhook retry) from being handled twice."""
    seen = _wiring(context).seen
    if seen is not None and not seen.first_time("telegram", str(update.update_id)):
        logger.info("update %d was delivered before; dropped", update.update_id)
        raise ApplicationHandlerStop


async def log_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log an error with its traceback and the update id (never the message text)."""
    update_id = update.update_id if isinstance(update, Update) else None
    logger.error("error handling Telegram update %s", update_id, exc_info=context.error)


async def _forward(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    *,
    text: str | None = None,
    document: DocumentRef | None = None,
    choice: str | None = None,
    message_id: str | None = None,
) -> None:
    """Build the `Incoming` for this update and run the service's handler on it."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None:
        logger.debug("update %d has no chat or sender; ignored", update.update_id)
        return
    message = update.message
    incoming = Incoming(
        channel="telegram",
        chat_id=str(chat.id),
        user_id=str(user.id),
        message_id=message_id or _message_key(chat.id, message),
        at=message.date if message is not None else datetime.now(UTC),
        text=text,
        document=document,
        choice=choice,
        user_name=user.full_name,
    )
    wiring = _wiring(context)
    await wiring.handle(incoming, wiring.outbox)


def _message_key(chat_id: int, message: Message | None) -> str:
    if message is None:
        raise TransportError("a message update without a message")
    return f"{chat_id}:{message.message_id}"


def _wiring(context: ContextTypes.DEFAULT_TYPE) -> _Wiring:
    wiring: _Wiring = context.bot_data[_WIRING]
    return wiring


def _split_message(text: str, limit: int = int(MessageLimit.MAX_TEXT_LENGTH)) -> list[str]:
    """Cut text above Telegram's limit at line breaks (else spaces); shorter text is one part."""
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut <= 0:
            cut = text.rfind(" ", 0, limit)
        if cut <= 0:
            cut = limit
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n ")
    if text:
        parts.append(text)
    return parts


def _is_local_file(path: str) -> bool:
    return Path(path).is_absolute() and Path(path).is_file()


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f}".removesuffix(".0") + " MB"
