"""Training fixtures: a tiny offline chat model, Maya's dataset, and one finished LoRA run.

The model and dataset fixtures live in tests/training/tiny_model.py so tests elsewhere (the
local persona backend, evaluation, the CLI) import them the same way; see that module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.tiny_model import TinyRun, tiny_dataset_dir, tiny_model_dir, tiny_run_config
from training.progress import ProgressEvent
from training.sft import train

__all__ = ["tiny_dataset_dir", "tiny_lora_run", "tiny_model_dir"]


@pytest.fixture(scope="session")
def tiny_lora_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, tiny_dataset_dir: Path
) -> TinyRun:
    """The tiny model LoRA-trained for 6 steps on Maya (TINY_RUN settings, seed 42)."""
    events: list[ProgressEvent] = []
    out = tmp_path_factory.getbasetemp() / "tiny-lora-run"
    config = tiny_run_config(tiny_model_dir, tiny_dataset_dir, out)
    return TinyRun(train(config, on_event=events.append), events)
