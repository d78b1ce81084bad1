"""Local training commands: `train` (LoRA / QLoRA / full fine-tuning) and `merge`.

`train` registers the run in the model registry as `training`, then `ready` with its
metrics, or `failed` with the reason (an interrupted run too). Under `accelerate launch`
every process trains; only the main one prints, writes the run folder and registers.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.cli.common import AssignmentError, app, assignments, err, fail
from bot.settings import Settings
from training.errors import TrainingError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from training.progress import ProgressEvent
    from training.registry import ModelVersion, Registry

# The [train] extra: without these, training cannot start.
_ML_MODULES = frozenset({"torch", "transformers", "peft", "trl", "accelerate", "datasets"})
_P = ParamSpec("_P")
_R = TypeVar("_R")


class ProgressMode(StrEnum):
    """How `train` reports progress."""

    RICH = "rich"
    JSON = "json"
    NONE = "none"


class MergeDtype(StrEnum):
    """The dtype of merged weights."""

    AUTO = "auto"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    FLOAT32 = "float32"


class MissingExtraError(TrainingError):
    """The ML libraries of the [train] extra are not installed."""


@app.command()
def train(
    config: Annotated[
        str | None,
        typer.Option(
            "--config", "-c", help="A YAML config file or a preset name (see --list-presets)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one key: key=value, dotted (lora.r=32); repeatable."),
    ] = None,
    dataset: Annotated[
        Path | None, typer.Option(help="Dataset folder written by `wa-persona dataset`.")
    ] = None,
    persona: Annotated[
        str | None, typer.Option(help="Persona name for the registry; default: the dataset's.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Run folder; default: <data_dir>/runs/<persona>-<time>."
        ),
    ] = None,
    progress: Annotated[
        ProgressMode,
        typer.Option(help="rich: a progress bar; json: one event per line on stdout; none."),
    ] = ProgressMode.RICH,
    list_presets: Annotated[
        bool, typer.Option("--list-presets", help="List the shipped presets and exit.")
    ] = False,
) -> None:
    """Fine-tune a local chat model on a dataset (LoRA, QLoRA or full) and register it."""
    from training.config import list_presets as preset_names
    from training.config import load_train_config
    from training.hardware import is_main_process
    from training.registry import BackendKind, ModelStatus, Registry
    from training.sft import prepare_run
    from training.sft import train as run_training

    if list_presets:
        _print_presets(preset_names())
        return
    if config is None:
        raise fail(TrainingError("give --config FILE or a preset name (see --list-presets)"))
    settings = Settings()
    overrides = {"dataset": dataset, "persona": persona, "output.dir": output}
    try:
        values = {key: value for key, value in overrides.items() if value is not None}
        cfg = load_train_config(config, {**assignments(set_ or []), **values})
        plan = _ml_call(prepare_run, cfg, runs_dir=settings.runs_dir())
    except (TrainingError, AssignmentError, OSError) as exc:
        raise fail(exc) from exc

    main = is_main_process()
    registry: Registry | None = None
    version: ModelVersion | None = None
    try:
        if main:
            registry = Registry.open(settings.database_path())
            version = registry.create(
                plan.persona,
                BackendKind.LOCAL_MODEL if plan.method == "full" else BackendKind.LOCAL_ADAPTER,
                status=ModelStatus.TRAINING,
                base_model=plan.config.model.name,
                path=plan.weights_dir,
                dataset_sha256=plan.dataset_sha256,
                config=plan.config.to_dict(),
            )
    except TrainingError as exc:
        raise fail(exc) from exc

    reporter = _Reporter(progress if main else ProgressMode.NONE)
    try:
        with reporter:
            result = _ml_call(run_training, plan.config, on_event=reporter.show)
    except BaseException as exc:
        if registry is not None and version is not None:
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{exc}"
            registry.update(version.version, status=ModelStatus.FAILED, notes=why[:500])
        if isinstance(exc, TrainingError | OSError):
            raise fail(exc) from exc
        raise

    if registry is None or version is None:
        return
    ready = registry.update(
        version.version, status=ModelStatus.READY, metrics=result.metrics.registry_metrics()
    )
    metrics = result.metrics
    best = f" (best at step {metrics.best_step})" if metrics.best_step is not None else ""
    out = err if progress is ProgressMode.JSON else Console()  # stdout stays JSON lines
    out.print(f"Run: {result.run_dir}", markup=False, highlight=False, soft_wrap=True)
    out.print(
        f"Version: {ready.version} ({ready.status.value}); eval loss "
        f"{_loss(metrics.eval_loss_start)} -> {_loss(metrics.eval_loss_best)}{best}",
        markup=False,
        highlight=False,
    )


@app.command()
def merge(
    run_dir: Annotated[Path, typer.Argument(help="Folder of a finished LoRA/QLoRA run.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New folder for the merged model.")],
    dtype: Annotated[
        MergeDtype, typer.Option(help="auto: the precision the run trained in.")
    ] = MergeDtype.AUTO,
) -> None:
    """Merge a run's adapter into its base model and write one standalone model folder."""
    from training.merge import merge_adapter

    try:
        written = _ml_call(merge_adapter, run_dir, out, dtype=dtype.value)
    except (TrainingError, OSError) as exc:
        raise fail(exc) from exc
    typer.echo(f"Merged model: {written}")


def _ml_call(function: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Call into the ML stack, turning a missing [train] extra into one clear error."""
    try:
        return function(*args, **kwargs)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in _ML_MODULES:
            raise MissingExtraError(
                f"{exc.name} is not installed; install wa-persona[train] (and wa-persona[gpu] "
                "for QLoRA on an NVIDIA GPU)"
            ) from exc
        raise


def _print_presets(names: list[str]) -> None:
    from training.config import load_train_config

    table = Table()
    table.add_column("preset", no_wrap=True)
    for column in ("model", "method", "notes"):
        table.add_column(column)
    for name in names:
        cfg = load_train_config(name)
        notes = ", ".join(
            note
            for note, on in (
                ("padding-free", cfg.training.padding_free),
                ("packing", cfg.training.packing),
                ("own chat template", cfg.model.chat_template is not None),
            )
            if on
        )
        table.add_row(name, escape(cfg.model.name), cfg.method, notes)
    Console().print(table)


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


_TITLES = {"start": "training", "save": "saved", "end": "done", "error": "failed"}


class _Reporter:
    """Shows progress events: a rich bar on stderr, JSON lines on stdout, or nothing."""

    def __init__(self, mode: ProgressMode) -> None:
        self.mode = mode
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._stats: dict[str, str] = {}

    def __enter__(self) -> _Reporter:
        if self.mode is ProgressMode.RICH:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err,
            )
            self._progress.start()
            self._task = self._progress.add_task("loading", total=None, stats="")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def show(self, event: ProgressEvent) -> None:
        """Render one event."""
        if self.mode is ProgressMode.JSON:
            typer.echo(event.to_json())
        elif self._progress is not None and self._task is not None:
            if event.loss is not None:
                self._stats["loss"] = f"loss {event.loss:.3f}"
            if event.eval_loss is not None:
                self._stats["eval"] = f"eval {event.eval_loss:.3f}"
            if event.tokens_per_s is not None:
                self._stats["speed"] = f"{event.tokens_per_s:,.0f} tok/s"
            self._progress.update(
                self._task,
                description=_TITLES.get(event.kind, "training"),
                total=event.max_steps,
                completed=event.step,
                stats="  ".join(self._stats.values()),
            )
