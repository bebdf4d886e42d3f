"""Segments that may overlap (a DICOM SEG's, an RT Structure Set's, a 3D Slicer
segmentation's layers) made one label, which holds one structure per voxel: the largest
painted first and each smaller one over it, so that a structure inside another (a lesion
in its organ, an organ in the body outline) stays; what overlapped is said in one line."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotator.io.volume import label_dtype

#: overlapping pairs named in the line said about them
NAMED_PAIRS = 3


@dataclass
class Part:
    value: int  # its value in the label
    name: str
    voxels: np.ndarray  # its voxels' flat indices into the label


def one_label(shape: tuple, parts: list[Part], where: str) -> tuple[np.ndarray, list[str]]:
    """(the label of ``parts`` on a grid of ``shape``, what was said: a line naming the
    pairs that overlap, or nothing)."""
    top = max((p.value for p in parts), default=0)
    label = np.zeros(shape, label_dtype(top))
    flat = label.reshape(-1)
    names = {p.value: p.name for p in parts}
    pairs = []
    for part in sorted(parts, key=lambda p: -len(p.voxels)):  # the largest first: the smaller over it
        under = flat[part.voxels]
        values, counts = np.unique(under[under > 0], return_counts=True)
        pairs += [(names[int(v)], part.name, int(c)) for v, c in zip(values, counts) if int(v) != part.value]
        flat[part.voxels] = part.value
    if not pairs:
        return label, []
    shown = "; ".join(f"{inner} over {outer} in {count:,} voxels" for outer, inner, count in pairs[:NAMED_PAIRS])
    more = f" and {len(pairs) - NAMED_PAIRS} more" if len(pairs) > NAMED_PAIRS else ""
    return label, [f"{where}: segments overlap ({shown}{more}); a label holds one structure per voxel: where two "
                   "overlap, the smaller is kept"]
