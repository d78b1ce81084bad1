"""Slash commands: one small async function per command, as in python-telegram-bot's examples.

`dispatch` runs the command a text names. Everyone may use /start and /help; the rest are
for `settings.admin_ids` only, and anyone else gets a polite refusal with nothing done.
`CHOICES` handles the buttons a command asked with (the /forget confirmation); the payload
carries everything needed, so a confirmation still works after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.channels import Choice, Incoming, Outbox
from bot.errors import BotError
from training.errors import TrainingError
from training.registry import persona_slug

if TYPE_CHECKING:
    from bot.jobs import Job
    from bot.service import PersonaService

__all__ = ["CHOICES", "COMMANDS", "Command", "Request", "dispatch"]

logger = logging.getLogger(__name__)

_RECENT_JOBS = 5
_FORGET = "forget"


@dataclass(frozen=True, slots=True)
class Request:
    """One command (or button press) being answered.

    `text` is the command line ("/retrain Maya") or, for a button, the payload after its
    first field.
    """

    service: PersonaService
    incoming: Incoming
    outbox: Outbox
    text: str

    @property
    def args(self) -> str:
        """What follows the command word."""
        parts = self.text.split(maxsplit=1)
        return parts[1].strip() if len(parts) > 1 else ""

    @property
    def notify_chat(self) -> str:
        """This chat as `channel:chat_id`, where a job reports back."""
        return f"{self.incoming.channel}:{self.incoming.chat_id}"

    async def reply(self, text: str) -> None:
        """Answer in the chat the command came from."""
        await self.outbox.send_text(self.incoming.chat_id, text)

    async def persona(self) -> str | None:
        """The persona the arguments name, else the chat's, else the only one; None replied."""
        service = self.service
        if self.args:
            found = service.find_persona(self.args)
            if found is None:
                await self.reply(f"I know no persona called {self.args}. {_known(service)}")
            return found
        bound = service.chat_persona(self.incoming)
        names = service.persona_names()
        if bound is None and len(names) == 1:
            return names[0]
        if bound is None:
            await self.reply(f"Which persona? Name one after the command. {_known(service)}")
        return bound


@dataclass(frozen=True, slots=True)
class Command:
    """A command's handler, and whether only admins may run it."""

    handler: Callable[[Request], Awaitable[None]]
    usage: str
    admin: bool = True


async def dispatch(request: Request) -> None:
    """Run the command `request.text` names, if the sender may."""
    word = request.text.split(maxsplit=1)[0][1:]
    name = word.split("@", 1)[0].lower()  # "/status@MyBot" in Telegram groups
    command = COMMANDS.get(name)
    if command is None:
        await request.reply(f"I don't know /{name}. /help lists what I can do.")
        return
    if command.admin and not request.service.is_admin(request.incoming):
        logger.info("refused /%s from a non-admin", name)
        await request.reply(f"Sorry, /{name} is only for the bot's admins.")
        return
    await command.handler(request)


# --- everyone -----------------------------------------------------------------------------


async def start(request: Request) -> None:
    """Say what this bot does and how to begin."""
    service = request.service
    names = service.persona_names()
    if names:
        who = service.chat_persona(request.incoming) or (names[0] if len(names) == 1 else None)
        begin = f"Write anything and {who} answers." if who else f"{_known(service)}"
    else:
        begin = "Nobody is set up yet."
    upload = (
        " Send me a chat export (WhatsApp: Export chat, .txt or .zip; Telegram: result.json) "
        "and I'll learn to write like someone in it."
        if service.may_upload(request.incoming)
        else ""
    )
    await request.reply(f"Hi! I answer the way a real person writes. {begin}{upload}")


async def help_(request: Request) -> None:
    """List the commands you may use."""
    admin = request.service.is_admin(request.incoming)
    lines = [
        f"{command.usage}: {_first_line(command.handler)}"
        for command in COMMANDS.values()
        if admin or not command.admin
    ]
    await request.reply("\n".join(lines))


# --- admins -------------------------------------------------------------------------------


async def retrain(request: Request) -> None:
    """Fine-tune a new model version of the persona on its stored messages."""
    persona = await request.persona()
    if persona is None:
        return
    try:
        job = await request.service.jobs.retrain(
            persona, requested_by=request.incoming.sender, notify_chat=request.notify_chat
        )
    except BotError as exc:  # JobBusyError: a job for this persona is running
        await request.reply(f"Not now: {exc}")
        return
    await request.reply(f"Retraining {persona} (job {job.id}). I'll report progress here.")


