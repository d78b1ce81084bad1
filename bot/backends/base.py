"""What every persona backend takes and returns: a `Prompt` in, a `Reply` of bubbles out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

__all__ = ["Backend", "ChatTurn", "Prompt", "Reply"]


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One side's consecutive messages in a live chat; `bubbles` are the separate messages."""

    role: Literal["user", "assistant"]
    bubbles: tuple[str, ...]
    at: datetime

    @property
    def text(self) -> str:
        """The bubbles joined the way the training data joins them (a blank line)."""
        return "\n\n".join(self.bubbles)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A request for the persona's next turn in one chat.

    `history` is oldest first and ends with the user's turn being answered. `strength` runs
    from 0 ("inspired by": freer, more varied) to 1 ("exact replication").
    """

    persona: str
    chat_id: str
    history: tuple[ChatTurn, ...]
    now: datetime
    strength: float = 1.0


@dataclass(frozen=True, slots=True)
class Reply:
    """The persona's turn: its bubbles, and which backend (and model) wrote it."""

    bubbles: tuple[str, ...]
    backend: str
    model: str | None = None
    latency_s: float = 0.0


class Backend(Protocol):
    """A way to write the persona's reply; raises `BackendUnavailable` when it cannot."""

    name: str

    async def reply(self, prompt: Prompt) -> Reply: ...
