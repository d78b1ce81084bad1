"""The training run's settings: one typed, validated config, loadable from YAML or a preset.

A config is a YAML file (or the name of a preset in `training/configs/`) with sections
`model`, `quantization`, `lora`, `training`, `eval`, `output` and a few top-level keys.
Overrides use dotted keys (`lora.r=32`, `training.learning_rate=1e-4`). Unknown keys are
errors that name the key, so a typo never silently trains with a default.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from training.errors import TrainingError

__all__ = [
    "ConfigError",
    "EvalConfig",
    "LoraConfig",
    "ModelConfig",
    "OutputConfig",
    "QuantizationConfig",
    "TrainConfig",
    "TrainingConfig",
    "config_reference",
    "list_presets",
    "load_train_config",
    "preset_path",
]

Method = Literal["lora", "qlora", "full"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Attention = Literal["auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3"]
Scheduler = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"
]


class ConfigError(TrainingError):
    """A training config that cannot be read or does not validate."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    """The base model and how to load it."""

    name: str = Field(
        description="Hugging Face Hub id or local folder of the base chat model, or the name of "
        "a model fetched with `wa-persona models fetch` (smollm2-135m)."
    )
    revision: str | None = Field(
        default=None, description="Hub branch, tag or commit to pin; unset, the default branch."
    )
    trust_remote_code: bool = Field(
        default=False, description="Run Python code shipped with the model (only if you trust it)."
    )
    attn_implementation: Attention = Field(
        default="auto",
        description="Attention kernel; auto: flash_attention_2 where flash-attn is installed "
        "(CUDA, half-precision weights), else sdpa.",
    )
    chat_template: str | None = Field(
        default=None,
        description="Jinja chat template replacing the tokenizer's own (inline text or a path "
        "to a .jinja file); saved with the tokenizer, so inference renders the same way.",
    )


class QuantizationConfig(_Section):
    """How the frozen base weights are quantized for QLoRA (bitsandbytes, CUDA only)."""

    bits: Literal[4, 8] = Field(default=4, description="4-bit (QLoRA) or 8-bit base weights.")
    quant_type: Literal["nf4", "fp4"] = Field(
        default="nf4", description="4-bit data type; NF4 suits normally distributed weights."
    )
    double_quant: bool = Field(
        default=True, description="Quantize the quantization constants too (about 0.4 bit/param)."
    )
    compute_dtype: Literal["bfloat16", "float16", "float32"] = Field(
        default="bfloat16",
        description="Dtype of the matmuls on dequantized weights; float16 on GPUs without bf16.",
    )


class LoraConfig(_Section):
    """The low-rank adapter (LoRA and QLoRA)."""

    r: int = Field(default=16, ge=1, description="Rank of the update matrices.")
    alpha: int = Field(
        default=32, ge=1, description="Scaling: the update is multiplied by alpha/r."
    )
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the adapter's input.")
    target_modules: str | list[str] = Field(
        default="all-linear",
        description="Modules that get adapters: 'all-linear' (every linear layer but the output "
        "head) or a list of module names such as [q_proj, v_proj].",
    )


class TrainingConfig(_Section):
    """The optimisation loop."""

    epochs: float = Field(default=3, gt=0, description="Passes over the training samples.")
    max_steps: int | None = Field(
        default=None, ge=1, description="Stop after this many optimizer steps (overrides epochs)."
    )
    batch_size: int = Field(default=8, ge=1, description="Samples per device per forward pass.")
    eval_batch_size: int | None = Field(
        default=None, ge=1, description="Samples per device when evaluating; unset, batch_size."
    )
    gradient_accumulation: int = Field(
        default=1, ge=1, description="Forward passes per optimizer step (effective batch factor)."
    )
    learning_rate: float = Field(default=2e-4, gt=0, description="Peak learning rate (AdamW).")
    scheduler: Scheduler = Field(default="cosine", description="Learning-rate schedule.")
    warmup: float = Field(
        default=0.03,
        ge=0,
        description="Linear warmup: a share of all steps when below 1, else a number of steps.",
    )
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(
        default=1.0, ge=0, description="Gradient clipping; 0 turns it off."
    )
    max_length: int = Field(
        default=1024,
        ge=8,
        description="Longest sample in tokens; longer samples are left out (and counted), "
        "never cut, since cutting would drop the reply being learned.",
    )
    packing: bool = Field(
        default=False,
        description="Pack samples into max_length blocks (best-fit, padding-free); fewer steps.",
    )
    padding_free: bool = Field(
        default=False,
        description="Concatenate a batch into one row without padding; fast with flash "
        "attention, correct (block-diagonal mask) with sdpa/eager.",
    )
    gradient_checkpointing: bool = Field(
        default=True, description="Recompute activations in the backward pass to save memory."
    )
    precision: Precision = Field(
        default="auto",
        description="auto: bf16 on GPUs that support it, fp16 on older GPUs, fp32 on the CPU.",
    )
    liger_kernel: bool | Literal["auto"] = Field(
        default=False,
        description="Liger's Triton kernels (RMSNorm, RoPE, SwiGLU): true requires liger-kernel "
        "and CUDA; auto uses them when both are there.",
    )
    logging_steps: int = Field(default=1, ge=1, description="Report the loss every N steps.")


class EvalConfig(_Section):
    """Held-out evaluation, early stopping and which checkpoint is kept."""

    every: int | Literal["epoch"] = Field(
        default="epoch",
        description="Evaluate (and checkpoint) every N optimizer steps, or each epoch.",
    )
    early_stopping_patience: int | None = Field(
        default=3,
        ge=1,
        description="Stop after this many evaluations without a better eval loss; null: never.",
    )
    early_stopping_threshold: float = Field(
        default=0.0, ge=0, description="How much the eval loss must fall to count as better."
    )

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: object) -> object:
        if value == "epoch" or (type(value) is int and value >= 1):
            return value
        raise ValueError("must be 'epoch' or a number of steps of at least 1")


class OutputConfig(_Section):
    """Where the run is written and which checkpoints stay."""

    dir: Path | None = Field(
        default=None,
        description="Run folder; unset, `<data_dir>/runs/<persona>-<UTC timestamp>`.",
    )
    save_total_limit: int = Field(
        default=2,
        ge=1,
        description="Checkpoints kept while training (the best one is always kept).",
    )
    keep_checkpoints: bool = Field(
        default=False, description="Keep checkpoints after a successful run (default: delete)."
    )


class TrainConfig(_Section):
    """Everything one training run needs; see docs/training.md for the reference."""

    model: ModelConfig = Field(description="The base model.")
    persona: str | None = Field(
        default=None,
        description="The persona this model answers as (registry name); unset, the dataset "
        "card's persona.",
    )
    dataset: Path | None = Field(
        default=None, description="Folder written by `wa-persona dataset` (or --dataset)."
    )
    method: Method = Field(
        default="lora", description="lora (adapter), qlora (adapter on a 4/8-bit base) or full."
    )
    quantization: QuantizationConfig = Field(
        default_factory=QuantizationConfig, description="QLoRA settings."
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="Adapter settings.")
    training: TrainingConfig = Field(
        default_factory=TrainingConfig, description="Optimisation settings."
    )
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation settings.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="Output settings.")
    seed: int = Field(default=42, description="Seeds data order, adapter init and dropout.")
    resume: bool | Path = Field(
        default=False,
        description="true: continue from the latest checkpoint in output.dir; a path: from that "
        "checkpoint (or the latest one of that run folder).",
    )
    cpu_fallback: bool = Field(
        default=False,
        description="Without CUDA or bitsandbytes, train plain LoRA on the CPU instead of "
        "refusing a QLoRA run.",
    )

    @model_validator(mode="after")
    def _resume_needs_a_run(self) -> TrainConfig:
        if self.resume is True and self.output.dir is None:
            raise ValueError(
                "resume: true continues the run in output.dir; set output.dir (--output) or "
                "give resume the checkpoint or run folder to continue"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready values (paths as strings)."""
        return self.model_dump(mode="json")


