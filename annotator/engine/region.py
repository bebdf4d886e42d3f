"""The part of a volume an interaction affects: a box around its seeds, plus a margin."""

from __future__ import annotations

import numpy as np

Box = tuple[slice, slice, slice]


def box_around(mask: np.ndarray, spacing: tuple[float, float, float], margin_mm: float) -> Box:
    """Bounding box of ``mask``'s voxels grown by ``margin_mm`` per side, inside the volume.

    ``spacing`` is in array order; the margin in voxels is rounded up per axis.
    """
    coords = np.nonzero(mask)
    if not coords[0].size:
        raise ValueError("no seed voxels")
    box = []
    for axis, (c, size) in enumerate(zip(coords, mask.shape)):
        grow = int(np.ceil(margin_mm / spacing[axis]))
        box.append(slice(max(int(c.min()) - grow, 0), min(int(c.max()) + grow + 1, size)))
    return tuple(box)  # type: ignore[return-value]


def box_voxels(box: Box) -> int:
    return int(np.prod([s.stop - s.start for s in box]))


def paste(region_label: np.ndarray, box: Box, previous: np.ndarray | None, shape: tuple[int, ...],
          value: int = 1) -> np.ndarray:
    """Full-size label: ``previous`` (or zeros) with the box replaced by ``region_label``.

    Inside the box, voxels of ``previous`` with another label than ``value`` are kept
    unless the region claims them.
    """
    label = np.zeros(shape, np.uint8) if previous is None else previous.astype(np.uint8, copy=True)
    inside = label[box]
    inside[inside == value] = 0
    inside[region_label.astype(bool)] = value
    return label
