"""Persona assets on disk (prepared, reloaded, rebuilt safely, deleted) and their backends."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.backends.base import ChatTurn, Prompt
from bot.backends.factory import NoBackendError, UnknownBackendError, build_backend, build_chain
from bot.errors import BackendError
from bot.personas import (
    PREPARE_STEPS,
    PersonaAssets,
    PersonaError,
    UnknownPersonaError,
    delete_persona,
    ensure_persona,
    list_personas,
    load_persona,
    prepare_persona,
    save_style_strength,
)
from bot.settings import Settings
from bot.store import Store
from style.profile import Profile
from style.sample import sample_paths
from tests.bot.prepared import settings_for
from tests.training.tiny_model import tiny_model_dir
from training.db import connect
from training.registry import BackendKind, ModelStatus, Registry

__all__ = ["tiny_model_dir"]  # a fixture, imported to be found here

NOW = datetime(2024, 3, 12, 21, 0)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, PersonaAssets, list[str]]:
    """Maya prepared once from the bundled sample (about a second)."""
    settings = settings_for(tmp_path_factory.mktemp("data"))
    steps: list[str] = []
    assets = prepare_persona(settings, "Maya", sample_paths(), on_progress=steps.append)
    return settings, assets, steps


@pytest.fixture
def copied(prepared: tuple[Settings, PersonaAssets, list[str]], tmp_path: Path) -> Settings:
    """A data dir of its own holding a copy of the prepared Maya, for tests that change it."""
    _, assets, _ = prepared
    own = settings_for(tmp_path / "data")
    shutil.copytree(assets.folder, own.data_dir / "personas" / "maya")
    return own


def test_prepare_writes_every_asset(prepared: tuple[Settings, PersonaAssets, list[str]]) -> None:
    settings, assets, steps = prepared
    folder = settings.data_dir / "personas" / "maya"
    assert assets.folder == folder
    assert steps == list(PREPARE_STEPS)
    for name in ("persona.json", "profile.json", "card.txt", "exchanges.npz"):
        assert (folder / name).is_file(), name
    for name in ("train.jsonl", "eval.jsonl", "openai_train.jsonl", "dataset_card.json"):
        assert (folder / "dataset" / name).is_file(), name
    first = json.loads((folder / "dataset" / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][0] == {"role": "system", "content": assets.card}
    assert assets.card.startswith("You are Maya")
    assert [p.name for p in folder.parent.iterdir()] == ["maya"]  # no build folder left


def test_persona_json_names_sources_by_hash_only(
    prepared: tuple[Settings, PersonaAssets, list[str]],
) -> None:
    _, assets, _ = prepared
    raw = (assets.folder / "persona.json").read_text(encoding="utf-8")
    info = json.loads(raw)
    assert info["name"] == "Maya"
    assert [sorted(source) for source in info["sources"]] == [["sha256", "size"]] * 2
    assert "Sam" not in raw and ".txt" not in raw
    assert info["counts"]["exchanges"] == len(assets.index) > 1000
    assert info["counts"]["train_samples"] > info["counts"]["eval_samples"] > 0
    assert info["style_strength"] == 1.0


def test_load_persona_round_trips(prepared: tuple[Settings, PersonaAssets, list[str]]) -> None:
    settings, assets, _ = prepared
    loaded = load_persona(settings, "maya")  # by slug: case does not matter
    assert loaded.name == "Maya"
    assert loaded.info == assets.info
    assert loaded.card == assets.card
    assert loaded.profile == Profile.from_json((assets.folder / "profile.json").read_text())
    assert loaded.profile.persona == "Maya"
    found = loaded.index.search([ChatTurn("user", ("are u coming tonight?",), NOW)], k=3)
    assert found and all(item.exchange.reply for item in found)
    assert [info.name for info in list_personas(settings)] == ["Maya"]


def test_ensure_reuses_assets_while_sources_and_settings_are_unchanged(copied: Settings) -> None:
    before = load_persona(copied, "Maya").info
    calls: list[str] = []
    again = ensure_persona(copied, "Maya", sample_paths(), on_progress=calls.append)
    assert calls == []
    assert again.info == before


def test_ensure_rebuilds_when_the_scrub_settings_change_and_keeps_the_strength(
    copied: Settings,
) -> None:
    save_style_strength(copied, "Maya", 0.4)
    before = load_persona(copied, "Maya").info
    changed = copied.model_copy(update={"scrub_blocklist": ["tonight"]})
    calls: list[str] = []
    rebuilt = ensure_persona(changed, "Maya", sample_paths(), on_progress=calls.append)
    assert calls == list(PREPARE_STEPS)
    assert rebuilt.info.build_key != before.build_key
    assert rebuilt.info.created_at == before.created_at
    assert rebuilt.info.style_strength == 0.4
    train = (rebuilt.dataset_dir / "train.jsonl").read_text(encoding="utf-8")
    assert "tonight" not in train.lower()


def test_a_dataset_tokenizer_sizes_the_samples_exactly_and_rebuilds_the_persona(
    copied: Settings, tiny_model_dir: Path
) -> None:
    before = load_persona(copied, "Maya")
    card = json.loads((before.dataset_dir / "dataset_card.json").read_text("utf-8"))
    assert card["tokens"]["counter"].startswith("estimate")
    sized = copied.model_copy(update={"dataset_tokenizer": str(tiny_model_dir)})
    calls: list[str] = []
    rebuilt = ensure_persona(sized, "Maya", sample_paths(), on_progress=calls.append)
    assert calls == list(PREPARE_STEPS)  # the tokenizer is part of what shapes the assets
    card = json.loads((rebuilt.dataset_dir / "dataset_card.json").read_text("utf-8"))
    assert card["tokens"]["counter"] == str(tiny_model_dir)


def test_an_unfetched_model_as_dataset_tokenizer_is_refused(copied: Settings) -> None:
    sized = copied.model_copy(update={"dataset_tokenizer": "smollm2-135m"})
    with pytest.raises(PersonaError, match="wa-persona models fetch smollm2-135m"):
        prepare_persona(sized, "Maya", sample_paths())
    assert load_persona(copied, "Maya").info.build_key  # the previous assets are untouched


def test_a_damaged_persona_is_reported_and_rebuilt_by_ensure(copied: Settings) -> None:
    (copied.data_dir / "personas" / "maya" / "persona.json").write_text("{not json")
    with pytest.raises(PersonaError, match=r"damaged.*wa-persona persona add"):
        load_persona(copied, "Maya")
    calls: list[str] = []
    rebuilt = ensure_persona(copied, "Maya", sample_paths(), on_progress=calls.append)
    assert calls == list(PREPARE_STEPS)
    assert rebuilt.info.counts["exchanges"] > 0


def test_a_failing_rebuild_keeps_the_previous_assets(copied: Settings, tmp_path: Path) -> None:
    folder = copied.data_dir / "personas" / "maya"
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    corrupt = tmp_path / "corrupt.txt"
    corrupt.write_bytes(b"\x00\x01not a chat\x02")

    with pytest.raises(PersonaError, match="previous assets are kept"):
        prepare_persona(copied, "Maya", [sample_paths()[0], corrupt])

    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in folder.parent.iterdir()] == ["maya"]
    assert load_persona(copied, "Maya").info.counts["exchanges"] > 0


def test_a_crash_late_in_the_rebuild_keeps_the_previous_assets(copied: Settings) -> None:
    folder = copied.data_dir / "personas" / "maya"
    before = (folder / "persona.json").read_bytes()

    def disk_full_at_save(step: str) -> None:
        if step == "save":  # dataset and index are already written into the build folder
            raise OSError(28, "No space left on device")

    changed = copied.model_copy(update={"scrub_blocklist": ["tonight"]})
    with pytest.raises(PersonaError, match="No space left"):
        prepare_persona(changed, "Maya", sample_paths(), on_progress=disk_full_at_save)

    assert (folder / "persona.json").read_bytes() == before
    assert [p.name for p in folder.parent.iterdir()] == ["maya"]
    assert "tonight" in (folder / "dataset" / "train.jsonl").read_text(encoding="utf-8")


def test_a_name_that_is_not_an_author_is_refused_and_lists_the_authors(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    with pytest.raises(PersonaError, match="Maya"):
        prepare_persona(settings, "Zed", sample_paths())
    assert list_personas(settings) == []


def test_unknown_persona_lists_the_known_ones_and_says_how_to_add_one(copied: Settings) -> None:
    with pytest.raises(UnknownPersonaError) as error:
        load_persona(copied, "Sam")
    assert "known personas: Maya" in str(error.value)
    assert "wa-persona persona add" in str(error.value)


def test_style_strength_is_stored_and_checked(copied: Settings) -> None:
    save_style_strength(copied, "Maya", 0.25)
    assert load_persona(copied, "Maya").info.style_strength == 0.25
    with pytest.raises(PersonaError, match="0 to 1"):
        save_style_strength(copied, "Maya", 1.5)


def test_delete_removes_files_model_versions_and_conversations(
    copied: Settings, tmp_path: Path
) -> None:
    run = copied.runs_dir() / "maya-20240312" / "adapter"
    run.mkdir(parents=True)
    elsewhere = tmp_path / "imported-adapter"
    elsewhere.mkdir()
    db = connect(copied.database_path())
    registry = Registry(db)
    registry.create("Maya", BackendKind.LOCAL_ADAPTER, status=ModelStatus.READY, path=run)
    registry.create("Maya", BackendKind.LOCAL_ADAPTER, status=ModelStatus.READY, path=elsewhere)
    registry.create("Sam", BackendKind.OPENAI, status=ModelStatus.READY, remote_id="ft:x")
    store = Store(db)
    store.append_turn("c1", "Maya", ChatTurn("user", ("hey",), NOW))
    store.bind("c1", "Maya")

    deleted = delete_persona(copied, "maya")

    assert deleted.name == "Maya"
    assert deleted.files
    assert sorted(deleted.versions) == ["maya-v1", "maya-v2"]
    assert deleted.turns == 1
    assert deleted.kept_paths == (str(elsewhere),)
    assert not (copied.data_dir / "personas" / "maya").exists()
    assert not run.parent.exists()
    assert elsewhere.is_dir()
    assert [v.persona for v in registry.list()] == ["Sam"]
    assert store.history("c1") == [] and store.persona_for("c1") is None
    with pytest.raises(UnknownPersonaError):
        delete_persona(copied, "Maya")


def test_chain_skips_backends_that_are_not_set_up(
    prepared: tuple[Settings, PersonaAssets, list[str]], tmp_path: Path
) -> None:
    settings, assets, _ = prepared
    registry = Registry(connect(tmp_path / "registry.db"))
    offline = build_chain(assets, settings, registry, ["claude", "retrieval"])
    assert [backend.name for backend in offline.backends] == ["retrieval"]

    remote = settings.model_copy(
        update={"allow_remote_backends": True, "anthropic_api_key": SecretStr("sk-test")}
    )
    both = build_chain(assets, remote, registry, ["claude", "retrieval"])
    assert [backend.name for backend in both.backends] == ["claude", "retrieval"]
    assert both.backends[0].card == assets.card  # type: ignore[attr-defined]


def test_chain_refuses_unknown_repeated_or_no_usable_backends(
    prepared: tuple[Settings, PersonaAssets, list[str]], tmp_path: Path
) -> None:
    settings, assets, _ = prepared
    registry = Registry(connect(tmp_path / "registry.db"))
    with pytest.raises(
        UnknownBackendError, match="choose from base, claude, local, openai, retrieval"
    ):
        build_backend("gpt9", assets, settings, registry)
    with pytest.raises(BackendError, match="listed twice"):
        build_chain(assets, settings, registry, ["retrieval", "retrieval"])
    with pytest.raises(NoBackendError, match="add retrieval"):
        build_chain(assets, settings, registry, ["claude"])


@pytest.mark.anyio
async def test_retrieval_backend_answers_with_a_reply_maya_really_sent(
    prepared: tuple[Settings, PersonaAssets, list[str]], tmp_path: Path
) -> None:
    settings, assets, _ = prepared
    registry = Registry(connect(tmp_path / "registry.db"))
    backend = build_backend("retrieval", assets, settings, registry)
    assert backend is not None
    turn = ChatTurn("user", ("are u coming tonight?",), NOW)
    reply = await backend.reply(Prompt("Maya", "c1", (turn,), NOW))
    sent = {exchange.reply for exchange in assets.index.exchanges}
    assert reply.backend == "retrieval" and reply.bubbles in sent
