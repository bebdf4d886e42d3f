"""Online intensity likelihood from the person's marks.

The foreground and background samples each give a kernel density of intensity; the
posterior P(foreground | intensity) is the data term of the GraphCut (Boykov & Jolly,
ICCV 2001; MONAI Label's scribbles apps use a histogram model of the same kind).

Everything is measured on the scale the samples set: the kernel widths follow the
spread of each class (Silverman's rule) and the table's bins follow the kernels, so the
same marks give the same posterior whether the image is in Hounsfield units, arbitrary
MR units, multiplied by ten or shifted by a thousand. A fixed binning of the image's
whole range (air to bone on a CT: about 100 HU a bin) cannot see soft-tissue contrast.

Intensities that no mark sampled are not left undecided: the background is "everything
else", so its density has, beside the background samples, a small share spread evenly
over the image's range. What is unlike the marked structure counts as background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

#: Most bins a table may have (its width grows past this).
MAX_BINS = 16384


@dataclass(frozen=True)
class IntensityModel:
    """P(foreground) as a table over intensity bins of width ``width`` from ``low``."""

    low: float
    width: float
    table: np.ndarray
    #: the intensities the samples cover, widened by three times their spread
    span: tuple[float, float] = (-np.inf, np.inf)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """P(foreground) of each value (float32, same shape)."""
        index = np.subtract(values, np.float32(self.low), dtype=np.float32)
        index /= np.float32(self.width)  # in place: a whole organ's box holds tens of millions
        np.floor(index, out=index)
        np.clip(index, 0, len(self.table) - 1, out=index)
        return self.table[index.astype(np.int32)]


def _spread(values: np.ndarray, max_samples: int = 1 << 18) -> float:
    """A robust standard deviation: the smaller of the standard deviation and IQR / 1.349
    (from a regular subsample of at most about ``max_samples`` values: a whole organ's
    inside has millions)."""
    if values.size < 2:
        return 0.0
    values = values[:: max(1, values.size // max_samples)]
    q1, q3 = np.percentile(values, [25, 75])
    std = float(np.std(values))
    iqr = float(q3 - q1) / 1.349
    return min(std, iqr) if iqr > 0 else std


def fit_intensity_model(
    fg: np.ndarray,
    bg: np.ndarray,
    value_range: tuple[float, float],
    bandwidth: float = 1.0,
    min_bandwidth: float = 0.1,
    unseen: float = 0.1,
    bins_per_kernel: float = 4.0,
    min_spread: float = 0.0,
) -> IntensityModel:
    """The posterior P(foreground | intensity) from foreground and background samples.

    Parameters
    ----------
    fg, bg
        Intensities of the sample voxels (``bg`` may be empty: then the background is
        "anything", uniform over ``value_range``).
    value_range
        The image's intensity range (e.g. :func:`annotator.io.volume.intensity_range`);
        values outside it take the posterior of the nearest end.
    bandwidth
        Factor on each class's kernel width (Silverman's rule of thumb,
        0.9 · spread · n^-1/5).
    min_bandwidth
        Smallest kernel width, as a share of the spread of all samples (keeps integer
        images and a handful of samples from giving spiky densities).
    unseen
        Share of the background density spread evenly over ``value_range``.
    bins_per_kernel
        Table bins per width of the narrower kernel.
    min_spread
        Smallest spread a class is taken to have, in intensity units (the image's noise:
        a class is never narrower than the noise on it, while a stroke of a few voxels
        samples its spread, and sometimes its middle, poorly); its kernel width is then
        set from it by the same rule.
    """
    fg = np.asarray(fg, np.float64).ravel()
    bg = np.asarray(bg, np.float64).ravel()
    if fg.size == 0:
        raise ValueError("no foreground samples")
    both = np.concatenate([fg, bg])
    scale = _spread(both) or float(np.ptp(both)) or max(abs(float(both[0])), 1.0)
    floor = min_bandwidth * scale

    def kernel(values: np.ndarray) -> float:
        return max(bandwidth * 0.9 * max(_spread(values), min_spread) * values.size ** -0.2, floor)

    widths = [kernel(fg)] + ([kernel(bg)] if bg.size else [])
    lo = min(value_range[0], float(both.min())) - 3 * max(widths)
    hi = max(value_range[1], float(both.max())) + 3 * max(widths)
    width = max(min(widths) / bins_per_kernel, (hi - lo) / MAX_BINS)
    bins = int(np.ceil((hi - lo) / width)) + 1
    edges = lo + width * np.arange(bins + 1)
    # spread over the image's range and at least over what the marks sampled (an image of
    # two values with no noise, or marks beyond its percentiles)
    uniform = 1.0 / max(max(value_range[1], float(both.max())) - min(value_range[0], float(both.min())), width)

    def density(values: np.ndarray, h: float) -> np.ndarray:
        hist, _ = np.histogram(values, bins=edges)
        return gaussian_filter1d(hist / (values.size * width), h / width, mode="constant")

    p_fg = density(fg, widths[0]) + 1e-3 * uniform
    p_bg = (1 - unseen) * density(bg, widths[1]) + unseen * uniform if bg.size else np.full(bins, uniform)
    span = (float(both.min()) - 3 * scale, float(both.max()) + 3 * scale)
    return IntensityModel(lo, width, (p_fg / (p_fg + p_bg)).astype(np.float32), span)
