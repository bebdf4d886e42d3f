"""Which device runs the networks: CUDA when present, else the CPU with all its cores."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported on first use: it takes seconds
    import torch


def choose_device(prefer: str | None = None) -> torch.device:
    """``prefer`` ("cuda"/"cpu") when usable, else CUDA if available, else CPU."""
    import torch

    if prefer == "cpu" or not torch.cuda.is_available():
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                  else os.cpu_count() or 1))
        return torch.device("cpu")
    return torch.device("cuda")


def use_half(device: torch.device) -> bool:
    """Half precision only where it is fast and safe: on a CUDA device."""
    return device.type == "cuda"
