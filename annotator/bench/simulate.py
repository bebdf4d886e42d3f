"""Simulated user input drawn from a ground-truth mask (for tests and benchmarks).

Deterministic: the same mask always gives the same strokes.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_dilation, binary_erosion, generate_binary_structure

from annotator.engine.interactive import BACKGROUND, FOREGROUND


def _core(mask2d: np.ndarray) -> np.ndarray:
    """The last non-empty erosion of a 2-D mask: a thin stroke along its middle."""
    structure = generate_binary_structure(2, 1)
    core = mask2d
    while True:
        nxt = binary_erosion(core, structure)
        if not nxt.any():
            return core
        core = nxt


def scribbles_from_mask(mask: np.ndarray, every: int = 3, ring: int = 2) -> np.ndarray:
    """Foreground strokes inside ``mask`` and a background ring around it.

    Parameters
    ----------
    mask
        Ground truth (z, y, x), non-zero = structure.
    every
        Foreground strokes on every ``every``-th slice (along the first axis) that
        contains the structure: the medial core of the structure on that slice.
    ring
        The background ring runs ``ring`` voxels outside the structure (3-D distance),
        one voxel thick, on every slice: what a person circles around it.
    """
    mask = mask.astype(bool)
    scribbles = np.zeros(mask.shape, np.uint8)
    slices = np.nonzero(mask.any(axis=(1, 2)))[0]
    for z in slices[len(slices) % every // 2 :: every]:
        scribbles[z][_core(mask[z])] = FOREGROUND
    structure = generate_binary_structure(3, 1)
    inner = binary_dilation(mask, structure, ring)
    outer = binary_dilation(inner, structure, 1)
    scribbles[outer & ~inner] = BACKGROUND
    return scribbles


def sparse_scribbles_from_mask(mask: np.ndarray, slices: int = 3, ring: int = 2) -> np.ndarray:
    """Strokes as people draw them: the medial core of the structure on ``slices`` slices
    spread through it (along the first axis), and one background ring ``ring`` voxels
    outside it on the middle one of those slices."""
    mask = mask.astype(bool)
    scribbles = np.zeros(mask.shape, np.uint8)
    present = np.nonzero(mask.any(axis=(1, 2)))[0]
    if not present.size:
        return scribbles
    chosen = [int(present[int(round(q * (len(present) - 1)))]) for q in np.linspace(0, 1, slices + 2)[1:-1]]
    for z in chosen:
        scribbles[z][_core(mask[z])] = FOREGROUND
    middle = chosen[len(chosen) // 2]
    structure = generate_binary_structure(2, 1)
    inner = binary_dilation(mask[middle], structure, ring)
    outer = binary_dilation(inner, structure, 1)
    scribbles[middle][outer & ~inner] = BACKGROUND
    return scribbles
