"""An image (and its label) on a model's grid: resampled to the model spacing, normalised.

The one preprocessing that inference sessions and training share, so a network sees the
same input in both. Grids are mapped corner-to-corner (``align_corners``): image voxel
``v`` sits at model coordinate ``v * (M - 1) / (N - 1)`` along an axis of N image and M
model voxels. 2-D models (DeepGrow 2D) keep the image's slices: only rows and columns
are resampled.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from annotator.io.volume import as_label
from annotator.models.card import ModelCard


def model_shape(shape, spacing_zyx, card: ModelCard, direction=None) -> tuple[int, int, int]:
    """Size of the model grid for an image of ``shape`` with ``spacing_zyx`` (mm): the
    card's ``input_size`` laid on the array's axes (which needs the image's ``direction``
    for a network in MONAI's layout), else the image resampled to the target spacing."""
    if card.input_size:
        from annotator.engine.axes import network_view

        dims = card.spatial_dims
        view = network_view(card.axes, np.eye(3).ravel() if direction is None else direction, dims, card.orientation)
        order = view[0] if view else tuple(range(dims))
        size = [0] * dims
        for j, axis in enumerate(order):
            size[axis] = int(card.input_size[j])
        return tuple(size) if dims == 3 else (int(shape[0]), *size)
    target = np.asarray(card.target_spacing, float)
    if card.spatial_dims == 2:
        target = np.array([spacing_zyx[0], *target[-2:]], float)
    return tuple(int(max(2, round((n - 1) * s / t) + 1)) if n > 1 else 1
                 for n, s, t in zip(shape, spacing_zyx, target))


def normalise(image: torch.Tensor, intensity: dict) -> torch.Tensor:
    """Intensities to [0, 1]: a fixed window (CT) or percentiles of this image (MR); or
    shifted and scaled with no bounds (``scale``: MONAI Label's DeepGrow)."""
    if intensity.get("kind") == "scale":
        return (image - float(intensity["subtract"])) / float(intensity["divide"])
    if intensity.get("kind") == "window":
        lo, hi = float(intensity["low"]), float(intensity["high"])
    else:
        sample = image.flatten()[:: max(1, image.numel() // 1_000_000)].float()
        q = torch.tensor([intensity.get("low", 0.5) / 100, intensity.get("high", 99.5) / 100],
                         device=sample.device)
        lo, hi = (float(v) for v in torch.quantile(sample, q))
    return ((image - lo) / max(hi - lo, 1e-6)).clamp(0, 1)


def prepare_image(array: np.ndarray, spacing_zyx, card: ModelCard, device: torch.device | str = "cpu",
                  direction=None) -> torch.Tensor:
    """The image (z, y, x) on the model grid, normalised, as a float32 tensor on ``device``.
    Resized to a card's ``input_size``, an axis that shrinks is first smoothed over about
    the voxels each model voxel stands for, as MONAI's ``Resized(mode="area")`` averages them."""
    tensor = torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32).to(device)
    size = model_shape(array.shape, spacing_zyx, card, direction)
    if card.input_size:
        tensor = _smoothed(tensor, [n / m for n, m in zip(array.shape, size)])
    if tuple(size) != tuple(array.shape):
        tensor = F.interpolate(tensor[None, None], size=size, mode="trilinear", align_corners=True)[0, 0]
    return normalise(tensor, card.intensity)


def _smoothed(tensor: torch.Tensor, factors) -> torch.Tensor:
    """``tensor`` smoothed along each axis shrunk by ``factor`` (> 1) with a Gaussian as
    wide as a box of that many voxels (standard deviation sqrt((factor^2 - 1) / 12))."""
    for axis, factor in enumerate(factors):
        if factor <= 1.01:
            continue
        sigma = float(np.sqrt((factor ** 2 - 1) / 12))
        radius = max(1, int(np.ceil(3 * sigma)))
        taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, device=tensor.device) / sigma) ** 2)
        taps = (taps / taps.sum()).float()
        moved = tensor.movedim(axis, -1)
        flat = moved.reshape(-1, 1, moved.shape[-1])
        flat = F.conv1d(F.pad(flat, (radius, radius), mode="replicate"), taps.view(1, 1, -1))
        tensor = flat.reshape(moved.shape).movedim(-1, axis)
    return tensor


def prepare_label(label: np.ndarray, spacing_zyx, card: ModelCard, direction=None) -> np.ndarray:
    """A label map on the model grid (nearest voxel), same corner-to-corner mapping."""
    size = model_shape(label.shape, spacing_zyx, card, direction)
    label = as_label(np.asarray(label), "the label")  # values above a byte's stay themselves
    if tuple(size) == tuple(label.shape):
        return label
    index = [np.round(np.arange(m) * ((n - 1) / max(m - 1, 1))).astype(int) for m, n in zip(size, label.shape)]
    return label[np.ix_(*index)]
