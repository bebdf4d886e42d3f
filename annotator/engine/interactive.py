"""GraphCut from what a person gives: scribbles, or foreground/background clicks.

Both work on a region around the input (with a margin), build the online intensity
likelihood from the marked voxels, run the GraphCut with the marks as hard seeds and
paste the result back into the full label. Deterministic: same input, same label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation, distance_transform_edt
from scipy.ndimage import label as ndimage_label

from annotator.engine.graphcut import estimate_sigma, graphcut
from annotator.engine.likelihood import histogram_likelihood, normalise_intensity
from annotator.engine.region import Result, box_around, check_clicks, paste
from annotator.errors import InputError
from annotator.io.volume import Volume

FOREGROUND, BACKGROUND = 1, 2


@dataclass
class GraphCutParams:
    """Tunable parts of the interactive GraphCut (defaults measured on the hippocampus set)."""

    lam: float = 2.5
    bins: int = 16
    smooth: float = 2.0
    sigma_scale: float = 1.0
    scribble_margin_mm: float = 5.0
    click_margin_mm: float = 15.0
    min_click_margin_mm: float = 8.0
    click_radius_mm: float = 2.0
    prior_sharpness: float = 1.0


def segment_scribbles(volume: Volume, scribbles: np.ndarray, previous: np.ndarray | None = None,
                      params: GraphCutParams | None = None, value: int = 1) -> Result:
    """Segment from strokes: ``scribbles`` is 1 on foreground strokes, 2 on background."""
    params = params or GraphCutParams()
    if scribbles.shape != volume.shape:
        raise InputError(
            f"scribbles have shape {scribbles.shape} (z,y,x) but the image has {volume.shape}")
    fg, bg = scribbles == FOREGROUND, scribbles == BACKGROUND
    if not fg.any():
        raise InputError("no foreground stroke (value 1) in the scribbles")
    return _run(volume, fg, bg, params.scribble_margin_mm, previous, params, "graphcut-scribbles", value)


def segment_clicks(volume: Volume, fg_points: list[tuple[int, int, int]],
                   bg_points: list[tuple[int, int, int]] = (), previous: np.ndarray | None = None,
                   params: GraphCutParams | None = None, value: int = 1) -> Result:
    """Segment from clicks given as array indices ``(z, y, x)``.

    Each click marks a small ball as seed. The border of the region counts as
    background, so a single foreground click already gives a result. Besides the
    intensity likelihood, a prior from the distances to the foreground and background
    marks keeps the cut near the clicks (sparse clicks sample intensities poorly).
    """
    params = params or GraphCutParams()
    check_clicks(volume.shape, fg_points, bg_points)
    fg = _balls(volume, fg_points, params.click_radius_mm)
    bg = _balls(volume, bg_points, params.click_radius_mm) & ~fg
    # one click says nothing about the structure's size; several clicks span it already
    margin = max(params.click_margin_mm / np.sqrt(len(fg_points)), params.min_click_margin_mm)
    return _run(volume, fg, bg, margin, previous, params, "graphcut-clicks", value,
                border_is_background=True, margin_mask=fg)


def _balls(volume: Volume, points, radius_mm: float) -> np.ndarray:
    mask = np.zeros(volume.shape, bool)
    for p in points:
        mask[tuple(int(v) for v in p)] = True
    if not points:
        return mask
    spacing = np.asarray(volume.array_spacing)
    radius = np.maximum(np.floor(radius_mm / spacing), 0).astype(int)
    grid = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    ball = sum((g * s / radius_mm) ** 2 for g, s in zip(grid, spacing)) <= 1.0
    return binary_dilation(mask, ball)


def keep_seeded_components(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Only the connected parts of ``mask`` that hold a foreground seed.

    A cut may also switch on look-alike tissue elsewhere in the region; the person
    marked one structure, so what is not connected to their marks is dropped.
    """
    components, _ = ndimage_label(mask)
    keep = np.unique(components[seeds & mask])
    return np.isin(components, keep[keep > 0])


def distance_prior(fg: np.ndarray, bg: np.ndarray, spacing, sharpness: float = 1.0) -> np.ndarray:
    """P(foreground) from where the marks are: d_bg^k / (d_fg^k + d_bg^k), distances in mm.

    Near a foreground click it tends to 1, near a background click or the region's
    border to 0; halfway it is undecided. Sparse clicks say little about intensity but
    much about where the structure is.
    """
    d_fg = distance_transform_edt(~fg, sampling=spacing) ** sharpness
    d_bg = distance_transform_edt(~bg, sampling=spacing) ** sharpness
    return (d_bg / np.maximum(d_fg + d_bg, 1e-6)).astype(np.float32)


def combine(p: np.ndarray, q: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Two independent estimates of P(foreground) made one (product of the odds)."""
    p = np.clip(p, eps, 1 - eps)
    q = np.clip(q, eps, 1 - eps)
    return (p * q / (p * q + (1 - p) * (1 - q))).astype(np.float32)


def _run(volume, fg, bg, margin_mm, previous, params, method, value, border_is_background=False,
         margin_mask=None) -> Result:
    start = time.perf_counter()
    box = box_around(margin_mask if margin_mask is not None else fg | bg, volume.array_spacing, margin_mm)
    image = volume.array[box]
    fg_r, bg_r = fg[box], bg[box].copy()
    if border_is_background or not bg_r.any():
        border = np.ones(image.shape, bool)
        border[1:-1, 1:-1, 1:-1] = False
        bg_r |= border & ~fg_r
    normalised = normalise_intensity(image)
    prob = histogram_likelihood(normalised, fg_r, bg_r, bins=params.bins, smooth=params.smooth)
    if border_is_background:
        prob = combine(prob, distance_prior(fg_r, bg_r, volume.array_spacing, params.prior_sharpness))
    t_likelihood = time.perf_counter()
    region = keep_seeded_components(
        graphcut(normalised, prob, volume.array_spacing, fg_r, bg_r, lam=params.lam,
                 sigma=params.sigma_scale * estimate_sigma(normalised)), fg_r)
    t_cut = time.perf_counter()
    patch = paste(region, box, previous, value)
    end = time.perf_counter()
    return Result(patch, box, volume.shape, method, end - start, previous,
                  {"likelihood_s": t_likelihood - start, "maxflow_s": t_cut - t_likelihood,
                   "paste_s": end - t_cut})
