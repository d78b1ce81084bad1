"""Questions asked as a numbered text list, remembered per chat until the number comes back.

When the choices do not fit WhatsApp's buttons or list (too many, labels too long), the
question goes out as text with numbered lines. The reply "2" then means the second choice:
`NumberedChoices.answer` turns it back into that choice's payload, which the webhook puts in
`Incoming.choice` as if a button had been pressed. Pending questions live in memory (a
restart forgets them; the person is asked again) and expire after WhatsApp's 24-hour
customer-service window, after which the bot could not answer anyway.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.channels import Choice

__all__ = ["NUMBERED_HINT", "NumberedChoices", "numbered_text"]

NUMBERED_HINT = "Reply with a number."
PENDING_TTL_S = 24 * 3600.0
NUMBER = re.compile(r"^\s*#?(\d{1,3})\s*[.)]?\s*$")
"""A reply that is only a number: "2", " 2 ", "2.", "2)", "#2"."""


def numbered_text(text: str, choices: Sequence[Choice]) -> str:
    """The question, one numbered line per choice, and how to answer."""
    lines = "\n".join(f"{number}. {choice.label}" for number, choice in enumerate(choices, 1))
    return f"{text}\n\n{lines}\n\n{NUMBERED_HINT}"


@dataclass(frozen=True, slots=True)
class _Pending:
    payloads: tuple[str, ...]
    asked_at: float


class NumberedChoices:
    """The numbered question each chat was asked last, until it is answered or replaced."""

    def __init__(
        self, *, ttl_s: float = PENDING_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._pending: dict[str, _Pending] = {}

    def ask(self, chat_id: str, choices: Sequence[Choice]) -> None:
        """Remember that `chat_id` was asked these choices (replacing any earlier question)."""
        self._pending[chat_id] = _Pending(tuple(c.payload for c in choices), self._clock())

    def forget(self, chat_id: str) -> None:
        """Drop the chat's pending question (a new question was asked another way)."""
        self._pending.pop(chat_id, None)

    def answer(self, chat_id: str, text: str) -> str | None:
        """The payload `text` picks, if it is a number of the chat's pending question.

        A matching answer settles the question; anything else leaves it pending.
        """
        pending = self._pending.get(chat_id)
        if pending is None:
            return None
        if self._clock() - pending.asked_at > self.ttl_s:
            del self._pending[chat_id]
            return None
        match = NUMBER.match(text)
        if match is None or not 1 <= int(match.group(1)) <= len(pending.payloads):
            return None
        del self._pending[chat_id]
        return pending.payloads[int(match.group(1)) - 1]

    def __len__(self) -> int:
        return len(self._pending)
