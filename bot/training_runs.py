"""Train a local model and register it: what `wa-persona train` and the retrain job share.

The run is registered as `training` before anything heavy loads, then becomes `ready` with
its metrics, or `failed` with the reason (an interruption too), so the registry never holds
a version that is neither finished nor failed once the call returns or raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from bot.settings import Settings
from training.errors import TrainingError

if TYPE_CHECKING:
    from training.config import TrainConfig
    from training.progress import ProgressEvent
    from training.registry import ModelVersion
    from training.sft import RunResult

__all__ = ["ML_MODULES", "MissingExtraError", "ml_call", "train_and_register"]

ML_MODULES = frozenset({"torch", "transformers", "peft", "trl", "accelerate", "datasets"})
"""The [train] extra: without these, training cannot start."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


class MissingExtraError(TrainingError):
    """The ML libraries of the [train] extra are not installed."""


def ml_call(function: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Call into the ML stack, turning a missing [train] extra into one clear error."""
    try:
        return function(*args, **kwargs)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in ML_MODULES:
            raise MissingExtraError(
                f"{exc.name} is not installed; install wa-persona[train] (and wa-persona[gpu] "
                "for QLoRA on an NVIDIA GPU)"
            ) from exc
        raise


def train_and_register(
    settings: Settings,
    config: TrainConfig,
    *,
    on_event: Callable[[ProgressEvent], None] | None = None,
    on_registered: Callable[[ModelVersion], None] | None = None,
    metrics: Mapping[str, float] | None = None,
) -> tuple[ModelVersion, RunResult]:
    """Plan the run, register it as `training`, train, and mark it `ready` (or `failed`).

    Call it in the main process only (under `accelerate launch` the others call
    `training.sft.train`). Errors in the plan (a bad dataset, QLoRA without CUDA) raise
    before anything is registered.

    Args:
        on_event: every progress event of the run, in this thread.
        on_registered: called with the `training` version once it exists, before the model
            loads (the retrain job reports it; the CLI starts its progress bar).
        metrics: numbers recorded on the version from the start, e.g. `messages`: how many
            of the persona's messages the data held, so a scheduler can tell what is new.

    Raises:
        TrainingError: the plan or the run failed (`MissingExtraError` without the [train]
            extra); KeyboardInterrupt passes through after the version is marked failed.
    """
    return ml_call(_train_and_register, settings, config, on_event, on_registered, metrics)


def _train_and_register(
    settings: Settings,
    config: TrainConfig,
    on_event: Callable[[ProgressEvent], None] | None,
    on_registered: Callable[[ModelVersion], None] | None,
    metrics: Mapping[str, float] | None,
) -> tuple[ModelVersion, RunResult]:
    from training import sft
    from training.registry import BackendKind, ModelStatus, Registry

    plan = sft.prepare_run(config, runs_dir=settings.runs_dir(), models_dir=settings.models_dir())
    registry = Registry.open(settings.database_path())
    try:
        version = registry.create(
            plan.persona,
            BackendKind.LOCAL_MODEL if plan.method == "full" else BackendKind.LOCAL_ADAPTER,
            status=ModelStatus.TRAINING,
            base_model=plan.config.model.name,
            path=plan.weights_dir,
            dataset_sha256=plan.dataset_sha256,
            config=plan.config.to_dict(),
            metrics=dict(metrics or {}),
        )
        try:
            if on_registered is not None:
                on_registered(version)
            result = sft.train(plan.config, on_event=on_event, models_dir=settings.models_dir())
        except BaseException as exc:
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{exc}"
            registry.update(version.version, status=ModelStatus.FAILED, notes=why[:500])
            raise
        ready = registry.update(
            version.version, status=ModelStatus.READY, metrics=result.metrics.registry_metrics()
        )
    finally:
        registry.db.close()
    return ready, result
