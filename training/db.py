"""The one SQLite database: opening it (WAL, foreign keys) and versioned schema migrations.

Every component that keeps tables (the model registry, OpenAI job tracking, later the bot's
storage) lists its migrations as plain SQL scripts and calls `migrate`; applied versions are
recorded per component in `schema_migrations`, so each script runs exactly once, inside one
transaction with its record.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from sqlite_utils import Database

from training.errors import TrainingError

__all__ = ["DatabaseError", "connect", "migrate", "schema_version"]


class DatabaseError(TrainingError):
    """The database cannot be opened or is newer than this version of wa-persona."""


def connect(path: str | Path) -> Database:
    """Open (creating it and its folder) the database at `path`, in WAL mode."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db = Database(conn)
        db.execute("PRAGMA foreign_keys = ON")
        # Deleted rows hold private chat text: overwrite them instead of leaving free pages.
        db.execute("PRAGMA secure_delete = ON")
        db.enable_wal()
        # In WAL mode NORMAL skips the fsync per commit (the WAL is synced at checkpoints):
        # ~90% of the engine's own time per reply with FULL (docs/benchmarks.md, "Persona
        # engine"). Still consistent; an OS crash or power loss may drop the last commits.
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " component TEXT NOT NULL, version INTEGER NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),"
            " PRIMARY KEY (component, version))"
        )
    except sqlite3.Error as exc:
        raise DatabaseError(f"{path}: cannot open the database ({exc})") from exc
    return db


def schema_version(db: Database, component: str) -> int:
    """The highest migration of `component` applied to `db` (0 when none)."""
    row = db.execute(
        "SELECT MAX(version) FROM schema_migrations WHERE component = ?", [component]
    ).fetchone()
    return row[0] or 0


def migrate(db: Database, component: str, migrations: Sequence[str]) -> int:
    """Apply `component`'s scripts not yet applied (script i is version i + 1); return the version.

    A database migrated by a newer wa-persona (more versions than `migrations`) is refused
    rather than misread.
    """
    current = schema_version(db, component)
    if current > len(migrations):
        raise DatabaseError(
            f"the database's {component} schema is version {current}, newer than this "
            f"wa-persona knows ({len(migrations)}); upgrade wa-persona"
        )
    for version, script in enumerate(migrations[current:], start=current + 1):
        with db.atomic():
            for statement in _statements(script):
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations (component, version) VALUES (?, ?)",
                [component, version],
            )
    return len(migrations)


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit mid-transaction)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
