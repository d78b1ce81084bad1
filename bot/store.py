"""The bot's memory: each chat's conversation with each persona, and which persona a chat uses.

A turn is one side's consecutive messages, stored with its bubbles (a JSON list), the time it
arrived (the persona's local wall-clock time, as the engine's clock gives it) and, for the
persona's turns, the backend and model that wrote it. Turns are ordered by insertion, not by
time, so a clock that jumps never reorders a conversation. Tables live in the one wa-persona
database and are created by `training.db.migrate` (component "bot").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlite_utils import Database

from bot.backends.base import ChatTurn
from training.db import migrate

__all__ = ["COMPONENT", "MIGRATIONS", "Store", "StoredTurn"]

COMPONENT = "bot"

MIGRATIONS = [
    """
    CREATE TABLE chat_turns (
        id INTEGER PRIMARY KEY,
        chat_id TEXT NOT NULL,
        persona TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        bubbles TEXT NOT NULL,
        at TEXT NOT NULL,
        backend TEXT,
        model TEXT
    );
    CREATE INDEX chat_turns_by_chat ON chat_turns (chat_id, persona, id);
    CREATE INDEX chat_turns_by_persona ON chat_turns (persona);
    CREATE TABLE chat_personas (
        chat_id TEXT PRIMARY KEY,
        persona TEXT NOT NULL,
        bound_at TEXT NOT NULL
    );
    CREATE INDEX chat_personas_by_persona ON chat_personas (persona);
    """,
]

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class StoredTurn:
    """A turn as stored: the chat turn plus its row id, persona and, for replies, the writer."""

    id: int
    chat_id: str
    persona: str
    role: Role
    bubbles: tuple[str, ...]
    at: datetime
    backend: str | None = None
    model: str | None = None

    @property
    def turn(self) -> ChatTurn:
        """The turn as backends take it."""
        return ChatTurn(self.role, self.bubbles, self.at)


class Store:
    """Conversations and chat bindings in the wa-persona database.

    One instance (one connection) belongs to one thread; the engine uses it from its event
    loop only. Every write is one short transaction.

    `training.db.connect` opens it with `synchronous = NORMAL`: in WAL mode a commit then
    skips its fsync (the WAL is synced at checkpoints), which took ~90% of the engine's own
    time per reply and put its p99 at 10-16 ms (docs/benchmarks.md, "Persona engine"). The
    database stays consistent; an OS crash or power loss may drop the last few turns, an
    application crash drops nothing.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, COMPONENT, MIGRATIONS)

    # --- conversation -------------------------------------------------------------------

    def append_turn(
        self,
        chat_id: str,
        persona: str,
        turn: ChatTurn,
        *,
        backend: str | None = None,
        model: str | None = None,
    ) -> StoredTurn:
        """Add `turn` at the end of the chat's conversation with `persona`."""
        if not turn.bubbles:
            raise ValueError("a turn needs at least one bubble")
        with self.db.atomic():
            cursor = self.db.execute(
                "INSERT INTO chat_turns (chat_id, persona, role, bubbles, at, backend, model)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    chat_id,
                    persona,
                    turn.role,
                    _bubbles_json(turn.bubbles),
                    turn.at.isoformat(),
                    backend,
                    model,
                ],
            )
        row_id = cursor.lastrowid
        assert row_id is not None
        return StoredTurn(
            row_id, chat_id, persona, turn.role, tuple(turn.bubbles), turn.at, backend, model
        )

    def extend_turn(self, turn_id: int, bubbles: Sequence[str], at: datetime) -> StoredTurn:
        """Add `bubbles` to a stored turn (more messages of one side); `at` becomes its time."""
        with self.db.atomic():
            found = self._turn(turn_id)
            joined = (*found.bubbles, *bubbles)
            self.db.execute(
                "UPDATE chat_turns SET bubbles = ?, at = ? WHERE id = ?",
                [_bubbles_json(joined), at.isoformat(), turn_id],
            )
        return StoredTurn(
            found.id,
            found.chat_id,
            found.persona,
            found.role,
            joined,
            at,
            found.backend,
            found.model,
        )

    def history(
        self, chat_id: str, limit: int | None = None, *, persona: str | None = None
    ) -> list[StoredTurn]:
        """The chat's last `limit` turns (all when None), oldest first; optionally one persona's."""
        if limit is not None and limit <= 0:
            return []
        where, params = "chat_id = ?", [chat_id]
        if persona is not None:
            where += " AND persona = ?"
            params.append(persona)
        tail = "" if limit is None else f" LIMIT {int(limit)}"
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM chat_turns WHERE {where} ORDER BY id DESC{tail}", params
        ).fetchall()
        return [_from_row(row) for row in reversed(rows)]

    def reset(self, chat_id: str) -> int:
        """Forget the chat's conversation (every persona's); return the turns removed."""
        with self.db.atomic():
            cursor = self.db.execute("DELETE FROM chat_turns WHERE chat_id = ?", [chat_id])
        return cursor.rowcount

    # --- which persona a chat talks to ----------------------------------------------------

    def bind(self, chat_id: str, persona: str) -> None:
        """Make `persona` the one that answers in `chat_id` (replacing any earlier one)."""
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO chat_personas (chat_id, persona, bound_at) VALUES (?, ?, ?)"
                " ON CONFLICT (chat_id) DO UPDATE SET persona = excluded.persona,"
                " bound_at = excluded.bound_at",
                [chat_id, persona, datetime.now(UTC).isoformat()],
            )

    def persona_for(self, chat_id: str) -> str | None:
        """The persona bound to `chat_id`, or None."""
        row = self.db.execute(
            "SELECT persona FROM chat_personas WHERE chat_id = ?", [chat_id]
        ).fetchone()
        return None if row is None else str(row[0])

    def delete_persona(self, persona: str) -> int:
        """Remove every conversation with `persona` and every chat bound to it; return turns."""
        with self.db.atomic():
            cursor = self.db.execute("DELETE FROM chat_turns WHERE persona = ?", [persona])
            self.db.execute("DELETE FROM chat_personas WHERE persona = ?", [persona])
        return cursor.rowcount

    def _turn(self, turn_id: int) -> StoredTurn:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM chat_turns WHERE id = ?", [turn_id]
        ).fetchone()
        if row is None:
            raise KeyError(f"no stored turn {turn_id}")
        return _from_row(row)


_COLUMNS = "id, chat_id, persona, role, bubbles, at, backend, model"


def _bubbles_json(bubbles: Sequence[str]) -> str:
    return json.dumps(list(bubbles), ensure_ascii=False)


def _from_row(row: tuple[Any, ...]) -> StoredTurn:
    row_id, chat_id, persona, role, bubbles, at, backend, model = row
    return StoredTurn(
        id=row_id,
        chat_id=chat_id,
        persona=persona,
        role=role,
        bubbles=tuple(json.loads(bubbles)),
        at=datetime.fromisoformat(at),
        backend=backend,
        model=model,
    )
