"""Registry versions become backends: by name (local, openai, base) and by version id."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.backends.factory import UnknownBackendError, build_backend
from bot.backends.local import LocalBackend
from bot.backends.openai_chat import OpenAIChatBackend
from bot.personas import PersonaAssets, prepare_persona
from bot.settings import Settings
from style.sample import sample_paths
from tests.training.tiny_model import tiny_model_dir  # noqa: F401 (session fixture)
from training.registry import BackendKind, ModelStatus, Registry


@pytest.fixture(scope="module")
def maya(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, PersonaAssets]:
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("data"))  # type: ignore[call-arg]
    return settings, prepare_persona(settings, "Maya", sample_paths())


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry.open(tmp_path / "registry.db")


@pytest.fixture
def adapter(tmp_path: Path, tiny_model_dir: Path) -> Path:  # noqa: F811
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    config = LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter"


def local_version(registry: Registry, adapter: Path, base: Path, *, activate: bool) -> str:
    version = registry.create(
        "Maya",
        BackendKind.LOCAL_ADAPTER,
        status=ModelStatus.READY,
        base_model=str(base),
        path=str(adapter),
    ).version
    if activate:
        registry.activate(version)
    return version


def test_local_and_base_follow_the_active_local_version(
    maya: tuple[Settings, PersonaAssets],
    registry: Registry,
    adapter: Path,
    tiny_model_dir: Path,  # noqa: F811
) -> None:
    settings, persona = maya
    assert build_backend("local", persona, settings, registry) is None
    local_version(registry, adapter, tiny_model_dir, activate=True)
    local = build_backend("local", persona, settings, registry)
    base = build_backend("base", persona, settings, registry)
    assert isinstance(local, LocalBackend) and local.source.adapter == adapter
    assert isinstance(base, LocalBackend) and base.source.adapter is None
    assert build_backend("openai", persona, settings, registry) is None


def test_a_version_id_names_that_version_even_when_not_active(
    maya: tuple[Settings, PersonaAssets],
    registry: Registry,
    adapter: Path,
    tiny_model_dir: Path,  # noqa: F811
) -> None:
    settings, persona = maya
    version = local_version(registry, adapter, tiny_model_dir, activate=False)
    backend = build_backend(version, persona, settings, registry)
    base = build_backend(f"base:{version}", persona, settings, registry)
    assert isinstance(backend, LocalBackend) and backend.source.adapter == adapter
    assert isinstance(base, LocalBackend) and base.source.base_model == str(tiny_model_dir)


def test_an_active_openai_compatible_version_is_the_openai_backend(
    maya: tuple[Settings, PersonaAssets], registry: Registry
) -> None:
    settings, persona = maya
    version = registry.create(
        "Maya",
        BackendKind.OPENAI_COMPATIBLE,
        status=ModelStatus.READY,
        remote_id="maya-v1",
        endpoint="http://127.0.0.1:8000/v1",
    ).version
    registry.activate(version)
    backend = build_backend("openai", persona, settings, registry)
    assert isinstance(backend, OpenAIChatBackend)
    assert build_backend("local", persona, settings, registry) is None


def test_failed_versions_and_other_personas_versions_are_refused(
    maya: tuple[Settings, PersonaAssets], registry: Registry
) -> None:
    settings, persona = maya
    failed = registry.create("Maya", BackendKind.LOCAL_ADAPTER, status=ModelStatus.TRAINING)
    registry.update(failed.version, status=ModelStatus.FAILED, notes="diverged")
    other = registry.create(
        "Sam", BackendKind.OPENAI, status=ModelStatus.READY, remote_id="ft:x"
    ).version
    with pytest.raises(UnknownBackendError, match="failed"):
        build_backend(failed.version, persona, settings, registry)
    with pytest.raises(UnknownBackendError, match="unknown backend"):
        build_backend(other, persona, settings, registry)
    with pytest.raises(UnknownBackendError, match="base:VERSION"):
        build_backend("nonsense", persona, settings, registry)
