"""The model registry on real SQLite files: numbering, persistence, activation, transitions."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from training.db import DatabaseError, connect
from training.registry import (
    BackendKind,
    ModelStatus,
    Registry,
    RegistryError,
    UnknownVersionError,
    import_model,
    persona_slug,
)

ADAPTER = BackendKind.LOCAL_ADAPTER


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "wa-persona.db"


@pytest.fixture
def registry(db_path: Path) -> Registry:
    return Registry.open(db_path)


def _ready(registry: Registry, persona: str = "Maya") -> str:
    return registry.create(persona, ADAPTER, status=ModelStatus.READY).version


def test_versions_count_per_persona_from_one(registry: Registry) -> None:
    made = [registry.create(name, ADAPTER).version for name in ("Maya", "Sam", "Maya", "Maya")]
    assert made == ["maya-v1", "sam-v1", "maya-v2", "maya-v3"]


def test_create_records_every_field(registry: Registry) -> None:
    created = registry.create(
        "Maya",
        ADAPTER,
        base_model="HuggingFaceTB/SmolLM2-135M",
        path=Path("/runs/maya-v1/adapter"),
        dataset_sha256="ab" * 32,
        config={"lora_r": 16, "output_dir": Path("/runs/maya-v1")},
        metrics={"eval_loss": 2},
        notes="first try",
    )
    assert created.status is ModelStatus.TRAINING
    assert created.kind is ADAPTER
    assert created.path == "/runs/maya-v1/adapter"
    assert created.config == {"lora_r": 16, "output_dir": "/runs/maya-v1"}
    assert created.metrics == {"eval_loss": 2.0}
    assert created.created_at.utcoffset() == timedelta(0)
    assert created.created_at == created.updated_at


def test_slugs_are_lowercase_ascii() -> None:
    assert persona_slug("Zoë") == "zoe"
    assert persona_slug("  Jean-Luc  Picard! ") == "jean-luc-picard"
    assert persona_slug("Straße") == "strasse"
    cyrillic = persona_slug("Мария")
    assert cyrillic.startswith("persona-") and cyrillic == persona_slug("Мария")
    assert cyrillic != persona_slug("Ольга")


def test_personas_sharing_a_slug_get_distinct_versions(registry: Registry) -> None:
    first = registry.create("Zoë", ADAPTER)
    second = registry.create("Zoe", ADAPTER)
    assert (first.version, first.persona) == ("zoe-v1", "Zoë")
    assert (second.version, second.persona) == ("zoe-v2", "Zoe")
    assert [v.version for v in registry.list("Zoë")] == ["zoe-v1"]


def test_data_survives_reopening_the_file(db_path: Path) -> None:
    first = Registry.open(db_path)
    version = first.create("Maya", BackendKind.OPENAI, remote_id="ft:gpt-4o-mini:maya").version
    first.update(version, status=ModelStatus.READY, metrics={"eval_loss": 1.5})
    first.activate(version)
    first.db.close()

    reopened = Registry.open(db_path)
    found = reopened.get(version)
    assert found.status is ModelStatus.ACTIVE
    assert found.remote_id == "ft:gpt-4o-mini:maya"
    assert found.metrics == {"eval_loss": 1.5}
    assert reopened.active("Maya") == found
    assert reopened.create("Maya", ADAPTER).version == "maya-v2"


def test_concurrent_creation_from_two_connections_gives_distinct_versions(db_path: Path) -> None:
    Registry.open(db_path)  # migrate once, as the first process would
    per_thread, threads_n = 25, 2
    made: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def create_many() -> None:
        registry = Registry.open(db_path)  # its own connection
        barrier.wait()
        try:
            for _ in range(per_thread):
                made.append(registry.create("Maya", ADAPTER).version)
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=create_many) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(made) == sorted(f"maya-v{n}" for n in range(1, per_thread * threads_n + 1))


def test_version_numbers_are_unique_in_the_table(registry: Registry) -> None:
    registry.create("Maya", ADAPTER)
    with pytest.raises(sqlite3.IntegrityError):
        registry.db.execute(
            "INSERT INTO model_versions (version, persona, slug, number, kind, status,"
            " created_at, updated_at) VALUES ('maya-v1b', 'Maya', 'maya', 1, 'openai',"
            " 'ready', 'x', 'x')"
        )


def test_activate_switches_the_active_version(registry: Registry) -> None:
    first, second = _ready(registry), _ready(registry)
    other = _ready(registry, "Sam")
    registry.activate(other)
    registry.activate(first)
    switched = registry.activate(second)

    assert switched.status is ModelStatus.ACTIVE
    assert registry.get(first).status is ModelStatus.READY
    assert registry.active("Maya") == switched
    assert registry.active("Sam") == registry.get(other)
    assert [v.version for v in registry.list(statuses=[ModelStatus.ACTIVE])] == [other, second]


def test_activating_the_active_version_changes_nothing(registry: Registry) -> None:
    version = _ready(registry)
    before = registry.activate(version)
    assert registry.activate(version) == before


def test_a_retired_version_can_be_activated_again(registry: Registry) -> None:
    version = _ready(registry)
    registry.retire(version)
    assert registry.activate(version).status is ModelStatus.ACTIVE


def test_the_database_allows_one_active_version_per_persona(registry: Registry) -> None:
    registry.activate(_ready(registry))
    second = _ready(registry)
    with pytest.raises(sqlite3.IntegrityError):
        registry.db.execute(
            "UPDATE model_versions SET status = 'active' WHERE version = ?", [second]
        )


def test_a_failed_activation_leaves_the_active_version_in_place(registry: Registry) -> None:
    active = _ready(registry)
    registry.activate(active)
    # Make the second half of the switch fail: the first half must be rolled back with it.
    registry.db.execute(
        "CREATE TRIGGER refuse AFTER UPDATE OF status ON model_versions"
        " WHEN NEW.status = 'active' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    with pytest.raises(sqlite3.IntegrityError):
        registry.activate(_ready(registry))
    assert registry.active("Maya").version == active


def test_a_failed_version_cannot_be_activated(registry: Registry) -> None:
    version = registry.create("Maya", ADAPTER).version
    registry.update(version, status=ModelStatus.FAILED, notes="CUDA out of memory")
    with pytest.raises(RegistryError) as caught:
        registry.activate(version)
    message = str(caught.value)
    assert "maya-v1 is failed (CUDA out of memory)" in message
    assert "wa-persona train" in message
    assert registry.get(version).status is ModelStatus.FAILED


def test_a_training_version_cannot_be_activated(registry: Registry) -> None:
    version = registry.create("Maya", ADAPTER).version
    with pytest.raises(RegistryError, match="maya-v1 is training and cannot become active; wait"):
        registry.activate(version)
    assert registry.active("Maya") is None


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (ModelStatus.TRAINING, ModelStatus.RETIRED),
        (ModelStatus.READY, ModelStatus.TRAINING),
        (ModelStatus.READY, ModelStatus.FAILED),
        (ModelStatus.FAILED, ModelStatus.READY),
    ],
)
def test_update_refuses_transitions_outside_the_table(
    registry: Registry, start: ModelStatus, target: ModelStatus
) -> None:
    version = registry.create("Maya", ADAPTER, status=start).version
    with pytest.raises(RegistryError, match=f"is {start} and cannot become {target}"):
        registry.update(version, status=target)
    assert registry.get(version).status is start


def test_update_points_to_activate_for_active(registry: Registry) -> None:
    version = _ready(registry)
    with pytest.raises(RegistryError, match=r"use activate\('maya-v1'\)"):
        registry.update(version, status=ModelStatus.ACTIVE)


def test_create_refuses_an_active_status(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="activate"):
        registry.create("Maya", ADAPTER, status=ModelStatus.ACTIVE)


def test_training_becomes_ready_with_its_path(registry: Registry) -> None:
    version = registry.create("Maya", ADAPTER).version
    updated = registry.update(version, status=ModelStatus.READY, path="/runs/maya-v1/adapter")
    assert (updated.status, updated.path) == (ModelStatus.READY, "/runs/maya-v1/adapter")
    assert updated.updated_at > updated.created_at


def test_metrics_merge_into_the_stored_ones(registry: Registry) -> None:
    version = registry.create(
        "Maya", ADAPTER, metrics={"train_loss": 3.0, "eval_loss": 2.9}
    ).version
    registry.update(version, metrics={"eval_loss": 2.1, "style_distance": 0.4})
    assert registry.get(version).metrics == {
        "train_loss": 3.0,
        "eval_loss": 2.1,
        "style_distance": 0.4,
    }


@pytest.mark.parametrize("bad", ["low", float("nan"), True])
def test_metrics_must_be_finite_numbers(registry: Registry, bad: object) -> None:
    version = registry.create("Maya", ADAPTER).version
    with pytest.raises(RegistryError, match="eval_loss"):
        registry.update(version, metrics={"eval_loss": bad})  # type: ignore[dict-item]


def test_list_filters_and_orders_newest_first(registry: Registry) -> None:
    registry.create("Maya", ADAPTER)
    registry.create("Sam", ADAPTER, status=ModelStatus.READY)
    registry.create("Maya", BackendKind.OPENAI, status=ModelStatus.READY)
    registry.create("Maya", ADAPTER, status=ModelStatus.FAILED)

    assert [v.version for v in registry.list()] == ["maya-v3", "maya-v2", "sam-v1", "maya-v1"]
    assert [v.version for v in registry.list("Maya")] == ["maya-v3", "maya-v2", "maya-v1"]
    ready_or_failed = registry.list(statuses=[ModelStatus.READY, ModelStatus.FAILED])
    assert [v.version for v in ready_or_failed] == ["maya-v3", "maya-v2", "sam-v1"]
    maya_ready = registry.list("Maya", statuses=[ModelStatus.READY])
    assert [v.version for v in maya_ready] == ["maya-v2"]
    assert registry.list(statuses=[]) == []
    assert registry.list("Nobody") == []


def test_retire_takes_the_active_version_out_of_use(registry: Registry) -> None:
    version = _ready(registry)
    registry.activate(version)
    assert registry.retire(version).status is ModelStatus.RETIRED
    assert registry.active("Maya") is None


def test_delete_persona_removes_only_its_versions(registry: Registry) -> None:
    kept = _ready(registry, "Sam")
    registry.create("Maya", ADAPTER, path="/runs/maya-v1")
    registry.activate(_ready(registry))

    removed = registry.delete_persona("Maya")

    assert sorted((v.version, v.path) for v in removed) == [
        ("maya-v1", "/runs/maya-v1"),
        ("maya-v2", None),
    ]
    assert registry.list("Maya") == []
    assert registry.active("Maya") is None
    assert [v.version for v in registry.list()] == [kept]


def test_unknown_version_names_close_matches(registry: Registry) -> None:
    registry.create("Maya", ADAPTER)
    with pytest.raises(UnknownVersionError) as caught:
        registry.get("maya-v9")
    assert "no model version 'maya-v9'; did you mean maya-v1?" in str(caught.value)
    assert "wa-persona models" in str(caught.value)
    with pytest.raises(UnknownVersionError):
        registry.activate("sam-v1")


def test_to_dict_is_json_ready(registry: Registry) -> None:
    created = registry.create("Zoë", BackendKind.OPENAI_COMPATIBLE, endpoint="http://h/v1")
    record = json.loads(json.dumps(created.to_dict()))
    assert record["kind"] == "openai-compatible"
    assert record["status"] == "training"
    assert record["persona"] == "Zoë"
    assert record["created_at"] == created.created_at.isoformat()


def test_a_database_from_a_newer_schema_is_refused(db_path: Path) -> None:
    Registry.open(db_path).db.close()
    db = connect(db_path)
    db.execute("INSERT INTO schema_migrations (component, version) VALUES ('registry', 99)")
    with pytest.raises(DatabaseError, match="registry schema is version 99"):
        Registry(db)


def test_import_reads_the_adapter_base_model(registry: Registry, tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M"})
    )
    imported = import_model(registry, "Maya", ADAPTER, path=adapter)
    assert imported.status is ModelStatus.READY
    assert imported.base_model == "HuggingFaceTB/SmolLM2-135M"
    assert imported.path == str(adapter.resolve())


@pytest.mark.parametrize(
    ("kind", "fields", "message"),
    [
        (ADAPTER, {}, r"needs a path \(--path\)"),
        (BackendKind.LOCAL_MODEL, {"path": "MISSING"}, "no such folder"),
        (ADAPTER, {"path": "EMPTY"}, "no adapter_config.json"),
        (BackendKind.LOCAL_MODEL, {"path": "EMPTY"}, "no config.json"),
        (BackendKind.OPENAI, {"path": "EMPTY", "remote_id": "ft:x"}, "does not apply"),
        (BackendKind.OPENAI_COMPATIBLE, {"remote_id": "m"}, r"needs an endpoint"),
        (BackendKind.OPENAI_COMPATIBLE, {"remote_id": "m", "endpoint": "localhost:8000"}, "http"),
    ],
)
def test_import_refuses_what_cannot_be_reached(
    registry: Registry, tmp_path: Path, kind: BackendKind, fields: dict[str, str], message: str
) -> None:
    (tmp_path / "EMPTY").mkdir()
    resolved = {
        key: str(tmp_path / value) if key == "path" else value for key, value in fields.items()
    }
    with pytest.raises(RegistryError, match=message):
        import_model(registry, "Maya", kind, **resolved)  # type: ignore[arg-type]
    assert registry.list() == []