def list_presets() -> list[str]:
    """Names of the presets shipped in training/configs/."""
    folder = resources.files("training") / "configs"
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def preset_path(name: str) -> Path:
    """The YAML file of preset `name`; ConfigError listing the presets when there is none."""
    path = Path(str(resources.files("training") / "configs" / f"{name.removesuffix('.yaml')}.yaml"))
    if not path.is_file():
        close = difflib.get_close_matches(name, list_presets(), n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"{name!r} is neither a config file nor a preset; {hint}"
            f"presets: {', '.join(list_presets())}"
        )
    return path


def load_train_config(
    path_or_preset: str | Path, overrides: Mapping[str, object] | None = None
) -> TrainConfig:
    """Read a YAML config file or preset, apply dotted-key `overrides`, and validate.

    Raises:
        ConfigError: an unreadable file, an unknown preset, or one line per invalid key
            ("config key lora.rr: unknown key (did you mean lora.r?)").
    """
    path = Path(path_or_preset)
    if not path.is_file():
        path = preset_path(str(path_or_preset))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys to values, not {type(data)}")
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: " + "; ".join(_describe(exc))) from exc


def _set_dotted(data: dict[str, Any], key: str, value: object) -> None:
    """Set `a.b.c` in nested dicts, creating sections that the file left out."""
    *sections, leaf = key.split(".")
    node = data
    for depth, name in enumerate(sections):
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            where = ".".join(sections[: depth + 1])
            raise ConfigError(f"config key {key}: {where} is a value, not a section")
        node = child
    node[leaf] = value


