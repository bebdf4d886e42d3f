"""The part of a volume an interaction affects, and what an engine step gives back.

Every method (GraphCut, networks) checks clicks the same way, works in a box around
the input, and pastes its result into the full label with :func:`paste`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from annotator.errors import InputError

Box = tuple[slice, slice, slice]


@dataclass
class Result:
    """A full-size label produced by one engine step."""

    label: np.ndarray
    method: str
    seconds: float
    box: Box
    timings: dict[str, float] = field(default_factory=dict)


def check_clicks(shape: tuple[int, ...], fg: list, bg: list = ()) -> None:
    """Refuse clicks (array indices ``(z, y, x)``) outside ``shape``, or no foreground click."""
    for point in [*fg, *bg]:
        if len(point) != 3 or not all(0 <= int(p) < n for p, n in zip(point, shape)):
            raise InputError(f"click {tuple(point)} (z,y,x) is outside the image {tuple(shape)}")
    if not fg:
        raise InputError("at least one foreground click is needed")


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
    inside[region_label.astype(bool, copy=False)] = value
    return label
