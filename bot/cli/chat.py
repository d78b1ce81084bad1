"""`wa-persona chat`: talk to a persona in the terminal, through the real engine and backends."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bot.cli.common import app, err, fail
from bot.errors import BotError
from bot.settings import Settings
from style.errors import StyleError
from training.errors import TrainingError

SAMPLE_PERSONA = "Maya"
"""The author of the bundled sample export."""
CHAT_ID = "terminal"


@app.command()
def chat(
    persona: Annotated[
        str | None,
        typer.Option("--persona", "-p", help="Who to talk to (prepared, or built from --export)."),
    ] = None,
    export: Annotated[
        list[Path] | None,
        typer.Option(help="Build the persona from these exports first (cached); repeatable."),
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option(help="Backends to try, in order (default WA_PERSONA_BACKENDS); repeatable."),
    ] = None,
    no_typing: Annotated[
        bool, typer.Option("--no-typing", help="Send replies at once, without typing pauses.")
    ] = False,
    speed: Annotated[
        float | None, typer.Option(help="Typing speed factor (2 = twice as fast).", min=0.01)
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the last terminal conversation.")
    ] = False,
) -> None:
    """Chat with a persona (default: Maya, from the bundled sample). Reads lines from stdin.

    Commands: /quit, /reset, /strength X (0 "inspired by" .. 1 "exact replication").
    """
    from bot.backends.factory import build_chain
    from bot.cli.personas import prepare_with_progress
    from bot.engine import PersonaEngine, PersonaRuntime
    from bot.personas import ensure_persona, load_persona, save_style_strength
    from bot.store import Store
    from bot.terminal import COMMANDS, chat_loop
    from training.db import connect
    from training.registry import Registry

    settings = Settings()
    if speed is not None:
        settings.typing_speed = speed
    try:
        if export:
            if persona is None:
                raise BotError("--export needs --persona: the author's name as the export has it")
            assets = prepare_with_progress(ensure_persona, settings, persona, export)
        elif persona is not None:
            assets = load_persona(settings, persona)
        else:
            from style.sample import sample_paths

            assets = prepare_with_progress(ensure_persona, settings, SAMPLE_PERSONA, sample_paths())
        db = connect(settings.database_path())
        chain = build_chain(assets, settings, Registry(db), backend or None)
    except (BotError, StyleError, TrainingError, OSError) as exc:
        raise fail(exc) from exc

    runtime = PersonaRuntime(assets.name, chain, assets.profile, assets.info.style_strength)
    store = Store(db)
    chat_id = f"{CHAT_ID}:{assets.info.slug}"
    if not resume:
        store.reset(chat_id)
    engine = PersonaEngine(store, {assets.name: runtime}, settings, simulate_typing=not no_typing)
    names = ", ".join(b.name for b in chain.backends)
    interactive = sys.stdin.isatty()
    if interactive:
        err.print(
            f"[bold]{escape(assets.name)}[/] (answering with {escape(names)}). {COMMANDS}",
            highlight=False,
        )

    def remember(strength: float) -> None:
        save_style_strength(settings, assets.name, strength)

    try:
        asyncio.run(
            chat_loop(
                engine,
                assets.name,
                chat_id=chat_id,
                stdin=sys.stdin,
                console=Console(),
                interactive=interactive,
                on_strength=remember,
            )
        )
    except KeyboardInterrupt:
        err.print()
    finally:
        db.close()
