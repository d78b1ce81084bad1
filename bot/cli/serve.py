"""`wa-persona serve`: run the bot in Telegram and WhatsApp until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio

import typer

from bot.cli.common import app, fail
from bot.errors import BotError
from training.errors import TrainingError


@app.command()
def serve() -> None:
    """Answer as the personas in Telegram and WhatsApp, run jobs and scheduled retraining.

    At least one messenger must be set up (WA_PERSONA_* variables or .env: see .env.example).
    SIGTERM or Ctrl-C stops it cleanly; docs/serve.md says what starts and stops when.
    """
    from bot.app import configure_logging, configured_transports
    from bot.app import serve as run_service
    from bot.doctor import load_settings

    settings, row = load_settings()
    if settings is None:
        raise fail(BotError(f"settings {row.detail}"))
    try:
        configured_transports(settings)
        configure_logging(settings.log_level)
        asyncio.run(run_service(settings))
    except (BotError, TrainingError, OSError) as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        raise typer.Exit(130) from None
