"""The terminal transport: chat with a persona on stdin/stdout, through the same engine.

Each line read is one message. In a terminal, replies arrive while you type (a message sent
while the persona is still "typing" joins your turn, as in Telegram); with piped input each
line waits for its reply, so `printf 'hey\\nhow are u\\n' | wa-persona chat --no-typing`
prints one reply per line and exits at the end of the input. Commands: `/quit`, `/reset`,
`/strength X` (0 "inspired by" .. 1 "exact replication").
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.status import Status
from rich.text import Text

from bot.backends.base import Reply
from bot.engine import PersonaEngine
from bot.errors import BackendError

__all__ = ["COMMANDS", "TerminalDelivery", "chat_loop"]

COMMANDS = "/quit, /reset, /strength X (0 inspired by .. 1 exact)"


class TerminalDelivery:
    """Prints each bubble as a line, with the backend that wrote it (dim).

    "typing…" is a transient status line on a terminal and a dim line otherwise.
    """

    def __init__(self, console: Console, persona: str) -> None:
        self.console = console
        self.persona = persona
        self._status: Status | None = None

    async def typing(self, on: bool) -> None:
        """Show or clear "<persona> is typing…"."""
        label = f"{self.persona} is typing…"
        if not self.console.is_terminal:
            if on:
                self.console.print(Text(label, style="dim italic"))
            return
        if on and self._status is None:
            self._status = self.console.status(Text(label, style="dim italic"))
            self._status.start()
        elif not on and self._status is not None:
            self._status.stop()
            self._status = None

    async def send(self, bubble: str, reply: Reply) -> None:
        """Print one bubble: `Maya: text (backend)`."""
        line = Text.assemble(
            (f"{self.persona}: ", "bold magenta"), bubble, (f"  ({reply.backend})", "dim")
        )
        self.console.print(line, soft_wrap=True)

    async def failed(self, error: BackendError) -> None:
        """Say that no backend answered, and why."""
        self.console.print(Text(f"(no reply: {error})", style="red"), soft_wrap=True)


@dataclass(frozen=True, slots=True)
class _Line:
    text: str | None
    """None at the end of the input."""


async def chat_loop(
    engine: PersonaEngine,
    persona: str,
    *,
    chat_id: str,
    stdin: TextIO,
    console: Console,
    interactive: bool,
    on_strength: Callable[[float], None] | None = None,
) -> None:
    """Read messages and commands until `/quit` or the end of the input.

    Args:
        interactive: replies arrive while the next line is typed; False waits for each
            reply before reading on (piped input) and echoes the lines read.
        on_strength: called with a new style strength (e.g. to save it with the persona).
    """
    delivery = TerminalDelivery(console, persona)
    lines = _read_lines(stdin)
    try:
        while (line := (await lines.get()).text) is not None:
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                if not await _command(engine, persona, chat_id, text, console, on_strength):
                    return
                continue
            if not interactive:
                console.print(Text.assemble(("you: ", "bold cyan"), text), soft_wrap=True)
            await engine.handle(chat_id, persona, [text], delivery)
            if not interactive:
                await engine.wait(chat_id)
        await engine.wait(chat_id)
    finally:
        await engine.close()
        await delivery.typing(False)


async def _command(
    engine: PersonaEngine,
    persona: str,
    chat_id: str,
    text: str,
    console: Console,
    on_strength: Callable[[float], None] | None,
) -> bool:
    """Run one slash command; False means quit."""
    command, _, argument = text.partition(" ")
    if command == "/quit":
        return False
    if command == "/reset":
        await engine.reset(chat_id)
        console.print(Text("(conversation forgotten)", style="dim"))
        return True
    if command == "/strength":
        try:
            strength = float(argument)
        except ValueError:
            strength = -1.0
        if not 0.0 <= strength <= 1.0:
            console.print(Text("(/strength takes a number from 0 to 1, e.g. /strength 0.5)"))
            return True
        engine.persona(persona).strength = strength
        if on_strength is not None:
            on_strength(strength)
        console.print(Text(f"(style strength {strength:g})", style="dim"))
        return True
    console.print(Text(f"(unknown command {command}; commands: {COMMANDS})", style="dim"))
    return True


def _read_lines(stdin: TextIO) -> asyncio.Queue[_Line]:
    """Lines of `stdin`, read by a daemon thread (so Ctrl-C never waits for Enter)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[_Line] = asyncio.Queue()

    def put(line: _Line) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        except RuntimeError:  # the chat ended (/quit) and its loop is closed
            return False
        return True

    def read() -> None:
        for raw in iter(stdin.readline, ""):
            if not put(_Line(raw.rstrip("\r\n"))):
                return
        put(_Line(None))

    threading.Thread(target=read, name="terminal-stdin", daemon=True).start()
    return queue
