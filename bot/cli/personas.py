"""Persona commands: prepare a persona from exports, list the prepared ones, delete one,
and `wa-persona analyze` (Claude's style card for a prepared persona)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from bot.cli.common import app, err, fail
from bot.errors import BotError
from bot.settings import Settings
from training.errors import TrainingError

if TYPE_CHECKING:
    from bot.personas import PersonaAssets

persona_app = typer.Typer(
    name="persona",
    help="Personas: the profile, dataset and retrieval index the bot answers with.",
    no_args_is_help=True,
)
app.add_typer(persona_app)

_STEP_LABELS = {
    "read": "reading the exports",
    "scrub": "scrubbing private data",
    "profile": "measuring the style",
    "dataset": "building the dataset",
    "index": "indexing past replies",
    "save": "saving",
}


@persona_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The author to answer as, as the export names them.")],
    exports: Annotated[list[Path], typer.Argument(help="Chat exports (.txt/.zip/result.json).")],
    report: Annotated[
        bool, typer.Option("--report", help="Also write report.html (the profile's charts).")
    ] = False,
) -> None:
    """Prepare NAME from EXPORTS (replacing what was prepared before, only on success)."""
    from bot.personas import prepare_persona

    settings = Settings()
    try:
        prepare = partial(prepare_persona, report=report)
        assets = prepare_with_progress(prepare, settings, name, exports)
    except BotError as exc:
        raise fail(exc) from exc
    counts = assets.info.counts
    Console().print(
        Text(
            f"{assets.name}: {counts.get('persona_messages', 0)} of "
            f"{counts.get('messages', 0)} messages, {counts.get('train_samples', 0)} "
            f"training samples, {counts.get('exchanges', 0)} past replies → {assets.folder}"
        ),
        soft_wrap=True,
    )
    if assets.report_path is not None:
        typer.echo(f"Report: {assets.report_path}")


@persona_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per persona.")] = False,
) -> None:
    """List the prepared personas."""
    from bot.personas import list_personas

    found = list_personas(Settings())
    if as_json:
        for info in found:
            typer.echo(json.dumps(info.to_dict(), ensure_ascii=False))
        return
    console = Console()
    if not found:
        console.print("no personas yet — add one with `wa-persona persona add NAME EXPORT...`")
        return
    table = Table("persona", "messages", "samples", "past replies", "strength", "updated")
    for info in found:
        table.add_row(
            Text(info.name),
            str(info.counts.get("persona_messages", 0)),
            str(info.counts.get("train_samples", 0)),
            str(info.counts.get("exchanges", 0)),
            f"{info.style_strength:g}",
            f"{info.updated_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@persona_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The persona to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a persona for good: its files, model versions and conversations."""
    from bot.personas import delete_persona

    if not yes:
        typer.confirm(
            f"Delete {name}: profile, dataset, model versions and conversations?", abort=True
        )
    try:
        deleted = delete_persona(Settings(), name)
    except (BotError, TrainingError) as exc:
        raise fail(exc) from exc
    versions = ", ".join(deleted.versions) or "none"
    typer.echo(
        f"Deleted {deleted.name}: files {'removed' if deleted.files else 'none'}, model "
        f"versions {versions}, {deleted.turns} conversation turns."
    )
    for path in deleted.kept_paths:
        typer.echo(f"Kept (not under the data dir, delete it yourself): {path}")


@app.command("analyze")
def analyze(
    persona: Annotated[str, typer.Argument(help="The prepared persona to describe.")],
    samples: Annotated[
        int, typer.Option(min=1, help="How many of her training messages to send (scrubbed).")
    ] = 150,
    seed: Annotated[int, typer.Option(help="Which messages are drawn (same seed, same ones).")] = 0,
    save: Annotated[
        bool,
        typer.Option("--save", help="Keep the card; the Claude backend then answers with it."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Have Claude write a richer style card from a scrubbed sample of PERSONA's messages.

    Sends SAMPLES of her training messages (never the held-out ones), scrubbed, to
    Anthropic; needs WA_PERSONA_ALLOW_REMOTE_BACKENDS=true and WA_PERSONA_ANTHROPIC_API_KEY.
    """
    from bot.style_analysis import analyze_persona, save_card

    settings = Settings()
    try:
        analysis = asyncio.run(analyze_persona(settings, persona, samples=samples, seed=seed))
        saved = save_card(settings, analysis.persona, analysis.card) if save else None
    except BotError as exc:
        raise fail(exc) from exc
    usage = analysis.usage
    if as_json:
        record = {
            "persona": analysis.persona,
            "card": analysis.card,
            "messages": analysis.messages,
            "model": analysis.model,
            "usage": asdict(usage),
            "saved": None if saved is None else str(saved),
        }
        typer.echo(json.dumps(record, ensure_ascii=False))
        return
    Console().print(Text(analysis.card), soft_wrap=True)
    err.print(
        Text(
            f"{analysis.model} read {analysis.messages} of {analysis.persona}'s training "
            f"messages (scrubbed); tokens in {usage.input}, out {usage.output}."
        ),
        soft_wrap=True,
    )
    if saved is None:
        err.print("Not saved; add --save to let the Claude backend use it.", highlight=False)
    else:
        err.print(
            Text(f"Saved to {saved}; the Claude backend answers as {analysis.persona} with it."),
            soft_wrap=True,
        )


def prepare_with_progress(
    prepare: Callable[..., PersonaAssets],
    settings: Settings,
    name: str,
    exports: Sequence[str | os.PathLike[str]],
) -> PersonaAssets:
    """`prepare(settings, name, exports, on_progress=...)` with a progress bar on stderr.

    `prepare` is `prepare_persona` or `ensure_persona`; the bar shows only while it builds.
    """
    with _progress() as step:
        return prepare(settings, name, exports, on_progress=step)


@contextmanager
def _progress() -> Iterator[Callable[[str], None]]:
    from bot.personas import PREPARE_STEPS

    progress = Progress(
        TextColumn("preparing the persona: {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    task = None

    def step(name: str) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task(_STEP_LABELS[name], total=len(PREPARE_STEPS))
        progress.update(task, description=_STEP_LABELS[name], completed=PREPARE_STEPS.index(name))

    try:
        yield step
    finally:
        progress.stop()
