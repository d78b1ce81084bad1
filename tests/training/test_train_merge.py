"""Merging a run's adapter into its base: the same model, in one folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.tiny_model import TinyRun
from training.errors import TrainingError
from training.merge import MergeError, merge_adapter

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def merged_dir(tmp_path_factory, tiny_lora_run: TinyRun) -> Path:
    return merge_adapter(tiny_lora_run.run_dir, tmp_path_factory.mktemp("merge") / "maya")


def test_merged_model_gives_the_logits_of_base_plus_adapter(
    merged_dir: Path, tiny_lora_run: TinyRun, tiny_model_dir: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "what time tonight?"}, {"role": "assistant", "content": "8"}],
        return_dict=True,
        return_tensors="pt",
    )
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), tiny_lora_run.run_dir / "adapter"
    )
    with torch.no_grad():
        expected = adapted(**inputs).logits
        assert torch.allclose(merged(**inputs).logits, expected, atol=1e-5)
        assert not torch.allclose(base(**inputs).logits, expected, atol=1e-5)


def test_merged_folder_has_tokenizer_and_points_at_its_run(
    merged_dir: Path, tiny_lora_run: TinyRun, tiny_model_dir: Path
) -> None:
    names = {p.name for p in merged_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "manifest.json"} <= names
    assert "adapter_config.json" not in names
    source = json.loads((merged_dir / "manifest.json").read_text("utf-8"))
    assert source["merged_from"] == str(tiny_lora_run.run_dir.resolve())
    assert source["base_model"]["name"] == str(tiny_model_dir)
    assert (source["persona"], source["method"], source["dtype"]) == ("Maya", "lora", "float32")


def test_full_fine_tuning_run_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({"output": "model"}), encoding="utf-8")
    with pytest.raises(MergeError, match="full fine-tuning run"):
        merge_adapter(run_dir, tmp_path / "out")


def test_occupied_output_folder_is_refused(tiny_lora_run: TinyRun, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(MergeError, match="not empty"):
        merge_adapter(tiny_lora_run.run_dir, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_folder_without_a_manifest_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"no manifest\.json"):
        merge_adapter(tmp_path, tmp_path / "out")
