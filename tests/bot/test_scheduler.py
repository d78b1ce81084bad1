"""RetrainScheduler: crontab schedules in a persistent APScheduler store, run when data is new."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.jobs import JobRunner, JobUpdate
from bot.scheduler import RetrainScheduler, Schedule, ScheduleError, retrain_if_due
from bot.settings import Settings
from bot.worker import MessageQueue, WorkerSpec
from tests.bot.prepared import prepare_quarter_sample, settings_for
from training.db import connect
from training.registry import BackendKind, ModelStatus, Registry

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::style.profile.ProfileWarning")]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Maya prepared from the first quarter of the bundled sample."""
    return prepare_quarter_sample(tmp_path_factory.mktemp("prepared"), ["Maya"])


@pytest.fixture
def settings(prepared: Path, tmp_path: Path) -> Settings:
    shutil.copytree(prepared, tmp_path / "data" / "personas")
    return settings_for(tmp_path / "data")


def trains_briefly(spec: WorkerSpec, messages: MessageQueue) -> None:
    """The worker: half a second of "training", then a result."""
    messages.put({"type": "started", "pid": os.getpid()})
    time.sleep(0.5)
    messages.put({"type": "result", "result": {"slept": 0.5}})


class Counts:
    """The service's message counts, set by the test."""

    def __init__(self, **counts: int) -> None:
        self.counts = counts

    def __call__(self, persona: str) -> int:
        return self.counts.get(persona, 0)


@asynccontextmanager
async def running(
    settings: Settings, counts: Counts, **options: Any
) -> AsyncIterator[tuple[RetrainScheduler, JobRunner]]:
    """A started scheduler over a runner whose workers train briefly; both closed afterwards."""

    async def notify(update: JobUpdate) -> None:
        return None

    db = connect(settings.database_path())
    runner = JobRunner(settings, db, notify=notify, message_count=counts, worker=trains_briefly)
    scheduler = RetrainScheduler(settings, runner, timezone="UTC", **options)
    scheduler.start()
    try:
        yield scheduler, runner
    finally:
        await scheduler.shutdown()
        await runner.aclose()
        db.close()


def stored_jobs(settings: Settings) -> list[str]:
    with sqlite3.connect(settings.data_dir / "schedules.db") as store:
        return [row[0] for row in store.execute("SELECT id FROM apscheduler_jobs")]


async def test_set_list_and_clear_a_schedule(settings: Settings) -> None:
    async with running(settings, Counts()) as (scheduler, _):
        before = datetime.now(UTC)
        next_run = scheduler.set_schedule("maya", "0 3 * * *")
        assert (next_run.hour, next_run.minute) == (3, 0)
        assert before < next_run <= before + timedelta(days=1)
        assert scheduler.schedules() == [Schedule("Maya", "0 3 * * *", next_run)]
        assert stored_jobs(settings) == ["retrain:maya"]
        assert scheduler.clear_schedule("Maya") is True
        assert scheduler.schedules() == [] and stored_jobs(settings) == []
        assert scheduler.clear_schedule("Maya") is False


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("every day", "2 fields instead of 5"),
        ("61 3 * * *", "61"),
        ("0 3 * * 8", "weekday 8 is not 0-7"),
        ("0 3 * * * *", "6 fields instead of 5"),
        ("0 3 * * fri-mon", "runs backwards"),
    ],
)
async def test_nonsense_is_refused_with_how_to_write_a_schedule(
    settings: Settings, cron: str, problem: str
) -> None:
    async with running(settings, Counts()) as (scheduler, _):
        with pytest.raises(ScheduleError, match="is not a crontab schedule") as caught:
            scheduler.set_schedule("Maya", cron)
        assert problem in str(caught.value) and "'0 3 * * *' for 03:00 every day" in str(
            caught.value
        )
        assert scheduler.schedules() == []


@pytest.mark.parametrize(
    ("weekdays", "expected"),
    [("0", {6}), ("7", {6}), ("sun", {6}), ("1-5", {0, 1, 2, 3, 4}), ("5-7", {4, 5, 6})],
)
async def test_weekdays_are_crontab_weekdays(
    settings: Settings, weekdays: str, expected: set[int]
) -> None:
    """Crontab's 0 is Sunday (APScheduler 3 alone would read Monday)."""
    async with running(settings, Counts()) as (scheduler, _):
        scheduler.set_schedule("Maya", f"0 3 * * {weekdays}")
        job = scheduler.apscheduler.get_job("retrain:maya")
        runs, when = set(), job.next_run_time
        for _ in range(7):
            runs.add(when.weekday())
            when = job.trigger.get_next_fire_time(when, when + timedelta(seconds=1))
        assert runs == expected


