"""A network's new answer merged with the label it replaces, so that a click fixes what
it touches and does not break the rest.

A click network redraws every voxel of its crop on every click. Where the earlier label
was right and the network changes its mind far from the click, the click made the label
worse: with the starter DeepEdit model, a third of the robot user's clicks lowered Dice.
So the new class probabilities are blended with the earlier label, voxel by voxel, by a
weight that is 1 at a click and falls off as a Gaussian of the distance to it. With
``w_c`` the weight of the clicks on class c and ``u`` a voxel's earlier class::

    q_c = w_c * p_c            (c != u)
    q_u = 1 - sum of the others

so a voxel moves only into the class of a click near it, and only where the network
gives that class more than about half (near the click) or is nearly sure (farther
away); beyond the clicks' reach nothing changes. The radius was chosen on the
validation cases of the starter models' training split (never the test split); see
docs/engine.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from annotator.engine.region import Result, extent, holding

#: width (sigma, mm) of the Gaussian fall-off of the network's say around each click
RADIUS_MM = 10.0
#: beyond this many sigmas of every click the weight is below 0.3 % and the label stays
REACH = 3.5


def click_weight(shape: Sequence[int], clicks: list[tuple[int, ...]], spacing,
                 radius_mm: float = RADIUS_MM) -> np.ndarray:
    """(shape) weights in [0, 1]: the largest Gaussian (sigma ``radius_mm``) of the clicks
    (voxel indices, ``spacing`` mm per axis) at each voxel; separable, so cheap."""
    weight = np.zeros(tuple(shape), np.float32)
    for point in clicks:
        axes = [np.exp(-(((np.arange(n) - c) * s) ** 2) / (2 * radius_mm**2)).astype(np.float32)
                for n, c, s in zip(shape, point, spacing)]
        gaussian = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
        np.maximum(weight, gaussian, out=weight)
    return weight


def zone(shape: Sequence[int], clicks: list[tuple[int, tuple[int, ...]]], spacing,
         radius_mm: float = RADIUS_MM) -> tuple[slice, ...] | None:
    """The box of ``shape`` within reach of the clicks, where a blend can change anything
    (None without clicks): only there is the network's answer sampled and blended."""
    if not clicks:
        return None
    points = np.array([p for _, p in clicks])
    reach = np.ceil(REACH * radius_mm / np.asarray(spacing, float)).astype(int)
    lo = np.maximum(points.min(axis=0) - reach, 0)
    hi = np.minimum(points.max(axis=0) + reach + 1, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def shifted(clicks: list[tuple[int, tuple[int, ...]]], box: tuple[slice, ...]) -> list[tuple[int, tuple[int, ...]]]:
    """The clicks in the voxels of ``box``."""
    return [(c, tuple(int(v) - b.start for v, b in zip(p, box))) for c, p in clicks]


def blend(probabilities: np.ndarray, earlier: np.ndarray, clicks: list[tuple[int, tuple[int, ...]]], spacing,
          radius_mm: float = RADIUS_MM) -> np.ndarray:
    """Class probabilities (C, *S) of the network blended with ``earlier`` (class index per
    voxel, *S): a voxel moves to class c with the network's probability of c times the
    weight of the clicks on c (``clicks``: (class, voxel) pairs); the rest stays with its
    earlier class."""
    moved = np.zeros_like(probabilities)
    for cls in range(probabilities.shape[0]):
        points = [p for c, p in clicks if c == cls]
        if points:
            moved[cls] = click_weight(earlier.shape, points, spacing, radius_mm) * probabilities[cls] * (earlier != cls)
    staying = 1 - moved.sum(axis=0)
    for cls in range(probabilities.shape[0]):
        moved[cls] += (earlier == cls) * staying
    return moved


def near_the_clicks(result: Result, previous: np.ndarray, value: int, fg: list, bg: list, spacing,
                    radius_mm: float = RADIUS_MM) -> Result:
    """A cut that redrew label ``value`` (``result``: the structure is what it found in its box) blended with the label it replaces, as a
    network's answer is: a voxel changes only into the class of a click near it (``fg``,
    ``bg``: voxel indices), where the cut put it there. The result's box grows to hold the
    earlier structure, which it keeps far from the clicks."""
    earlier_box = extent(previous == value) or result.box
    box = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(result.box, earlier_box))
    inner = tuple(slice(a.start - b.start, a.stop - b.start) for a, b in zip(result.box, box))
    cut = np.zeros([b.stop - b.start for b in box], bool)
    cut[inner] = result.patch == value
    earlier = previous[box] == value
    clicks = [(1, p) for p in fg] + [(0, p) for p in bg]
    merged = blend(np.stack([~cut, cut]).astype(np.float32), earlier.astype(np.int64),
                   shifted(clicks, box), spacing, radius_mm)
    patch = np.array(previous[box], holding(previous, value))
    patch[earlier] = 0
    patch[merged[1] > merged[0]] = value
    return dataclasses.replace(result, patch=patch, box=box)
