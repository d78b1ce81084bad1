"""Fine-tune an open chat model on a persona dataset: LoRA, QLoRA or full, with TRL's SFTTrainer.

`train(config)` reads top to bottom: find the data and the persona, check the machine
(before anything heavy loads), pick the run folder, seed, load the tokenizer and tokenize
with our own loss mask, load the model (quantized for QLoRA), configure TRL, evaluate once
before training, train (or resume), save the weights with the tokenizer, write the manifest
and model card. It runs in the calling thread; the bot calls it in a worker process.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.chat_tokens import DatasetFiles, TokenizedSplit, dataset_files, tokenize_file
from training.config import TrainConfig
from training.errors import DatasetError, TrainingError
from training.hardware import Hardware, detect_hardware, is_main_process, peak_memory_mb, world_size
from training.pretrained import resolve_model_name
from training.progress import ProgressEvent, ProgressTracker, read_events, trainer_callback
from training.registry import persona_slug
from training.run_outputs import (
    ADAPTER_DIR,
    CHECKPOINTS_DIR,
    METRICS_FILE,
    MODEL_DIR,
    RunMetrics,
    eval_losses,
    file_sha256,
    git_revision,
    library_versions,
    remove_checkpoints,
    utc_now,
    write_manifest,
    write_model_card,
)

__all__ = ["RunPlan", "RunResult", "prepare_run", "train"]

QLORA_NEEDS_CUDA = (
    "QLoRA needs an NVIDIA GPU with CUDA and bitsandbytes (pip install 'wa-persona[gpu]'); "
    "set cpu_fallback: true to train plain LoRA on the CPU instead"
)
CARD_FILE = "dataset_card.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What this run will do on this machine, settled before anything loads."""

    config: TrainConfig  # with persona, dataset and output.dir filled in
    persona: str
    run_dir: Path
    dataset_dir: Path
    files: DatasetFiles
    card: dict[str, Any] | None
    dataset_sha256: str  # of the dataset card, else of the training file
    method: str  # lora / qlora / full, after cpu_fallback
    device: str  # cuda / cpu
    precision: str  # bf16 / fp16 / fp32
    attn_implementation: str
    liger_kernel: bool
    checkpoint: Path | None  # to resume from
    hardware: Hardware
    notes: tuple[str, ...] = ()

    @property
    def weights_dir(self) -> Path:
        """Where the trained adapter (or the full model) is saved."""
        return self.run_dir / (MODEL_DIR if self.method == "full" else ADAPTER_DIR)


@dataclass(frozen=True, slots=True)
class RunResult:
    """A finished run: where it is and how it went."""

    run_dir: Path
    weights_dir: Path
    persona: str
    method: str
    base_model: str
    dataset_sha256: str
    metrics: RunMetrics
    manifest: dict[str, Any] = field(repr=False)


def train(
    config: TrainConfig,
    *,
    runs_dir: Path | None = None,
    models_dir: Path | None = None,
    on_event: Callable[[ProgressEvent], None] | None = None,
) -> RunResult:
    """Fine-tune `config.model` on `config.dataset`; write the run folder and return it.

    Args:
        runs_dir: where a new run folder is made when `output.dir` is unset (the CLI passes
            `Settings.runs_dir()`).
        models_dir: where `wa-persona models fetch` put fetched base models, so `model.name`
            may be a catalogue name such as `smollm2-135m` (training/pretrained.py).
        on_event: called with every progress event, in this thread (main process only).

    Raises:
        TrainingError: a bad dataset, a machine that cannot run this method, a template
            that cannot locate the replies; KeyboardInterrupt passes through. Either way an
            `error` event is emitted first.
    """
    plan = prepare_run(config, runs_dir=runs_dir, models_dir=models_dir)
    tracker = ProgressTracker(plan.run_dir / METRICS_FILE, on_event, main_process=is_main_process())
    try:
        return _run(plan, tracker)
    except KeyboardInterrupt:
        tracker.emit(ProgressEvent("error", message="interrupted"))
        raise
    except Exception as exc:
        tracker.emit(ProgressEvent("error", message=f"{type(exc).__name__}: {exc}"))
        raise


