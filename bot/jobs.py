"""Retrain and evaluate jobs, each in its own worker process, one at a time per persona.

The service asks `JobRunner.retrain("Maya")` and gets a queued `Job` back at once. The job
runs `bot.worker.run_job` in a fresh process (multiprocessing's `spawn`: no inherited event
loop, threads or CUDA state); the worker's messages come back on a multiprocessing queue
that a thread reads, so neither training nor waiting for it ever blocks the event loop.
Progress is relayed through `notify` at a human rate: when a stage starts, every tenth of
the training steps or minute, at each held-out evaluation, and at the end.

Jobs live in the `jobs` table. A job left queued or running by a process that stopped
(a crash, a kill) is marked `interrupted` when the next runner starts, and a model version
it left `training` is marked `failed`, so a restart never leaves a ghost job; once the
messengers are up, `announce_interrupted` tells the chat that asked (every job records when
its end was announced, so each is told once). A worker that dies (killed, segfault, an
exception) fails its job with the reason; the bot carries on.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import multiprocessing
import pickle
import queue
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, Literal

from sqlite_utils import Database

from bot.errors import BotError
from bot.settings import Settings
from bot.worker import JobKind, MessageQueue, WorkerSpec, run_job
from training.db import migrate
from training.registry import ModelStatus, Registry, RegistryError, persona_slug

if TYPE_CHECKING:
    from training.evaluate import ChampionRule

__all__ = [
    "DEFAULT_TRAIN_CONFIG",
    "Job",
    "JobBusyError",
    "JobError",
    "JobRunner",
    "JobStatus",
    "JobUpdate",
    "UnknownJobError",
    "Worker",
]

logger = logging.getLogger(__name__)

COMPONENT = "jobs"
MIGRATIONS = [
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('retrain', 'evaluate')),
        persona TEXT NOT NULL,
        slug TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
        requested_by TEXT,
        notify_chat TEXT,
        request TEXT NOT NULL DEFAULT '{}',
        progress TEXT,
        result TEXT,
        error TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE INDEX jobs_by_persona ON jobs (slug, id);
    CREATE INDEX jobs_by_status ON jobs (status);
    """,
    """
    ALTER TABLE jobs ADD COLUMN announced_at TEXT;
    UPDATE jobs SET announced_at = finished_at WHERE finished_at IS NOT NULL;
    """,
]

DEFAULT_TRAIN_CONFIG = "qwen2.5-0.5b-lora"
"""The preset a retrain uses unless told otherwise (the service passes its setting)."""

JobStatus = Literal["queued", "running", "succeeded", "failed", "interrupted"]
Worker = Callable[[WorkerSpec, MessageQueue], None]
"""A worker entry point: module-level, so the spawned process can import it."""

_UNFINISHED = ("queued", "running")
_POLL_S = 0.25
_RELAY_EVERY_S = 60.0
_RELAY_STEPS = 10  # relay a training step every tenth of the run
_GHOST = "the bot stopped before the job finished"
_SHUTDOWN = "the bot shut down before the job finished"
_DOING = {"retrain": "retraining", "evaluate": "being evaluated"}
_TITLE = {"retrain": "retraining", "evaluate": "evaluation"}


class JobError(BotError):
    """A job cannot be started or found."""


class JobBusyError(JobError):
    """The persona already has a job queued or running."""


class UnknownJobError(JobError):
    """No job has this id."""


@dataclass(frozen=True, slots=True)
class Job:
    """One retrain or evaluation, as recorded in the `jobs` table."""

    id: int
    kind: JobKind
    persona: str
    status: JobStatus
    requested_by: str | None
    notify_chat: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: dict[str, Any] | None
    """The latest known state: pid, stage, version, step, max_steps, loss, eval_loss..."""
    result: dict[str, Any] | None
    """What the worker returned (numbers, names and paths; never message text)."""
    error: str | None
    request: dict[str, Any] = field(default_factory=dict)
    """What was asked: config and overrides (retrain), version (evaluate), message count."""

    @property
    def finished(self) -> bool:
        """Succeeded, failed or interrupted."""
        return self.status not in _UNFINISHED


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """Something worth telling whoever asked: `text` is for people, and holds no chat text."""

    job: Job
    text: str
    final: bool


