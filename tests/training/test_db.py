"""The shared SQLite database: pragmas, and migrations applied once per component."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.db import DatabaseError, connect, migrate, schema_version


def test_the_database_is_wal_with_normal_sync_and_secure_delete(tmp_path: Path) -> None:
    db = connect(tmp_path / "db.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert db.execute("PRAGMA secure_delete").fetchone()[0] == 1


def test_migrations_run_once_per_component_and_newer_schemas_are_refused(tmp_path: Path) -> None:
    scripts = ["CREATE TABLE a (x INTEGER);\nCREATE INDEX a_x ON a (x);", "ALTER TABLE a ADD y;"]
    db = connect(tmp_path / "db.sqlite")
    assert migrate(db, "one", scripts) == 2
    assert migrate(connect(tmp_path / "db.sqlite"), "one", scripts) == 2
    assert schema_version(db, "one") == 2 and schema_version(db, "other") == 0
    with pytest.raises(DatabaseError, match="newer than this wa-persona knows"):
        migrate(db, "one", scripts[:1])


def test_a_failing_migration_leaves_nothing_half_applied(tmp_path: Path) -> None:
    db = connect(tmp_path / "db.sqlite")
    with pytest.raises(Exception, match="already exists"):
        migrate(db, "bad", ["CREATE TABLE b (x);", "CREATE TABLE c (x);\nCREATE TABLE b (x);"])
    assert schema_version(db, "bad") == 1
    assert "c" not in db.table_names()
