"""What the machine offers for training: CUDA, the GPU, bitsandbytes, flash attention, memory.

Read before anything loads, so a run that cannot work here (QLoRA without CUDA) fails in a
second with a clear message rather than after minutes of downloading.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import resource
import sys
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "Hardware",
    "detect_hardware",
    "is_main_process",
    "peak_memory_mb",
    "world_size",
]


@dataclass(frozen=True, slots=True)
class Hardware:
    """The devices and kernels available to this process."""

    cuda: bool
    gpu_name: str | None
    gpu_memory_mb: int | None
    gpu_count: int
    bf16: bool  # the GPU computes in bfloat16 (Ampere or newer)
    bitsandbytes: bool  # importable and usable (needs CUDA)
    flash_attention: bool  # flash-attn installed and usable (needs CUDA)
    liger_kernel: bool  # liger-kernel installed and usable (needs CUDA)
    cpu_count: int
    platform: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields for the manifest."""
        return asdict(self)


def detect_hardware() -> Hardware:
    """Probe torch and the optional kernels; nothing is loaded onto the GPU."""
    import torch

    cuda = torch.cuda.is_available()
    name = memory = None
    bf16 = False
    if cuda:
        props = torch.cuda.get_device_properties(0)
        name, memory = props.name, props.total_memory // 2**20
        bf16 = torch.cuda.is_bf16_supported()
    return Hardware(
        cuda=cuda,
        gpu_name=name,
        gpu_memory_mb=memory,
        gpu_count=torch.cuda.device_count() if cuda else 0,
        bf16=bf16,
        bitsandbytes=cuda and _installed("bitsandbytes"),
        flash_attention=cuda and _installed("flash_attn"),
        liger_kernel=cuda and _installed("liger_kernel"),
        cpu_count=os.cpu_count() or 1,
        platform=f"{platform.system()} {platform.machine()}, Python {sys.version.split()[0]}",
    )


def peak_memory_mb() -> float:
    """Peak memory of this process: GPU memory allocated on CUDA, else resident set size."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def world_size() -> int:
    """Processes in this run (accelerate/torchrun set WORLD_SIZE; 1 when launched plainly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in the one process that writes outputs and registers the run (rank 0)."""
    return int(os.environ.get("RANK", "0")) == 0


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
