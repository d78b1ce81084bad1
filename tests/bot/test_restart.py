"""The service killed mid-way and started again on the same data dir loses and repeats nothing.

The first run is a real `wa-persona serve` process on the fake Telegram Bot API, ended with
SIGKILL (no drain, no clean-up: what a crash, an OOM kill or a power cut leaves). The second
run is `serve` in the test's loop on the same data dir. Between them only the SQLite
database and the files in the data dir carry anything over.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import bot.app
from bot.jobs import JobRunner
from bot.service import chat_address
from bot.settings import Settings
from bot.worker import MessageQueue, WorkerSpec
from tests.bot.test_serve import (
    ADMIN,
    FAST,
    PAIR_EXPORT,
    maya_dir,
    maya_replies,
    maya_template,
    no_outside_settings,
    press,
    questions,
    serving,
    stored_reply,
    telegram_settings,
    texts_to,
    until,
)
from tests.bot.test_service import authored
from tests.fakes.telegram_server import FakeTelegram, document_message, text_message
from training.db import connect

__all__ = ["maya_dir", "maya_template", "no_outside_settings"]  # fixtures, found here

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
CHAT = 100  # where teach_maya's admin taught Maya
SERVE_WITH_SLEEPING_WORKER = """
import asyncio, functools
import bot.app
from bot.jobs import JobRunner
from bot.settings import Settings
from tests.bot.test_restart import trains_until_orphaned
bot.app.JobRunner = functools.partial(JobRunner, worker=trains_until_orphaned)
asyncio.run(bot.app.serve(Settings()))
"""
"""`wa-persona serve` whose retrains never finish (the worker must be importable: spawn)."""


# --- workers the job processes run (module level, so spawn can import them) -----------------


def trains_until_orphaned(spec: WorkerSpec, messages: MessageQueue) -> None:
    """A retrain that runs until the bot that started it is gone."""
    messages.put({"type": "started", "pid": os.getpid()})
    messages.put({"type": "stage", "stage": "train"})
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.05)


def trains_at_once(spec: WorkerSpec, messages: MessageQueue) -> None:
    """A retrain that trains, passes and is activated in no time."""
    messages.put({"type": "started", "pid": os.getpid()})
    systems = {"maya-v1": {"style_score": 0.5}}
    result = {"version": "maya-v1", "activated": True, "evaluation": {"systems": systems}}
    messages.put({"type": "result", "result": result})


# --- helpers ---------------------------------------------------------------------------------


def environment(settings: Settings) -> dict[str, str]:
    """The WA_PERSONA_* variables that make a `serve` process use `settings`."""
    values = {
        "DATA_DIR": str(settings.data_dir),
        "TELEGRAM_TOKEN": settings.telegram_token.get_secret_value(),  # type: ignore[union-attr]
        "TELEGRAM_BASE_URL": settings.telegram_base_url,
        "TELEGRAM_BASE_FILE_URL": settings.telegram_base_file_url,
        "ADMIN_IDS": f'["{settings.admin_ids[0]}"]',
        "BACKENDS": '["retrieval"]',
        "HTTP_HOST": settings.http_host,
        "TYPING_SPEED": str(settings.typing_speed),
        "TYPING_MAX_WAIT_S": str(settings.typing_max_wait_s),
    }
    return {f"WA_PERSONA_{name}": str(value) for name, value in values.items()}


@asynccontextmanager
async def serve_process(
    settings: Settings, fake: FakeTelegram, *arguments: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A `serve` process (`python ARGUMENTS`) on `settings`, polling `fake`; killed at exit."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(settings.data_dir.parent),
        "PYTHONPATH": str(ROOT),
        **environment(settings),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, *arguments, env=env, cwd=settings.data_dir.parent,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await until(lambda: fake.calls_to("getUpdates"), timeout=30)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL: the process gets no chance to drain, mark jobs or close anything."""
    process.send_signal(signal.SIGKILL)
    async with asyncio.timeout(10):
        await process.wait()
    assert process.returncode == -signal.SIGKILL


def rows(settings: Settings, sql: str) -> list[Any]:
    """What `sql` finds in the service's database now."""
    db = connect(settings.database_path())
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# --- tests -----------------------------------------------------------------------------------


