"""What every `wa-persona` command shares: the typer app, the error console, `--set` parsing.

Errors from the library become one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="wa-persona",
    help="Learn how one person writes from their chat exports, then answer as them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def fail(exc: Exception) -> typer.Exit:
    """Print `exc` as one error line (verbatim, never as markup) and return exit status 2."""
    err.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


class AssignmentError(ValueError):
    """A `--set` item that is not `key=value`."""


def assignments(items: list[str]) -> dict[str, object]:
    """`key=value` pairs; values are JSON when they parse (`3`, `null`, `[1,3]`), else text."""
    values: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise AssignmentError(f"--set takes key=value, not {item!r}")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    return values
