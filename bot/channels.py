"""What transports and the service exchange: an `Incoming` message in, an `Outbox` to answer.

Telegram, WhatsApp and the terminal each translate their own updates into `Incoming` and
implement `Outbox` for their platform; the service never sees a platform object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

__all__ = ["Channel", "Choice", "DocumentRef", "Incoming", "Outbox"]

Channel = Literal["telegram", "whatsapp", "terminal"]


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """A file someone sent (not yet downloaded): the platform's id and what it says it is."""

    file_id: str
    file_name: str | None = None
    mime_type: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    """One answer offered with a question: `payload` comes back in `Incoming.choice`."""

    payload: str
    label: str


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message from a person, on any channel.

    `chat_id` and `user_id` are the platform's ids as text; `message_id` is unique per
    channel (used to drop redeliveries); `choice` is the payload of a pressed button.
    """

    channel: Channel
    chat_id: str
    user_id: str
    message_id: str
    at: datetime
    text: str | None = None
    document: DocumentRef | None = None
    choice: str | None = None
    user_name: str | None = None

    @property
    def sender(self) -> str:
        """`channel:user_id`, the form admin ids take in settings."""
        return f"{self.channel}:{self.user_id}"


class Outbox(Protocol):
    """How the service answers in one channel."""

    async def send_text(self, chat_id: str, text: str) -> None:
        """Send one message (one bubble)."""

    async def send_choices(self, chat_id: str, text: str, choices: list[Choice]) -> None:
        """Ask a question with answers (buttons on Telegram, a numbered list on WhatsApp)."""

    async def typing(self, chat_id: str, on: bool) -> None:
        """Show or stop the typing indicator (a no-op where the platform has none)."""

    async def download(self, document: DocumentRef, dest: Path, *, max_bytes: int) -> Path:
        """Fetch a sent file into `dest`; raises `DownloadError` above `max_bytes`."""
