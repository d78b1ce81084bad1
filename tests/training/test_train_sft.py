"""Training the tiny model for real: LoRA, full, resume, seeds, early stopping, QLoRA checks."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.training.tiny_model import TinyRun, tiny_run_config
from training.errors import TrainingError
from training.progress import ProgressEvent, read_events
from training.sft import QLORA_NEEDS_CUDA, RunResult, train

pytest.importorskip("trl")


def step_losses(events: list[ProgressEvent]) -> dict[int, float]:
    return {event.step: event.loss for event in events if event.kind == "step"}


def eval_losses(events: list[ProgressEvent]) -> dict[int, float]:
    return {event.step: event.eval_loss for event in events if event.kind == "eval"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(model: Path, dataset: Path, out: Path, overrides: dict | None = None) -> TinyRun:
    events: list[ProgressEvent] = []
    result = train(tiny_run_config(model, dataset, out, overrides), on_event=events.append)
    return TinyRun(result, events)


# --- LoRA: outputs, metrics, reload -------------------------------------------------------


def test_lora_lowers_the_held_out_loss(tiny_lora_run: TinyRun) -> None:
    metrics = tiny_lora_run.result.metrics
    evals = eval_losses(tiny_lora_run.events)
    assert list(evals) == [0, 3, 6]
    assert metrics.eval_loss_start == evals[0]
    assert metrics.eval_loss_end == evals[6] < evals[0]
    assert metrics.eval_loss_best == min(evals[3], evals[6])
    assert (metrics.steps, metrics.stopped_early) == (6, False)


def test_run_folder_holds_weights_manifest_card_and_metrics(tiny_lora_run: TinyRun) -> None:
    run_dir = tiny_lora_run.run_dir
    # checkpoints are deleted after a successful run
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "README.md",
        "adapter",
        "manifest.json",
        "metrics.jsonl",
    ]
    adapter = {p.name for p in (run_dir / "adapter").iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    } <= adapter
    assert "training_args.bin" not in adapter  # a pickle; the config is in the manifest


def test_metrics_jsonl_holds_every_event_in_order(tiny_lora_run: TinyRun) -> None:
    written = read_events(tiny_lora_run.run_dir / "metrics.jsonl")
    assert written == tiny_lora_run.events
    kinds = [(event.kind, event.step) for event in written]
    assert kinds == [
        ("start", 0),
        ("eval", 0),
        ("step", 1),
        ("step", 2),
        ("step", 3),
        ("eval", 3),
        ("save", 3),
        ("step", 4),
        ("step", 5),
        ("step", 6),
        ("eval", 6),
        ("save", 6),
        ("end", 6),
    ]
    steps = [event for event in written if event.kind == "step"]
    assert all(e.loss > 0 and e.learning_rate and e.max_steps == 6 for e in steps)
    assert all(e.tokens_per_s > 0 and e.peak_memory_mb > 0 for e in steps)
    assert [e.tokens for e in steps] == sorted(e.tokens for e in steps)  # cumulative
    assert steps[-1].eta_s == 0
    assert written[-1].message == str(tiny_lora_run.run_dir)


def test_manifest_records_what_reproduces_the_run(
    tiny_lora_run: TinyRun, tiny_model_dir: Path, tiny_dataset_dir: Path
) -> None:
    import trl

    manifest = json.loads((tiny_lora_run.run_dir / "manifest.json").read_text("utf-8"))
    assert (manifest["persona"], manifest["method"], manifest["output"]) == (
        "Maya",
        "lora",
        "adapter",
    )
    assert manifest["base_model"]["name"] == str(tiny_model_dir)
    assert manifest["dataset"]["card_sha256"] == sha256(tiny_dataset_dir / "dataset_card.json")
    assert manifest["dataset"]["files"] == {
        name: sha256(tiny_dataset_dir / name)
        for name in ("openai_train.jsonl", "openai_eval.jsonl")
    }
    assert manifest["dataset"]["train"]["kept"] == 212
    assert manifest["config"]["lora"]["r"] == 16
    assert manifest["config"]["training"]["max_steps"] == 6
    assert manifest["config"]["output"]["dir"] == str(tiny_lora_run.run_dir)
    assert manifest["versions"]["trl"] == trl.__version__
    assert {"torch", "transformers", "peft", "accelerate", "datasets", "wa-persona"} <= set(
        key for key, value in manifest["versions"].items() if value
    )
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", manifest["git_revision"])
    assert manifest["metrics"] == tiny_lora_run.result.metrics.to_dict()
    assert manifest["plan"] == {
        "device": "cpu",
        "precision": "fp32",
        "attn_implementation": "sdpa",
        "liger_kernel": False,
        "world_size": 1,
    }
    assert manifest["hardware"]["cpu_count"] >= 1 and manifest["wall_time_s"] > 0


def test_model_card_gives_counts_and_never_chat_text(
    tiny_lora_run: TinyRun, tiny_dataset_dir: Path
) -> None:
    card = (tiny_lora_run.run_dir / "README.md").read_text("utf-8")
    manifest = (tiny_lora_run.run_dir / "manifest.json").read_text("utf-8")
    assert card.startswith("# Maya: LoRA (r=16, alpha=32) of ")
    assert "212 training samples" in card and "24 held-out samples" in card
    assert "## Privacy" in card and "## Intended use" in card
    replies = {
        message["content"]
        for line in (tiny_dataset_dir / "train.jsonl").read_text("utf-8").splitlines()
        for message in json.loads(line)["messages"]
        if message["role"] != "system" and len(message["content"]) >= 12
    }
    assert replies
    assert not [text for text in replies if text in card or text in manifest]


def test_adapter_reloads_on_the_base_and_generates(
    tiny_lora_run: TinyRun, tiny_model_dir: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = tiny_lora_run.run_dir / "adapter"
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    chat = [{"role": "user", "content": "are you coming tonight?"}]
    inputs = tokenizer.apply_chat_template(
        chat, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]
    with torch.no_grad():
        assert not torch.allclose(model(**inputs).logits, base(**inputs).logits)


# --- full fine-tuning ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tiny_model_dir: Path, tiny_dataset_dir: Path) -> TinyRun:
    out = tmp_path_factory.mktemp("full") / "run"
    return run(tiny_model_dir, tiny_dataset_dir, out, {"method": "full"})


def test_full_fine_tuning_lowers_the_loss_and_saves_a_model(full_run: TinyRun) -> None:
    metrics = full_run.result.metrics
    assert metrics.eval_loss_end < metrics.eval_loss_start
    model_dir = full_run.run_dir / "model"
    assert full_run.result.weights_dir == model_dir
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in model_dir.iterdir()
    }
    assert not (full_run.run_dir / "adapter").exists()
    manifest = json.loads((full_run.run_dir / "manifest.json").read_text("utf-8"))
    assert (manifest["method"], manifest["output"]) == ("full", "model")


def test_full_model_loads_alone_and_generates(full_run: TinyRun) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = full_run.run_dir / "model"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}],
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
    )
    output = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]


# --- seeds, interruption and resume ---------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, tiny_model_dir: Path, tiny_dataset_dir: Path) -> Path:
    """The tiny LoRA run stopped by Ctrl-C right after its step-3 checkpoint."""
    out = tmp_path_factory.mktemp("interrupted") / "run"

    def stop_after_first_save(event: ProgressEvent) -> None:
        if event.kind == "save":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            tiny_run_config(tiny_model_dir, tiny_dataset_dir, out), on_event=stop_after_first_save
        )
    return out


def test_same_seed_gives_identical_losses(interrupted: Path, tiny_lora_run: TinyRun) -> None:
    events = read_events(interrupted / "metrics.jsonl")
    reference = tiny_lora_run.events
    assert step_losses(events) == {s: step_losses(reference)[s] for s in (1, 2, 3)}
    assert eval_losses(events) == {s: eval_losses(reference)[s] for s in (0, 3)}


def test_another_seed_gives_other_losses(
    tmp_path: Path, tiny_model_dir: Path, tiny_dataset_dir: Path, tiny_lora_run: TinyRun
) -> None:
    other = run(
        tiny_model_dir, tiny_dataset_dir, tmp_path / "run", {"seed": 7, "training.max_steps": 2}
    )
    assert step_losses(other.events)[2] != step_losses(tiny_lora_run.events)[2]


def test_interruption_is_recorded_and_keeps_the_checkpoint(interrupted: Path) -> None:
    events = read_events(interrupted / "metrics.jsonl")
    assert (events[-1].kind, events[-1].message) == ("error", "interrupted")
    checkpoints = (interrupted / "checkpoints").glob("checkpoint-*")
    assert [p.name for p in checkpoints] == ["checkpoint-3"]
    assert not (interrupted / "manifest.json").exists()


def test_resume_continues_at_the_saved_step(
    interrupted: Path, tiny_model_dir: Path, tiny_dataset_dir: Path, tiny_lora_run: TinyRun
) -> None:
    resumed = run(tiny_model_dir, tiny_dataset_dir, interrupted, {"resume": True})
    start = resumed.events[0]
    assert (start.kind, start.step, start.message) == ("start", 3, "resuming at step 3")
    losses = step_losses(resumed.events)
    assert list(losses) == [4, 5, 6]  # not from step 0
    reference = step_losses(tiny_lora_run.events)
    assert losses == pytest.approx({s: reference[s] for s in (4, 5, 6)}, rel=1e-5)
    metrics = resumed.result.metrics
    assert metrics.steps == 6
    assert metrics.eval_loss_start == tiny_lora_run.result.metrics.eval_loss_start
    manifest = json.loads((interrupted / "manifest.json").read_text("utf-8"))
    assert manifest["resumed_from"] == str(interrupted / "checkpoints" / "checkpoint-3")


def test_a_folder_with_a_run_is_not_overwritten(
    tiny_lora_run: TinyRun, tiny_model_dir: Path, tiny_dataset_dir: Path
) -> None:
    config = tiny_run_config(tiny_model_dir, tiny_dataset_dir, tiny_lora_run.run_dir)
    with pytest.raises(TrainingError, match="already holds a training run"):
        train(config)


# --- early stopping ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def early_stopped(tmp_path_factory, tiny_model_dir: Path, tiny_dataset_dir: Path) -> TinyRun:
    """A learning rate of 1.0 makes the held-out loss rise after the first step."""
    out = tmp_path_factory.mktemp("early") / "run"
    overrides = {
        "training.learning_rate": 1.0,
        "training.scheduler": "constant",
        "training.max_steps": 10,
        "eval.every": 1,
        "eval.early_stopping_patience": 1,
        "output.keep_checkpoints": True,
    }
    return run(tiny_model_dir, tiny_dataset_dir, out, overrides)


def test_early_stopping_stops_when_the_eval_loss_rises(early_stopped: TinyRun) -> None:
    metrics = early_stopped.result.metrics
    assert metrics.stopped_early and metrics.steps < 10
    during = {s: loss for s, loss in eval_losses(early_stopped.events).items() if s > 0}
    assert metrics.best_step == min(during, key=during.get)
    assert metrics.eval_loss_best == during[metrics.best_step]
    assert all(
        loss >= metrics.eval_loss_best for s, loss in during.items() if s > metrics.best_step
    )


def test_early_stopping_keeps_the_best_checkpoint(early_stopped: TinyRun) -> None:
    from safetensors.torch import load_file

    metrics = early_stopped.result.metrics
    assert metrics.best_step != metrics.steps
    saved = load_file(early_stopped.run_dir / "adapter" / "adapter_model.safetensors")
    checkpoints = early_stopped.run_dir / "checkpoints"
    best = load_file(checkpoints / f"checkpoint-{metrics.best_step}" / "adapter_model.safetensors")
    last = load_file(checkpoints / f"checkpoint-{metrics.steps}" / "adapter_model.safetensors")
    assert saved.keys() == best.keys()
    assert all((saved[k] == best[k]).all() for k in saved)
    assert any((saved[k] != last[k]).any() for k in saved)


# --- QLoRA on a machine without CUDA ---------------------------------------------------------


def test_qlora_without_cuda_fails_before_loading_anything(
    tmp_path: Path, tiny_dataset_dir: Path
) -> None:
    # a model that does not exist: any attempt to load it would fail differently
    config = tiny_run_config(tmp_path / "no-such-model", tiny_dataset_dir, tmp_path / "run")
    config = config.model_copy(update={"method": "qlora"})
    with pytest.raises(TrainingError) as caught:
        train(config)
    assert str(caught.value) == QLORA_NEEDS_CUDA
    assert "pip install 'wa-persona[gpu]'" in QLORA_NEEDS_CUDA
    assert not (tmp_path / "run").exists()


def test_qlora_cpu_fallback_trains_lora_and_says_so(
    tmp_path: Path, tiny_model_dir: Path, tiny_dataset_dir: Path
) -> None:
    overrides = {"method": "qlora", "cpu_fallback": True, "training.max_steps": 2, "eval.every": 2}
    result: RunResult = run(tiny_model_dir, tiny_dataset_dir, tmp_path / "run", overrides).result
    manifest = json.loads((result.run_dir / "manifest.json").read_text("utf-8"))
    assert (result.method, manifest["method"], manifest["requested_method"]) == (
        "lora",
        "lora",
        "qlora",
    )
    assert any("cpu_fallback" in note and "plain LoRA" in note for note in manifest["notes"])
    assert (result.run_dir / "adapter" / "adapter_config.json").is_file()


# --- padding-free batches ------------------------------------------------------------------


def test_padding_free_batches_give_the_padded_losses(
    tmp_path: Path, tiny_model_dir: Path, tiny_dataset_dir: Path, tiny_lora_run: TinyRun
) -> None:
    # one row per batch, sequences told apart by position ids (a block-diagonal mask in sdpa)
    overrides = {"training.padding_free": True, "training.max_steps": 1, "eval.every": 1}
    flat = run(tiny_model_dir, tiny_dataset_dir, tmp_path / "run", overrides)
    reference = tiny_lora_run.events
    assert eval_losses(flat.events)[0] == pytest.approx(eval_losses(reference)[0], rel=1e-5)
    assert step_losses(flat.events)[1] == pytest.approx(step_losses(reference)[1], rel=1e-5)
