"""`wa-persona train` and `merge` end to end: JSON progress, the registry, clean failures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.training.tiny_model import TINY_RUN, tiny_dataset_dir, tiny_model_dir
from training.progress import ProgressEvent
from training.registry import BackendKind, ModelStatus, Registry

__all__ = ["tiny_dataset_dir", "tiny_model_dir"]  # fixtures, imported to be found here

pytest.importorskip("trl")
runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings read WA_PERSONA_DATA_DIR: the database and runs go under tmp_path."""
    monkeypatch.setenv("WA_PERSONA_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def config_file(tmp_path: Path, model_dir: Path, **extra: str) -> Path:
    lines = [f"model:\n  name: {model_dir}\n"] + [
        f"{key}: {value}\n" for key, value in extra.items()
    ]
    path = tmp_path / "tiny.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def tiny_sets() -> list[str]:
    return [arg for key, value in TINY_RUN.items() for arg in ("--set", f"{key}={value}")]


def test_train_streams_json_events_and_registers_a_ready_version(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path, tiny_dataset_dir: Path
) -> None:
    args = ["train", "--config", str(config_file(tmp_path, tiny_model_dir))]
    args += ["--dataset", str(tiny_dataset_dir), "--progress", "json", *tiny_sets()]
    result = runner.invoke(app, [*args, "--set", "training.max_steps=3"])
    assert result.exit_code == 0, result.output
    events = [ProgressEvent.from_json(line) for line in result.stdout.splitlines()]
    assert [e.kind for e in events] == [
        "start",
        "eval",
        "step",
        "step",
        "step",
        "eval",
        "save",
        "end",
    ]
    run_dir = Path(events[-1].message)
    assert run_dir.parent == data_dir / "runs" and run_dir.name.startswith("maya-")
    (version,) = Registry.open(data_dir / "wa-persona.db").list()
    assert (version.version, version.persona, version.kind, version.status) == (
        "maya-v1",
        "Maya",
        BackendKind.LOCAL_ADAPTER,
        ModelStatus.READY,
    )
    assert version.path == str(run_dir / "adapter")
    assert version.base_model == str(tiny_model_dir)
    assert version.dataset_sha256 and version.config["training"]["max_steps"] == 3
    manifest = json.loads((run_dir / "manifest.json").read_text("utf-8"))
    assert version.metrics["eval_loss"] == manifest["metrics"]["eval_loss_best"]
    assert version.metrics["steps"] == 3
    assert "Version: maya-v1 (ready)" in result.stderr


def test_failing_run_marks_the_version_failed(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path, tiny_dataset_dir: Path
) -> None:
    # Fails after registering: this template renders a prefix unlike the whole chat.
    template = "'{% for m in messages|reverse %}{{ m.content }}{% endfor %}'"
    config = config_file(tmp_path, tiny_model_dir, persona="Maya")
    config.write_text(
        config.read_text("utf-8").replace("\n", f"\n  chat_template: {template}\n", 1),
        encoding="utf-8",
    )
    args = ["train", "-c", str(config), "--dataset", str(tiny_dataset_dir), "--progress", "none"]
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "run"), *tiny_sets()])
    assert result.exit_code == 2
    assert "not prefix-preserving" in result.stderr
    (version,) = Registry.open(data_dir / "wa-persona.db").list()
    assert version.status is ModelStatus.FAILED
    assert "not prefix-preserving" in version.notes
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text("utf-8").splitlines()[-1])
    assert last["kind"] == "error" and "ChatTemplateError" in last["message"]


def test_config_errors_exit_2_before_anything_is_registered(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path, tiny_dataset_dir: Path
) -> None:
    config = config_file(tmp_path, tiny_model_dir)
    args = ["train", "-c", str(config), "--dataset", str(tiny_dataset_dir), "--set", "lora.rr=4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "config key lora.rr: unknown key (did you mean lora.r?)" in result.stderr
    assert not (data_dir / "wa-persona.db").exists()


def test_qlora_on_this_machine_fails_with_the_fix(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path, tiny_dataset_dir: Path
) -> None:
    args = ["train", "-c", "qwen2.5-0.5b-qlora", "--dataset", str(tiny_dataset_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "QLoRA needs an NVIDIA GPU with CUDA and bitsandbytes" in result.stderr
    assert "cpu_fallback: true" in result.stderr


def test_list_presets_names_every_preset() -> None:
    from training.config import list_presets

    result = runner.invoke(app, ["train", "--list-presets"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert all(name in result.stdout for name in list_presets())


def test_train_without_a_config_says_how() -> None:
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2
    assert "--config" in result.stderr and "--list-presets" in result.stderr


def test_merge_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["merge", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "no manifest.json" in result.stderr


def test_interrupted_run_marks_the_version_failed(
    tmp_path: Path,
    data_dir: Path,
    tiny_model_dir: Path,
    tiny_dataset_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import training.sft

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(training.sft, "train", interrupted)
    args = ["train", "-c", str(config_file(tmp_path, tiny_model_dir))]
    result = runner.invoke(app, [*args, "--dataset", str(tiny_dataset_dir), "--progress", "none"])
    assert result.exit_code != 0
    (version,) = Registry.open(data_dir / "wa-persona.db").list()
    assert (version.status, version.notes) == (ModelStatus.FAILED, "interrupted")


def test_missing_ml_stack_says_which_extra_to_install(
    tmp_path: Path,
    data_dir: Path,
    tiny_model_dir: Path,
    tiny_dataset_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    args = ["train", "-c", str(config_file(tmp_path, tiny_model_dir))]
    result = runner.invoke(app, [*args, "--dataset", str(tiny_dataset_dir)])
    assert result.exit_code == 2
    assert "torch is not installed; install wa-persona[train]" in result.stderr


def test_a_fetched_model_is_found_by_its_catalogue_name_in_the_data_dir(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path, tiny_dataset_dir: Path
) -> None:
    import shutil

    from training.pretrained import CATALOGUE, SOURCE_FILE

    fetched = data_dir / "models" / "smollm2-135m"
    shutil.copytree(tiny_model_dir, fetched)
    source = {"gguf_sha256": CATALOGUE["smollm2-135m"].sha256}
    (fetched / SOURCE_FILE).write_text(json.dumps(source), "utf-8")
    args = ["train", "--config", str(config_file(tmp_path, tiny_model_dir))]
    args += ["--dataset", str(tiny_dataset_dir), "--progress", "none", *tiny_sets()]
    result = runner.invoke(
        app, [*args, "--set", "model.name=smollm2-135m", "--set", "training.max_steps=1"]
    )
    assert result.exit_code == 0, result.output
    (version,) = Registry.open(data_dir / "wa-persona.db").list()
    assert version.base_model == str(fetched.resolve())
