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

from annotator.models.card import ModelCard


def model_shape(shape, spacing_zyx, card: ModelCard) -> tuple[int, int, int]:
    """Size of the model grid for an image of ``shape`` with ``spacing_zyx`` (mm)."""
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


def prepare_image(array: np.ndarray, spacing_zyx, card: ModelCard,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """The image (z, y, x) on the model grid, normalised, as a float32 tensor on ``device``."""
    tensor = torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32).to(device)
    size = model_shape(array.shape, spacing_zyx, card)
    if tuple(size) != tuple(array.shape):
        tensor = F.interpolate(tensor[None, None], size=size, mode="trilinear", align_corners=True)[0, 0]
    return normalise(tensor, card.intensity)


def prepare_label(label: np.ndarray, spacing_zyx, card: ModelCard) -> np.ndarray:
    """A label map on the model grid (nearest voxel), same corner-to-corner mapping."""
    size = model_shape(label.shape, spacing_zyx, card)
    if tuple(size) == tuple(label.shape):
        return np.asarray(label, np.uint8)
    index = [np.round(np.arange(m) * ((n - 1) / max(m - 1, 1))).astype(int) for m, n in zip(size, label.shape)]
    return np.asarray(label, np.uint8)[np.ix_(*index)]
