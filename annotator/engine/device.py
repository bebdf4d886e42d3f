"""Which device runs the networks: CUDA when present, else the CPU with all its cores (or
as many threads as ``OMP_NUM_THREADS`` asks for, as other OpenMP programs take it)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported on first use: it takes seconds
    import torch


def choose_device(prefer: str | None = None) -> torch.device:
    """``prefer`` ("cuda"/"cpu") when usable, else CUDA if available, else CPU."""
    import torch

    if prefer == "cpu" or not torch.cuda.is_available():
        torch.set_num_threads(cpu_threads())
        return torch.device("cpu")
    return torch.device("cuda")


def cpu_threads() -> int:
    """The threads a network runs on the CPU: ``OMP_NUM_THREADS`` where it is a count
    (a shared workstation, or tests running side by side), else every core this process may
    use."""
    asked = os.environ.get("OMP_NUM_THREADS", "").strip()
    if asked.isdigit() and int(asked) > 0:
        return int(asked)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def use_half(device: torch.device) -> bool:
    """Half precision only where it is fast and safe: on a CUDA device."""
    return device.type == "cuda"