async def evaluate(request: Request) -> None:
    """Score a model version (default: the active one) on held-out conversations."""
    service = request.service
    version = request.args or None
    if version is None:
        persona = await request.persona()
        if persona is None:
            return
    else:
        try:
            persona = service.registry.get(version).persona
        except TrainingError as exc:
            await request.reply(str(exc))
            return
    try:
        job = await service.jobs.evaluate(
            persona,
            version,
            requested_by=request.incoming.sender,
            notify_chat=request.notify_chat,
        )
    except BotError as exc:  # JobBusyError: a job for this persona is running
        await request.reply(f"Not now: {exc}")
        return
    which = version or f"{persona}'s active model"
    await request.reply(f"Evaluating {which} (job {job.id}). I'll report the result here.")


async def status(request: Request) -> None:
    """Show personas, their data and models, jobs, schedules, backend health and traffic."""
    service = request.service
    lines = []
    schedules = {schedule.persona: schedule.cron for schedule in service.scheduler.schedules()}
    for name in sorted({*service.persona_names(), *service.uploads.personas()}):
        active = service.registry.active(name)
        model = f"model {active.version}" if active is not None else "no trained model active"
        uploads = service.uploads.upload_count(name)
        lines.append(
            f"{name}: {service.uploads.message_count(name):,} messages from {uploads} "
            f"upload{'' if uploads == 1 else 's'}; {model}"
            + (f"; retrains {schedules[name]}" if name in schedules else "")
        )
    if not lines:
        lines.append("No personas yet: send a chat export to create one.")
    running = list(service.jobs.running())
    busy = {job.id for job in running}
    recent = [job for job in service.jobs.list() if job.id not in busy][:_RECENT_JOBS]
    lines.append("Running: " + (", ".join(map(_job_line, running)) or "nothing"))
    if recent:
        lines.append("Recent: " + ", ".join(map(_job_line, recent)))
    for name, backends in service.health().items():
        described = ", ".join(
            f"{b.name} {b.state.value}"
            + (f" (retry in {b.retry_in_s:.0f}s, last {b.last_error})" if b.retry_in_s else "")
            for b in backends
        )
        lines.append(f"{name} backends: {described}")
    if service.metrics is not None:
        lines.append(service.metrics.snapshot().summary())
    await request.reply("\n".join(lines))


async def models(request: Request) -> None:
    """List the persona's model versions, newest first."""
    persona = await request.persona()
    if persona is None:
        return
    versions = request.service.registry.list(persona)
    if not versions:
        await request.reply(f"{persona} has no model versions yet; /retrain makes one.")
        return
    lines = []
    for version in versions:
        metrics = ", ".join(f"{k} {v:.3g}" for k, v in sorted(version.metrics.items())[:3])
        lines.append(
            f"{version.version}: {version.status.value}, {version.kind.value}, "
            f"{_date(version.created_at)}" + (f", {metrics}" if metrics else "")
        )
    await request.reply("\n".join(lines))


async def use(request: Request) -> None:
    """Make VERSION the model its persona answers with."""
    service = request.service
    if not request.args:
        await request.reply("Which version? For example /use maya-v3 (/models lists them).")
        return
    try:
        previous = service.registry.active(service.registry.get(request.args).persona)
        activated = service.registry.activate(request.args)
    except TrainingError as exc:
        await request.reply(str(exc))
        return
    await service.reload(activated.persona)
    changed = previous is not None and previous.version != activated.version
    was = f" (was {previous.version})" if previous is not None and changed else ""
    await request.reply(f"{activated.persona} now answers with {activated.version}{was}.")


async def persona(request: Request) -> None:
    """Choose who answers in this chat."""
    service = request.service
    if not request.args:
        await request.reply(f"Who should answer here? /persona NAME. {_known(service)}")
        return
    found = service.find_persona(request.args)
    if found is None or found not in service.persona_names():
        await request.reply(f"I know no persona called {request.args}. {_known(service)}")
        return
    service.bind(request.incoming, found)
    await request.reply(f"{found} answers in this chat now.")


