"""QLoRA training speed on a GPU: wa-persona's trainer against a plain transformers + peft one.

Every variant trains the same LoRA (the `qwen2.5-7b-qlora` preset: r 16 on all linear layers,
4-bit NF4 base with double quantisation, bf16 compute, batch 8 × 2 accumulation, gradient
checkpointing, sdpa attention) on the same samples (a persona dataset tokenized with our loss
mask) of a randomly initialised model of a real size. Random weights train at the same speed
as real ones, so nothing is downloaded: the model is built from a Qwen2.5 configuration and
saved once, with the tokenizer given.

- `baseline`: transformers' `Trainer` with `DataCollatorForSeq2Seq` (each batch padded to its
  longest sample), the model loaded 4-bit, `prepare_model_for_kbit_training`, peft's
  `get_peft_model`: what a plain transformers + peft script does.
- `ours`: `training.sft.train`, TRL's SFTTrainer with padding-free batches (no pad token is
  computed) and Liger's kernels when `liger-kernel` is installed.
- `ours-no-liger`: the same without Liger, to tell the two gains apart.

Throughput is non-padding tokens per second between the end of step `--warmup` and the last
step, read from each trainer's own per-step logs (logging every step synchronises the GPU in
both). Each variant runs in its own process (Liger patches model classes process-wide) and
appends one JSON line to `--json` as it finishes, so a run cut short keeps what it measured.

    python benchmarks/train_gpu_bench.py --dataset DATASET_DIR --tokenizer TOKENIZER_DIR \\
        [--sizes 1.5b 7b] [--steps 25] [--json OUT.jsonl]

`--sizes tiny --method lora` runs the whole path on a CPU in seconds (no 4-bit there).
Results: docs/benchmarks.md ("Training on a GPU").
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.chat_tokens import dataset_files, tokenize_file
from training.config import TrainConfig, load_train_config

PRESET = "qwen2.5-7b-qlora"
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "baseline": ("baseline", {}),
    "ours": ("ours", {"training.liger_kernel": "auto"}),  # Liger where installed (CUDA)
    "ours-no-liger": ("ours", {"training.liger_kernel": False}),
    "baseline-no-ckpt": ("baseline", {"training.gradient_checkpointing": False}),
    "ours-no-ckpt": ("ours", {"training.gradient_checkpointing": False}),
}
"""Variant name: (trainer, config overrides on top of the preset)."""
DEFAULT_VARIANTS = ("baseline", "ours", "ours-no-liger")
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 0,  # the tokenizer's
        "tie_word_embeddings": False,
    },
    "1.5b": {  # Qwen2.5-1.5B-Instruct's shapes
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "7b": {  # Qwen2.5-7B-Instruct's shapes
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
}
SECONDS_NEEDED = {"tiny": 30, "1.5b": 60, "7b": 120}
"""Rough wall time of one variant on an H100 (load, quantise, train); later variants are
skipped when `--budget-s` would not cover them."""


def build_model(size: str, tokenizer_dir: Path, out: Path) -> Path:
    """A randomly initialised Qwen2 of `size`'s shapes, in bf16 (fp32 on a CPU), with the
    tokenizer, saved to `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    shapes = dict(SIZES[size])
    shapes["vocab_size"] = max(shapes["vocab_size"], len(tokenizer))
    config = Qwen2Config(
        **shapes,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    cuda = torch.cuda.is_available()
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):
        model = AutoModelForCausalLM.from_config(
            config, dtype=torch.bfloat16 if cuda else torch.float32
        )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return out


def bench_config(
    model_dir: Path, dataset: Path, run_dir: Path, options: Any, overrides: dict[str, object]
) -> TrainConfig:
    """The preset, pointed at the model and data, for `--steps` steps logged one by one."""
    return load_train_config(
        PRESET,
        overrides
        | {
            "model.name": str(model_dir),
            "dataset": str(dataset),
            "method": options.method,
            "output.dir": str(run_dir),
            "training.max_steps": options.steps,
            "training.logging_steps": 1,
            "eval.every": options.steps + 1,
            "eval.early_stopping_patience": None,
        },
    )


def run_ours(config: TrainConfig) -> list[tuple[float, int, float]]:
    """Train with `training.sft.train`; (time, tokens so far, loss) at every step."""
    from training.sft import train

    marks: list[tuple[float, int, float]] = []

    def on_event(event: Any) -> None:
        if event.kind == "step" and event.tokens is not None:
            marks.append((time.perf_counter(), event.tokens, event.loss))

    train(config, on_event=on_event)
    return marks


def run_baseline(config: TrainConfig) -> list[tuple[float, int, float]]:
    """A plain transformers Trainer + peft on the same samples; (time, tokens, loss) per step."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        BitsAndBytesConfig,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    t, cuda = config.training, torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(config.model.name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    files = dataset_files(config.dataset)  # type: ignore[arg-type]
    split = tokenize_file(tokenizer, files.train, weighted=files.weighted, max_length=t.max_length)
    samples = Dataset.from_dict(
        {
            "input_ids": split.input_ids,
            "attention_mask": [[1] * len(ids) for ids in split.input_ids],
            "labels": split.labels,
        }
    )
    kwargs: dict[str, Any] = {"attn_implementation": "sdpa", "dtype": torch.float32}
    if config.method == "qlora":
        q = config.quantization
        kwargs.update(
            dtype=torch.bfloat16,
            device_map={"": 0},
            quantization_config=BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=q.quant_type,
                bnb_4bit_use_double_quant=q.double_quant,
                bnb_4bit_compute_dtype=torch.bfloat16,
            ),
        )
    elif cuda:
        kwargs.update(dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(config.model.name, **kwargs)
    if config.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=t.gradient_checkpointing
        )
    lora = config.lora
    model = get_peft_model(
        model,
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            bias="none",
            task_type="CAUSAL_LM",
        ),
    )
    marks: list[tuple[float, int, float]] = []

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if logs and "loss" in logs:
                marks.append((time.perf_counter(), state.num_input_tokens_seen, logs["loss"]))

    with tempfile.TemporaryDirectory(prefix="baseline-") as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            max_steps=t.max_steps or -1,
            per_device_train_batch_size=t.batch_size,
            gradient_accumulation_steps=t.gradient_accumulation,
            learning_rate=t.learning_rate,
            lr_scheduler_type=t.scheduler,
            warmup_steps=t.warmup if t.warmup < 1 else int(t.warmup),
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=config.seed,
            data_seed=config.seed,
            bf16=cuda,
            use_cpu=not cuda,
            activation_checkpointing=t.gradient_checkpointing,
            include_num_input_tokens_seen="non_padding",
            remove_unused_columns=False,
        )
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=samples,
            data_collator=collator,
            callbacks=[Clock()],
        )
        trainer.train()
    return marks


def measure(variant: str, size: str, model_dir: Path, options: Any) -> dict[str, Any]:
    """Run one variant in this process; its throughput, peak memory and losses."""
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix=f"{variant}-") as run_dir:
        trainer, overrides = VARIANTS[variant]
        config = bench_config(model_dir, options.dataset, Path(run_dir) / "run", options, overrides)
        started = time.perf_counter()
        marks = run_baseline(config) if trainer == "baseline" else run_ours(config)
        wall = time.perf_counter() - started
    if len(marks) <= options.warmup:
        raise SystemExit(f"{variant}: only {len(marks)} logged steps; raise --steps")
    (t0, n0, _), (t1, n1, last_loss) = marks[options.warmup - 1], marks[-1]
    return {
        "size": size,
        "variant": variant,
        "method": options.method,
        "steps": len(marks),
        "timed_steps": len(marks) - options.warmup,
        "tokens": n1 - n0,
        "seconds": round(t1 - t0, 3),
        "tokens_per_s": round((n1 - n0) / (t1 - t0), 1),
        "s_per_step": round((t1 - t0) / (len(marks) - options.warmup), 3),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "first_loss": round(marks[0][2], 4),
        "last_loss": round(last_loss, 4),
        "wall_s": round(wall, 1),
    }


def child(options: Any) -> int:
    """`--child VARIANT SIZE MODEL_DIR`: measure one variant, print its JSON line last."""
    variant, size, model_dir = options.child
    result = measure(variant, size, Path(model_dir), options)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def environment() -> dict[str, Any]:
    """The GPU and the library versions the numbers come from."""
    from importlib import metadata

    import torch

    versions = {}
    for name in ("torch", "transformers", "peft", "trl", "bitsandbytes", "liger-kernel"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"kind": "environment", "gpu": gpu, "python": sys.version.split()[0], **versions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a persona dataset folder")
    parser.add_argument(
        "--tokenizer", type=Path, required=True, help="a tokenizer folder with a chat template"
    )
    parser.add_argument("--sizes", nargs="+", default=["1.5b", "7b"], choices=sorted(SIZES))
    parser.add_argument(
        "--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS)
    )
    parser.add_argument("--method", default="qlora", choices=("qlora", "lora"))
    parser.add_argument("--steps", type=int, default=25, help="optimizer steps per variant")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    parser.add_argument("--work", type=Path, help="where models are built (default: a temp dir)")
    parser.add_argument("--budget-s", type=float, default=0, help="skip what would not fit")
    parser.add_argument("--json", type=Path, help="append one JSON line per result here")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "SIZE", "MODEL_DIR"))
    options = parser.parse_args()
    if options.child:
        return child(options)

    started = time.perf_counter()
    results: list[dict[str, Any]] = []

    def record(line: dict[str, Any]) -> None:
        print(json.dumps(line), flush=True)
        results.append(line)
        if options.json:
            with options.json.open("a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")

    record(environment())
    work = options.work or Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    for size in options.sizes:
        left = options.budget_s - (time.perf_counter() - started)
        if options.budget_s and left < SECONDS_NEEDED[size] * 1.5:
            record({"kind": "skipped", "size": size, "why": f"{left:.0f} s of budget left"})
            continue
        built = time.perf_counter()
        model_dir = build_model(size, options.tokenizer, work / f"qwen2-{size}-random")
        record({"kind": "model", "size": size, "build_s": round(time.perf_counter() - built, 1)})
        for variant in options.variants:
            left = options.budget_s - (time.perf_counter() - started)
            if options.budget_s and left < SECONDS_NEEDED[size]:
                record({"kind": "skipped", "size": size, "variant": variant})
                continue
            command = [sys.executable, __file__, "--child", variant, size, str(model_dir)]
            command += ["--dataset", str(options.dataset), "--tokenizer", str(options.tokenizer)]
            command += ["--method", options.method, "--steps", str(options.steps)]
            command += ["--warmup", str(options.warmup)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            if done.returncode or not lines:
                error = (done.stderr.strip().splitlines() or ["no output"])[-1]
                sys.stderr.write(done.stderr[-4000:])
                record({"kind": "failed", "size": size, "variant": variant, "error": error})
                continue
            record({"kind": "result", **json.loads(lines[-1].removeprefix("RESULT "))})
        shutil.rmtree(model_dir, ignore_errors=True)
    print_table(results)
    return 0


def print_table(results: list[dict[str, Any]]) -> None:
    """Markdown: every variant's throughput and memory, and its speed over the baseline."""
    rows = [r for r in results if r["kind"] == "result"]
    base = {r["size"]: r["tokens_per_s"] for r in rows if r["variant"] == "baseline"}
    print("\n| size | variant | tokens/s | × baseline | s/step | peak GB | loss first → last |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        ratio = r["tokens_per_s"] / base[r["size"]] if r["size"] in base else None
        print(
            f"| {r['size']} | {r['variant']} | {r['tokens_per_s']:,.0f} | "
            f"{'' if ratio is None else f'{ratio:.2f}×'} | {r['s_per_step']} | "
            f"{r['peak_memory_gb'] if r['peak_memory_gb'] is not None else '—'} | "
            f"{r['first_loss']} → {r['last_loss']} |"
        )


if __name__ == "__main__":
    sys.exit(main())