def prepare_run(
    config: TrainConfig, *, runs_dir: Path | None = None, models_dir: Path | None = None
) -> RunPlan:
    """Settle the data, persona, base model, machine, run folder and checkpoint, without
    loading models.

    Fails fast: QLoRA without CUDA or bitsandbytes raises here unless `cpu_fallback` is set,
    and so does a fetchable base model (`smollm2-135m`) that is not in `models_dir`.
    """
    # The data, and whom it teaches.
    if config.dataset is None:
        raise DatasetError("no dataset: set dataset: in the config or pass --dataset DIR")
    dataset_dir = config.dataset.expanduser().resolve()
    if not dataset_dir.is_dir():
        raise DatasetError(f"{dataset_dir}: no such dataset folder")
    files = dataset_files(dataset_dir)
    card = _read_card(dataset_dir)
    persona = config.persona or (card or {}).get("persona")
    if not persona:
        raise DatasetError(
            f"{dataset_dir}: no {CARD_FILE} names the persona; set persona: (or --persona)"
        )
    dataset_sha256 = file_sha256(dataset_dir / CARD_FILE if card else files.train)

    # The base model: a fetched model's catalogue name becomes its folder.
    model = config.model.model_copy(
        update={"name": resolve_model_name(config.model.name, models_dir)}
    )

    # What this machine can do, before anything heavy loads.
    hardware = detect_hardware()
    method, device, notes = _method_and_device(config, hardware)
    precision = _precision(config, device, hardware)
    attn = config.model.attn_implementation
    if attn == "auto":  # flash attention runs on half-precision weights only
        half = precision == "bf16" or (precision == "fp16" and method != "full")
        attn = "flash_attention_2" if hardware.flash_attention and half else "sdpa"
    liger = config.training.liger_kernel
    if liger is True and not hardware.liger_kernel:
        raise TrainingError(
            "liger_kernel: true needs liger-kernel and a CUDA GPU (pip install liger-kernel); "
            "set liger_kernel: auto to use it only where it is available"
        )
    liger_kernel = hardware.liger_kernel if liger == "auto" else bool(liger)

    # The run folder, and what to resume from.
    run_dir, checkpoint = _run_dir_and_checkpoint(config, persona, runs_dir)
    output = config.output.model_copy(update={"dir": run_dir})
    resolved = config.model_copy(
        update={"model": model, "persona": persona, "dataset": dataset_dir, "output": output}
    )
    return RunPlan(
        config=resolved,
        persona=persona,
        run_dir=run_dir,
        dataset_dir=dataset_dir,
        files=files,
        card=card,
        dataset_sha256=dataset_sha256,
        method=method,
        device=device,
        precision=precision,
        attn_implementation=attn,
        liger_kernel=liger_kernel,
        checkpoint=checkpoint,
        hardware=hardware,
        notes=tuple(notes),
    )


