"""Scheduled retraining: a crontab per persona, kept in SQLite, run when enough data is new.

APScheduler 3's `AsyncIOScheduler` runs on the service's event loop with a persistent
`SQLAlchemyJobStore` (its own SQLite file in the data dir). Each persona has at most one
schedule, the APScheduler job `retrain:<slug>`, added with `replace_existing`, so setting it
again (or a restart that sets it again) never duplicates it. Runs missed while the bot was
down are coalesced into one (`coalesce`), within `misfire_grace_s`; `max_instances=1` and
the job runner's one-job-per-persona rule keep runs from overlapping.

APScheduler stores a reference to the scheduled function, not the function, so it is the
module-level `retrain_if_due`, which finds the running scheduler (and its job runner) in a
module-level slot filled by `start()`. A run retrains only when at least
`min_new_messages` messages arrived since the latest trained version; otherwise it logs
and skips. The retrain job then evaluates the new version and applies the champion rule.

Crontab weekdays are crontab's (0 or 7 = Sunday), not APScheduler 3's (0 = Monday): the
weekday field is translated before APScheduler reads it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import BotError
from bot.jobs import Job, JobError, JobRunner
from bot.settings import Settings
from training.registry import persona_slug

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

__all__ = [
    "SCHEDULE_FILE",
    "RetrainScheduler",
    "Schedule",
    "ScheduleError",
    "retrain_if_due",
]

logger = logging.getLogger(__name__)

SCHEDULE_FILE = "schedules.db"
"""The job store's SQLite file in the data dir."""
_JOB_PREFIX = "retrain:"
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_WEEKDAY_PART = re.compile(r"^(\*|[a-z]{3}|\d+)(?:-([a-z]{3}|\d+))?(?:/(\d+))?$")

_running: RetrainScheduler | None = None
"""The started scheduler, for `retrain_if_due` (APScheduler stores only its name)."""


class ScheduleError(BotError):
    """A schedule that cannot be set: not a crontab, or the scheduler is not running."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """One persona's retraining schedule."""

    persona: str
    cron: str
    """The 5-field crontab it was set with: minute hour day month weekday."""
    next_run: datetime | None
    """When it fires next (None: paused or not started yet)."""


