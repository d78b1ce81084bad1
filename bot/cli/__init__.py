"""The `wa-persona` command line: a thin layer over the library that mirrors its functions.

One module per area registers its commands on the shared `app`; heavy modules are imported
inside commands, so `wa-persona --help` stays instant.
"""

from bot.cli import (
    chat,
    data,
    evaluate,
    models,
    openai_jobs,
    ops,
    personas,
    pipeline,
    serve,
    train,
)
from bot.cli.common import app

__all__ = ["app", "main"]

_COMMAND_MODULES = (
    chat,
    data,
    evaluate,
    models,
    openai_jobs,
    ops,
    personas,
    pipeline,
    serve,
    train,
)


def main() -> None:
    """Console-script entry point."""
    app()