def _run(plan: RunPlan, tracker: ProgressTracker) -> RunResult:
    """Load, tokenize, train, save and describe: the run itself."""
    from datasets import Dataset
    from transformers import AutoTokenizer, EarlyStoppingCallback, PrinterCallback, set_seed
    from trl import SFTTrainer

    config, started, wall = plan.config, utc_now(), time.monotonic()

    # Seed first: data order, adapter initialisation and dropout all draw from it.
    set_seed(config.seed)

    # Tokenizer: the model's own chat template (or the config's), a pad token for batches.
    tokenizer = AutoTokenizer.from_pretrained(
        config.model.name,
        revision=config.model.revision,
        trust_remote_code=config.model.trust_remote_code,
    )
    if config.model.chat_template:
        tokenizer.chat_template = _template_text(config.model.chat_template)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    # Data: tokenized here with our loss mask (labels), so TRL uses it as is.
    max_length = config.training.max_length
    train_split = tokenize_file(
        tokenizer, plan.files.train, weighted=plan.files.weighted, max_length=max_length
    )
    eval_split = (
        tokenize_file(
            tokenizer, plan.files.eval, weighted=plan.files.weighted, max_length=max_length
        )
        if plan.files.eval
        else None
    )
    if not train_split.input_ids:
        raise DatasetError(
            f"{plan.files.train}: no sample fits max_length {max_length} with a reply to learn "
            f"({train_split.too_long} too long); raise training.max_length"
        )
    has_eval = bool(eval_split and eval_split.input_ids)
    notes = list(plan.notes) + _split_notes(train_split, eval_split, max_length)
    train_dataset = Dataset.from_dict(
        {"input_ids": train_split.input_ids, "labels": train_split.labels}
    )
    eval_dataset = (
        Dataset.from_dict({"input_ids": eval_split.input_ids, "labels": eval_split.labels})
        if has_eval and eval_split
        else None
    )

    # Model: quantized for QLoRA, in the plan's precision otherwise.
    model = _load_model(plan)

    # Trainer: TRL wraps the model with the adapter (peft_config) and our callbacks.
    callbacks = [trainer_callback(tracker)]
    patience = config.eval.early_stopping_patience
    if has_eval and patience:
        callbacks.append(
            EarlyStoppingCallback(
                early_stopping_patience=patience,
                early_stopping_threshold=config.eval.early_stopping_threshold,
            )
        )
    elif patience:
        notes.append("no held-out split: no evaluation and no early stopping")
    trainer = SFTTrainer(
        model=model,
        args=_sft_config(plan, has_eval=has_eval),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=_lora_config(plan),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # it prints dicts to stdout, our JSON stream

    # Train: evaluation at step 0 first (eval_on_start), then the loop (or its remainder).
    output = trainer.train(resume_from_checkpoint=str(plan.checkpoint) if plan.checkpoint else None)

    # Save the weights (the best evaluation's, load_best_model_at_end) with the tokenizer.
    trainer.save_model(str(plan.weights_dir))
    if is_main_process():
        _tidy_weights_dir(plan.weights_dir)
    state = trainer.state
    events = read_events(plan.run_dir / METRICS_FILE) or tracker.events
    start_loss, end_loss = eval_losses(events)
    metrics = RunMetrics(
        steps=state.global_step,
        epochs=round(state.epoch or 0.0, 4),
        train_loss=output.training_loss,
        last_loss=next((e.loss for e in reversed(tracker.events) if e.loss is not None), None),
        eval_loss_start=start_loss,
        eval_loss_end=end_loss,
        eval_loss_best=state.best_metric,
        best_step=_checkpoint_step(state.best_model_checkpoint),
        stopped_early=state.global_step < state.max_steps,
        train_tokens=tracker.tokens,
        tokens_per_s=tracker.tokens_per_s,
        train_seconds=round(tracker.step_seconds, 3),
        peak_memory_mb=round(peak_memory_mb(), 1),
    )
    manifest = {
        "persona": plan.persona,
        "method": plan.method,
        "requested_method": config.method,
        "output": plan.weights_dir.name,
        "base_model": {
            "name": config.model.name,
            "revision": config.model.revision,
            "resolved_revision": getattr(model.config, "_commit_hash", None),
        },
        "config": config.to_dict(),
        "plan": {
            "device": plan.device,
            "precision": plan.precision,
            "attn_implementation": plan.attn_implementation,
            "liger_kernel": plan.liger_kernel,
            "world_size": world_size(),
        },
        "dataset": {
            "dir": str(plan.dataset_dir),
            "card_sha256": file_sha256(plan.dataset_dir / CARD_FILE) if plan.card else None,
            "files": {
                path.name: file_sha256(path) for path in (plan.files.train, plan.files.eval) if path
            },
            "weighted": plan.files.weighted,
            "train": train_split.summary(),
            "eval": eval_split.summary() if eval_split else None,
        },
        "metrics": metrics.to_dict(),
        "resumed_from": str(plan.checkpoint) if plan.checkpoint else None,
        "started_at": started,
        "finished_at": utc_now(),
        "wall_time_s": round(time.monotonic() - wall, 3),
        "hardware": plan.hardware.to_dict(),
        "versions": library_versions(),
        "git_revision": git_revision(),
        "notes": notes,
    }
    if is_main_process():
        write_manifest(plan.run_dir, manifest)
        write_model_card(plan.run_dir, manifest)
        if not config.output.keep_checkpoints:
            remove_checkpoints(plan.run_dir)
    tracker.emit(
        ProgressEvent(
            "end",
            step=metrics.steps,
            max_steps=state.max_steps,
            epoch=state.epoch,
            loss=metrics.last_loss,
            eval_loss=metrics.eval_loss_best,
            tokens=metrics.train_tokens,
            tokens_per_s=metrics.tokens_per_s,
            message=str(plan.run_dir),
        )
    )
    return RunResult(
        run_dir=plan.run_dir,
        weights_dir=plan.weights_dir,
        persona=plan.persona,
        method=plan.method,
        base_model=config.model.name,
        dataset_sha256=plan.dataset_sha256,
        metrics=metrics,
        manifest=manifest,
    )


def _method_and_device(config: TrainConfig, hardware: Hardware) -> tuple[str, str, list[str]]:
    """The method this machine can run (QLoRA needs CUDA + bitsandbytes) and the device."""
    device = "cuda" if hardware.cuda else "cpu"
    if config.method != "qlora" or hardware.bitsandbytes:
        return config.method, device, []
    if not config.cpu_fallback:
        raise TrainingError(QLORA_NEEDS_CUDA)
    missing = "bitsandbytes" if hardware.cuda else "CUDA"
    return (
        "lora",
        "cpu",
        [
            f"cpu_fallback: QLoRA was asked for but there is no {missing} here, so plain "
            "LoRA was trained on the CPU"
        ],
    )


def _precision(config: TrainConfig, device: str, hardware: Hardware) -> str:
    """bf16 where the GPU supports it, fp16 on older GPUs, fp32 on the CPU (or as asked)."""
    asked = config.training.precision
    if device == "cpu":
        if asked in ("bf16", "fp16"):
            raise TrainingError(f"precision {asked} needs a GPU here; use precision: auto or fp32")
        return "fp32"
    if asked == "bf16" and not hardware.bf16:
        raise TrainingError(f"{hardware.gpu_name} has no bf16; use precision: fp16 or auto")
    if asked != "auto":
        return asked
    return "bf16" if hardware.bf16 else "fp16"


def _run_dir_and_checkpoint(
    config: TrainConfig, persona: str, runs_dir: Path | None
) -> tuple[Path, Path | None]:
    """The run folder (made here) and the checkpoint to resume from, if any."""
    resume = config.resume
    out = config.output.dir.expanduser().resolve() if config.output.dir else None
    checkpoint = None
    if isinstance(resume, Path):
        checkpoint, run_of_checkpoint = _find_checkpoint(resume.expanduser().resolve())
        out = out or run_of_checkpoint
    elif resume:
        assert out is not None  # the config requires output.dir with resume: true
        checkpoint, _ = _find_checkpoint(out)
    if out is None:
        if runs_dir is None:
            raise TrainingError("no run folder: set output.dir (--output)")
        if world_size() > 1:
            raise TrainingError(
                "several processes must write one run folder: set output.dir (--output) when "
                "launching with accelerate or torchrun"
            )
        out = _new_run_dir(runs_dir.expanduser().resolve(), persona)
    elif checkpoint is None and _holds_a_run(out):
        raise TrainingError(
            f"{out} already holds a training run; choose another output folder, or set "
            "resume: true to continue it"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out, checkpoint


def _find_checkpoint(path: Path) -> tuple[Path, Path | None]:
    """(checkpoint, its run folder) for a checkpoint folder or the run folder holding some."""
    if (path / "trainer_state.json").is_file():
        run = path.parent.parent if path.parent.name == CHECKPOINTS_DIR else None
        return path, run
    folder = path / CHECKPOINTS_DIR
    found = [
        (int(match.group(1)), child)
        for child in (folder.iterdir() if folder.is_dir() else ())
        if (match := _CHECKPOINT.match(child.name)) and (child / "trainer_state.json").is_file()
    ]
    if not found:
        raise TrainingError(
            f"{path}: no checkpoint to resume from (looked for {CHECKPOINTS_DIR}/checkpoint-N); "
            "a finished run keeps none unless output.keep_checkpoints is set"
        )
    return max(found)[1], path


def _new_run_dir(runs_dir: Path, persona: str) -> Path:
    """`<persona-slug>-<UTC timestamp>`, with a counter if that name is taken."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = runs_dir / f"{persona_slug(persona)}-{stamp}"
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def _holds_a_run(folder: Path) -> bool:
    names = (ADAPTER_DIR, MODEL_DIR, CHECKPOINTS_DIR, "manifest.json", METRICS_FILE)
    return any((folder / name).exists() for name in names)


def _read_card(dataset_dir: Path) -> dict[str, Any] | None:
    path = dataset_dir / CARD_FILE
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable dataset card ({exc})") from exc
    return card if isinstance(card, dict) else None


def _template_text(template: str) -> str:
    """An inline template, or the contents of the .jinja file it names."""
    if "{" not in template and template.endswith((".jinja", ".j2")):
        try:
            return Path(template).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise TrainingError(f"model.chat_template: cannot read {template} ({exc})") from exc
    return template


def _split_notes(
    train_split: TokenizedSplit, eval_split: TokenizedSplit | None, max_length: int
) -> list[str]:
    """Say what was left out of each split, and why."""
    notes = []
    for name, split in (("training", train_split), ("held-out", eval_split)):
        if split is None:
            continue
        if split.too_long:
            notes.append(
                f"{split.too_long} {name} samples longer than max_length {max_length} were left out"
            )
        if split.no_loss:
            notes.append(f"{split.no_loss} {name} samples with no reply to learn were left out")
        if split.control_tokens:
            notes.append(
                f"{split.control_tokens} {name} samples whose text contains the tokenizer's "
                "special tokens were left out"
            )
    return notes


def _load_model(plan: RunPlan) -> Any:
    """The base model: 4/8-bit for QLoRA (prepared for k-bit training), else in `precision`."""
    import torch
    from transformers import AutoModelForCausalLM

    config = plan.config
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[plan.precision]
    if plan.method == "full" and plan.precision == "fp16":
        dtype = torch.float32  # fp16 mixed precision keeps fp32 master weights
    kwargs: dict[str, Any] = {
        "revision": config.model.revision,
        "trust_remote_code": config.model.trust_remote_code,
        "attn_implementation": plan.attn_implementation,
        "dtype": dtype,
    }
    if plan.method == "qlora":
        kwargs["quantization_config"] = _quantization(plan)
        kwargs["device_map"] = _quantized_device_map()
    model = AutoModelForCausalLM.from_pretrained(config.model.name, **kwargs)
    if plan.liger_kernel:
        from transformers.integrations.liger import apply_liger_kernel

        # TRL computes the loss with its own fused LM head, so Liger's fused cross-entropy
        # (which replaces the model's forward) stays off; the layer kernels still apply.
        apply_liger_kernel(model, {"fused_linear_cross_entropy": False})
    if plan.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.training.gradient_checkpointing
        )
    return model


def _quantization(plan: RunPlan) -> Any:
    """bitsandbytes settings: NF4 + double quantization + bf16 compute by default."""
    import torch
    from transformers import BitsAndBytesConfig

    q = plan.config.quantization
    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = getattr(torch, q.compute_dtype)
    if compute is torch.bfloat16 and not plan.hardware.bf16:
        compute = torch.float16
    storage = compute if os.environ.get("ACCELERATE_USE_FSDP") == "true" else torch.uint8
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.quant_type,
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=compute,
        bnb_4bit_quant_storage=storage,  # FSDP shards 4-bit weights stored as the compute dtype
    )


def _quantized_device_map() -> dict[str, int] | None:
    """Each process loads the quantized model onto its own GPU (FSDP/DeepSpeed place it)."""
    if (
        os.environ.get("ACCELERATE_USE_FSDP") == "true"
        or os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true"
    ):
        return None
    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


def _lora_config(plan: RunPlan) -> Any:
    """peft's LoraConfig for LoRA/QLoRA; None for full fine-tuning."""
    if plan.method == "full":
        return None
    from peft import LoraConfig

    lora = plan.config.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def _sft_config(plan: RunPlan, *, has_eval: bool) -> Any:
    """TRL's SFTConfig from ours: evaluation and saving aligned, the best checkpoint kept."""
    from trl import SFTConfig

    config, t = plan.config, plan.config.training
    every = config.eval.every
    strategy = "epoch" if every == "epoch" else "steps"
    steps = None if every == "epoch" else every
    return SFTConfig(
        output_dir=str(plan.run_dir / CHECKPOINTS_DIR),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size or t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup if t.warmup < 1 else int(t.warmup),
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        # Evaluate and save on the same schedule, so the best evaluation has a checkpoint.
        eval_strategy=strategy if has_eval else "no",
        eval_steps=steps,
        save_strategy=strategy,
        save_steps=steps,
        save_total_limit=config.output.save_total_limit,
        load_best_model_at_end=has_eval,
        metric_for_best_model="eval_loss" if has_eval else None,
        greater_is_better=False if has_eval else None,
        eval_on_start=has_eval and plan.checkpoint is None,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=True,
        activation_checkpointing=t.gradient_checkpointing,  # transformers 5's new name
        bf16=plan.precision == "bf16",
        fp16=plan.precision == "fp16",
        use_cpu=plan.device == "cpu",
        # Samples are already tokenized and within max_length (longer ones were left out);
        # packing still needs it as the block size.
        max_length=t.max_length if t.packing else None,
        packing=t.packing,
        padding_free=t.padding_free,
        # Our labels already hold the loss mask (-100 outside the trained replies), and TRL
        # keeps a dataset's own labels; its assistant mask would need {% generation %}
        # markers most model templates lack.
        assistant_only_loss=False,
    )


def _tidy_weights_dir(folder: Path) -> None:
    """Keep weights, configs and tokenizer: drop the pickled trainer arguments (our config is
    in the manifest) and peft's placeholder model card (ours is the run's README.md)."""
    for name in ("training_args.bin", "README.md"):
        (folder / name).unlink(missing_ok=True)


def _checkpoint_step(checkpoint: str | None) -> int | None:
    match = _CHECKPOINT.match(Path(checkpoint).name) if checkpoint else None
    return int(match.group(1)) if match else None
