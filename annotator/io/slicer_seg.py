"""3D Slicer's segmentation NRRD (``.seg.nrrd``): its segments' names and label values,
and a file of several layers flattened into one label map.

Slicer keeps segments that do not overlap on one layer, each with its label value, and
puts a segment that overlaps another on a layer of its own: the file is then 4-D, one
3-D layer per component, and two segments on different layers may share a value. A label
here holds one structure per voxel, so the layers become one label: the first layer's
segments keep their values, the others take the next free ones, and where segments
overlap the smaller one is kept (:mod:`annotator.io.overlaps`).

Slicer may also save a segmentation cropped to its segments' extent, or grown to take in
segments beyond its image: on the image's voxels, not its size. Such a file is placed on
its image (:meth:`annotator.io.volume.Volume.on_grid_of`); any other label must be the
image's size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


def is_segmentation(path) -> bool:
    """Whether the file at ``path`` is a 3D Slicer segmentation (a NRRD with its
    ``Segmentation_`` or ``Segment0_`` fields): one that Slicer may have saved cropped to
    its segments, or grown past its image, on the image's voxels."""
    from annotator.io.read import read_information

    if not str(path).lower().endswith((".nrrd", ".nhdr")):
        return False
    try:
        keys = read_information(path).GetMetaDataKeys()
    except RuntimeError:
        return False
    return any(k.startswith(("Segmentation_", "Segment0_")) for k in keys)


@dataclass(frozen=True)
class Segment:
    name: str
    layer: int
    value: int  # its value on its layer, as the file stores it


def segments(fields: dict[str, str]) -> list[Segment]:
    """The segments a NRRD header's fields (key -> text) describe, in the file's order;
    one without a name, a whole-number value from 1 to 65535 or layer is left out."""
    found = []
    for key in sorted(fields, key=lambda k: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", k)]):
        match = re.fullmatch(r"Segment(\d+)_Name", key)
        if not match:
            continue
        i = match.group(1)
        value, layer = fields.get(f"Segment{i}_LabelValue", "").strip(), fields.get(f"Segment{i}_Layer", "0").strip()
        if value.isdigit() and 0 < int(value) < 65536 and (layer or "0").isdigit() and fields[key].strip():
            found.append(Segment(fields[key].strip(), int(layer or 0), int(value)))
    return found


def flat_values(found: list[Segment]) -> dict[tuple[int, int], int]:
    """(layer, value) -> the segment's value in the one label: the first layer's as
    stored, every other layer's segments the next values no segment holds yet."""
    values = {(s.layer, s.value): s.value for s in found if s.layer == 0}
    taken = set(values.values())
    for s in found:
        if (s.layer, s.value) not in values:
            free = max(taken | {0}) + 1
            values[(s.layer, s.value)] = free
            taken.add(free)
    return values


def names(fields: dict[str, str], layers: int) -> dict[str, int]:
    """Lower-case name -> value in the one label, of each segment the fields describe on
    the file's ``layers`` layers."""
    found = [s for s in segments(fields) if s.layer < layers]
    values = flat_values(found)
    named: dict[str, int] = {}
    for s in found:
        named.setdefault(s.name.lower(), values[(s.layer, s.value)])
    return named


def flatten(layers: np.ndarray, fields: dict[str, str], where: str) -> tuple[np.ndarray, list[str]]:
    """(one label, what was said about overlaps) of ``layers`` (z, y, x, layer), the voxels
    of a layered segmentation whose header fields are ``fields``
    (:func:`annotator.io.overlaps.one_label`)."""
    from annotator.io.overlaps import Part, one_label

    found = [s for s in segments(fields) if s.layer < layers.shape[-1]]
    values = flat_values(found)
    parts = [Part(values[(s.layer, s.value)], s.name, np.flatnonzero(layers[..., s.layer] == s.value)) for s in found]
    return one_label(layers.shape[:-1], parts, where)
