"""Click maps fed to interactive networks beside the image.

One Gaussian per click (peak 1, ``sigma`` model voxels), centred on the click's exact
model coordinate, channels combined by maximum. Which channel a click goes to is the
model card's ``guidance`` layout: DeepGrow has a foreground and a background channel,
DeepEdit one per class (ours: background first; an imported model's: its own order, MONAI
Label's with background last); the width is the card's ``guidance_sigma``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

SIGMA = 2.0


def gaussian_map(shape: Sequence[int], points: Iterable, sigma: float = SIGMA,
                 device: torch.device | str = "cpu", out: torch.Tensor | None = None) -> torch.Tensor:
    """A map of ``shape`` with a Gaussian at each point (coordinates in the map's voxels),
    drawn into ``out`` (zeros of ``shape``) when given.

    Each Gaussian is evaluated within 4 sigma of its centre (beyond, it is below 4e-4).
    """
    signal = torch.zeros(tuple(shape), device=device) if out is None else out
    reach = int(np.ceil(4 * sigma))
    for p in points:
        lo = [max(0, int(np.floor(c)) - reach) for c in p]
        hi = [min(n, int(np.ceil(c)) + reach + 1) for c, n in zip(p, shape)]
        if any(a >= b for a, b in zip(lo, hi)):
            continue  # wholly outside the map
        axes = [torch.exp(-((torch.arange(a, b, device=device, dtype=torch.float32) - float(c)) ** 2)
                          / (2 * sigma**2)) for a, b, c in zip(lo, hi, p)]
        peak = axes[0]
        for a in axes[1:]:
            peak = peak[..., None] * a
        window = tuple(slice(a, b) for a, b in zip(lo, hi))
        signal[window] = torch.maximum(signal[window], peak)
    return signal


def guidance(shape: Sequence[int], clicks: dict[int, list], channels: int,
             device: torch.device | str = "cpu", out: torch.Tensor | None = None,
             sigma: float = SIGMA) -> torch.Tensor:
    """``channels`` maps of ``shape``; ``clicks`` maps a channel to its points. Drawn into
    ``out`` (channels, *shape) when given, which is cleared first."""
    maps = torch.zeros((channels, *shape), device=device) if out is None else out.zero_()
    for channel, points in clicks.items():
        if len(points):
            gaussian_map(shape, points, sigma, device=device, out=maps[channel])
    return maps


def click_channels(card, value: int) -> tuple[int, int]:
    """(foreground channel, background channel) of a click on label ``value`` for the
    network of ``card``."""
    layout = card.guidance
    if card.method != "deepedit":
        return layout.index("foreground"), layout.index("background")
    return layout.index(card.class_names[card.class_of(value)]), layout.index("background")


def centre_of(mask: np.ndarray) -> tuple[int, ...]:
    """The voxel of ``mask`` farthest from its border: where a person would click it.

    Where the mask reaches the image's edge (an organ cut by the field of view, a slab of a
    few slices) the edge counts as a border, so that the click stays in the middle of the
    slices, and of the voxels as far from it as the farthest (on a slab of three slices,
    every voxel of the middle one two voxels or more inside), the one farthest from the
    mask's own border is clicked, as a person clicks the middle of what is seen of it, not
    a voxel at its edge."""
    from scipy import ndimage

    # Only the mask's bounding box: the zeros just outside it are as near as any farther out.
    box = ndimage.find_objects(np.asarray(mask, dtype=np.uint8))
    box = box[0] if box else tuple(slice(0, n) for n in mask.shape)
    depth = ndimage.distance_transform_edt(np.pad(mask[box], 1))[tuple(slice(1, -1) for _ in mask.shape)]
    deepest = depth == depth.max()
    pad = [(int(s.start > 0), int(s.stop < n)) for s, n in zip(box, mask.shape)]  # none beyond the image's edge
    if np.count_nonzero(deepest) > 1 and any(a + b < 2 for a, b in pad):  # of those, the one deepest in the mask
        own = ndimage.distance_transform_edt(np.pad(mask[box], pad))
        depth = np.where(deepest, own[tuple(slice(a, a + s.stop - s.start) for (a, _), s in zip(pad, box))], -1)
    point = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return tuple(int(i) + s.start for i, s in zip(point, box))