def _describe(exc: ValidationError) -> list[str]:
    """One readable line per problem, named by its dotted key."""
    lines: list[str] = []
    for error in exc.errors():
        key = _key(error["loc"])
        name = ".".join(key) or "(top level)"
        if error["type"] == "extra_forbidden":
            known = list(_section(key[:-1]).model_fields)
            close = difflib.get_close_matches(key[-1], known, n=1)
            hint = f" (did you mean {'.'.join([*key[:-1], close[0]])}?)" if close else ""
            line = f"config key {name}: unknown key{hint}"
        elif error["type"] == "missing":
            line = f"config key {name}: required"
        else:
            line = f"config key {name}: {error['msg'].removeprefix('Value error, ')}"
        if line not in lines:
            lines.append(line)
    return lines


def _key(loc: tuple[int | str, ...]) -> list[str]:
    """The config key of an error location, without pydantic's union-member names."""
    key: list[str] = []
    model: type[BaseModel] | None = TrainConfig
    for part in loc:
        if model is None or not isinstance(part, str):
            break
        key.append(part)
        field = model.model_fields.get(part)
        model = _submodel(field.annotation) if field else None
    return key


def _section(key: list[str]) -> type[BaseModel]:
    """The section model at `key` (the top level for an empty key)."""
    model: type[BaseModel] = TrainConfig
    for part in key:
        sub = _submodel(model.model_fields[part].annotation)
        if sub is None:
            break
        model = sub
    return model


def _submodel(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def config_reference() -> str:
    """The config keys as a Markdown table (key, default, description), from the fields."""
    rows = ["| key | default | description |", "|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            section = _submodel(field.annotation)
            if section is not None:
                walk(section, f"{prefix}{name}.")
                continue
            default = "required" if field.is_required() else f"`{_yaml_value(field.default)}`"
            rows.append(f"| `{prefix}{name}` | {default} | {field.description} |")

    walk(TrainConfig, "")
    return "\n".join(rows)


def _yaml_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
