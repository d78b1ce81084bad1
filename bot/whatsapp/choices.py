"""Questions asked as a numbered text list, remembered per chat until the number comes back.

When the choices do not fit WhatsApp's buttons or list (too many, labels too long), the
question goes out as text with numbered lines. The reply "2" then means the second choice:
`NumberedChoices.answer` turns it back into that choice's payload, which the webhook puts in
`Incoming.choice` as if a button had been pressed. Pending questions are kept in the
service's SQLite database (`whatsapp_pending_choices`: chat id, the choices' payloads, when
asked; no message text), so a restart between the question and its answer loses nothing, as
button replies already survive one. They expire after WhatsApp's 24-hour customer-service
window, after which the bot could not answer anyway.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence

from sqlite_utils import Database

from bot.channels import Choice
from training.db import connect, migrate

__all__ = ["NUMBERED_HINT", "NumberedChoices", "numbered_text"]

NUMBERED_HINT = "Reply with a number."
PENDING_TTL_S = 24 * 3600.0
NUMBER = re.compile(r"^\s*#?(\d{1,3})\s*[.)]?\s*$")
"""A reply that is only a number: "2", " 2 ", "2.", "2)", "#2"."""


def numbered_text(text: str, choices: Sequence[Choice]) -> str:
    """The question, one numbered line per choice, and how to answer."""
    lines = "\n".join(f"{number}. {choice.label}" for number, choice in enumerate(choices, 1))
    return f"{text}\n\n{lines}\n\n{NUMBERED_HINT}"


COMPONENT = "whatsapp_choices"
MIGRATIONS = [
    """
    CREATE TABLE whatsapp_pending_choices (
        chat_id TEXT PRIMARY KEY,
        payloads TEXT NOT NULL,
        asked_at REAL NOT NULL
    );
    """,
]


class NumberedChoices:
    """The numbered question each chat was asked last, until it is answered or replaced.

    `db` is the service's database (an in-memory one when None, for tests and scripts);
    `clock` gives wall-clock seconds, so an age still means something after a restart.
    """

    def __init__(
        self,
        db: Database | None = None,
        *,
        ttl_s: float = PENDING_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db if db is not None else connect(":memory:")
        self.ttl_s = ttl_s
        self._clock = clock
        migrate(self.db, COMPONENT, MIGRATIONS)

    def ask(self, chat_id: str, choices: Sequence[Choice]) -> None:
        """Remember that `chat_id` was asked these choices (replacing any earlier question)."""
        now = self._clock()
        payloads = json.dumps([c.payload for c in choices])
        with self.db.atomic():
            self.db.execute(
                "DELETE FROM whatsapp_pending_choices WHERE asked_at < ?", [now - self.ttl_s]
            )
            self.db.execute(
                "INSERT OR REPLACE INTO whatsapp_pending_choices VALUES (?, ?, ?)",
                [chat_id, payloads, now],
            )

    def forget(self, chat_id: str) -> None:
        """Drop the chat's pending question (a new question was asked another way)."""
        with self.db.atomic():
            self.db.execute("DELETE FROM whatsapp_pending_choices WHERE chat_id = ?", [chat_id])

    def answer(self, chat_id: str, text: str) -> str | None:
        """The payload `text` picks, if it is a number of the chat's pending question.

        A matching answer settles the question; anything else leaves it pending.
        """
        row = self.db.execute(
            "SELECT payloads, asked_at FROM whatsapp_pending_choices WHERE chat_id = ?",
            [chat_id],
        ).fetchone()
        if row is None:
            return None
        payloads: list[str] = json.loads(row[0])
        if self._clock() - row[1] > self.ttl_s:
            self.forget(chat_id)
            return None
        match = NUMBER.match(text)
        if match is None or not 1 <= int(match.group(1)) <= len(payloads):
            return None
        self.forget(chat_id)
        return payloads[int(match.group(1)) - 1]

    def __len__(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM whatsapp_pending_choices").fetchone()[0])
