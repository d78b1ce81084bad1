"""What a training run leaves in its folder, besides the weights.

    <run>/adapter/ or <run>/model/   the trained adapter (or full model) with its tokenizer
    <run>/manifest.json               base model, resolved config, data hashes, versions, metrics
    <run>/README.md                   a short model card (counts only, never chat text)
    <run>/metrics.jsonl               every progress event, one JSON object a line
    <run>/checkpoints/                while training (deleted at a successful end by default)

The manifest makes a run reproducible and auditable without the data: it names the exact
dataset files by sha256, the library versions and the git revision of wa-persona.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from training.errors import TrainingError
from training.progress import ProgressEvent

__all__ = [
    "ADAPTER_DIR",
    "CHECKPOINTS_DIR",
    "MANIFEST_FILE",
    "MANIFEST_VERSION",
    "METRICS_FILE",
    "MODEL_DIR",
    "README_FILE",
    "RunMetrics",
    "eval_losses",
    "file_sha256",
    "git_revision",
    "library_versions",
    "read_manifest",
    "remove_checkpoints",
    "utc_now",
    "write_manifest",
    "write_model_card",
]

ADAPTER_DIR = "adapter"
MODEL_DIR = "model"
MANIFEST_FILE = "manifest.json"
README_FILE = "README.md"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
MANIFEST_VERSION = 1

_LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "tokenizers",
    "bitsandbytes",
    "liger-kernel",
    "flash-attn",
    "wa-persona",
)


@dataclass(frozen=True, slots=True)
class RunMetrics:
    """How the run went; losses are mean token cross-entropy on the trained replies."""

    steps: int
    epochs: float
    train_loss: float | None  # mean training loss of this call (resumed part only)
    last_loss: float | None  # the last logged training loss
    eval_loss_start: float | None  # before any training (step 0)
    eval_loss_end: float | None  # the last evaluation
    eval_loss_best: float | None  # the best evaluation: its weights are the saved ones
    best_step: int | None
    stopped_early: bool
    train_tokens: int | None  # non-padding tokens trained on in this call
    tokens_per_s: float | None  # over optimizer-step time
    train_seconds: float  # time inside optimizer steps
    peak_memory_mb: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)

    def registry_metrics(self) -> dict[str, float]:
        """The numeric fields, plus `eval_loss`: the saved (best) weights' held-out loss."""
        numbers = {
            key: float(value)
            for key, value in asdict(self).items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        best = self.eval_loss_best if self.eval_loss_best is not None else self.eval_loss_end
        if best is not None:
            numbers["eval_loss"] = float(best)
        return numbers


def eval_losses(events: Sequence[ProgressEvent]) -> tuple[float | None, float | None]:
    """(eval loss at step 0, last eval loss) among `events`."""
    evals = [event for event in events if event.kind == "eval" and event.eval_loss is not None]
    start = next((event.eval_loss for event in evals if event.step == 0), None)
    return start, evals[-1].eval_loss if evals else None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape a run (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision() -> str | None:
    """The commit of the wa-persona checkout this code runs from ("+dirty" when modified)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest.json` (stamped with its format version)."""
    path = run_dir / MANIFEST_FILE
    data = {"manifest_version": MANIFEST_VERSION, **manifest}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of a finished run; TrainingError when the folder holds none."""
    path = run_dir / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TrainingError(
            f"{run_dir}: no {MANIFEST_FILE}; give the folder of a finished `wa-persona train` run"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainingError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise TrainingError(f"{path}: not a run manifest")
    return data


def remove_checkpoints(run_dir: Path) -> None:
    """Delete the run's checkpoints (the final weights are saved beside them)."""
    shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)


def write_model_card(run_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write README.md: base model, method, data counts, metrics, intended use, privacy."""
    persona = manifest["persona"]
    config = manifest["config"]
    base = manifest["base_model"]
    metrics = manifest["metrics"]
    data = manifest["dataset"]
    method = manifest["method"]
    lora, quantization = config["lora"], config["quantization"]
    method_text = {
        "lora": f"LoRA (r={lora['r']}, alpha={lora['alpha']})",
        "qlora": f"QLoRA ({quantization['bits']}-bit {quantization['quant_type']} base, "
        f"r={lora['r']}, alpha={lora['alpha']})",
        "full": "full fine-tuning",
    }[method]
    weights = manifest["output"]
    revision = base.get("resolved_revision") or base.get("revision") or "default branch"
    lines = [
        f"# {persona}: {method_text} of {base['name']}",
        "",
        f"Trained with wa-persona on {manifest['finished_at'][:10]} to answer chats the way "
        f"{persona} writes. The weights are in `{weights}/` with the tokenizer (and the chat "
        "template it was trained with).",
        "",
        f"- **Base model:** `{base['name']}` (revision `{revision}`)",
        f"- **Method:** {method_text}, {metrics['steps']} steps, "
        f"{_number(metrics['epochs'])} epochs, learning rate {config['training']['learning_rate']}",
        f"- **Data:** {_data_line(data)}",
        f"- **Dataset card:** sha256 `{data.get('card_sha256') or 'none'}`",
        "",
        "| metric | value |",
        "|---|---|",
        *(
            f"| {name} | {_number(metrics.get(key))} |"
            for name, key in (
                ("eval loss before training", "eval_loss_start"),
                ("eval loss, best (saved weights)", "eval_loss_best"),
                ("eval loss, last evaluation", "eval_loss_end"),
                ("best step", "best_step"),
                ("training loss (mean)", "train_loss"),
                ("tokens / s", "tokens_per_s"),
                ("peak memory (MB)", "peak_memory_mb"),
            )
        ),
        "",
        "## Intended use",
        "",
        f"Replying as {persona} through the wa-persona bot, in chats where people know they may "
        f"be talking to a model trained on {persona}'s messages, with {persona}'s consent. It "
        "imitates a writing style; it knows nothing reliable about facts, plans or people.",
        "",
        "## Privacy",
        "",
        "The model was trained on private chat messages and can reproduce phrases, names or "
        "details from them. Keep it private: do not upload it to a public hub or share it "
        "with people who were not in those chats. This card and `manifest.json` hold counts "
        "and hashes only, never message text.",
        "",
    ]
    path = run_dir / README_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _data_line(data: dict[str, Any]) -> str:
    train, eval_ = data["train"], data.get("eval")
    text = (
        f"{train['kept']:,} training samples ({train['loss_tokens']:,} of "
        f"{train['tokens']:,} tokens learned)"
    )
    if eval_:
        text += f", {eval_['kept']:,} held-out samples"
    left_out = sum(train[key] for key in ("too_long", "no_loss", "control_tokens"))
    if left_out:
        text += f"; {left_out:,} training samples left out (see manifest.json)"
    return text


def _number(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")
