"""The part of a volume an interaction affects, and what an engine step gives back.

Every method (GraphCut, networks) checks clicks the same way, works in a box around
the input, and gives back the label inside that box only (:func:`paste`): a
:class:`Result` is written into the label in place, and undone by writing back what
the box held, so no step copies the whole volume.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import numpy as np

from annotator.errors import InputError
from annotator.io.volume import LABEL_TOP, as_label, label_dtype

Box = tuple[slice, slice, slice]


@dataclass
class Result:
    """One engine step: the label inside ``box`` is ``patch``; outside, ``previous`` holds.

    ``previous`` is the label the step started from (a reference, never copied; ``None``:
    all background). Writing the patch is idempotent, so :attr:`label` is right whether
    or not the patch was already written into ``previous``.
    """

    patch: np.ndarray
    box: Box
    shape: tuple[int, ...]
    method: str
    seconds: float
    previous: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: name -> value of the labels the step drew, where its model names them (automatic segmentation)
    names: dict[str, int] = field(default_factory=dict)
    #: the model that answered (networks; "" for GraphCut)
    model: str = ""

    def apply(self, label: np.ndarray) -> np.ndarray:
        """Write the patch into ``label`` in place; returns what the box held before (for undo).
        ``label`` must hold the patch's values (a label of one byte a voxel cannot hold 300:
        :func:`holding`)."""
        if np.dtype(self.patch.dtype).itemsize > label.dtype.itemsize:
            raise ValueError(f"a label of {label.dtype} cannot hold a patch of {self.patch.dtype}")
        before = label[self.box].copy()
        label[self.box] = self.patch
        return before

    @functools.cached_property
    def label(self) -> np.ndarray:
        """The full label after the step, as a new array."""
        label = np.zeros(self.shape, holding(self.previous, self.patch.dtype))
        if self.previous is not None:
            label[...] = self.previous
        label[self.box] = self.patch
        return label

    def replacing(self, label: np.ndarray, value: int, within: Box | None = None) -> "Result":
        """This step made to replace structure ``value`` everywhere in ``label``: the box grows
        to take in the voxels of ``value`` outside it, which become background. ``within``:
        a box known to hold every voxel of ``value`` (only it is searched)."""
        # inside the step's box the structure was redrawn: only the rest is searched
        found = [offset_box(extent(label[part] == value), part)
                 for part in _minus(within or tuple(slice(0, n) for n in label.shape), self.box)]
        found = [f for f in found if f is not None]
        if not found:
            return self
        box = tuple(slice(min(b.start, *(f[a].start for f in found)), max(b.stop, *(f[a].stop for f in found)))
                    for a, b in enumerate(self.box))
        patch = np.array(label[box], holding(label, self.patch.dtype))
        patch[patch == value] = 0
        patch[tuple(slice(b.start - o.start, b.stop - o.start) for b, o in zip(self.box, box))] = self.patch
        return dataclasses.replace(self, patch=patch, box=box)


def holding(label: np.ndarray | None, value) -> np.dtype:
    """The type of ``label`` (None: an empty one) once it also holds ``value`` (a label
    value, or a label type whose values it takes): one byte a voxel, or two where either
    needs them."""
    needs = np.dtype(value) if isinstance(value, (np.dtype, type)) else np.dtype(label_dtype(int(value)))
    return np.promote_types(np.uint8 if label is None else label.dtype, needs)


def check_clicks(shape: tuple[int, ...], fg: list, bg: list = (), correcting: bool = False) -> None:
    """Refuse clicks (array indices ``(z, y, x)``) outside ``shape``, or no foreground click;
    ``correcting``: a structure is there to correct, and background clicks alone may do it."""
    for point in [*fg, *bg]:
        if len(point) != 3 or not all(0 <= int(p) < n for p, n in zip(point, shape)):
            raise InputError(f"click {tuple(point)} (z,y,x) is outside the image {tuple(shape)}")
    if not fg and not (correcting and bg):
        raise InputError("at least one foreground click is needed" + (
            " (background clicks alone only take away from a label that has voxels)" if bg else ""))


def check_step(shape: tuple[int, ...], previous: np.ndarray | None = None, value: int | None = 1) -> None:
    """Refuse a step whose label to correct (``previous``) is not on the image's grid
    (``shape``) or holds values a label cannot, or whose label ``value`` is not 1 to
    :data:`LABEL_TOP` (``None``: a step that draws several)."""
    if value is not None and not 1 <= int(value) <= LABEL_TOP:
        raise InputError(f"label value {value}: a label here holds values 1 to {LABEL_TOP}")
    if previous is None:
        return
    if tuple(previous.shape) != tuple(shape):
        raise InputError(f"the label to correct has shape {tuple(previous.shape)} (z,y,x) but the image has "
                         f"{tuple(shape)}")
    if previous.dtype not in (np.uint8, np.uint16):
        as_label(previous, "the label to correct", file=False)


def check_finite(array: np.ndarray, where: str, box: Box | None = None) -> None:
    """Refuse intensities that are NaN or infinite (a script's array; files and layers
    have theirs replaced when read), naming the first such voxel; ``box``: only the part
    a step reads is looked at."""
    part = array if box is None else array[box]
    if part.dtype.kind == "f" and not np.isfinite(part).all():
        first = np.argwhere(~np.isfinite(part))[0] + ([b.start for b in box] if box else 0)
        raise InputError(f"{where} holds NaN or infinity (at {tuple(int(v) for v in first)}, z,y,x); set those "
                         "voxels to a number first (Annotator's readers set them to the image's lowest value)")


def box_around(mask: np.ndarray, spacing: tuple[float, float, float], margin_mm: float) -> Box:
    """Bounding box of ``mask``'s voxels grown by ``margin_mm`` per side, inside the volume.

    ``spacing`` is in array order; the margin in voxels is rounded up per axis.
    """
    found = extent(mask)
    if found is None:
        raise ValueError("no seed voxels")
    box = []
    for axis, (c, size) in enumerate(zip(found, mask.shape)):
        grow = int(np.ceil(margin_mm / spacing[axis]))
        box.append(slice(max(c.start - grow, 0), min(c.stop + grow, size)))
    return tuple(box)  # type: ignore[return-value]


def _minus(box: Box, hole: Box) -> list[Box]:
    """Boxes that together cover ``box`` less ``hole``: slabs cut off one axis at a time."""
    parts, rest = [], list(box)
    for axis, (r, h) in enumerate(zip(box, hole)):
        for piece in (slice(r.start, min(r.stop, h.start)), slice(max(r.start, h.stop), r.stop)):
            if piece.start < piece.stop:
                parts.append(tuple(rest[:axis] + [piece] + rest[axis + 1:]))
        rest[axis] = slice(max(r.start, h.start), min(r.stop, h.stop))
        if rest[axis].start >= rest[axis].stop:
            break  # no overlap: the slabs so far cover all of ``box``
    return parts


def offset_box(box: Box | None, origin: Box) -> Box | None:
    """``box``, found inside ``origin``, in the coordinates ``origin`` lives in."""
    return None if box is None else tuple(slice(b.start + o.start, b.stop + o.start) for b, o in zip(box, origin))


def extent(mask: np.ndarray) -> Box | None:
    """Bounding box of a 3-D ``mask``'s voxels (``None`` when empty), by reductions rather
    than listing every voxel."""
    zy = mask.any(axis=2)
    z, y = np.flatnonzero(zy.any(axis=1)), np.flatnonzero(zy.any(axis=0))
    if not z.size:
        return None
    x = np.flatnonzero(mask[z[0]:z[-1] + 1].any(axis=(0, 1)))
    return tuple(slice(int(v[0]), int(v[-1]) + 1) for v in (z, y, x))  # type: ignore[return-value]


def voxels(mask: np.ndarray) -> np.ndarray:
    """The indices of ``mask``'s voxels (as ``np.argwhere``), listed within its extent:
    a few strokes in a whole organ's box are read without scanning all of it."""
    box = extent(mask)
    if box is None:
        return np.zeros((0, mask.ndim), np.intp)
    return np.argwhere(mask[box]) + [b.start for b in box]


def box_voxels(box: Box) -> int:
    return int(np.prod([s.stop - s.start for s in box]))


def paste(region_label: np.ndarray, box: Box, previous: np.ndarray | None, value: int = 1) -> np.ndarray:
    """The label inside ``box`` after a step that found ``region_label`` there: voxels of
    ``previous`` (or background) with another label than ``value`` are kept unless the
    region claims them."""
    inside = np.zeros(region_label.shape, holding(previous, value))
    if previous is not None:
        inside[...] = previous[box]
    inside[inside == value] = 0
    inside[region_label.astype(bool, copy=False)] = value
    return inside