@dataclass
class _Live:
    """A job this runner is running or has queued."""

    job_id: int
    kind: JobKind
    persona: str
    status: JobStatus = "queued"
    process: BaseProcess | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    last_relay: float = 0.0
    relayed_tenth: int = -1


@dataclass(frozen=True, slots=True)
class _Exited:
    """The pump's last word: the worker process has ended with this exit code."""

    exitcode: int | None


class JobRunner:
    """Starts jobs in worker processes, tracks them in SQLite and relays their progress.

    Args:
        notify: awaited with each `JobUpdate` (the service sends it to `notify_chat`).
        message_count: how many messages the service holds for a persona; recorded on each
            trained version, so the scheduler can tell how much is new.
        worker: the worker entry point (tests pass their own).
        train_config: the preset or YAML file a retrain uses by default.
        max_concurrent_jobs: jobs of different personas running at once; the rest queue.
            Training saturates the machine, hence 1.
        rebuild: refreshes a persona's assets in the worker before training; picklable.
        eval_limit: held-out turns each evaluation uses (None: all of them).
        rule: the champion/challenger rule (None: `ChampionRule()`'s defaults).
        stop_timeout_s: how long `aclose` lets a worker unwind before killing it.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        notify: Callable[[JobUpdate], Awaitable[None]],
        message_count: Callable[[str], int] = lambda persona: 0,
        worker: Worker = run_job,
        train_config: str = DEFAULT_TRAIN_CONFIG,
        max_concurrent_jobs: int = 1,
        rebuild: Callable[[Settings, str], None] | None = None,
        eval_limit: int | None = 40,
        rule: ChampionRule | None = None,
        stop_timeout_s: float = 10.0,
    ) -> None:
        if max_concurrent_jobs < 1:
            raise JobError(f"max_concurrent_jobs must be at least 1, not {max_concurrent_jobs}")
        for what, function in (("worker", worker), ("rebuild", rebuild)):
            _check_picklable(what, function)
        self.settings = settings
        self.db = db
        self._notify = notify
        self._message_count = message_count
        self._worker = worker
        self._train_config = train_config
        self._rebuild = rebuild
        self._eval_limit = eval_limit
        self._rule = rule
        self._stop_timeout_s = stop_timeout_s
        self._slots = asyncio.Semaphore(max_concurrent_jobs)
        self._live: dict[str, _Live] = {}  # by persona slug
        self._closing = False
        migrate(db, COMPONENT, MIGRATIONS)
        self._registry = Registry(db)
        self._interrupt_leftovers(_GHOST)

    # --- asking for jobs ---------------------------------------------------------------------

    async def retrain(
        self,
        persona: str,
        *,
        requested_by: str | None = None,
        notify_chat: str | None = None,
        config: str | None = None,
        overrides: Mapping[str, object] | None = None,
    ) -> Job:
        """Queue a retrain of `persona`: rebuild, train, register, evaluate, maybe activate.

        Raises:
            JobBusyError: the persona already has a job queued or running.
            UnknownPersonaError: no such persona (when there is no `rebuild` to make it).
        """
        name = self.persona_name(persona)
        self._check_free(name)
        messages = self._message_count(name)
        request = {
            "config": config or self._train_config,
            "overrides": dict(overrides or {}),
            "messages": messages,
        }
        spec = {**request, "rebuild": self._rebuild}
        return self._submit("retrain", name, request, spec, requested_by, notify_chat)

    async def evaluate(
        self,
        persona: str,
        version: str | None = None,
        *,
        requested_by: str | None = None,
        notify_chat: str | None = None,
    ) -> Job:
        """Queue an evaluation of `version` (default: the active one) and the retrieval backend.

        Raises:
            JobBusyError: the persona already has a job queued or running.
            UnknownPersonaError: no such persona.
        """
        from bot.personas import load_persona

        name = load_persona(self.settings, persona).name
        self._check_free(name)
        request = {"version": version}
        return self._submit(
            "evaluate", name, request, {"version": version}, requested_by, notify_chat
        )

    def persona_name(self, persona: str) -> str:
        """The persona's name as prepared ("maya" -> "Maya").

        Raises UnknownPersonaError for an unknown persona, unless a `rebuild` hook may make it
        (then the name is taken as given).
        """
        from bot.personas import UnknownPersonaError, load_persona

        try:
            return load_persona(self.settings, persona).name
        except UnknownPersonaError:
            if self._rebuild is None:
                raise
            return persona

    def new_messages(self, persona: str) -> int:
        """Messages the persona has now beyond those its latest trained version learnt from.

        That version is the newest one, not failed, that recorded its `messages` count.
        """
        name = self.persona_name(persona)
        recorded = next(
            (
                version.metrics["messages"]
                for version in self._registry.list(name)
                if version.status is not ModelStatus.FAILED and "messages" in version.metrics
            ),
            0.0,
        )
        return self._message_count(name) - int(recorded)

    # --- reading jobs ------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        """The job `job_id`; `UnknownJobError` when there is none."""
        row = self.db.execute(f"{_SELECT} WHERE id = ?", [job_id]).fetchone()
        if row is None:
            raise UnknownJobError(f"no job {job_id}; list the jobs to see their numbers")
        return _from_row(row)

    def list(self, persona: str | None = None, limit: int = 20) -> builtins.list[Job]:
        """The newest jobs first, optionally of one persona ("maya" finds Maya's)."""
        if persona is None:
            rows = self.db.execute(f"{_SELECT} ORDER BY id DESC LIMIT ?", [limit])
        else:
            rows = self.db.execute(
                f"{_SELECT} WHERE slug = ? ORDER BY id DESC LIMIT ?", [persona_slug(persona), limit]
            )
        return [_from_row(row) for row in rows.fetchall()]

    def running(self) -> builtins.list[Job]:
        """Jobs not finished yet: running ones, then queued ones, oldest first."""
        rows = self.db.execute(
            f"{_SELECT} WHERE status IN ('running', 'queued') ORDER BY status = 'queued', id"
        ).fetchall()
        return [_from_row(row) for row in rows]

    async def wait(self, job_id: int) -> Job:
        """The job once it has finished (at once when it already has)."""
        live = next((live for live in self._live.values() if live.job_id == job_id), None)
        if live is not None:
            await live.done.wait()
        return self.get(job_id)

    async def announce_interrupted(self) -> int:
        """Tell whoever asked for each job an earlier run of the bot left unfinished.

        Those jobs were marked `interrupted` when this runner started, before any messenger
        could carry the news; call this once the transports are up. Each job is announced
        once, also across restarts. Returns how many were announced.
        """
        rows = self.db.execute(
            f"{_SELECT} WHERE status = 'interrupted' AND announced_at IS NULL ORDER BY id"
        ).fetchall()
        for row in rows:
            job = _from_row(row)
            again = f"/retrain {job.persona}"
            if job.kind == "evaluate":
                again = f"/evaluate {job.request.get('version') or ''}".rstrip()
            text = (
                f"{job.persona}: {_TITLE[job.kind]} (job {job.id}) interrupted: "
                f"{job.error or _GHOST}; send {again} to run it again"
            )
            try:
                await self._notify(JobUpdate(job, text, final=True))
            except BotError as exc:
                logger.warning("job %d: could not announce it (%s)", job.id, exc)
            self._set(job.id, announced_at=_now())
        return len(rows)

    async def aclose(self) -> None:
        """Stop: queued jobs and running workers are ended, their jobs marked interrupted."""
        self._closing = True
        lives = builtins.list(self._live.values())
        for live in lives:
            if live.status == "queued" and live.task is not None:
                live.task.cancel()  # still waiting for a slot
            elif live.process is not None:
                live.process.terminate()  # the worker unwinds: its version is marked failed
        tasks = [live.task for live in lives if live.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._stop_timeout_s)
            for live in lives:
                if live.task in pending and live.process is not None:
                    live.process.kill()
            if pending:
                await asyncio.wait(pending, timeout=self._stop_timeout_s)
        self._interrupt_leftovers(_SHUTDOWN)

    # --- running jobs ------------------------------------------------------------------------

    def _check_free(self, persona: str) -> None:
        if self._closing:
            raise JobError("the job runner is shutting down; ask again once the bot is back")
        live = self._live.get(persona_slug(persona))
        if live is None:
            return
        where = "queued"
        if live.status == "running":
            step, total = live.progress.get("step"), live.progress.get("max_steps")
            stage = live.progress.get("stage", "starting")
            where = f"step {step}/{total}" if step is not None and total else stage
        raise JobBusyError(
            f"{persona} is already {_DOING[live.kind]} (job {live.job_id}, {where}); "
            "wait for it to finish"
        )

    def _submit(
        self,
        kind: JobKind,
        persona: str,
        request: dict[str, Any],
        spec: dict[str, Any],
        requested_by: str | None,
        notify_chat: str | None,
    ) -> Job:
        cursor = self.db.execute(
            "INSERT INTO jobs (kind, persona, slug, status, requested_by, notify_chat, request,"
            " created_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
            [
                kind,
                persona,
                persona_slug(persona),
                requested_by,
                notify_chat,
                _dumps(request),
                _now(),
            ],
        )
        job_id = int(cursor.lastrowid or 0)
        live = _Live(job_id, kind, persona)
        self._live[persona_slug(persona)] = live
        worker_spec = WorkerSpec(
            job_id=job_id,
            kind=kind,
            persona=persona,
            settings=self.settings,
            eval_limit=self._eval_limit,
            rule=self._rule,
            **spec,
        )
        live.task = asyncio.create_task(self._run(live, worker_spec), name=f"job-{job_id}")
        logger.info("job %d: %s of %s queued", job_id, kind, persona_slug(persona))
        return self.get(job_id)

    async def _run(self, live: _Live, spec: WorkerSpec) -> None:
        """Wait for a slot, run the worker, record how it ended."""
        try:
            if self._slots.locked():
                await self._send(live, f"{_TITLE[live.kind]} queued until a running job ends")
            async with self._slots:
                if self._closing:
                    await self._finish(live, "interrupted", error=_SHUTDOWN)
                    return
                await self._execute(live, spec)
        except asyncio.CancelledError:
            if live.process is not None:
                live.process.kill()
            if live.status in _UNFINISHED:
                await self._finish(live, "interrupted", error=_SHUTDOWN)
            raise
        except Exception as exc:  # a bug here must not leave the job queued or running
            logger.exception("job %d: the runner failed", live.job_id)
            if live.process is not None:
                live.process.kill()
            if live.status in _UNFINISHED:
                await self._finish(live, "failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            if self._live.get(persona_slug(live.persona)) is live:
                del self._live[persona_slug(live.persona)]
            live.done.set()

    async def _execute(self, live: _Live, spec: WorkerSpec) -> None:
        """Start the worker process and follow it until it ends."""
        context = multiprocessing.get_context("spawn")
        messages = context.Queue()
        process = context.Process(
            target=self._worker, args=(spec, messages), name=f"wa-persona-job-{live.job_id}"
        )
        try:
            process.start()  # a few milliseconds: fork, exec, and the spec down a pipe
        except OSError as exc:
            await self._finish(live, "failed", error=f"the worker process did not start: {exc}")
            return
        live.process, live.status = process, "running"
        self._set(live.job_id, status="running", started_at=_now())
        what = (
            f"with {spec.config}"
            if live.kind == "retrain"
            else f"of {spec.version or 'the active version'}"
        )
        await self._send(live, f"{_TITLE[live.kind]} started (job {live.job_id}, {what})")

        inbox: asyncio.Queue[dict[str, Any] | _Exited] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=_pump,
            args=(
                messages,
                process,
                lambda item: loop.call_soon_threadsafe(inbox.put_nowait, item),
            ),
            name=f"job-{live.job_id}-pump",
            daemon=True,
        ).start()
        result: dict[str, Any] | None = None
        error: str | None = None
        while True:
            item = await inbox.get()
            if isinstance(item, _Exited):
                exitcode = item.exitcode
                break
            kind = item.get("type")
            if kind == "result":
                result = item["result"]
            elif kind == "error":
                error = item["error"]
            else:
                await self._progress(live, item)
        live.process = None
        process.close()
        messages.close()
        if result is not None and exitcode == 0:
            await self._finish(live, "succeeded", result=result)
        elif self._closing:
            await self._finish(live, "interrupted", error=_SHUTDOWN)
        else:
            await self._finish(live, "failed", error=error or _exit_reason(exitcode))

    async def _progress(self, live: _Live, message: dict[str, Any]) -> None:
        """Keep the worker's news; store and relay what a person wants to know."""
        kind, progress = message.get("type"), live.progress
        text: str | None = None
        if kind == "started":
            progress["pid"] = message["pid"]
        elif kind == "stage":
            progress["stage"] = message["stage"]
            if message["stage"] == "rebuild":
                text = "refreshing the persona's data"
            elif message["stage"] == "evaluate" and live.kind == "retrain":
                turns = f"up to {self._eval_limit}" if self._eval_limit else "all"
                text = (
                    f"evaluating {progress.get('version')} against the active version on "
                    f"{turns} held-out turns"
                )
        elif kind == "registered":
            progress["version"] = message["version"]
            text = f"training {message['version']}"
        elif kind == "train":
            text = self._training_news(live, message["event"])
        elif kind == "eval":
            progress["eval"] = {k: message[k] for k in ("system", "stage", "done", "total")}
        self._set(live.job_id, progress=_dumps(progress))
        if text is not None:
            await self._send(live, text)

    def _training_news(self, live: _Live, line: str) -> str | None:
        """Fold one training event into the progress; the text to relay when it is due."""
        from training.progress import ProgressEvent

        event, progress = ProgressEvent.from_json(line), live.progress
        progress.update(
            {
                "step": event.step,
                "max_steps": event.max_steps,
                "loss": event.loss if event.loss is not None else progress.get("loss"),
                "eta_s": event.eta_s,
            }
        )
        if event.kind == "eval" and event.eval_loss is not None:
            progress["eval_loss"] = event.eval_loss
            progress.setdefault("eval_loss_start", event.eval_loss)
            return f"held-out loss {event.eval_loss:.3f} at step {event.step}/{event.max_steps}"
        if event.kind == "start":
            live.last_relay = time.monotonic()
            return f"training started: {event.max_steps} steps"
        if event.kind == "end":
            start = progress.get("eval_loss_start")
            losses = (
                f", held-out loss {start:.3f} -> {event.eval_loss:.3f}"
                if start is not None and event.eval_loss is not None
                else ""
            )
            return f"training done after {event.step} steps{losses}"
        if event.kind != "step" or not event.max_steps:
            return None
        tenth = event.step * _RELAY_STEPS // event.max_steps
        now = time.monotonic()
        if tenth <= live.relayed_tenth and now - live.last_relay < _RELAY_EVERY_S:
            return None
        live.relayed_tenth, live.last_relay = tenth, now
        loss = f", loss {event.loss:.3f}" if event.loss is not None else ""
        eta = f", about {_duration(event.eta_s)} left" if event.eta_s else ""
        share = event.step / event.max_steps
        return f"step {event.step}/{event.max_steps} ({share:.0%}){loss}{eta}"

    async def _finish(
        self,
        live: _Live,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record the end of a job, fail a version it left training, and say how it ended."""
        live.status = status
        self._set(
            live.job_id,
            status=status,
            finished_at=_now(),
            progress=_dumps(live.progress),
            result=None if result is None else _dumps(result),
            error=error,
        )
        version = live.progress.get("version")
        if status != "succeeded" and version:
            self._fail_version(version, error or status)
        logger.info("job %d: %s", live.job_id, status)
        await self._send(live, _final_text(live, status, result, error), final=True)
        self._set(live.job_id, announced_at=_now())

    async def _send(self, live: _Live, text: str, *, final: bool = False) -> None:
        """Pass one update to `notify`; a messenger that cannot deliver it stops nothing."""
        update = JobUpdate(self.get(live.job_id), f"{live.persona}: {text}", final)
        try:
            await self._notify(update)
        except BotError as exc:
            logger.warning("job %d: could not send an update (%s)", live.job_id, exc)

    # --- storage -----------------------------------------------------------------------------

    def _set(self, job_id: int, **values: object) -> None:
        columns = ", ".join(f"{name} = ?" for name in values)
        self.db.execute(f"UPDATE jobs SET {columns} WHERE id = ?", [*values.values(), job_id])

    def _fail_version(self, version: str, why: str) -> None:
        """Mark a version the job left `training` as failed (a finished one is left alone)."""
        try:
            if self._registry.get(version).status is ModelStatus.TRAINING:
                self._registry.update(version, status=ModelStatus.FAILED, notes=why[:500])
        except RegistryError as exc:
            logger.warning("could not mark %s failed: %s", version, exc)

    def _interrupt_leftovers(self, why: str) -> None:
        """Jobs still queued or running that no worker of this runner will finish."""
        live_ids = {live.job_id for live in self._live.values()}
        for job in self.running():
            if job.id in live_ids:
                continue
            self._set(job.id, status="interrupted", finished_at=_now(), error=why)
            version = (job.progress or {}).get("version")
            if version:
                self._fail_version(version, f"interrupted: {why}")
            logger.info("job %d: marked interrupted (%s)", job.id, why)


def _pump(
    source: Any, process: BaseProcess, deliver: Callable[[dict[str, Any] | _Exited], object]
) -> None:
    """Move the worker's messages to the event loop until it ends (runs in its own thread)."""
    try:
        while True:
            try:
                deliver(source.get(timeout=_POLL_S))
            except queue.Empty:
                if not process.is_alive():
                    break
        while True:  # what it said just before it ended
            try:
                deliver(source.get_nowait())
            except queue.Empty:
                break
        process.join()
        deliver(_Exited(process.exitcode))
    except RuntimeError:
        return  # the event loop is closed: nobody is listening any more


def _check_picklable(what: str, function: object) -> None:
    """The worker process gets functions by reference: refuse lambdas and local functions."""
    try:
        pickle.dumps(function)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise JobError(
            f"the {what} function must be importable by the worker process (a module-level "
            f"function or a functools.partial of one): {exc}"
        ) from exc


def _exit_reason(exitcode: int | None) -> str:
    """Why a worker that sent no result ended, in words."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the worker process was killed by {name}"
    if exitcode == 0:
        return "the worker process ended without a result"
    return f"the worker process exited with status {exitcode}"


def _final_text(
    live: _Live, status: JobStatus, result: dict[str, Any] | None, error: str | None
) -> str:
    """How the job ended, for people: numbers and version names only."""
    title = f"{_TITLE[live.kind]} (job {live.job_id})"
    version = live.progress.get("version")
    if status == "interrupted":
        return f"{title} interrupted: {error or _SHUTDOWN}"
    if status == "failed" or result is None:
        after = f" after training {version}" if version and live.kind == "retrain" else ""
        return f"{title} failed{after}: {error or 'no result'}"
    evaluation = result.get("evaluation") or {}
    scores = ", ".join(
        f"{name} {metrics['style_score']:.3f}"
        for name, metrics in (evaluation.get("systems") or {}).items()
        if "style_score" in metrics
    )
    ceiling = (evaluation.get("ceiling") or {}).get("style_score")
    scored = f"style score {scores}" + (f" (real replies {ceiling:.3f})" if ceiling else "")
    if live.kind == "evaluate":
        return f"{title} done: {scored}; report {evaluation.get('report')}"
    trained = result.get("version")
    verdict = next(iter(evaluation.get("verdicts") or []), None)
    if result.get("activated"):
        beat = f"beat {verdict['champion']} and " if verdict and verdict["champion"] else ""
        return f"{trained} {beat}is now active; {scored}"
    why = verdict["reasons"][0] if verdict and verdict["reasons"] else "it did not pass the rule"
    return f"{trained} is trained but {result.get('active')} stays active ({why}); {scored}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


_COLUMNS = (
    "id, kind, persona, status, requested_by, notify_chat, created_at, started_at,"
    " finished_at, progress, result, error, request"
)
_SELECT = f"SELECT {_COLUMNS} FROM jobs"


def _from_row(row: tuple[Any, ...]) -> Job:
    (job_id, kind, persona, status, requested_by, notify_chat, created_at, started_at,
     finished_at, progress, result, error, request) = row  # fmt: skip
    return Job(
        id=job_id,
        kind=kind,
        persona=persona,
        status=status,
        requested_by=requested_by,
        notify_chat=notify_chat,
        created_at=datetime.fromisoformat(created_at),
        started_at=None if started_at is None else datetime.fromisoformat(started_at),
        finished_at=None if finished_at is None else datetime.fromisoformat(finished_at),
        progress=None if progress is None else json.loads(progress),
        result=None if result is None else json.loads(result),
        error=error,
        request=json.loads(request),
    )


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
