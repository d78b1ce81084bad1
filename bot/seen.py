"""Which platform updates were already handled, kept in SQLite so redeliveries are dropped.

Telegram and WhatsApp both retry a webhook delivery they think failed; the message id makes
the second copy recognisable, also after a restart.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database

from training.db import migrate

__all__ = ["SeenUpdates"]

MIGRATIONS = [
    """
    CREATE TABLE seen_updates (
        channel TEXT NOT NULL,
        update_id TEXT NOT NULL,
        seen_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
        PRIMARY KEY (channel, update_id)
    );
    CREATE INDEX seen_updates_by_time ON seen_updates (seen_at);
    """,
]


class SeenUpdates:
    """A persistent set of (channel, update id) pairs."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, "seen", MIGRATIONS)

    def first_time(self, channel: str, update_id: str) -> bool:
        """Record the update; True only the first time it is seen (atomic across processes)."""
        try:
            with self.db.atomic():
                self.db.execute(
                    "INSERT INTO seen_updates (channel, update_id) VALUES (?, ?)",
                    [channel, update_id],
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def prune(self, older_than_days: int = 30) -> int:
        """Forget ids older than the platforms' retry windows; returns how many went."""
        with self.db.atomic():
            cursor = self.db.execute(
                "DELETE FROM seen_updates WHERE seen_at < strftime('%Y-%m-%dT%H:%M:%SZ', 'now', ?)",
                [f"-{older_than_days} days"],
            )
        return cursor.rowcount
