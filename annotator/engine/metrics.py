"""Overlap measures between a result and a reference label."""

from __future__ import annotations

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks (1.0 when both are empty)."""
    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * (a & b).sum() / total)


def dice_per_label(pred: np.ndarray, truth: np.ndarray, values) -> dict[int, float]:
    """Dice of each label value."""
    return {int(v): dice(pred == v, truth == v) for v in values}
