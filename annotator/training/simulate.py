"""Simulated clicks: how training teaches a network to answer clicks, and how the robot user clicks.

The robot's rule (Sakinis et al. 2019; used by DeepGrow and DeepEdit evaluations): click
the centre of the largest wrongly labelled region, with the class that region should
have. Training sees the same kind of clicks: DeepGrow a few random clicks on and around
the structure, then corrections; DeepEdit about half of the samples with no clicks
(automatic mode) and the rest with iterative corrections from the current errors, as
DeepEdit's inner loop does (predict, click where it is wrong, predict again). A
training correction goes to the largest error region half of the time and otherwise to
an error region drawn by its size, so that the network also learns to answer clicks on
small errors, which are most of what is left after a few clicks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from annotator.engine.guidance import centre_of, guidance


#: error regions smaller than this (voxels) are not clicked in training: a person would not
MIN_REGION = 4


def next_click(pred: np.ndarray, truth: np.ndarray,
               rng: np.random.Generator | None = None) -> tuple[int, tuple[int, ...]] | None:
    """(true class, voxel) at the centre of an error region; None when there is none.

    The largest region (the robot's rule); with ``rng``, half of the time one of the
    regions of at least :data:`MIN_REGION` voxels drawn with probability by size instead.
    """
    error = pred != truth
    if not error.any():
        return None
    components, _ = ndimage.label(error)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    chosen = int(np.argmax(sizes))
    if rng is not None and rng.random() < 0.5:
        weights = np.where(sizes >= MIN_REGION, sizes, 0).astype(float)
        if weights.sum() > 0:
            chosen = int(rng.choice(len(sizes), p=weights / weights.sum()))
    point = centre_of(components == chosen)
    return int(truth[point]), point


def channel_of(cls: int, method: str) -> int:
    """Guidance channel of a click on class ``cls`` (DeepGrow: foreground 0, background 1)."""
    if method == "deepedit":
        return cls
    return 0 if cls else 1


def _random_voxel(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, ...] | None:
    where = np.flatnonzero(mask)
    if where.size == 0:
        return None
    return tuple(int(i) for i in np.unravel_index(int(rng.choice(where)), mask.shape))


def initial_clicks(truth: np.ndarray, method: str, rng: np.random.Generator) -> dict[int, list]:
    """First clicks of a sample: on the structure(s), sometimes one just outside."""
    clicks: dict[int, list] = {}
    if method == "deepedit" and rng.random() < 0.5:
        return clicks  # corrections only, from the automatic result
    for cls in np.unique(truth):
        if cls == 0:
            continue
        inner = ndimage.binary_erosion(truth == cls) if (truth == cls).sum() > 50 else truth == cls
        for _ in range(int(rng.integers(1, 3))):
            p = _random_voxel(inner if inner.any() else truth == cls, rng)
            if p is not None:
                clicks.setdefault(channel_of(int(cls), method), []).append(p)
    if rng.random() < 0.5:
        fg = truth > 0
        ring = ndimage.binary_dilation(fg, iterations=int(rng.integers(2, 8))) & ~fg
        p = _random_voxel(ring, rng)
        if p is not None:
            clicks.setdefault(channel_of(0, method), []).append(p)
    return clicks


def previous_maps(pred: np.ndarray, classes: int, device) -> torch.Tensor:
    """(B, classes - 1, *S): the predicted classes (B, *S) as the earlier-label channels."""
    onehot = np.stack([pred == c for c in range(1, classes)], axis=1)
    return torch.as_tensor(onehot, dtype=torch.float32, device=device)


def simulate_guidance(predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                      truths: np.ndarray, method: str, channels: int, rng: np.random.Generator,
                      max_iterations: int = 3, previous_channels: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Click maps (B, channels, *S) and earlier-label maps (B, previous_channels, *S) for a
    batch: initial clicks, then 0..``max_iterations`` rounds of corrections where the
    network (``predict``: inputs -> classes) is wrong (the number drawn per batch; each
    round one network pass with no gradients). The earlier label is the last round's
    prediction (none before the first), as at a real correction.

    DeepEdit: half of the samples get no clicks at all (automatic mode).
    """
    batch = images.shape[0]
    shape = tuple(images.shape[2:])
    auto = [method == "deepedit" and rng.random() < 0.5 for _ in range(batch)]
    clicks = [{} if auto[i] else initial_clicks(truths[i], method, rng) for i in range(batch)]
    previous = torch.zeros((batch, previous_channels, *shape), device=images.device)

    def maps() -> torch.Tensor:
        return torch.stack([guidance(shape, c, channels, images.device) for c in clicks])

    rounds = int(rng.integers(0, max_iterations + 1)) if max_iterations else 0
    for _ in range(rounds):
        with torch.no_grad():
            pred = predict(torch.cat([images, maps(), previous], dim=1)).cpu().numpy()
        for i in range(batch):
            if auto[i]:
                continue
            found = next_click(pred[i], truths[i], rng)
            if found is not None:
                cls, point = found
                clicks[i].setdefault(channel_of(cls, method), []).append(point)
            if previous_channels:
                previous[i] = previous_maps(pred[i:i + 1], previous_channels + 1, images.device)[0]
    return maps(), previous
