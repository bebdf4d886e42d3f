"""Networks trained in MONAI's layouts, where this app's arrays are ``(z, y, x)`` as stored.

MONAI loads an image as ``(x, y, z)``. A bundle or MONAI Label's DeepEdit then turns it to
right, anterior, superior (``Orientationd(axcodes="RAS")``): a card's ``axes: "ras"``;
MONAI Label's DeepGrow transposes it to ``(z, x, y)`` as stored (``Transposed([2, 0,
1])``; DeepGrow 2D: its ``(x, y)`` slices): ``axes: "zxy"``. Such a model is run through
:class:`Turned`: its input is turned that way for the image at hand, and its answer
turned back, so everything else (crops, click maps, the label) stays on this app's grid.

A network trained here sees arrays as stored, and its card says which way its training
images' axes ran (``orientation``: ``"SAR"`` for a NIfTI stored in RAS, as the Decathlon's
are; :func:`orientation_code`): an image stored otherwise (a DICOM series runs to left,
posterior) is turned to that (:func:`orientation_view`) for it, and so are the training
images themselves (:func:`turn_array`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from annotator.models.card import ORIENTATION_LETTERS


def ras_view(direction: Sequence[float], spatial_dims: int = 3) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """(order, flips) for an image of ITK ``direction`` (row-major 3x3; column i: the
    LPS direction of index axis i): ``order[j]`` is the array axis (z, y, x numbered 0,
    1, 2) that becomes the network's axis j (right, anterior, superior), reversed where
    ``flips[j]``. Oblique axes go to the nearest. For a 2-D network (slices along the
    array's first axis), the two in-plane axes in the same order."""
    towards_ras = np.asarray(direction, float).reshape(3, 3) * np.array([[-1.0], [-1.0], [1.0]])
    best = max(itertools.permutations(range(3)),
               key=lambda p: sum(abs(towards_ras[r, p[r]]) for r in range(3)))
    order = [2 - i for i in best]  # ITK index axis i is array axis 2 - i
    flips = [bool(towards_ras[r, best[r]] < 0) for r in range(3)]
    return in_plane(order, flips) if spatial_dims == 2 else (tuple(order), tuple(flips))


def in_plane(order: Sequence[int], flips: Sequence[bool]) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """The 3-D turn (order, flips) of a volume as a 2-D network, answering the slices along
    the array's first axis, takes them: its two in-plane axes (numbered 0, 1: y, x), in
    the order the turn gives them."""
    kept = [j for j in range(3) if order[j] != 0]
    return tuple(order[j] - 1 for j in kept), tuple(flips[j] for j in kept)


def turn_sizes(values: Sequence, order: Sequence[int]) -> list:
    """A card's per-axis ``values`` (a crop size, a spacing: the network's axes; for a 2-D
    network three, the first the slices') on the array's axes, for a turn of ``order``."""
    if len(values) == len(order):
        return [values[order.index(a)] for a in range(len(order))]
    return [values[0], *(values[1 + order.index(a)] for a in range(len(order)))]


def orientation_code(direction: Sequence[float]) -> str:
    """Which way an image's array axes (z, y, x) run, nearest, as three letters: ``"SAR"``
    (the first toward superior, then anterior, then right) for a NIfTI stored in RAS,
    ``"SPL"`` for an axial DICOM series."""
    order, flips = ras_view(direction)
    code = [""] * 3
    for j, (axis, flip) in enumerate(zip(order, flips)):
        code[axis] = ("LPI" if flip else "RAS")[j]
    return "".join(code)


def orientation_view(orientation: str, direction: Sequence[float]) -> tuple[tuple[int, ...], tuple[bool, ...]] | None:
    """(order, flips) turning an image of ``direction`` so that its axes run as
    ``orientation`` (:func:`orientation_code`) says; None when they do already."""
    order, flips = ras_view(direction)
    turned = [(order[ORIENTATION_LETTERS[c][0]], flips[ORIENTATION_LETTERS[c][0]] != ORIENTATION_LETTERS[c][1])
              for c in orientation]
    if [a for a, _ in turned] == [0, 1, 2] and not any(f for _, f in turned):
        return None
    return tuple(a for a, _ in turned), tuple(f for _, f in turned)


def turn_array(array: np.ndarray, order: Sequence[int], flips: Sequence[bool]) -> np.ndarray:
    """``array`` (z, y, x) as a :class:`Turned` network sees it: axis j is array axis
    ``order[j]``, reversed where ``flips[j]``."""
    flipped = [a for a, f in zip(order, flips) if f]
    return np.transpose(np.flip(array, flipped) if flipped else array, order)


class Turned(torch.nn.Module):
    """``network`` taking and giving (N, C, *spatial) in this app's axes while it runs in
    its own: network axis j is array axis ``order[j]``, reversed where ``flips[j]``."""

    def __init__(self, network: torch.nn.Module, order: Sequence[int], flips: Sequence[bool]):
        super().__init__()
        self.network = network
        self.order = tuple(int(a) for a in order)
        self.flipped = [a + 2 for a, f in zip(self.order, flips) if f]
        inner = getattr(network, "input_multiple", None)
        if inner is not None:  # what each of our axes must be a multiple of
            self.input_multiple = tuple(inner[self.order.index(a)] for a in range(len(self.order)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flipped:
            x = x.flip(self.flipped)
        y = self.network(x.permute(0, 1, *(a + 2 for a in self.order)))
        y = y.permute(0, 1, *(self.order.index(a) + 2 for a in range(len(self.order))))
        return y.flip(self.flipped) if self.flipped else y


def network_view(axes: str, direction: Sequence[float], spatial_dims: int = 3, orientation: str = ""):
    """(order, flips) of a card's ``axes`` (and ``orientation``: a network of this app's
    layout trained on images that ran so; a 2-D one's slices turned in their plane) for an
    image of ``direction``; None for this app's own layout, as stored."""
    if axes == "array":
        view = orientation_view(orientation, direction) if orientation else None
        if view is None or spatial_dims == 3:
            return view
        view = in_plane(*view)  # its slices turned in their plane
        return None if view == ((0, 1), (False, False)) else view
    if axes == "ras":
        return ras_view(direction, spatial_dims)
    if axes == "zxy":
        return ((1, 0), (False, False)) if spatial_dims == 2 else ((0, 2, 1), (False, False, False))
    return None
