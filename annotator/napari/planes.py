"""The planes an image is viewed in: axial, coronal, sagittal, as radiologists read them.

napari slices its world along world axes, and a layer's affine must map each data axis
to (nearly) one world axis: a sagittal series in patient coordinates (LPS) would put its
slices across napari's slicing and break its display. So the layers of an image are
shown in the image's own frame (:func:`frame`): world axis ``i`` is the patient axis
closest to the image's array axis ``i``, in millimetres, signed so that napari's plain
view (the first world axis sliced, the second down the screen, the third across it)
shows the plane the image was acquired in the way radiologists read it: anterior up and
the patient's left on the right of an axial slice, superior up on a coronal or sagittal
one, anterior on the left of a sagittal one. For an axial image the frame is LPS itself.
:func:`view` gives the dims order and camera orientation of any of the three planes.
"""

from __future__ import annotations

import itertools

import numpy as np

from annotator.io.volume import Volume

#: the patient axes, in array order: 0 z (superior+), 1 y (posterior+), 2 x (patient's left+)
PLANES = {"axial": (0, 1, 2), "coronal": (1, 0, 2), "sagittal": (2, 0, 1)}  # (sliced, down, across)
#: the direction along each patient axis that goes down the screen (inferior, posterior, left) ...
_DOWN = {0: -1, 1: 1, 2: 1}
#: ... and across it, to the right (posterior on a sagittal slice, left on the others)
_RIGHT = {0: 1, 1: 1, 2: 1}


def _axes(volume: Volume) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(patient axis, sign) of each world axis: the permutation of the patient axes closest
    to the image's array axes (an oblique image: the one its axes lean to most)."""
    direction = np.abs(np.reshape(volume.direction, (3, 3))[::-1, ::-1])  # rows: patient z, y, x
    best = max(itertools.permutations(range(3)),
               key=lambda p: sum(direction[p[i], i] for i in range(3)))  # the identity first on ties
    signs = (1, _DOWN[best[1]], _RIGHT[best[2]])
    return best, signs


def frame(volume: Volume) -> np.ndarray:
    """3×3 matrix from patient coordinates (LPS, z-y-x order) to the world axes the image's
    layers are shown in."""
    axes, signs = _axes(volume)
    matrix = np.zeros((3, 3))
    for world, (patient, sign) in enumerate(zip(axes, signs)):
        matrix[world, patient] = sign
    return matrix


def acquired(volume: Volume) -> str:
    """The plane the image's slices lie in: the one it opens in."""
    sliced = _axes(volume)[0][0]
    return next(name for name, (across, *_shown) in PLANES.items() if across == sliced)


def slice_names(volume: Volume) -> tuple[str, str, str]:
    """The plane the slices along each world axis lie in: the name napari shows beside
    the slider of that axis."""
    by_axis = {sliced: name for name, (sliced, *_shown) in PLANES.items()}
    return tuple(by_axis[a] for a in _axes(volume)[0])


def view(volume: Volume, plane: str) -> tuple[tuple[int, int, int], tuple[str, str]]:
    """napari's dims order and 2-D camera orientation (vertical, horizontal) that show the
    image in ``plane`` (a name of :data:`PLANES`) as radiologists read it."""
    axes, signs = _axes(volume)
    sliced, down, across = (axes.index(a) for a in PLANES[plane])
    vertical = "down" if signs[down] * _DOWN[axes[down]] > 0 else "up"
    horizontal = "right" if signs[across] * _RIGHT[axes[across]] > 0 else "left"
    return (sliced, down, across), (vertical, horizontal)