async def schedule(request: Request) -> None:
    """Retrain this chat's persona on a crontab schedule (or stop: /schedule off)."""
    service = request.service
    bound = service.chat_persona(request.incoming)
    names = service.persona_names()
    persona_name = bound or (names[0] if len(names) == 1 else None)
    if persona_name is None:
        await request.reply("Choose this chat's persona first (/persona NAME).")
        return
    if not request.args:
        await request.reply(
            "Give a crontab schedule (minute hour day month weekday), e.g. /schedule 0 3 * * 0 "
            "for Sundays at 03:00, or /schedule off."
        )
        return
    if request.args.lower() == "off":
        service.scheduler.clear_schedule(persona_name)
        await request.reply(f"{persona_name} is no longer retrained on a schedule.")
        return
    try:
        next_run = service.scheduler.set_schedule(persona_name, request.args)
    except BotError as exc:  # ScheduleError: not a crontab
        await request.reply(str(exc))
        return
    await request.reply(
        f"{persona_name} is retrained on schedule {request.args} when enough new messages "
        f"came in; next check {next_run:%Y-%m-%d %H:%M}."
    )


async def forget(request: Request) -> None:
    """Delete a persona and everything learned from its data, for good (asks first)."""
    service = request.service
    if not request.args:
        await request.reply("Whom should I forget? /forget NAME")
        return
    found = service.find_persona(request.args)
    if found is None:
        await request.reply(f"I know no persona called {request.args}. {_known(service)}")
        return
    slug = persona_slug(found)
    await request.outbox.send_choices(
        request.incoming.chat_id,
        f"Forget {found} for good? This deletes the {service.uploads.message_count(found):,} "
        "stored messages and uploaded files, the profile and datasets, every model version "
        "and adapter, all conversations and the schedule. It cannot be undone.",
        [
            Choice(f"{_FORGET}:yes:{slug}", f"Yes, delete {found}"),
            Choice(f"{_FORGET}:no:{slug}", "No, keep everything"),
        ],
    )


async def forget_answer(request: Request) -> None:
    """The answer to /forget's question (a button press)."""
    service = request.service
    if not service.is_admin(request.incoming):
        await request.reply("Sorry, only the bot's admins can delete personas.")
        return
    answer, _, slug = request.text.partition(":")
    known = {*service.persona_names(), *service.uploads.personas()}
    found = next((name for name in known if persona_slug(name) == slug), None)
    if answer != "yes":
        await request.reply("Okay, nothing was deleted.")
        return
    if found is None:
        await request.reply("That persona is already gone.")
        return
    busy = [job for job in service.jobs.running() if job.persona == found]
    if busy:
        await request.reply(f"{found} has a job running ({_job_line(busy[0])}); try when it ends.")
        return
    report = await service.forget(found)
    versions = len(report.deletion.versions) if report.deletion is not None else 0
    kept = report.deletion.kept_paths if report.deletion is not None else ()
    await request.reply(
        f"{found} is forgotten: {report.uploads.messages:,} messages, "
        f"{report.uploads.uploads} uploads, {versions} model versions and every conversation "
        "deleted."
        + (
            f" Models imported from outside the data folder stay: {', '.join(kept)}."
            if kept
            else ""
        )
        + ("" if report.wal_cleared else " The database log is in use; it is cleared soon.")
    )


COMMANDS: dict[str, Command] = {
    "start": Command(start, "/start", admin=False),
    "help": Command(help_, "/help", admin=False),
    "status": Command(status, "/status"),
    "persona": Command(persona, "/persona NAME"),
    "retrain": Command(retrain, "/retrain [PERSONA]"),
    "evaluate": Command(evaluate, "/evaluate [VERSION]"),
    "models": Command(models, "/models [PERSONA]"),
    "use": Command(use, "/use VERSION"),
    "schedule": Command(schedule, "/schedule CRON | off"),
    "forget": Command(forget, "/forget PERSONA"),
}
"""Every command by name, in the order /help lists them."""

CHOICES: dict[str, Callable[[Request], Awaitable[None]]] = {_FORGET: forget_answer}
"""Button handlers by the payload's first field."""


def _known(service: PersonaService) -> str:
    names = service.persona_names()
    return f"Known: {', '.join(names)}." if names else "No persona is set up yet."


def _first_line(handler: Callable[..., object]) -> str:
    return (handler.__doc__ or "").strip().splitlines()[0]


def _job_line(job: Job) -> str:
    progress = job.progress or {}
    step, steps = progress.get("step"), progress.get("max_steps")
    where = f" step {step}/{steps}" if step is not None and steps else ""
    return f"job {job.id} {job.kind} {job.persona} {job.status}{where}"


def _date(at: datetime) -> str:
    return f"{at:%Y-%m-%d}"
