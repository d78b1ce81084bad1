"""Training configs: strict keys, dotted overrides, presets, and the documented reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import (
    ConfigError,
    TrainConfig,
    config_reference,
    list_presets,
    load_train_config,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_key_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  name: m\nlora:\n  rr: 8\n")
    with pytest.raises(ConfigError) as caught:
        load_train_config(path)
    assert "config key lora.rr: unknown key (did you mean lora.r?)" in str(caught.value)


def test_unknown_top_level_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  name: m\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="config key learning_rate: unknown key"):
        load_train_config(path)


def test_dotted_overrides_set_nested_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  name: m\nlora:\n  r: 8\n")
    config = load_train_config(
        path, {"lora.r": 32, "training.learning_rate": 1e-4, "eval.every": 25, "seed": 3}
    )
    assert (config.lora.r, config.training.learning_rate, config.eval.every, config.seed) == (
        32,
        1e-4,
        25,
        3,
    )
    assert config.lora.alpha == 32  # untouched keys keep their defaults


def test_override_of_an_unknown_nested_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  name: m\n")
    with pytest.raises(ConfigError) as caught:
        load_train_config(path, {"training.learning_rat": 0.1})
    assert "training.learning_rat: unknown key (did you mean training.learning_rate?)" in str(
        caught.value
    )


def test_override_below_a_value_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  name: m\nmethod: lora\n")
    with pytest.raises(ConfigError, match="method is a value, not a section"):
        load_train_config(path, {"method.kind": "x"})


def test_invalid_values_name_their_key(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  name: m\n")
    with pytest.raises(ConfigError) as caught:
        load_train_config(path, {"training.batch_size": 0, "method": "dora", "eval.every": "x"})
    message = str(caught.value)
    assert "config key training.batch_size: Input should be greater than or equal to 1" in message
    assert "config key method: Input should be 'lora', 'qlora' or 'full'" in message
    assert "config key eval.every: must be 'epoch' or a number of steps of at least 1" in message


def test_missing_model_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config key model: required"):
        load_train_config(write(tmp_path, "method: lora\n"))


def test_resume_true_needs_the_run_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"resume: true continues the run in output\.dir"):
        load_train_config(write(tmp_path, "model:\n  name: m\nresume: true\n"))
    config = load_train_config(
        write(tmp_path, "model:\n  name: m\nresume: true\noutput:\n  dir: runs/a\n")
    )
    assert config.resume is True
    path_resume = load_train_config(write(tmp_path, "model:\n  name: m\nresume: runs/a\n"))
    assert path_resume.resume == Path("runs/a")


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ConfigError, match=r"did you mean qwen2\.5-0\.5b-lora") as caught:
        load_train_config("qwen2.5-05b-lora")
    assert "llama3.1-8b-qlora" in str(caught.value)


def test_presets_cover_three_families_small_and_mid() -> None:
    names = set(list_presets())
    for family in ("qwen2.5-0.5b", "qwen2.5-7b", "llama3.2-1b", "llama3.1-8b", "mistral-7b",
                   "mistral-nemo-12b"):  # fmt: skip
        assert {f"{family}-lora", f"{family}-qlora"} <= names
    assert "qwen2.5-0.5b-full" in names


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_loads(name: str) -> None:
    config = load_train_config(name)
    assert isinstance(config, TrainConfig)
    assert config.method == name.rsplit("-", 1)[1]
    if config.method == "qlora":
        assert config.quantization.bits == 4 and config.quantization.quant_type == "nf4"
        assert config.training.padding_free and config.training.gradient_checkpointing
        assert config.training.liger_kernel == "auto"
        assert config.model.attn_implementation == "auto"  # flash attention where installed


def test_docs_hold_the_current_config_reference() -> None:
    assert config_reference() in DOCS.read_text(encoding="utf-8")