async def test_an_upload_waiting_for_consent_survives_a_kill_and_is_stored_once(
    tmp_path: Path,
) -> None:
    export = PAIR_EXPORT.read_bytes()
    total = authored(PAIR_EXPORT).total()
    async with FakeTelegram() as fake:
        settings = telegram_settings(tmp_path / "data", fake, **FAST)
        fake.add_file("export-1", export)
        async with serve_process(settings, fake, "-m", "bot.cli", "serve") as process:
            fake.push_update(
                message=document_message(
                    file_id="export-1",
                    file_name=PAIR_EXPORT.name,
                    file_size=len(export),
                    mime_type="text/plain",
                    chat_id=ADMIN,
                    user_id=ADMIN,
                )
            )
            who = (await until(lambda: questions(fake), timeout=30))[0]
            press(fake, who, "Maya", user=ADMIN)
            consent = (await until(lambda: questions(fake)[1:], timeout=30))[0]
            await kill(process)
        assert rows(settings, "SELECT persona FROM pending_uploads") == [("Maya",)]
        assert rows(settings, "SELECT count(*) FROM uploads") == [(0,)]

        async with serving(settings):
            press(fake, consent, "Yes", user=ADMIN)  # the button sent before the kill
            await until(lambda: [t for t in texts_to(fake, ADMIN) if "is ready" in t])
            sent = len(fake.calls_to("sendMessage"))
            press(fake, consent, "Yes", user=ADMIN)  # pressed again: nothing is stored twice
            again = (await until(lambda: texts_to(fake, ADMIN, since=sent)))[0]
            fake.push_update(
                message=text_message(text="hey how are u", chat_id=ADMIN, user_id=ADMIN)
            )
            address = chat_address("telegram", str(ADMIN))
            reply = await until(lambda: stored_reply(settings, address))
            assert reply in maya_replies(settings)  # the stored upload made her

    ready = [t for t in texts_to(fake, ADMIN) if "is ready" in t]
    assert len(ready) == 1 and ready[0].startswith(f"Maya is ready: {total:,} new messages")
    assert again.startswith("That upload is no longer waiting")
    assert len([t for t in texts_to(fake, ADMIN) if t.startswith(PAIR_EXPORT.name)]) == 1
    assert rows(settings, "SELECT persona, messages, new_messages FROM uploads") == [
        ("Maya", total, total)
    ]
    assert rows(settings, "SELECT count(*) FROM messages") == [(total,)]
    assert rows(settings, "SELECT count(*) FROM pending_uploads") == [(0,)]
    assert len(fake.calls_to("getFile")) == 1  # fetched once, before the kill


async def test_a_retrain_killed_with_the_bot_is_marked_interrupted_and_a_new_one_runs(
    maya_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeTelegram() as fake:
        settings = telegram_settings(maya_dir, fake, **FAST)
        arguments = ("-c", SERVE_WITH_SLEEPING_WORKER)
        async with serve_process(settings, fake, *arguments) as process:
            fake.push_update(message=text_message(text="/retrain", chat_id=CHAT, user_id=ADMIN))
            await until(lambda: [t for t in texts_to(fake, CHAT) if "started" in t], timeout=30)
            progress = await until(
                lambda: rows(settings, "SELECT progress FROM jobs WHERE progress LIKE '%pid%'"),
                timeout=30,
            )
            await kill(process)
        ((status, error),) = rows(settings, "SELECT status, error FROM jobs")
        assert (status, error) == ("running", None)  # nothing ran after the kill
        worker_pid = json.loads(progress[0][0])["pid"]

        quick = functools.partial(JobRunner, worker=trains_at_once)
        monkeypatch.setattr(bot.app, "JobRunner", quick)
        sent, polls = len(fake.calls_to("sendMessage")), len(fake.calls_to("getUpdates"))
        async with serving(settings):
            await until(lambda: len(fake.calls_to("getUpdates")) > polls)
            ((status, error, finished),) = rows(
                settings, "SELECT status, error, finished_at FROM jobs"
            )
            fake.push_update(message=text_message(text="/status", chat_id=CHAT, user_id=ADMIN))
            status_text = (
                await until(lambda: [t for t in texts_to(fake, CHAT, since=sent) if "Running" in t])
            )[0]
            fake.push_update(message=text_message(text="/retrain", chat_id=CHAT, user_id=ADMIN))
            await until(
                lambda: [t for t in texts_to(fake, CHAT, since=sent) if "is now active" in t]
            )

    assert (status, error) == ("interrupted", "the bot stopped before the job finished")
    assert finished is not None
    assert "Running: nothing" in status_text and "job 1 retrain Maya interrupted" in status_text
    said = texts_to(fake, CHAT, since=sent)
    assert said[0] == (  # told as soon as the bot was back, before anyone asked
        "Maya: retraining (job 1) interrupted: the bot stopped before the job finished; "
        "send /retrain Maya to run it again"
    )
    assert "Retraining Maya (job 2). I'll report progress here." in said
    assert said[-1] == "Maya: maya-v1 is now active; style score maya-v1 0.500"
    assert rows(settings, "SELECT id, status FROM jobs ORDER BY id") == [
        (1, "interrupted"),
        (2, "succeeded"),
    ]
    async with asyncio.timeout(10):  # the orphaned worker noticed its bot was gone
        while _alive(worker_pid):
            await asyncio.sleep(0.05)


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
