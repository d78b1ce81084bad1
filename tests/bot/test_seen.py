"""Redelivered updates are recognised, also after reopening the database."""

from __future__ import annotations

from pathlib import Path

from bot.seen import SeenUpdates
from training.db import connect


def test_an_update_is_new_only_once(tmp_path: Path) -> None:
    seen = SeenUpdates(connect(tmp_path / "db.sqlite"))
    assert seen.first_time("whatsapp", "wamid.1") is True
    assert seen.first_time("whatsapp", "wamid.1") is False
    assert seen.first_time("telegram", "wamid.1") is True


def test_seen_ids_survive_a_restart(tmp_path: Path) -> None:
    SeenUpdates(connect(tmp_path / "db.sqlite")).first_time("telegram", "42")
    assert SeenUpdates(connect(tmp_path / "db.sqlite")).first_time("telegram", "42") is False


def test_prune_forgets_old_ids_only(tmp_path: Path) -> None:
    db = connect(tmp_path / "db.sqlite")
    seen = SeenUpdates(db)
    seen.first_time("whatsapp", "old")
    seen.first_time("whatsapp", "new")
    db.execute("UPDATE seen_updates SET seen_at = '2000-01-01T00:00:00Z' WHERE update_id = 'old'")
    assert seen.prune(30) == 1
    assert seen.first_time("whatsapp", "old") is True
    assert seen.first_time("whatsapp", "new") is False
