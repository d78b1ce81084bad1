"""The conversation store: turns per chat and persona, in order, kept across restarts."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.backends.base import ChatTurn
from bot.store import Store
from training.db import connect, schema_version

AT = datetime(2024, 3, 12, 21, 0)


def turn(role: str, *bubbles: str, minutes: int = 0) -> ChatTurn:
    return ChatTurn(role, bubbles, AT + timedelta(minutes=minutes))  # type: ignore[arg-type]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "wa-persona.db"


@pytest.fixture
def store(db_path: Path) -> Store:
    return Store(connect(db_path))


def test_turns_survive_closing_and_reopening_the_database(db_path: Path) -> None:
    first = Store(connect(db_path))
    first.append_turn("c1", "Maya", turn("user", "hey", "u there? 😂"))
    first.append_turn("c1", "Maya", turn("assistant", "yesss"), backend="local", model="maya-v2")
    first.db.close()

    again = Store(connect(db_path))
    stored = again.history("c1")
    assert [(t.role, t.bubbles, t.at, t.backend, t.model) for t in stored] == [
        ("user", ("hey", "u there? 😂"), AT, None, None),
        ("assistant", ("yesss",), AT, "local", "maya-v2"),
    ]
    assert stored[0].turn == turn("user", "hey", "u there? 😂")
    assert schema_version(again.db, "bot") == 1


def test_history_is_oldest_first_and_limited_to_the_latest_turns(store: Store) -> None:
    for n in range(5):
        store.append_turn("c1", "Maya", turn("user" if n % 2 == 0 else "assistant", f"m{n}"))
    assert [t.bubbles[0] for t in store.history("c1")] == ["m0", "m1", "m2", "m3", "m4"]
    assert [t.bubbles[0] for t in store.history("c1", 3)] == ["m2", "m3", "m4"]
    assert store.history("c1", 0) == []
    assert store.history("other") == []


def test_history_is_ordered_by_arrival_even_when_the_clock_goes_back(store: Store) -> None:
    store.append_turn("c1", "Maya", turn("user", "first", minutes=10))
    store.append_turn("c1", "Maya", turn("assistant", "second", minutes=0))
    assert [t.bubbles for t in store.history("c1")] == [("first",), ("second",)]


def test_history_can_be_read_for_one_persona(store: Store) -> None:
    store.append_turn("c1", "Maya", turn("user", "to maya"))
    store.append_turn("c1", "Sam", turn("user", "to sam"))
    assert [t.bubbles for t in store.history("c1", persona="Sam")] == [("to sam",)]
    assert len(store.history("c1")) == 2


def test_extend_turn_adds_bubbles_and_moves_its_time(store: Store) -> None:
    first = store.append_turn("c1", "Maya", turn("user", "hey"))
    later = AT + timedelta(seconds=20)
    extended = store.extend_turn(first.id, ["are u coming?"], later)
    assert extended.bubbles == ("hey", "are u coming?")
    assert store.history("c1")[0].bubbles == ("hey", "are u coming?")
    assert store.history("c1")[0].at == later


def test_reset_forgets_only_that_chat(store: Store) -> None:
    store.append_turn("c1", "Maya", turn("user", "a"))
    store.append_turn("c1", "Sam", turn("user", "b"))
    store.append_turn("c2", "Maya", turn("user", "c"))
    assert store.reset("c1") == 2
    assert store.history("c1") == []
    assert [t.bubbles for t in store.history("c2")] == [("c",)]


def test_a_chat_is_bound_to_one_persona_at_a_time(store: Store, db_path: Path) -> None:
    assert store.persona_for("c1") is None
    store.bind("c1", "Maya")
    store.bind("c2", "Maya")
    store.bind("c1", "Sam")
    assert store.persona_for("c1") == "Sam"
    assert Store(connect(db_path)).persona_for("c2") == "Maya"


def test_delete_persona_removes_its_conversations_and_bindings(store: Store) -> None:
    store.append_turn("c1", "Maya", turn("user", "a"))
    store.append_turn("c1", "Maya", turn("assistant", "b"))
    store.append_turn("c1", "Sam", turn("user", "c"))
    store.bind("c1", "Maya")
    store.bind("c2", "Sam")
    assert store.delete_persona("Maya") == 2
    assert [t.persona for t in store.history("c1")] == ["Sam"]
    assert store.persona_for("c1") is None
    assert store.persona_for("c2") == "Sam"


def test_a_turn_without_bubbles_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="bubble"):
        store.append_turn("c1", "Maya", turn("user"))
