"""What a fine-tuning job is asked to do: the model and hyperparameters OpenAI accepts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from training.openai_ft.errors import OpenAIFineTuningError
from training.registry import persona_slug

__all__ = ["DEFAULT_MODEL", "MAX_SEED", "MAX_SUFFIX", "Auto", "OpenAIJobConfig", "default_suffix"]

DEFAULT_MODEL = "gpt-4.1-mini-2025-04-14"
"""A model OpenAI lists as fine-tunable (supervised) at the time of writing."""

MAX_SUFFIX = 64
"""OpenAI's limit on `suffix` (the create-job parameter's documentation)."""
MAX_SEED = 2**31 - 1

Auto = Literal["auto"]


@dataclass(frozen=True, slots=True)
class OpenAIJobConfig:
    """A supervised fine-tuning job's settings; "auto" lets OpenAI choose."""

    model: str = DEFAULT_MODEL
    n_epochs: int | Auto = "auto"
    batch_size: int | Auto = "auto"
    learning_rate_multiplier: float | Auto = "auto"
    suffix: str | None = None
    """Added to the fine-tuned model's name; default: the persona's slug."""
    seed: int | None = None
    """Makes a job reproducible; OpenAI picks one when unset."""

    def validate(self) -> None:
        """Raise OpenAIFineTuningError naming the first setting OpenAI would refuse."""
        if not self.model.strip():
            raise OpenAIFineTuningError("model is empty; give a fine-tunable OpenAI model id")
        for name in ("n_epochs", "batch_size"):
            value = getattr(self, name)
            if value != "auto" and (type(value) is not int or value < 1):
                raise OpenAIFineTuningError(f"{name} must be 'auto' or at least 1, not {value!r}")
        lr = self.learning_rate_multiplier
        if lr != "auto" and (
            isinstance(lr, bool)
            or not isinstance(lr, int | float)
            or not math.isfinite(lr)
            or lr <= 0
        ):
            raise OpenAIFineTuningError(
                f"learning_rate_multiplier must be 'auto' or a positive number, not {lr!r}"
            )
        if self.suffix is not None and not 0 < len(self.suffix) <= MAX_SUFFIX:
            raise OpenAIFineTuningError(
                f"suffix must be 1 to {MAX_SUFFIX} characters, not {len(self.suffix)}"
            )
        if self.seed is not None and (type(self.seed) is not int or not 0 <= self.seed <= MAX_SEED):
            raise OpenAIFineTuningError(f"seed must be 0 to {MAX_SEED}, not {self.seed!r}")

    def method(self) -> dict[str, Any]:
        """The create-job `method` parameter: supervised, with these hyperparameters."""
        return {
            "type": "supervised",
            "supervised": {
                "hyperparameters": {
                    "n_epochs": self.n_epochs,
                    "batch_size": self.batch_size,
                    "learning_rate_multiplier": self.learning_rate_multiplier,
                }
            },
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def default_suffix(persona: str) -> str:
    """The persona's slug ("Zoë" -> "zoe"), cut to OpenAI's suffix limit."""
    return persona_slug(persona)[:MAX_SUFFIX].strip("-")
