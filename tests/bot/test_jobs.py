"""JobRunner: retrains and evaluations in real worker processes, tracked in a real database."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.jobs import JobBusyError, JobRunner, JobUpdate
from bot.settings import Settings
from bot.worker import MessageQueue, WorkerSpec
from tests.bot.prepared import prepare_quarter_sample, settings_for
from tests.training.tiny_model import TINY_RUN, tiny_dataset_dir, tiny_model_dir
from training.db import connect
from training.registry import BackendKind, ModelStatus, Registry, import_model, persona_slug
from training.run_outputs import file_sha256

__all__ = ["tiny_dataset_dir", "tiny_model_dir"]  # fixtures, imported to be found here

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::style.profile.ProfileWarning")]

SHUT_DOWN = "the bot shut down before the job finished"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Maya and Sam prepared from the first quarter of the bundled sample (a second)."""
    return prepare_quarter_sample(tmp_path_factory.mktemp("prepared"), ["Maya", "Sam"])


@pytest.fixture
def settings(prepared: Path, tmp_path: Path) -> Settings:
    """A data dir of the test's own, holding copies of the prepared personas."""
    shutil.copytree(prepared, tmp_path / "data" / "personas")
    return settings_for(tmp_path / "data")


@asynccontextmanager
async def open_runner(
    settings: Settings, **options: Any
) -> AsyncIterator[tuple[JobRunner, list[JobUpdate]]]:
    """A runner on the settings' database that keeps every update; closed afterwards."""
    updates: list[JobUpdate] = []

    async def notify(update: JobUpdate) -> None:
        updates.append(update)

    db = connect(settings.database_path())
    runner = JobRunner(settings, db, notify=notify, **options)
    try:
        yield runner, updates
    finally:
        await runner.aclose()
        db.close()


async def until(condition: Any, timeout: float = 30.0) -> None:
    """Wait (without blocking the loop) until `condition()` is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


# --- workers the child processes run (module level, so spawn can import them) -------------


def install_dataset(source: Path, settings: Settings, persona: str) -> None:
    """A rebuild hook: put the dataset made for the tiny model in place of the persona's."""
    target = settings.data_dir / "personas" / persona_slug(persona) / "dataset"
    shutil.rmtree(target)
    shutil.copytree(source, target)


def crashes(spec: WorkerSpec, messages: MessageQueue) -> None:
    """Dies the way the retrain's `how` override says."""
    how = spec.overrides["how"]
    if how == "exit":
        os._exit(3)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError("the worker broke")


def registers_and_sleeps(spec: WorkerSpec, messages: MessageQueue) -> None:
    """Registers a version as training, as a real retrain does, then trains for a minute."""
    messages.put({"type": "started", "pid": os.getpid()})
    registry = Registry.open(spec.settings.database_path())
    version = registry.create(spec.persona, BackendKind.LOCAL_ADAPTER)
    messages.put({"type": "registered", "version": version.version})
    time.sleep(60)


# --- tests ---------------------------------------------------------------------------------


