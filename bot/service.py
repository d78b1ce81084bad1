"""The service every transport calls: uploads become personas, texts get the persona's reply.

`PersonaService.handle(incoming, outbox)` is the one entry point. A document starts the
upload flow: checked (who sent it, its type and size), downloaded, parsed in a thread,
summarised; then the sender picks which participant is the persona and confirms they may
use the data, and only then is anything stored (`bot.uploads`) and the persona rebuilt. The
questions' answers come back as `Incoming.choice` payloads that name a pending upload kept
in SQLite, so a restart between question and answer loses nothing. A text in a chat goes to
the `PersonaEngine` as the persona bound to that chat; texts starting with "/" are commands
(`bot.admin`). Long jobs (retraining, evaluation) run in `JobRunner`; `notify` brings their
progress back to the chat that asked, through the outbox its transport registered.

Before any of that, each chat is rate limited (`bot.ratelimit`; admins are not) and texts
over `max_text_chars` are refused, so one chat cannot keep the backends busy for everyone.
What happens is counted in `bot.metrics` and each reply logs one INFO line (a salted hash
of the chat, the backend, its latency and the bubble count; never text).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bot import admin
from bot.backends.base import Reply
from bot.backends.factory import build_chain
from bot.backends.fallback import BackendHealth, FallbackChain
from bot.channels import Choice, Incoming, Outbox
from bot.engine import PersonaEngine, PersonaRuntime
from bot.errors import BackendError, BotError, DownloadError, TransportError
from bot.metrics import Metrics
from bot.personas import (
    CLAUDE_CARD_FILE,
    INFO_FILE,
    PersonaDeletion,
    PersonaError,
    delete_persona,
    list_personas,
    load_persona,
)
from bot.ratelimit import ChatRateLimiter
from bot.settings import Settings
from bot.store import Store
from bot.uploads import Forgotten, PendingUpload, UploadStore, store_upload, uploads_dir
from style.errors import ExportError, StyleError
from style.messages import Chat, MessageKind
from training.db import connect
from training.errors import TrainingError
from training.registry import Registry, persona_slug

if TYPE_CHECKING:
    from bot.jobs import Job, JobUpdate
    from bot.scheduler import Schedule

__all__ = [
    "CHAT_RATE_BURST",
    "CHAT_RATE_PER_MINUTE",
    "MAX_TEXT_CHARS",
    "UPLOAD_TYPES",
    "ForgetReport",
    "JobRunnerLike",
    "PersonaService",
    "SchedulerLike",
    "chat_address",
]

logger = logging.getLogger(__name__)

UPLOAD_TYPES = {".txt": "text/plain", ".zip": "application/zip", ".json": "application/json"}
"""What an upload may be: WhatsApp's .txt or .zip export, or Telegram's result.json."""
_MIME_SUFFIXES = {
    "text/plain": ".txt",
    "application/zip": ".zip",
    "application/x-zip-compressed": ".zip",
    "application/json": ".json",
}
_MOST_CHOICES = 10
"""Participants offered as the persona (the most active ones; Telegram shows them as rows)."""
_UPLOAD = "upload"
CHAT_RATE_PER_MINUTE = 20.0
"""Messages a chat may send a minute once its burst is spent."""
CHAT_RATE_BURST = 10
"""Messages a chat may send in a quick row."""
MAX_TEXT_CHARS = 4000
"""Longest text passed to the persona (about Telegram's 4,096 limit); longer is refused."""


class JobRunnerLike(Protocol):
    """What the service needs of `bot.jobs.JobRunner`."""

    async def retrain(self, persona: str, *, requested_by: str, notify_chat: str) -> Job:
        """Queue a retrain of `persona`; raises `JobBusyError` while it has a job."""

    async def evaluate(
        self, persona: str, version: str | None = None, *, requested_by: str, notify_chat: str
    ) -> Job:
        """Queue an evaluation of a version (the active one when None)."""

    def list(self) -> Sequence[Job]:
        """Recent jobs, newest first."""

    def running(self) -> Sequence[Job]:
        """Jobs not finished yet."""


class SchedulerLike(Protocol):
    """What the service needs of `bot.scheduler.RetrainScheduler`."""

    def set_schedule(self, persona: str, cron: str) -> datetime:
        """Retrain `persona` on the crontab `cron`; the next run. `ScheduleError` if invalid."""

    def clear_schedule(self, persona: str) -> bool:
        """Stop retraining `persona` on a schedule; False when it had none."""

    def schedules(self) -> Sequence[Schedule]:
        """Every persona's schedule."""


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """What `/forget` removed."""

    persona: str
    uploads: Forgotten
    deletion: PersonaDeletion | None
    wal_cleared: bool
    """The WAL file was checkpointed and emptied (False while another reader held it)."""


def chat_address(channel: str, chat_id: str) -> str:
    """`channel:chat_id`: a chat, unique across channels (the engine's and store's chat id)."""
    return f"{channel}:{chat_id}"


class PersonaService:
    """Uploads, chatting and admin commands for every transport, on one database.

    Args:
        settings: admin ids, upload size limit, data dir and database.
        jobs: runs retraining and evaluation; its progress comes back through `notify`.
        scheduler: retrains personas on a crontab.
        uploads_from_anyone: let people who are not admins send exports (and so create
            personas); off, only `settings.admin_ids` may.
        simulate_typing, sleep, rng: passed to the `PersonaEngine`.
        metrics: where requests, replies and their latencies are counted (`/status` and
            the webhook server's `/metrics` show it); None counts nothing.
        chat_rate_per_minute, chat_rate_burst: each chat's token bucket (0 per minute: no
            limit); admins are not limited.
        max_text_chars: longest text answered; a longer one is refused with a reply.
        rate_clock: monotonic seconds for the rate limiter.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        jobs: JobRunnerLike,
        scheduler: SchedulerLike,
        uploads_from_anyone: bool = False,
        simulate_typing: bool = True,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        chat_rate_per_minute: float = CHAT_RATE_PER_MINUTE,
        chat_rate_burst: int = CHAT_RATE_BURST,
        max_text_chars: int = MAX_TEXT_CHARS,
        rate_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.max_text_chars = max_text_chars
        self.rate_limiter = ChatRateLimiter(chat_rate_per_minute, chat_rate_burst, clock=rate_clock)
        self.jobs = jobs
        self.scheduler = scheduler
        self.uploads_from_anyone = uploads_from_anyone
        self.db = connect(settings.database_path())
        self.store = Store(self.db)
        self.uploads = UploadStore(self.db, uploads_dir(settings))
        self.registry = Registry(self.db)
        self.engine = PersonaEngine(
            self.store,
            self._runtime,
            settings,
            simulate_typing=simulate_typing,
            sleep=sleep,
            rng=rng,
        )
        self._outboxes: dict[str, Outbox] = {}
        self._loaded: dict[str, _Loaded] = {}
        self._storing: set[str] = set()
        self._persona_locks: dict[str, asyncio.Lock] = {}
        self._tag_key = secrets.token_bytes(16)

    # --- wiring ---------------------------------------------------------------------------

    def register_outbox(self, channel: str, outbox: Outbox) -> None:
        """Where `notify` sends to `channel`'s chats; each transport calls this at start."""
        self._outboxes[channel] = outbox

    async def notify(self, update: JobUpdate) -> None:
        """Send a job's news to the chat that asked (`channel:chat_id`), else to every admin.

        The `JobRunner`'s notify callback. A chat whose channel has no outbox, or a send
        that fails, is logged and skipped.
        """
        text, notify_chat = update.text, update.job.notify_chat
        targets = [notify_chat] if notify_chat else list(self.settings.admin_ids)
        for target in targets:
            channel, _, chat_id = target.partition(":")
            outbox = self._outboxes.get(channel)
            if outbox is None or not chat_id:
                logger.warning("no %s transport to report a job to", channel or "(unnamed)")
                continue
            try:
                await outbox.send_text(chat_id, text)
            except TransportError as exc:
                logger.warning("cannot report a job to %s: %s", channel, exc)

    async def close(self) -> None:
        """Cancel pending replies, close the backends' clients and the database connection."""
        await self.engine.close()
        for name in list(self._loaded):
            await self.reload(name)
        self.db.close()

    # --- the entry point ------------------------------------------------------------------

    async def handle(self, incoming: Incoming, outbox: Outbox) -> None:
        """Answer one message from any transport (each in its own task)."""
        self._outboxes.setdefault(incoming.channel, outbox)
        if self.metrics is not None:
            self.metrics.record_request(incoming.channel)
        if not await self._admitted(incoming, outbox):
            return
        text = (incoming.text or "").strip()
        if len(text) > self.max_text_chars:
            await self._refuse_long_text(incoming, outbox, len(text))
        elif incoming.choice is not None:
            await self._choice(incoming, outbox, incoming.choice)
        elif incoming.document is not None:
            await self._upload(incoming, outbox)
        elif text.startswith("/"):
            await admin.dispatch(admin.Request(self, incoming, outbox, text))
        elif text:
            await self._chat(incoming, outbox, text)
        else:
            await outbox.send_text(
                incoming.chat_id,
                "I can only read text here (and chat exports as files). Could you type it?",
            )

    async def _admitted(self, incoming: Incoming, outbox: Outbox) -> bool:
        """Whether the chat is within its rate limit; over it, the chat hears once a minute."""
        if self.is_admin(incoming):
            return True
        admission = self.rate_limiter.admit(incoming.channel, incoming.chat_id)
        if admission.allowed:
            return True
        if self.metrics is not None:
            self.metrics.record_rate_limited()
        tag = self._chat_tag(incoming)
        if not admission.notify:
            logger.debug("dropped a message over the rate limit in chat %s", tag)
            return False
        logger.info("chat %s is over its rate limit; dropping its messages for now", tag)
        wait = max(round(admission.retry_after_s), 1)
        await outbox.send_text(
            incoming.chat_id,
            f"That's a lot of messages at once; I'm skipping some. Give me about {wait} "
            f"second{'' if wait == 1 else 's'}, then write again.",
        )
        return False

    async def _refuse_long_text(self, incoming: Incoming, outbox: Outbox, length: int) -> None:
        if self.metrics is not None:
            self.metrics.record_too_long()
        logger.info("refused a %d-character text in chat %s", length, self._chat_tag(incoming))
        await outbox.send_text(
            incoming.chat_id,
            f"That message is {length:,} characters long; I read at most "
            f"{self.max_text_chars:,} at a time. Could you send it in shorter parts?",
        )

    def _chat_tag(self, incoming: Incoming) -> str:
        """A short hash of the chat for the log: stable while the process runs, not the id."""
        address = chat_address(incoming.channel, incoming.chat_id).encode()
        return hashlib.blake2b(address, key=self._tag_key, digest_size=5).hexdigest()

    def is_admin(self, incoming: Incoming) -> bool:
        """Whether the sender is one of `settings.admin_ids`."""
        return incoming.sender in self.settings.admin_ids

    def may_upload(self, incoming: Incoming) -> bool:
        """Whether the sender may send exports."""
        return self.uploads_from_anyone or self.is_admin(incoming)

    # --- personas -------------------------------------------------------------------------

    def persona_names(self) -> list[str]:
        """Every prepared persona's name."""
        return [info.name for info in list_personas(self.settings)]

    def find_persona(self, name: str) -> str | None:
        """The persona (prepared, or with stored messages) called `name`, case ignored."""
        slug = persona_slug(name.strip())
        for known in [*self.persona_names(), *self.uploads.personas()]:
            if known == name.strip() or persona_slug(known) == slug:
                return known
        return None

    def chat_persona(self, incoming: Incoming) -> str | None:
        """The persona bound to the sender's chat."""
        return self.store.persona_for(chat_address(incoming.channel, incoming.chat_id))

    def bind(self, incoming: Incoming, persona: str) -> None:
        """Make `persona` answer in the sender's chat."""
        self.store.bind(chat_address(incoming.channel, incoming.chat_id), persona)

    async def reload(self, persona: str) -> None:
        """Build the persona's runtime again on its next message (new assets or model).

        The old chain's clients are closed; a reply it is still writing falls back or fails.
        """
        self.engine.forget_persona(persona)
        loaded = self._loaded.pop(persona, None)
        if loaded is not None:
            await _close_chain(loaded.chain)

    def health(self) -> dict[str, list[BackendHealth]]:
        """Each loaded persona's backends and their circuit breakers."""
        return {name: self._loaded[name].chain.health() for name in sorted(self._loaded)}

    def _runtime(self, name: str) -> PersonaRuntime:
        """The engine's resolver: the persona's assets and the chain for its active model."""
        assets = load_persona(self.settings, name, load_index=True)
        active = self.registry.active(assets.name)
        chain = build_chain(assets, self.settings, self.registry)
        version = None if active is None else active.version
        self._loaded[assets.name] = _Loaded(version, _stamp(assets.folder), chain, assets.folder)
        return PersonaRuntime(assets.name, chain, assets.profile, assets.info.style_strength)

    async def _refresh(self, persona: str) -> None:
        """Load the persona again when another version became active or her assets changed.

        Both can happen in another process (a retrain job rebuilds and activates), so this
        looks at the registry, `persona.json` and Claude's card on every message.
        """
        loaded = self._loaded.get(persona)
        if loaded is None:
            return
        active = self.registry.active(persona)
        version = None if active is None else active.version
        if version != loaded.version or _stamp(loaded.folder) != loaded.stamp:
            logger.info("%s changed; loading her again", persona_slug(persona))
            await self.reload(persona)

    async def forget(self, persona: str) -> ForgetReport:
        """Delete everything of `persona` for good, leaving no text in the database files.

        Stored messages and uploads (and their files), the persona's assets, model versions
        and run folders, conversations, chat bindings and schedule. Deletes run with
        `secure_delete` on and the WAL is checkpointed and truncated afterwards.
        """
        async with self._lock(persona):
            self.scheduler.clear_schedule(persona)
            await self.reload(persona)
            report = await asyncio.to_thread(_forget_everything, self.settings, persona)
        logger.info("forgot persona %s", persona_slug(persona))
        return report

    def _lock(self, persona: str) -> asyncio.Lock:
        """One rebuild or deletion of a persona at a time."""
        return self._persona_locks.setdefault(persona_slug(persona), asyncio.Lock())

    # --- chatting -------------------------------------------------------------------------

    async def _chat(self, incoming: Incoming, outbox: Outbox, text: str) -> None:
        """Pass a text to the engine as the chat's persona (binding the only one if unbound)."""
        persona = self.chat_persona(incoming) or await self._default_persona(incoming, outbox)
        if persona is None:
            return
        await self._refresh(persona)
        delivery = _OutboxDelivery(outbox, incoming.chat_id, self._chat_tag(incoming), self.metrics)
        address = chat_address(incoming.channel, incoming.chat_id)
        try:
            await self.engine.handle(address, persona, [text], delivery)
        except (BotError, TrainingError) as exc:  # her assets or backends cannot be loaded
            logger.warning("cannot answer as %s: %s", persona_slug(persona), exc)
            if self.metrics is not None:
                self.metrics.record_failed_reply()
            detail = f": {exc}" if self.is_admin(incoming) else "; please try again later."
            await outbox.send_text(incoming.chat_id, f"I can't answer as {persona} now{detail}")

    async def _default_persona(self, incoming: Incoming, outbox: Outbox) -> str | None:
        """Bind the only persona to an unbound chat, or say how to choose or make one."""
        names = self.persona_names()
        if len(names) == 1:
            self.bind(incoming, names[0])
            return names[0]
        if not names:
            how = (
                "Send me a chat export (WhatsApp: Export chat → .txt or .zip; Telegram: "
                "result.json) and I'll learn to write like someone in it."
                if self.may_upload(incoming)
                else "An admin has to send me a chat export first."
            )
            await outbox.send_text(incoming.chat_id, f"I don't know anyone's style yet. {how}")
            return None
        listed = ", ".join(f"/persona {name}" for name in names)
        if self.is_admin(incoming):
            reply = f"Who should answer here? Pick one: {listed}"
        else:
            reply = f"An admin has to pick who answers in this chat ({listed})."
        await outbox.send_text(incoming.chat_id, reply)
        return None

    # --- the upload flow ------------------------------------------------------------------

    async def _upload(self, incoming: Incoming, outbox: Outbox) -> None:
        """Check, download and parse an export, summarise it and ask who the persona is."""
        document = incoming.document
        assert document is not None
        chat = incoming.chat_id
        if self.metrics is not None:
            self.metrics.record_upload("received")
        if not self.may_upload(incoming):
            await outbox.send_text(chat, "Sorry, only the bot's admins can add chat exports here.")
            return
        suffix = _upload_suffix(document.file_name, document.mime_type)
        if suffix is None:
            await outbox.send_text(
                chat,
                "I can read WhatsApp exports (the .txt or .zip that Export chat makes) and "
                "Telegram's result.json; this file is none of those.",
            )
            return
        limit = self.settings.max_upload_mb * 2**20
        if document.size is not None and document.size > limit:
            await outbox.send_text(chat, _too_large(document.size, limit))
            return
        self.uploads.expire()
        upload_id, dest = self.uploads.new_pending_path(suffix)
        try:
            path = await outbox.download(document, dest, max_bytes=limit)
        except DownloadError as exc:
            dest.unlink(missing_ok=True)
            await outbox.send_text(
                chat, f"I couldn't fetch that file ({exc}). Please send it again."
            )
            return
        if path != dest:
            path.replace(dest)
        if dest.stat().st_size > limit:
            dest.unlink()
            await outbox.send_text(chat, _too_large(document.size or limit + 1, limit))
            return
        await outbox.typing(chat, True)
        try:
            chats = await asyncio.to_thread(_parse, dest, self.settings)
        except (StyleError, OSError) as exc:
            dest.unlink(missing_ok=True)
            await outbox.send_text(chat, _unreadable(exc))
            return
        finally:
            await outbox.typing(chat, False)
        counts = _authors(chats)
        if not counts:
            dest.unlink(missing_ok=True)
            await outbox.send_text(
                chat, "I found no messages written by anyone in that export; nothing was stored."
            )
            return
        file_name = document.file_name or f"export{suffix}"
        pending = self.uploads.add_pending(
            upload_id,
            channel=incoming.channel,
            chat_id=chat,
            sender=incoming.sender,
            path=dest,
            file_name=file_name,
            participants=counts.most_common(),
        )
        await outbox.send_text(chat, _summary(file_name, chats, counts))
        await self._ask_persona(pending, outbox)

    async def _ask_persona(self, pending: PendingUpload, outbox: Outbox) -> None:
        shown = pending.participants[:_MOST_CHOICES]
        more = len(pending.participants) - len(shown)
        note = f" (the {len(shown)} most active of {len(pending.participants)})" if more else ""
        await outbox.send_choices(
            pending.chat_id,
            f"Whose way of writing should I learn{note}?",
            [
                Choice(f"{_UPLOAD}:{pending.id}:who:{index}", f"{name} ({_messages(count)})")
                for index, (name, count) in enumerate(shown)
            ],
        )

    async def _choice(self, incoming: Incoming, outbox: Outbox, payload: str) -> None:
        """A pressed button: an upload's answer or a command's confirmation."""
        kind, _, rest = payload.partition(":")
        if kind == _UPLOAD:
            await self._upload_answer(incoming, outbox, rest)
        elif kind in admin.CHOICES:
            await admin.CHOICES[kind](admin.Request(self, incoming, outbox, rest))
        else:
            await outbox.send_text(incoming.chat_id, "That button is out of date; nothing done.")

    async def _upload_answer(self, incoming: Incoming, outbox: Outbox, answer: str) -> None:
        upload_id, _, step = answer.partition(":")
        pending = self.uploads.pending(upload_id)
        chat = incoming.chat_id
        if pending is None:
            await outbox.send_text(
                chat,
                "That upload is no longer waiting (it was finished, discarded or expired); "
                "send the file again to start over.",
            )
            return
        if pending.sender != incoming.sender:
            await outbox.send_text(chat, "Only the person who sent the export can answer that.")
            return
        question, _, value = step.partition(":")
        if question == "who":
            await self._persona_chosen(pending, outbox, value)
        elif question == "consent" and value == "no":
            self.uploads.discard(pending.id)
            await outbox.send_text(chat, "Okay. I deleted the file and stored nothing.")
        elif question == "consent" and value == "yes" and pending.persona is not None:
            await self._store(pending, outbox)
        else:
            await outbox.send_text(chat, "That button is out of date; nothing done.")

    async def _persona_chosen(self, pending: PendingUpload, outbox: Outbox, value: str) -> None:
        index = int(value) if value.isdigit() else -1
        if not 0 <= index < len(pending.participants):
            await outbox.send_text(pending.chat_id, "That button is out of date; nothing done.")
            return
        persona = pending.participants[index][0]
        chosen = self.uploads.choose_persona(pending.id, persona)
        if chosen is None:
            return
        await outbox.send_choices(
            pending.chat_id,
            f"Before I keep anything: do you have the right to use these messages to imitate "
            f"{persona}? They should be yours, or the people in them should agree. I'll store "
            "the chat on this server and learn from it.",
            [
                Choice(f"{_UPLOAD}:{pending.id}:consent:yes", "Yes, I may use them"),
                Choice(f"{_UPLOAD}:{pending.id}:consent:no", "No, discard the file"),
            ],
        )

    async def _store(self, pending: PendingUpload, outbox: Outbox) -> None:
        """Store the confirmed upload, rebuild its persona and bind the chat to it."""
        assert pending.persona is not None
        chat, persona = pending.chat_id, pending.persona
        if pending.id in self._storing:
            await outbox.send_text(chat, f"I'm already learning how {persona} writes.")
            return
        self._storing.add(pending.id)
        try:
            await outbox.send_text(chat, f"Learning how {persona} writes…")
            await outbox.typing(chat, True)
            async with self._lock(persona):
                stored, assets = await asyncio.to_thread(store_upload, self.settings, pending)
                await self.reload(assets.name)
        except (PersonaError, StyleError, OSError) as exc:
            logger.warning("upload for %s not stored: %s", persona_slug(persona), exc)
            self.uploads.discard(pending.id)
            pending.path.unlink(missing_ok=True)
            await outbox.send_text(
                chat,
                f"I couldn't learn from that export ({_reason(exc)}). Nothing of it was kept; "
                "what I knew before is unchanged.",
            )
            return
        finally:
            self._storing.discard(pending.id)
            await outbox.typing(chat, False)
        self.store.bind(chat_address(pending.channel, chat), assets.name)
        if self.metrics is not None:
            self.metrics.record_upload("stored")
        total = self.uploads.message_count(assets.name)
        await outbox.send_text(
            chat, _stored_text(assets.name, stored.new_messages, stored.duplicates, total)
        )


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A persona's chain as the engine uses it, and what it was built from."""

    version: str | None
    """The active model version then."""
    stamp: tuple[int | None, ...]
    """`persona.json`'s and Claude's card's modification times then (a rebuild, a new
    strength, `wa-persona analyze --save`)."""
    chain: FallbackChain
    folder: Path


def _stamp(folder: Path) -> tuple[int | None, ...]:
    """When the persona's assets and Claude's card last changed (None: not there)."""
    return tuple(_mtime(folder / name) for name in (INFO_FILE, CLAUDE_CARD_FILE))


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@runtime_checkable
class _Closable(Protocol):
    """A backend holding a client or a model (OpenAI, Claude, local)."""

    async def aclose(self) -> None: ...


async def _close_chain(chain: FallbackChain) -> None:
    """Close each backend of a chain that holds something open."""
    for backend in chain.backends:
        if isinstance(backend, _Closable):
            await backend.aclose()


@dataclass(slots=True)
class _OutboxDelivery:
    """The engine's `Delivery` for one chat: typing on/off and each bubble its own message.

    One delivery carries one reply: its first bubble counts it in `metrics` and logs it.
    """

    outbox: Outbox
    chat_id: str
    tag: str
    """The chat's hash for the log."""
    metrics: Metrics | None = None
    counted: bool = False

    async def typing(self, on: bool) -> None:
        """Show or hide the typing indicator."""
        await self.outbox.typing(self.chat_id, on)

    async def send(self, bubble: str, reply: Reply) -> None:
        """Send one bubble as one message."""
        if not self.counted:
            self.counted = True
            logger.info(
                "reply chat=%s backend=%s latency=%.3fs bubbles=%d",
                self.tag,
                reply.backend,
                reply.latency_s,
                len(reply.bubbles),
            )
            if self.metrics is not None:
                self.metrics.record_reply(reply.backend, reply.latency_s)
        await self.outbox.send_text(self.chat_id, bubble)

    async def failed(self, error: BackendError) -> None:
        """Say no answer is coming (the reason goes to the log, not the chat)."""
        logger.info("no reply chat=%s error=%s", self.tag, type(error).__name__)
        if self.metrics is not None:
            self.metrics.record_failed_reply()
        await self.outbox.send_text(self.chat_id, "(no reply right now; try again in a minute)")


# --- work done in threads -----------------------------------------------------------------


def _parse(path: Path, settings: Settings) -> list[Chat]:
    from style.parse import load_chats

    return load_chats(path, limits=settings.export_limits())


def _forget_everything(settings: Settings, persona: str) -> ForgetReport:
    """Delete the persona's rows and files on a connection of its own, then clear the WAL."""
    db = connect(settings.database_path())
    try:
        forgotten = UploadStore(db, uploads_dir(settings)).forget(persona)
        try:
            deletion: PersonaDeletion | None = delete_persona(settings, persona, db=db)
        except PersonaError:
            if not (forgotten.messages or forgotten.uploads):
                raise
            deletion = None
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.close()
    if busy:
        logger.warning("the WAL is in use; forgotten rows leave it at the next checkpoint")
    return ForgetReport(persona, forgotten, deletion, wal_cleared=not busy)


# --- texts --------------------------------------------------------------------------------


def _upload_suffix(file_name: str | None, mime_type: str | None) -> str | None:
    """The upload's type as a file suffix, from its name or else its MIME type; None if refused."""
    if file_name:
        suffix = Path(file_name).suffix.lower()
        return suffix if suffix in UPLOAD_TYPES else None
    return _MIME_SUFFIXES.get((mime_type or "").split(";")[0].strip().lower())


def _too_large(size: int, limit: int) -> str:
    return (
        f"That file is {size / 2**20:.1f} MB; the most I accept is {limit / 2**20:.0f} MB. "
        "Export the chat without media, or zip the .txt."
    )


def _reason(exc: BaseException) -> str:
    """An error's reason without our file paths."""
    if isinstance(exc, ExportError):
        return exc.reason
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


def _unreadable(exc: BaseException) -> str:
    return (
        f"I couldn't read that as a chat export: {_reason(exc)}. Send the .txt or .zip that "
        "WhatsApp's Export chat makes, or Telegram's result.json. Nothing was stored."
    )


def _authors(chats: Sequence[Chat]) -> Counter[str]:
    """Messages per author (system notices left out)."""
    counts: Counter[str] = Counter()
    for chat in chats:
        counts.update(
            m.author for m in chat.messages if m.author and m.kind is not MessageKind.SYSTEM
        )
    return counts


def _summary(file_name: str, chats: Sequence[Chat], counts: Counter[str]) -> str:
    stamps = [m.ts for chat in chats for m in chat.messages]
    first, last = min(stamps), max(stamps)
    dialects = ", ".join(dict.fromkeys(chat.dialect for chat in chats))
    chat_count = "1 chat" if len(chats) == 1 else f"{len(chats)} chats"
    people = "\n".join(f"• {name}: {_messages(count)}" for name, count in counts.most_common())
    return (
        f"{file_name}: {chat_count}, {_messages(sum(counts.values()))} from "
        f"{first:%d %b %Y} to {last:%d %b %Y} ({dialects}).\n{people}"
    )


def _messages(count: int) -> str:
    return "1 message" if count == 1 else f"{count:,} messages"


def _stored_text(persona: str, new: int, duplicates: int, total: int) -> str:
    known = f" ({duplicates:,} I already had)" if duplicates else ""
    return (
        f"{persona} is ready: {new:,} new messages stored{known}, {total:,} in all.\n"
        f"Write anything here and {persona} answers.\n"
        "Admins: /retrain fine-tunes a model on these messages, /evaluate scores the active "
        "model, /status shows everything, /help lists the rest."
    )