async def test_a_schedule_survives_a_restart_without_duplicating(settings: Settings) -> None:
    async with running(settings, Counts()) as (scheduler, _):
        first = scheduler.set_schedule("Maya", "0 3 * * *")
    async with running(settings, Counts()) as (scheduler, _):  # the bot restarted
        assert scheduler.schedules() == [Schedule("Maya", "0 3 * * *", first)]
        again = scheduler.set_schedule("Maya", "30 4 * * *")  # set again on start-up
        assert scheduler.schedules() == [Schedule("Maya", "30 4 * * *", again)]
        job = scheduler.apscheduler.get_job("retrain:maya")
        assert (job.coalesce, job.max_instances) == (True, 1)
    assert stored_jobs(settings) == ["retrain:maya"]


async def test_a_due_run_retrains_only_when_enough_new_messages_arrived(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    counts = Counts(Maya=150)
    async with running(settings, counts, min_new_messages=200) as (_, runner):
        with caplog.at_level(logging.INFO, logger="bot.scheduler"):
            await retrain_if_due("Maya")
        assert runner.list() == []
        assert "skipped: 150 new messages, 200 needed" in caplog.text

        counts.counts["Maya"] = 250
        await retrain_if_due("Maya")  # returns once the retrain has finished
        (job,) = runner.list()
        assert (job.status, job.requested_by) == ("succeeded", "schedule")

        # The retrain recorded what it learnt from: only what came after counts as new.
        registry = Registry(runner.db)
        registry.create("Maya", BackendKind.LOCAL_ADAPTER, status=ModelStatus.READY,
                        metrics={"messages": 250})  # fmt: skip
        counts.counts["Maya"] = 400
        await retrain_if_due("Maya")
        assert len(runner.list()) == 1 and runner.new_messages("Maya") == 150
        counts.counts["Maya"] = 450
        await retrain_if_due("Maya")
        assert len(runner.list()) == 2


async def test_runs_missed_while_the_bot_was_down_are_coalesced_into_one(
    settings: Settings,
) -> None:
    counts = Counts(Maya=1000)
    async with running(settings, counts) as (scheduler, runner):
        # Due at each of the last five minutes and not again for about 55: a run the clock
        # brings while the test waits cannot be mistaken for a second missed one.
        now = datetime.now(scheduler.apscheduler.timezone)
        minutes = sorted({(now.minute - back) % 60 for back in range(1, 6)})
        scheduler.set_schedule("Maya", f"{','.join(map(str, minutes))} * * * *")
        scheduler.apscheduler.pause()  # the bot goes down; it was due 5 minutes ago
        past = datetime.now(UTC) - timedelta(minutes=5)
        scheduler.apscheduler.modify_job("retrain:maya", next_run_time=past)
        await asyncio.sleep(0.2)
        assert runner.list() == []  # paused: nothing ran

    async with running(settings, counts) as (scheduler, runner):  # back: five runs were missed
        await until(lambda: [job.status for job in runner.list()] == ["succeeded"])
        await asyncio.sleep(1.0)  # a second missed run would have started by now
        assert len(runner.list()) == 1
        (schedule,) = scheduler.schedules()
        assert schedule.next_run is not None and schedule.next_run > datetime.now(UTC)


async def test_runs_never_overlap(settings: Settings) -> None:
    async with running(settings, Counts(Maya=1000)) as (_, runner):
        await asyncio.gather(retrain_if_due("Maya"), retrain_if_due("Maya"), retrain_if_due("Maya"))
        (job,) = runner.list()
        assert (job.status, job.result) == ("succeeded", {"slept": 0.5})
        assert job.progress is not None and job.progress["pid"] != os.getpid()


async def test_a_second_scheduler_in_one_process_is_refused(settings: Settings) -> None:
    async with running(settings, Counts()) as (scheduler, runner):
        other = RetrainScheduler(settings, runner, store_path=settings.data_dir / "other.db")
        with pytest.raises(ScheduleError, match="already running"):
            other.start()
        assert scheduler.running and not other.running


async def until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)
