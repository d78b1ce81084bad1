"""The worker process of a job: retrain or evaluate one persona, reporting on a queue.

`JobRunner` starts `run_job(spec, messages)` in a fresh interpreter (multiprocessing's
`spawn`), so training never shares the bot's event loop, memory or CUDA state, and a crash
takes only the worker down. The spec is picklable; everything the worker says comes back as
small dicts on the queue (never message text):

    {"type": "started", "pid": 4242}
    {"type": "stage", "stage": "rebuild" | "train" | "evaluate"}
    {"type": "registered", "version": "maya-v3"}
    {"type": "train", "event": "<ProgressEvent JSON>"}
    {"type": "eval", "system": "maya-v3", "stage": "replies", "done": 10, "total": 40}
    {"type": "result", "result": {...}}
    {"type": "error", "error": "what went wrong"}

The retrain pipeline: refresh the persona's assets (`rebuild`, when given), train with the
config and register the version (training -> ready/failed, recording how many messages the
data held), evaluate it against the active version, and activate it when it passes the
champion/challenger rule or when the persona has no active version yet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bot.errors import BotError
from bot.settings import Settings
from style.errors import StyleError
from training.errors import TrainingError

if TYPE_CHECKING:
    from bot.evaluations import EvalProgress, EvaluationOutcome
    from training.evaluate import ChampionRule
    from training.progress import ProgressEvent

__all__ = ["JobKind", "MessageQueue", "WorkerSpec", "run_job"]

logger = logging.getLogger(__name__)

JobKind = Literal["retrain", "evaluate"]
_EXPECTED = (BotError, TrainingError, StyleError, OSError)
_PARENT_CHECK_S = 1.0


class MessageQueue(Protocol):
    """The worker's end of the queue (a `multiprocessing.Queue`)."""

    def put(self, obj: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything the worker needs; pickled to the child process."""

    job_id: int
    kind: JobKind
    persona: str
    settings: Settings
    config: str | None = None
    """Retrain: a preset name or YAML file."""
    overrides: dict[str, object] = field(default_factory=dict)
    """Retrain: dotted config keys (`training.max_steps`: 100)."""
    version: str | None = None
    """Evaluate: the version to evaluate (None: the active one)."""
    messages: int | None = None
    """Retrain: the persona's message count when the job was asked for."""
    eval_limit: int | None = None
    """Held-out turns an evaluation uses (None: all)."""
    rule: ChampionRule | None = None
    """The champion/challenger rule (None: its defaults)."""
    rebuild: Callable[[Settings, str], None] | None = None
    """Retrain: refreshes the persona's assets first; must be picklable (module-level)."""


def run_job(spec: WorkerSpec, messages: MessageQueue) -> None:
    """The child's entry point: run the job and put its messages.

    Exits 0 after a result, 1 after an error, 130 when interrupted (SIGTERM or SIGINT).
    """
    logging.basicConfig(level=spec.settings.log_level, stream=sys.stderr)
    _stop_with_parent()
    signal.signal(signal.SIGTERM, _interrupt)  # terminate(): unwind, so the version is marked
    messages.put({"type": "started", "pid": os.getpid()})
    try:
        pipeline = _retrain if spec.kind == "retrain" else _evaluate
        result = pipeline(spec, messages)
    except KeyboardInterrupt:
        messages.put({"type": "error", "error": "interrupted"})
        sys.exit(130)
    except _EXPECTED as exc:
        messages.put({"type": "error", "error": str(exc) or type(exc).__name__})
        sys.exit(1)
    except Exception as exc:
        messages.put({"type": "error", "error": f"{type(exc).__name__}: {exc}"})
        raise  # the traceback goes to the worker's stderr
    messages.put({"type": "result", "result": {"pid": os.getpid(), **result}})


def _retrain(spec: WorkerSpec, messages: MessageQueue) -> dict[str, object]:
    """Rebuild, train and register, evaluate against the champion, activate the winner."""
    from bot.personas import load_persona
    from bot.training_runs import train_and_register
    from training.config import load_train_config
    from training.registry import Registry

    settings = spec.settings
    if spec.rebuild is not None:
        messages.put({"type": "stage", "stage": "rebuild"})
        spec.rebuild(settings, spec.persona)
    assets = load_persona(settings, spec.persona)
    if spec.config is None:
        raise TrainingError("no training config given to the retrain job")
    config = load_train_config(
        spec.config, {**spec.overrides, "dataset": assets.dataset_dir, "persona": assets.name}
    )

    def relay(event: ProgressEvent) -> None:
        messages.put({"type": "train", "event": event.to_json()})

    messages.put({"type": "stage", "stage": "train"})
    version, run = train_and_register(
        settings,
        config,
        on_event=relay,
        on_registered=lambda v: messages.put({"type": "registered", "version": v.version}),
        metrics=None if spec.messages is None else {"messages": float(spec.messages)},
    )
    result: dict[str, object] = {
        "version": version.version,
        "run_dir": str(run.run_dir),
        "training": run.metrics.registry_metrics(),
    }

    messages.put({"type": "stage", "stage": "evaluate"})
    outcome = _run_evaluation(spec, messages, models=[version.version], backends=[])
    registry = Registry.open(settings.database_path())
    try:
        if outcome.promoted is None and registry.active(assets.name) is None:
            registry.activate(version.version)  # nothing to beat: better than no model
        active = registry.active(assets.name)
    finally:
        registry.db.close()
    return {
        **result,
        "evaluation": outcome.summary(),
        "activated": active is not None and active.version == version.version,
        "active": None if active is None else active.version,
    }


def _evaluate(spec: WorkerSpec, messages: MessageQueue) -> dict[str, object]:
    """Evaluate the given (or active) version and the retrieval backend."""
    messages.put({"type": "stage", "stage": "evaluate"})
    models = [spec.version] if spec.version else []
    if not models:
        from training.registry import Registry

        registry = Registry.open(spec.settings.database_path())
        try:
            active = registry.active(spec.persona)
        finally:
            registry.db.close()
        models = [active.version] if active is not None else []
    outcome = _run_evaluation(spec, messages, models=models, backends=["retrieval"])
    return {"evaluation": outcome.summary()}


def _run_evaluation(
    spec: WorkerSpec, messages: MessageQueue, *, models: list[str], backends: list[str]
) -> EvaluationOutcome:
    """`evaluate_persona` in this process's own event loop, its progress on the queue."""
    from bot.evaluations import evaluate_persona

    last: dict[str, float] = {}

    def relay(update: EvalProgress) -> None:
        now = time.monotonic()
        finished = update.done == update.total
        if not finished and now - last.get(update.system, 0.0) < 5.0:
            return  # a line every few seconds per system is plenty
        last[update.system] = now
        messages.put(
            {
                "type": "eval",
                "system": update.system,
                "stage": update.stage,
                "done": update.done,
                "total": update.total,
            }
        )

    return asyncio.run(
        evaluate_persona(
            spec.settings,
            spec.persona,
            models=models,
            backends=backends,
            limit=spec.eval_limit,
            rule=spec.rule,
            promote=spec.kind == "retrain",
            on_progress=relay,
        )
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_with_parent() -> None:
    """Exit when the bot's process is gone (killed, crashed): a worker never outlives it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