async def test_retrain_trains_in_a_worker_process_and_activates_the_first_version(
    settings: Settings,
    tiny_model_dir: Path,
    tiny_dataset_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The worker inherits the environment: one torch thread, as the tiny model runs fastest.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = tmp_path / "tiny.yaml"
    config.write_text(f"model:\n  name: {tiny_model_dir}\n", encoding="utf-8")
    settings = settings.model_copy(update={"local_max_new_tokens": 8})
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    options = {
        "message_count": lambda persona: 321,
        "train_config": str(config),
        "eval_limit": 6,
        "rebuild": partial(install_dataset, tiny_dataset_dir),
    }
    async with open_runner(settings, **options) as (runner, updates):
        ticking = asyncio.create_task(ticker())
        overrides = {
            **TINY_RUN,
            "training.max_steps": 2,
            "eval.every": 2,
            "training.max_length": 512,
        }
        job = await runner.retrain("maya", requested_by="telegram:7", overrides=overrides)
        assert (job.persona, job.kind, job.status, job.request["messages"]) == (
            "Maya",
            "retrain",
            "queued",
            321,
        )
        with pytest.raises(JobBusyError, match=r"^Maya is already retraining \(job 1, "):
            await runner.retrain("Maya")
        done = await runner.wait(job.id)
        ticking.cancel()

    assert done.status == "succeeded", done.error
    assert done.result is not None and done.progress is not None
    assert done.result["pid"] != os.getpid() and done.progress["pid"] == done.result["pid"]
    assert len(gaps) > 100 and max(gaps) < 0.5  # the loop kept ticking all along

    version = Registry.open(settings.database_path()).get(done.result["version"])
    assert (version.version, version.status) == ("maya-v1", ModelStatus.ACTIVE)
    assert version.metrics["messages"] == 321 and version.metrics["steps"] == 2
    assert "style_score" in version.metrics  # the evaluation's numbers, recorded
    assert version.dataset_sha256 == file_sha256(tiny_dataset_dir / "dataset_card.json")
    assert Path(done.result["evaluation"]["report"]).is_file()

    texts = [update.text for update in updates]
    assert texts[0] == f"Maya: retraining started (job 1, with {config})"
    assert "Maya: training maya-v1" in texts
    assert any(re.fullmatch(r"Maya: step 1/2 \(50%\), loss \d+\.\d{3}.*", t) for t in texts)
    assert any(t.startswith("Maya: held-out loss ") for t in texts)
    assert texts[-1].startswith("Maya: maya-v1 is now active; style score maya-v1 0.")
    assert [update.final for update in updates] == [False] * (len(updates) - 1) + [True]
    assert updates[-1].job.status == "succeeded"


async def test_a_crashing_worker_fails_its_job_and_the_runner_carries_on(
    settings: Settings,
) -> None:
    ended = []
    async with open_runner(settings, worker=crashes) as (runner, updates):
        for how in ("exit", "raise", "kill"):
            job = await runner.retrain("Maya", overrides={"how": how})
            ended.append(await runner.wait(job.id))
    assert [(job.status, job.error) for job in ended] == [
        ("failed", "the worker process exited with status 3"),
        ("failed", "the worker process exited with status 1"),
        ("failed", "the worker process was killed by SIGKILL"),
    ]
    finals = [update.text for update in updates if update.final]
    assert finals[0] == "Maya: retraining (job 1) failed: the worker process exited with status 3"
    assert len(finals) == 3


async def test_an_error_in_the_pipeline_fails_the_job_with_its_message(
    settings: Settings,
) -> None:
    async with open_runner(settings, train_config="no-such-preset") as (runner, _):
        done = await runner.wait((await runner.retrain("Maya")).id)
    assert done.status == "failed"
    assert done.error is not None and done.error.startswith("'no-such-preset' is neither")
    assert Registry.open(settings.database_path()).list() == []  # nothing was registered


async def test_a_restart_marks_jobs_left_running_interrupted_and_their_versions_failed(
    settings: Settings,
) -> None:
    async with open_runner(settings, worker=registers_and_sleeps) as (before, _):
        job = await before.retrain("Maya")
        await until(lambda: "version" in (before.get(job.id).progress or {}))
        assert before.get(job.id).status == "running"

        # The bot restarts: a new runner on the same database, the old worker's job unfinished.
        db = connect(settings.database_path())
        after = JobRunner(settings, db, notify=lambda update: asyncio.sleep(0))
        ghost = after.get(job.id)
        assert (ghost.status, ghost.error) == (
            "interrupted",
            "the bot stopped before the job finished",
        )
        assert ghost.finished_at is not None and after.running() == []
        (version,) = Registry(db).list("Maya")
        assert version.status is ModelStatus.FAILED and version.notes is not None
        assert version.notes.startswith("interrupted")
        await after.aclose()
        db.close()


async def test_a_job_left_unfinished_is_announced_once_after_the_restart(
    settings: Settings,
) -> None:
    async with open_runner(settings, worker=registers_and_sleeps) as (runner, _):
        shut = await runner.retrain("Maya", notify_chat="telegram:1")
        await until(lambda: runner.get(shut.id).status == "running")
    # A clean shutdown ended that one and told its chat then: it is not announced again.
    async with open_runner(settings, worker=registers_and_sleeps) as (before, _):
        left = await before.retrain("Maya", notify_chat="telegram:7")
        await until(lambda: before.get(left.id).status == "running")

        db = connect(settings.database_path())  # the bot restarts, the job unfinished
        told: list[JobUpdate] = []

        async def notify(update: JobUpdate) -> None:
            told.append(update)

        after = JobRunner(settings, db, notify=notify)
        assert told == []  # no messenger is up yet while the runner starts
        assert await after.announce_interrupted() == 1
        assert await after.announce_interrupted() == 0  # once, not at every call
        await after.aclose()
        db.close()

    ((update,),) = [told]
    assert update.final and update.job.id == left.id != shut.id
    assert update.job.notify_chat == "telegram:7"
    assert update.text == (
        f"Maya: retraining (job {left.id}) interrupted: the bot stopped before the job "
        "finished; send /retrain Maya to run it again"
    )


async def test_shutdown_ends_running_workers_and_queued_jobs_as_interrupted(
    settings: Settings,
) -> None:
    async with open_runner(settings, worker=registers_and_sleeps) as (runner, updates):
        maya = await runner.retrain("Maya")
        await until(lambda: "pid" in (runner.get(maya.id).progress or {}))
        sam = await runner.retrain("Sam")  # one job at a time: Sam waits
        await until(lambda: any(u.job.id == sam.id for u in updates))
        assert [(job.persona, job.status) for job in runner.running()] == [
            ("Maya", "running"),
            ("Sam", "queued"),
        ]
        pid = runner.get(maya.id).progress["pid"]  # type: ignore[index]
        await runner.aclose()
        maya, sam = runner.get(maya.id), runner.get(sam.id)

    assert (maya.status, maya.error) == ("interrupted", SHUT_DOWN)
    assert (sam.status, sam.error, sam.started_at) == ("interrupted", SHUT_DOWN, None)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker is gone
    assert "Sam: retraining queued until a running job ends" in [u.text for u in updates]
    assert sorted(u.job.persona for u in updates if u.final) == ["Maya", "Sam"]
    (version,) = Registry.open(settings.database_path()).list("Maya")
    assert version.status is ModelStatus.FAILED


async def test_jobs_of_different_personas_run_together_up_to_the_limit(
    settings: Settings,
) -> None:
    async with open_runner(settings, worker=registers_and_sleeps, max_concurrent_jobs=2) as (
        runner,
        _,
    ):
        await runner.retrain("Maya")
        await runner.retrain("Sam")
        await until(lambda: all((job.progress or {}).get("pid") for job in runner.running()))
        pids = {job.progress["pid"] for job in runner.running()}  # type: ignore[index]
        assert [job.status for job in runner.running()] == ["running", "running"]
    assert len(pids) == 2 and os.getpid() not in pids


async def test_evaluate_job_writes_a_report_and_records_the_versions_metrics(
    settings: Settings,
) -> None:
    # Imported here: the worker processes import this module, and need no fake server.
    from tests.fakes.openai_server import API_KEY, VLLM_SAMPLING_PARAMETERS, FakeOpenAI

    with FakeOpenAI().serve() as fake:  # a vLLM serving Maya's model on this machine
        fake.extra_chat_parameters = VLLM_SAMPLING_PARAMETERS
        fake.default_reply = "omg yesss\n\nsee u at 7"
        settings = settings.model_copy(update={"openai_compatible_api_key": SecretStr(API_KEY)})
        registry = Registry.open(settings.database_path())
        version = import_model(
            registry,
            "Maya",
            BackendKind.OPENAI_COMPATIBLE,
            remote_id="maya",
            endpoint=fake.base_url,
        )
        async with open_runner(settings, eval_limit=6) as (runner, updates):
            done = await runner.wait((await runner.evaluate("maya", version.version)).id)
        asked = len(fake.requests_to("POST", "/v1/chat/completions"))

    assert done.status == "succeeded", done.error
    assert done.result is not None and done.result["pid"] != os.getpid()
    evaluation = done.result["evaluation"]
    assert set(evaluation["systems"]) == {"maya-v1", "retrieval"}
    assert asked == 6  # the worker asked the model for each held-out turn
    report = json.loads(Path(evaluation["numbers"]).read_text(encoding="utf-8"))
    assert report["heldout_turns"] == 6 and Path(evaluation["report"]).is_file()
    recorded = registry.get(version.version)
    assert recorded.metrics["style_score"] == evaluation["systems"]["maya-v1"]["style_score"]
    assert recorded.status is ModelStatus.READY  # an evaluation job never promotes
    assert evaluation["verdicts"][0]["challenger"] == "maya-v1"
    assert updates[-1].text.startswith("Maya: evaluation (job 1) done: style score maya-v1 0.")
