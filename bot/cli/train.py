"""Local training commands: `train` (LoRA / QLoRA / full fine-tuning) and `merge`.

`train` registers the run in the model registry as `training`, then `ready` with its
metrics, or `failed` with the reason (an interrupted run too). Under `accelerate launch`
every process trains; only the main one prints, writes the run folder and registers.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.cli.common import AssignmentError, app, assignments, err, fail
from bot.settings import Settings
from bot.training_runs import ml_call, train_and_register
from training.errors import TrainingError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from training.progress import ProgressEvent


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
    except (TrainingError, AssignmentError, OSError) as exc:
        raise fail(exc) from exc

    if not is_main_process():  # another accelerate process: train, print nothing
        try:
            ml_call(run_training, cfg, runs_dir=settings.runs_dir())
        except (TrainingError, OSError) as exc:
            raise fail(exc) from exc
        return

    reporter = _Reporter(progress)
    try:
        ready, result = train_and_register(
            settings, cfg, on_event=reporter.show, on_registered=lambda _: reporter.start()
        )
    except (TrainingError, OSError) as exc:
        raise fail(exc) from exc
    finally:
        reporter.stop()

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
        written = ml_call(merge_adapter, run_dir, out, dtype=dtype.value)
    except (TrainingError, OSError) as exc:
        raise fail(exc) from exc
    typer.echo(f"Merged model: {written}")


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

    def start(self) -> None:
        """Show the bar (rich mode), once the run is registered and the model loads."""
        if self.mode is ProgressMode.RICH and self._progress is None:
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

    def stop(self) -> None:
        """Take the bar down (safe when it never started)."""
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
