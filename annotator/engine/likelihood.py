"""Online intensity likelihood from the person's strokes.

The foreground and background samples each give a smoothed intensity histogram;
the posterior P(foreground | intensity) under equal priors is the data term of the
GraphCut. This is the "online likelihood" of interactive segmentation by scribbles
(Boykov & Jolly, ICCV 2001; MONAI Label's scribbles apps use the same histogram model).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d


def normalise_intensity(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Map the ``low``..``high`` percentile range of ``image`` to 0..1 (clipped), float32."""
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((image.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)


def histogram_likelihood(
    normalised: np.ndarray,
    fg: np.ndarray,
    bg: np.ndarray,
    bins: int = 64,
    smooth: float = 1.0,
    floor: float = 1e-3,
) -> np.ndarray:
    """P(foreground) per voxel from histograms of the ``fg`` and ``bg`` sample voxels.

    Parameters
    ----------
    normalised
        Intensities in 0..1 (see :func:`normalise_intensity`).
    fg, bg
        Boolean masks of the sample voxels (strokes, or balls around clicks).
    bins
        Histogram bins over 0..1.
    smooth
        Gaussian smoothing of each histogram, in bins.
    floor
        Added to each normalised histogram so that unseen intensities stay undecided
        rather than impossible.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)

    def density(mask: np.ndarray) -> np.ndarray:
        hist, _ = np.histogram(normalised[mask], bins=edges)
        hist = gaussian_filter1d(hist.astype(np.float64), smooth) if smooth > 0 else hist.astype(np.float64)
        total = hist.sum()
        return (hist / total if total else np.full(bins, 1.0 / bins)) + floor

    p_fg, p_bg = density(fg), density(bg)
    posterior = (p_fg / (p_fg + p_bg)).astype(np.float32)
    index = np.minimum((normalised * bins).astype(np.int32), bins - 1)
    return posterior[index]