class RetrainScheduler:
    """Retrains personas on crontab schedules that survive restarts.

    Args:
        runner: the service's job runner; scheduled runs go through it.
        store_path: the job store's SQLite file (default `<data_dir>/schedules.db`).
        min_new_messages: retrain only when this many messages arrived since the latest
            trained version.
        timezone: the crontab's time zone (None: this machine's).
        misfire_grace_s: how late a run may still start (a bot that was down longer skips
            the missed run and waits for the next).
    """

    def __init__(
        self,
        settings: Settings,
        runner: JobRunner,
        *,
        store_path: Path | None = None,
        min_new_messages: int = 200,
        timezone: tzinfo | str | None = None,
        misfire_grace_s: int = 6 * 3600,
    ) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.runner = runner
        self.min_new_messages = min_new_messages
        self.store_path = store_path or settings.data_dir / SCHEDULE_FILE
        self.store_path.parent.mkdir(parents=True, exist_ok=True)
        options = {} if timezone is None else {"timezone": timezone}
        self.apscheduler: AsyncIOScheduler = AsyncIOScheduler(  # public for inspection
            jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{self.store_path}")},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": misfire_grace_s,
            },
            **options,
        )

    @property
    def running(self) -> bool:
        """Whether `start()` was called and `shutdown()` not yet."""
        return _running is self

    def start(self) -> None:
        """Start firing schedules on the running event loop (call it from a coroutine)."""
        global _running
        if _running is not None and _running is not self:
            raise ScheduleError("another retrain scheduler is already running in this process")
        self.apscheduler.start()
        _running = self

    async def shutdown(self) -> None:
        """Stop firing; a retrain already started keeps running in the job runner."""
        global _running
        if _running is self:
            _running = None
        if not self.apscheduler.running:
            return
        self.apscheduler.shutdown(wait=False)
        while self.apscheduler.running:  # AsyncIOScheduler shuts down in a loop callback
            await asyncio.sleep(0.01)

    def set_schedule(self, persona: str, cron: str) -> datetime:
        """Retrain `persona` on the crontab `cron` (replacing its schedule); the next run time.

        Raises:
            ScheduleError: `cron` is not a 5-field crontab ("0 3 * * *": 03:00 every day).
            UnknownPersonaError: no such persona.
        """
        name = self.runner.persona_name(persona)
        cron = " ".join(cron.split())
        trigger = self._trigger(cron)
        job = self.apscheduler.add_job(
            "bot.scheduler:retrain_if_due",
            trigger=trigger,
            args=[name],
            id=_job_id(name),
            name=cron,
            replace_existing=True,
        )
        next_run = getattr(job, "next_run_time", None) or trigger.get_next_fire_time(
            None, datetime.now(trigger.timezone)
        )
        logger.info("retraining %s on %r, next at %s", persona_slug(name), cron, next_run)
        return next_run

    def clear_schedule(self, persona: str) -> bool:
        """Remove the persona's schedule; False when it had none."""
        from apscheduler.jobstores.base import JobLookupError

        try:
            self.apscheduler.remove_job(_job_id(persona))
        except JobLookupError:
            return False
        logger.info("retraining schedule of %s removed", persona_slug(persona))
        return True

    def schedules(self) -> list[Schedule]:
        """Every persona's schedule, by persona."""
        found = [
            Schedule(job.args[0], job.name, getattr(job, "next_run_time", None))
            for job in self.apscheduler.get_jobs()
            if job.id.startswith(_JOB_PREFIX)
        ]
        return sorted(found, key=lambda schedule: schedule.persona.casefold())

    async def retrain_if_due(self, persona: str) -> Job | None:
        """Start a retrain of `persona` if enough new messages arrived; the job, else None."""
        try:
            new = self.runner.new_messages(persona)
        except BotError as exc:
            logger.warning("scheduled retrain of %s skipped: %s", persona_slug(persona), exc)
            return None
        if new < self.min_new_messages:
            logger.info(
                "scheduled retrain of %s skipped: %d new messages, %d needed",
                persona_slug(persona),
                new,
                self.min_new_messages,
            )
            return None
        try:
            job = await self.runner.retrain(persona, requested_by="schedule")
        except JobError as exc:
            logger.info("scheduled retrain of %s skipped: %s", persona_slug(persona), exc)
            return None
        logger.info(
            "scheduled retrain of %s: job %d (%d new messages)", persona_slug(persona), job.id, new
        )
        return job

    def _trigger(self, cron: str) -> CronTrigger:
        from apscheduler.triggers.cron import CronTrigger

        fields = cron.split(" ")
        try:
            if len(fields) != 5:
                raise ValueError(f"{len(fields)} fields instead of 5")
            fields[4] = _crontab_weekdays(fields[4])
            return CronTrigger.from_crontab(" ".join(fields), timezone=self.apscheduler.timezone)
        except ValueError as exc:
            raise ScheduleError(
                f"{cron!r} is not a crontab schedule ({exc}); give 5 fields, minute hour day "
                "month weekday, e.g. '0 3 * * *' for 03:00 every day or '30 2 * * sun' for "
                "Sundays at 02:30"
            ) from exc


async def retrain_if_due(persona: str) -> None:
    """The scheduled function: retrain if due, and wait for the job, so runs never overlap."""
    scheduler = _running
    if scheduler is None:
        logger.warning("scheduled retrain of %s skipped: no scheduler is running", persona)
        return
    job = await scheduler.retrain_if_due(persona)
    if job is not None:
        await scheduler.runner.wait(job.id)


def _job_id(persona: str) -> str:
    return f"{_JOB_PREFIX}{persona_slug(persona)}"


def _crontab_weekdays(field: str) -> str:
    """A crontab weekday field (0/7 = Sunday, names, ranges, steps) as APScheduler 3 names."""
    text = field.lower()
    if text == "*":
        return text
    days: set[int] = set()
    for part in text.split(","):
        match = _WEEKDAY_PART.match(part)
        if match is None:
            raise ValueError(f"weekday {part!r} is not a day, range or step")
        first, last, step = match.groups()
        if first == "*":
            if last is not None:
                raise ValueError(f"weekday {part!r} is not a day, range or step")
            low, high = 0, 6
        else:
            low = _weekday(first)
            high = low if last is None and step is None else 6 if last is None else _weekday(last)
            if last is not None and high == 0 and low > 0:  # "5-7" or "fri-sun": 7 is Sunday
                high = 7
        if high < low:
            raise ValueError(f"weekday range {part!r} runs backwards")
        days.update(day % 7 for day in range(low, high + 1, int(step or 1)))
    if len(days) == 7:
        return "*"
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday(token: str) -> int:
    """0..7 (Sunday twice) for a number or a three-letter name."""
    if token.isdigit():
        number = int(token)
        if number > 7:
            raise ValueError(f"weekday {number} is not 0-7 (0 and 7 are Sunday)")
        return number
    if token not in _WEEKDAYS:
        raise ValueError(f"{token!r} is not a weekday name (sun, mon ... sat)")
    return _WEEKDAYS.index(token)
