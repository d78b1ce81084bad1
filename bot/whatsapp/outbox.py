"""`Outbox` for WhatsApp: how the service answers one incoming message's chat.

WhatsApp has no free-standing "typing…": the Cloud API shows it when a received message is
marked read with a typing indicator, and hides it when we reply or after 25 seconds. So
`typing(True)` marks the chat's latest received message read (the blue ticks appear when the
persona "picks up the phone") and keeps re-marking it every ~20 s while typing stays on;
`typing(False)` only stops that, because the indicator ends with the reply itself. A reply
sent without "typing…" (its plan sends it at once) marks the message read first, plainly: a
person who answers has read what they answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from bot.channels import Choice, DocumentRef
from bot.errors import TransportError
from bot.whatsapp.graph import GraphClient

__all__ = ["TYPING_REFRESH_S", "WhatsAppOutbox"]

logger = logging.getLogger(__name__)

TYPING_REFRESH_S = 20.0
"""Re-send the indicator this often: it lasts up to 25 s, with room for the round trip."""


class WhatsAppOutbox:
    """Sends through a `GraphClient`; `latest` maps each chat to its last received message id.

    Call `close()` when the message is handled: it stops any "typing…" still being kept up.
    """

    def __init__(
        self,
        graph: GraphClient,
        latest: Mapping[str, str],
        *,
        refresh_s: float = TYPING_REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.graph = graph
        self.latest = latest
        self.refresh_s = refresh_s
        self._clock = clock
        self._shown_at: dict[str, float] = {}
        self._keepers: dict[str, asyncio.Task[None]] = {}
        self._marked: set[str] = set()  # received message ids already marked read (or tried)

    async def send_text(self, chat_id: str, text: str) -> None:
        """Send one bubble (several messages only when it exceeds 4096 characters)."""
        await self._mark_read(chat_id)
        await self.graph.send_text(chat_id, text)
        self._shown_at.pop(chat_id, None)

    async def send_choices(self, chat_id: str, text: str, choices: list[Choice]) -> None:
        """Ask with buttons, a list, or a numbered text whose number comes back as a choice."""
        await self._mark_read(chat_id)
        await self.graph.send_choices(chat_id, text, choices)
        self._shown_at.pop(chat_id, None)

    async def typing(self, chat_id: str, on: bool) -> None:
        """Show "typing…" (and keep it up) or stop keeping it up."""
        if not on:
            await _cancel(self._keepers.pop(chat_id, None))
            return
        if chat_id in self._keepers:
            return
        shown_at = self._shown_at.get(chat_id)
        if shown_at is None or self._clock() - shown_at >= self.refresh_s:
            await self._show(chat_id)
        self._keepers[chat_id] = asyncio.create_task(
            self._keep_up(chat_id), name=f"whatsapp-typing-{chat_id}"
        )

    async def download(self, document: DocumentRef, dest: Path, *, max_bytes: int) -> Path:
        """Save the sent file as `dest`; `DownloadError` above `max_bytes` (before fetching)."""
        return await self.graph.download(document.file_id, dest, max_bytes=max_bytes)

    async def close(self) -> None:
        """Stop every typing indicator this outbox keeps up."""
        keepers, self._keepers = list(self._keepers.values()), {}
        for keeper in keepers:
            await _cancel(keeper)

    async def _keep_up(self, chat_id: str) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self._show(chat_id)

    async def _mark_read(self, chat_id: str) -> None:
        """Mark the chat's latest message read, without "typing…", unless that was done."""
        message_id = self.latest.get(chat_id)
        if message_id is not None and message_id not in self._marked:
            await self._receipt(message_id, typing=False)

    async def _show(self, chat_id: str) -> None:
        message_id = self.latest.get(chat_id)
        if message_id is not None and await self._receipt(message_id, typing=True):
            self._shown_at[chat_id] = self._clock()

    async def _receipt(self, message_id: str, *, typing: bool) -> bool:
        """Mark a message read (showing "typing…"); False when Graph refused (logged only:
        a missing receipt never stops the reply)."""
        self._marked.add(message_id)
        try:
            await self.graph.mark_read(message_id, typing=typing)
        except TransportError as exc:
            what = "show typing" if typing else "mark a message read"
            logger.warning("could not %s on WhatsApp: %s", what, exc)
            return False
        return True


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
