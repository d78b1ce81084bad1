"""Merge a run's LoRA adapter into its base model: one standalone model folder.

A merged model loads without peft and serves with any transformers-compatible server (vLLM,
TGI, llama.cpp after conversion) at the base model's speed. The folder gets the tokenizer the
run trained with (its chat template included) and a `manifest.json` pointing at its source.
A QLoRA adapter is merged into the base loaded unquantized (in `dtype`); the result is the
usual QLoRA export, close to but not bit-identical with the 4-bit model it was trained on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from training.errors import TrainingError
from training.run_outputs import (
    ADAPTER_DIR,
    MANIFEST_FILE,
    file_sha256,
    library_versions,
    read_manifest,
    utc_now,
)

__all__ = ["MergeDtype", "MergeError", "merge_adapter"]

MergeDtype = Literal["auto", "bfloat16", "float16", "float32"]

_PRECISION_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class MergeError(TrainingError):
    """A run that cannot be merged as asked (no adapter, an occupied output folder)."""


def merge_adapter(run_dir: Path, out_dir: Path, *, dtype: MergeDtype = "auto") -> Path:
    """Write base model + the run's adapter, merged, with its tokenizer, into `out_dir`.

    Args:
        dtype: the merged weights' dtype; auto: the precision the run trained in.

    Raises:
        MergeError: a full fine-tuning run (already a whole model), no adapter, or an
            `out_dir` that exists and is not empty.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = read_manifest(run_dir)
    if manifest.get("output") != ADAPTER_DIR:
        raise MergeError(
            f"{run_dir} is a full fine-tuning run: its model/ folder is already a whole model, "
            "so there is no adapter to merge; load or copy model/ instead"
        )
    adapter = run_dir / ADAPTER_DIR
    if not (adapter / "adapter_config.json").is_file():
        raise MergeError(f"{adapter}: no adapter_config.json; the run did not finish saving")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise MergeError(f"{out_dir} exists and is not empty; choose a new folder")

    base = manifest["base_model"]
    config = manifest["config"]["model"]
    chosen = _PRECISION_DTYPES[manifest["plan"]["precision"]] if dtype == "auto" else dtype
    model = AutoModelForCausalLM.from_pretrained(
        base["name"],
        revision=base.get("resolved_revision") or base.get("revision"),
        trust_remote_code=config.get("trust_remote_code", False),
        dtype=getattr(torch, chosen),
    )
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(adapter).save_pretrained(out_dir)
    source = {
        "merged_from": str(run_dir.resolve()),
        "run_manifest_sha256": file_sha256(run_dir / MANIFEST_FILE),
        "persona": manifest.get("persona"),
        "method": manifest.get("method"),
        "base_model": base,
        "dtype": chosen,
        "merged_at": utc_now(),
        "versions": library_versions(),
    }
    (out_dir / MANIFEST_FILE).write_text(
        json.dumps(source, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return out_dir
