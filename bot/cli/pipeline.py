"""`wa-persona pipeline`: the whole path in one command, from exports to chatting with a model.

A thin layer over `bot.pipeline.run_pipeline`: the steps with their progress on stderr (live
bars in a terminal, one line per event in a log), then the evaluation's side-by-side table,
the report's path and the wall time of every step on stdout, then, when asked (by default in
a terminal), the terminal chat through the version just trained.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.box import SIMPLE_HEAD
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.cli.common import AssignmentError, app, assignments, err, fail
from bot.errors import BotError
from bot.pipeline import DEFAULT_BASE, DEFAULT_CONFIG, PipelineHooks, PipelineResult
from bot.settings import Settings
from style.errors import StyleError
from training.errors import TrainingError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from bot.evaluations import EvalProgress
    from bot.pipeline import PipelineStep
    from training.progress import ProgressEvent

_ERRORS = (BotError, StyleError, TrainingError, AssignmentError, OSError)


@app.command()
def pipeline(
    exports: Annotated[
        list[Path] | None,
        typer.Argument(help="Chat exports (.txt/.zip/result.json); default: the bundled sample."),
    ] = None,
    persona: Annotated[
        str | None,
        typer.Option("--persona", "-p", help="The author to answer as (default: Maya)."),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            help=f"Base model: a fetchable name ({DEFAULT_BASE}), a folder or a hub id; "
            "default: the config's model."
        ),
    ] = None,
    config: Annotated[
        str, typer.Option("--config", "-c", help="Training preset or YAML file.")
    ] = DEFAULT_CONFIG,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one config key: key=value, dotted; repeatable."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Evaluate this many held-out turns, spread over the split."),
    ] = None,
    reuse_version: Annotated[
        str | None,
        typer.Option(metavar="VERSION", help="Evaluate (and chat with) this version; no training."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Replies asked of each system at the same time.")
    ] = 4,
    chat: Annotated[
        bool | None,
        typer.Option(
            "--chat/--no-chat",
            help="Chat with the version at the end (default: when stdin is a terminal).",
        ),
    ] = None,
) -> None:
    """Prepare a persona, fetch the base model, train, evaluate, activate, then chat.

    Each step reuses what is already there (the persona, the fetched model); only training
    runs every time (--reuse-version skips it).
    """
    from bot.pipeline import run_pipeline
    from training.evaluate import summary_table

    if exports and persona is None:
        raise fail(BotError("exports need --persona: the author's name as the exports write it"))
    display = _Display()
    try:
        result = run_pipeline(
            Settings(),
            exports or None,
            persona=persona,
            base=base,
            config=config,
            overrides=assignments(set_ or []),
            limit=limit,
            reuse_version=reuse_version,
            concurrency=concurrency,
            hooks=display.hooks(),
        )
    except _ERRORS as exc:
        raise fail(exc) from exc
    finally:
        display.stop()

    console = Console()
    for note in result.evaluation.notes:
        err.print(escape(note), highlight=False)
    console.print(summary_table(result.evaluation.run))
    files = result.evaluation.files
    console.print(
        f"report: {escape(str(files.html))} (private: holds message text)",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"numbers: {escape(str(files.json))}", highlight=False, soft_wrap=True)
    console.print(_steps_table(result))
    if chat if chat is not None else sys.stdin.isatty():
        _chat(result)


def _chat(result: PipelineResult) -> None:
    """The terminal chat (typing plan included) through the version, retrieval as fallback."""
    from bot.cli.chat import chat

    chat(
        persona=result.persona.name,
        export=None,
        backend=[result.version.version, "retrieval"],
        no_typing=False,
        speed=None,
        resume=False,
    )


def _steps_table(result: PipelineResult) -> Table:
    table = Table(title="Steps", title_justify="left", box=SIMPLE_HEAD, pad_edge=False)
    table.add_column("step", no_wrap=True)
    table.add_column("wall s", justify="right", no_wrap=True)
    table.add_column("result")
    for step in result.steps:
        summary = f"{step.summary} (reused)" if step.skipped else step.summary
        table.add_row(step.name, f"{step.seconds:.1f}", escape(summary))
    table.add_row("total", f"{sum(step.seconds for step in result.steps):.1f}", "", style="bold")
    return table


class _Display:
    """Step progress on stderr: live bars in a terminal, plain timestamped lines otherwise."""

    def __init__(self) -> None:
        self.live = err.is_terminal
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._train_stats: dict[str, str] = {}
        self._eval_shown: dict[str, int] = {}

    def hooks(self) -> PipelineHooks:
        """The hooks that feed this display."""
        return PipelineHooks(
            on_start=self.start,
            on_detail=self.detail,
            on_done=self.done,
            on_train=self.train,
            on_eval=self.evaluate,
        )

    def start(self, step: str, what: str) -> None:
        """A step begins."""
        if not self.live:
            self._line(f"{step}: {what}")
            return
        progress = self._bars()
        self._tasks[step] = progress.add_task(f"{step}: {escape(what)}", total=None, stats="")

    def detail(self, step: str, what: str) -> None:
        """A step moved on to `what`."""
        if not self.live:
            self._line(f"{step}: {what}")
        elif step in self._tasks:
            self._bars().update(self._tasks[step], description=f"{step}: {escape(what)}")

    def done(self, step: PipelineStep) -> None:
        """A step ended: its line stays, with the time it took."""
        mark = "·" if step.skipped else "✓"
        text = f"{mark} {step.name}: {step.summary} ({step.seconds:.1f} s)"
        if not self.live:
            self._line(text)
            return
        task = self._tasks.get(step.name)
        if task is not None:
            self._bars().update(task, description=escape(text), total=1, completed=1, stats="")

    def train(self, event: ProgressEvent) -> None:
        """A training event: the bar and its loss, held-out loss and speed."""
        if event.loss is not None:
            self._train_stats["loss"] = f"loss {event.loss:.3f}"
        if event.eval_loss is not None:
            self._train_stats["eval"] = f"held-out {event.eval_loss:.3f}"
        if event.tokens_per_s is not None:
            self._train_stats["speed"] = f"{event.tokens_per_s:,.0f} tok/s"
        stats = "  ".join(self._train_stats.values())
        if not self.live:
            self._line(f"train: {event.kind} {event.step}/{event.max_steps}  {stats}")
            return
        task = self._tasks.get("train")
        if task is not None:
            self._bars().update(
                task, total=event.max_steps, completed=event.step, stats=escape(stats)
            )

    def evaluate(self, update: EvalProgress) -> None:
        """An evaluation update: one bar per system (a line per tenth in a log)."""
        name = f"{update.system}: {update.stage}"
        if not self.live:
            tenth = update.done * 10 // max(update.total, 1)
            if update.done in (0, update.total) or tenth > self._eval_shown.get(name, -1):
                self._eval_shown[name] = tenth
                self._line(f"evaluate: {name} {update.done}/{update.total}")
            return
        progress = self._bars()
        if name not in self._tasks:
            self._tasks[name] = progress.add_task(f"  {escape(name)}", total=update.total, stats="")
        progress.update(self._tasks[name], completed=update.done, total=update.total)

    def stop(self) -> None:
        """Take the live display down, leaving the finished lines (safe when never shown)."""
        if self._progress is not None:
            self._progress.stop()

    def _bars(self) -> Progress:
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                console=err,
            )
            self._progress.start()
        return self._progress

    @staticmethod
    def _line(text: str) -> None:
        from datetime import datetime

        err.print(f"{datetime.now():%H:%M:%S} {text}", markup=False, highlight=False)
