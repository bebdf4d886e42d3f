"""Tidying one structure of a label, as annotation tools offer after a segmentation:
fill its holes, or keep only its largest connected part.

Each works in the structure's bounding box and gives back a :class:`Result`, so it is
undone like any engine step. Other labels' voxels are never changed.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.ndimage import binary_fill_holes, generate_binary_structure
from scipy.ndimage import label as connected_parts

from annotator.engine.region import Result, extent
from annotator.errors import InputError

#: what each tidying step is called (its method name in the undo history and the status)
STEPS = {"fill_holes": "fill holes", "keep_largest": "keep largest part"}


def tidy(label: np.ndarray, value: int, step: str) -> Result:
    """``step`` (a key of :data:`STEPS`) applied to structure ``value`` of ``label``.

    - ``fill_holes``: background enclosed by the structure on an axial slice (the first
      axis) joins it: vessels inside a liver, a cavity. A hole closed in 3-D is closed on
      each of its slices too.
    - ``keep_largest``: only the structure's largest connected part (26-connected) stays;
      the other parts become background.
    """
    if step not in STEPS:
        raise InputError(f"unknown tidying step '{step}' (known: {', '.join(STEPS)})")
    start = time.perf_counter()
    box = extent(label == value)
    if box is None:
        raise InputError(f"label {value} is empty: nothing to tidy")
    patch = np.array(label[box], np.uint8)
    mine = patch == value
    if step == "fill_holes":
        filled = np.stack([binary_fill_holes(plane) for plane in mine])
        patch[filled & (patch == 0)] = value
    else:
        parts, count = connected_parts(mine, generate_binary_structure(3, 3))
        if count > 1:
            sizes = np.bincount(parts.ravel())
            sizes[0] = 0
            patch[mine & (parts != int(np.argmax(sizes)))] = 0
    return Result(patch, box, label.shape, STEPS[step], time.perf_counter() - start, previous=label)
