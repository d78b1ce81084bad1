"""Operating commands: `doctor` (what works here), `backup` and `restore` (the whole install)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bot.cli.common import app, fail
from bot.doctor import HEARTBEAT_MAX_AGE_S
from bot.errors import BotError
from bot.settings import Settings


@app.command()
def doctor(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Only settings, storage, database and heartbeat (the healthcheck)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for each model endpoint.")
    ] = 3.0,
    max_heartbeat_age: Annotated[
        float, typer.Option(min=1.0, help="Older service heartbeats count as a stuck service.")
    ] = HEARTBEAT_MAX_AGE_S,
) -> None:
    """Check settings, storage, transports, backends and GPU; recommend how to train each persona.

    Exit status 0 when everything the service needs works (warnings allowed), 1 otherwise.
    Secrets are shown only as set or missing.
    """
    from bot.doctor import CheckStatus, DoctorReport, load_settings, render_report, run_doctor

    settings, row = load_settings()
    if settings is None:
        report = DoctorReport((row,))
    else:
        report = run_doctor(
            settings,
            quick=quick,
            timeout_s=timeout,
            heartbeat_max_age_s=max_heartbeat_age,
            settings_row=row,
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    elif quick:
        broken = [check for check in report.checks if check.status is CheckStatus.FAIL]
        for check in broken:
            typer.echo(f"{check.name}: {check.detail}")
        if not broken:
            typer.echo("healthy")
    else:
        console = Console()
        for part in render_report(report):
            console.print(part)
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def backup(
    out: Annotated[Path, typer.Argument(help="The archive to write (.tar.gz).")],
    runs: Annotated[
        bool, typer.Option("--runs/--no-runs", help="Include training runs (adapters, models).")
    ] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
) -> None:
    """Archive the database (a consistent snapshot, also while serving) and the data dir.

    The archive holds private chats: it is written readable only by you (0600).
    """
    from bot.backup import create_backup

    try:
        result = create_backup(Settings(), out, include_runs=runs, overwrite=force)
    except (BotError, OSError) as exc:
        raise fail(exc) from exc
    console = Console()
    console.print(
        f"Backup: {escape(str(result.path))} ({len(result.manifest.files)} files, "
        f"{result.bytes / 2**20:,.1f} MB). It holds private chats: keep it as safe as them.",
        highlight=False,
        soft_wrap=True,
    )
    for path in result.skipped:
        console.print(f"Not archived (a link or special file): {escape(path)}", highlight=False)


@app.command()
def restore(
    archive: Annotated[Path, typer.Argument(help="An archive written by `wa-persona backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace the data dir's current contents.")
    ] = False,
) -> None:
    """Restore a backup into the data dir: checked against its manifest, then swapped in whole.

    Stop the service first. A data dir that already holds data is replaced only with --force.
    """
    from bot.backup import restore_backup

    try:
        result = restore_backup(Settings(), archive, force=force)
    except (BotError, OSError) as exc:
        raise fail(exc) from exc
    versions = ", ".join(f"{name} v{version}" for name, version in result.components.items())
    Console().print(
        f"Restored {result.files} files into {escape(str(result.data_dir))}"
        f"{' (replacing what was there)' if result.replaced else ''}; database schema: "
        f"{escape(versions) or 'none'}; {result.moved_paths} model folder path(s) moved to "
        "the new data dir.",
        highlight=False,
        soft_wrap=True,
    )
