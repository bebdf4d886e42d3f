"""Binary GraphCut on a 3-D grid with PyMaxflow, spacing-aware and multilevel.

Energy (Boykov & Jolly, ICCV 2001): a data term ``-log P`` per voxel plus, for each
6-neighbour pair, ``lam * exp(-(I_p - I_q)^2 / (2 sigma^2)) / d_pq`` where ``d_pq`` is the
distance between the voxel centres in mm, so anisotropic volumes are not cut more
cheaply along their coarse axis. Seeds are hard constraints.

Large regions are solved coarse-to-fine (Lombaert et al., "A multilevel banded graph
cuts method for fast image segmentation", ICCV 2005): the problem is solved on a grid
downsampled by two, and the result is refined at full resolution only in a narrow band
around the coarse boundary. Building the graph dominates the time of a cut, and the band
holds a small fraction of the voxels.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_dilation, binary_erosion

import maxflow

#: Regions with more voxels than this are solved coarse-to-fine.
DIRECT_LIMIT = 32**3
#: Bands (a result corrected near its boundary) with more free voxels than this, too: a
#: band is cut where the boundary is uncertain, so the coarse grid is kept for the large
#: ones, where the full-resolution max-flow takes seconds
BAND_DIRECT_LIMIT = 64**3
_HARD = 1e9
_EPS = 1e-6


def graphcut(
    image: np.ndarray,
    prob_fg: np.ndarray,
    spacing: tuple[float, float, float],
    fg_seeds: np.ndarray | None = None,
    bg_seeds: np.ndarray | None = None,
    lam: float = 2.0,
    sigma: float | None = None,
    band: np.ndarray | None = None,
    outside_band: np.ndarray | None = None,
    rough: bool = False,
) -> np.ndarray:
    """Foreground mask minimising the GraphCut energy.

    Parameters
    ----------
    image
        Intensities (normalised, any scale) in array order.
    prob_fg
        P(foreground) per voxel, same shape.
    spacing
        Voxel size in mm in array order ``(z, y, x)``.
    fg_seeds, bg_seeds
        Boolean masks of voxels forced to foreground / background.
    lam
        Weight of the boundary term against the data term.
    sigma
        Intensity difference at which the boundary gets cheap; estimated from the
        image's neighbour differences when None.
    band, outside_band
        To correct a known result near its boundary: only the voxels of ``band`` are cut
        (in one pass); the others keep their value in ``outside_band``.
    rough
        A large region is cut on the downsampled grid only and not refined (for a
        result that is refined afterwards).
    """
    image = np.asarray(image, dtype=np.float32)
    fg_seeds = np.zeros(image.shape, bool) if fg_seeds is None else fg_seeds.astype(bool)
    bg_seeds = np.zeros(image.shape, bool) if bg_seeds is None else bg_seeds.astype(bool) & ~fg_seeds
    if sigma is None:
        sigma = estimate_sigma(image)
    if band is not None:
        return _multilevel_band(image, np.asarray(prob_fg, np.float32), np.asarray(spacing, float), fg_seeds,
                                bg_seeds, lam, float(sigma), free=band & ~fg_seeds & ~bg_seeds,
                                fixed=(outside_band | fg_seeds) & ~bg_seeds)
    return _multilevel(image, np.asarray(prob_fg, np.float32), np.asarray(spacing, float),
                       fg_seeds, bg_seeds, lam, float(sigma), rough)


def neighbour_differences(image: np.ndarray, max_samples: int | None = None, lags=None) -> np.ndarray:
    """Absolute differences of neighbouring voxels along every axis (none for an image
    of one voxel); ``max_samples``: along each axis from every k-th line only, about that
    many (a large region has hundreds of millions); ``lags``: per axis, of voxels that
    many apart instead (an axis too short for its lag gives none)."""
    diffs = [np.empty(0, image.dtype)]
    for a in range(image.ndim):
        lag = 1 if lags is None else int(lags[a])
        if image.shape[a] <= lag:
            continue
        k = 1 if max_samples is None else int(np.ceil((image.size / max_samples) ** (1 / max(image.ndim - 1, 1))))
        lines = image[tuple(slice(None) if i == a else slice(None, None, k) for i in range(image.ndim))]
        ahead = tuple(slice(lag, None) if i == a else slice(None) for i in range(image.ndim))
        behind = tuple(slice(None, -lag) if i == a else slice(None) for i in range(image.ndim))
        diffs.append(np.abs(lines[ahead] - lines[behind]).ravel())
    return np.concatenate(diffs)


def noise_level(image: np.ndarray, max_samples: int = 1 << 18, lags=None) -> float:
    """Robust standard deviation of the noise: from the median absolute difference of
    neighbouring voxels (edges are few, so the median sees the flat parts), about
    ``max_samples`` of them along each axis; ``lags``: per axis, of voxels that many apart
    (noise correlated from voxel to voxel looks smaller between neighbours)."""
    diffs = neighbour_differences(image, max_samples, lags)
    return float(np.median(diffs)) * 1.4826 / np.sqrt(2) if diffs.size else 0.0


def estimate_sigma(image: np.ndarray) -> float:
    """Mean absolute difference between neighbouring voxels: the image's typical contrast
    (1 for an image of one value, where every edge weighs the same whatever it is; no
    floor in intensity units, so that an image stored in small units, an ADC map in
    mm²/s, is cut as the same image in larger ones)."""
    total, count = 0.0, 0
    for axis in range(image.ndim):  # summed axis by axis: no array of every difference at once
        if image.shape[axis] > 1:
            diffs = np.diff(image, axis=axis)
            total += float(np.abs(diffs, out=diffs).sum(dtype=np.float64))
            count += diffs.size
    value = total / count if count else 0.0
    return value if value > 0 else 1.0


def _multilevel(image, prob, spacing, fg, bg, lam, sigma, rough=False) -> np.ndarray:
    if image.size <= DIRECT_LIMIT or min(image.shape) < 8:
        return _solve(image, prob, spacing, fg, bg, lam, sigma)
    fg_any, bg_any = _down_any(fg), _down_any(bg)
    coarse = _multilevel(_down_mean(image), _down_mean(prob), spacing * 2,
                         fg_any & ~bg_any, bg_any & ~fg_any, lam, sigma)
    if rough:
        return (_up(coarse, image.shape) | fg) & ~bg
    # the band is found on the coarse grid (8x fewer voxels): its boundary, and seeds
    # the coarse result got wrong; one coarse voxel each side is two fine voxels
    band = _slabs(binary_dilation, coarse) & ~_slabs(binary_erosion, coarse, border_value=1)
    band |= _slabs(binary_dilation, (fg_any & ~coarse) | (bg_any & coarse))
    return _solve(image, prob, spacing, fg, bg, lam, sigma,
                  free=_up(band, image.shape), fixed=_up(coarse, image.shape))


def _multilevel_band(image, prob, spacing, fg, bg, lam, sigma, free, fixed) -> np.ndarray:
    """The cut of the ``free`` voxels, the others keeping their value in ``fixed``; a large
    band coarse-to-fine as :func:`_multilevel` does a whole region: cut on the grid
    downsampled by two, then again at full resolution only near the coarse boundary."""
    if np.count_nonzero(free) <= BAND_DIRECT_LIMIT or min(image.shape) < 8:
        return _solve(image, prob, spacing, fg, bg, lam, sigma, free=free, fixed=fixed)
    fg_any, bg_any = _down_any(fg), _down_any(bg)
    fg_c, bg_c = fg_any & ~bg_any, bg_any & ~fg_any
    free_c = _down_any(free) & ~fg_c & ~bg_c
    fixed_c = ((_down_mean(fixed) > 0.5) | fg_c) & ~bg_c
    coarse = _multilevel_band(_down_mean(image), _down_mean(prob), spacing * 2, fg_c, bg_c, lam, sigma,
                              free_c, fixed_c)
    edge = _slabs(binary_dilation, coarse) & ~_slabs(binary_erosion, coarse, border_value=1)
    edge |= _slabs(binary_dilation, (fg_any & ~coarse) | (bg_any & coarse))
    return _solve(image, prob, spacing, fg, bg, lam, sigma, free=free & _up(edge, image.shape),
                  fixed=np.where(free, _up(coarse, image.shape), fixed))


def _slabs(op, mask: np.ndarray, slab_voxels: int = 1_000_000, **kw) -> np.ndarray:
    """``op`` (a binary erosion or dilation by the 3×3×3 cube) slab by slab along the first
    axis, each slab with one slice of its neighbours: the same result, in short calls.
    SciPy's morphology holds the interpreter while it runs; in short calls the view's
    thread gets its turn between them, so a large cut does not freeze the window."""
    structure = np.ones((3, 3, 3), bool)
    per = max(1, slab_voxels // max(1, mask[0].size))
    if mask.shape[0] <= per:
        return op(mask, structure, **kw)
    out = np.empty(mask.shape, bool)
    for start in range(0, mask.shape[0], per):
        stop = min(mask.shape[0], start + per)
        lo, hi = max(0, start - 1), min(mask.shape[0], stop + 1)
        out[start:stop] = op(mask[lo:hi], structure, **kw)[start - lo:stop - lo]
    return out


def _down_mean(a: np.ndarray) -> np.ndarray:
    """Means of 2×2×2 blocks (odd sizes padded with the edge): pairs summed along each
    axis in turn, several times faster than a mean over a reshaped array."""
    a = np.pad(a, [(0, s % 2) for s in a.shape], mode="edge").astype(np.float32, copy=False)
    a = a[0::2] + a[1::2]
    a = a[:, 0::2] + a[:, 1::2]
    return (a[:, :, 0::2] + a[:, :, 1::2]) * np.float32(0.125)


def _down_any(a: np.ndarray) -> np.ndarray:
    """Whether each 2×2×2 block holds a True (odd sizes padded with False)."""
    a = np.pad(a, [(0, s % 2) for s in a.shape], mode="constant")
    a = a[0::2] | a[1::2]
    a = a[:, 0::2] | a[:, 1::2]
    return a[:, :, 0::2] | a[:, :, 1::2]


def _up(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    up = a.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    return up[: shape[0], : shape[1], : shape[2]]


def _solve(image, prob, spacing, fg, bg, lam, sigma, free=None, fixed=None) -> np.ndarray:
    """Max-flow over the ``free`` voxels; the others keep the label in ``fixed``."""
    if free is None:
        free = np.ones(image.shape, bool)
        fixed = np.zeros(image.shape, bool)
    node = np.full(image.shape, -1, np.int64)
    n = np.count_nonzero(free)
    if n == 0:
        return fixed.copy()
    node[free] = np.arange(n)
    p = np.clip(prob[free], _EPS, 1 - _EPS).astype(np.float64)
    cap_source = -np.log1p(-p)  # paid when the voxel ends up background
    cap_sink = -np.log(p)  # paid when it ends up foreground
    cap_source[fg[free]] = _HARD
    cap_sink[bg[free]] = _HARD

    graph = maxflow.GraphFloat(n, 3 * n)
    graph.add_nodes(n)
    two_sigma_sq = 2.0 * sigma * sigma
    for axis in range(3):
        if image.shape[axis] < 2:
            continue
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        fa, fb = free[lo], free[hi]
        either = fa | fb
        # in float64: in an image's float32, 2σ² of intensities beyond about 10¹⁹ (a float
        # image of huge values) overflows to inf, the weights become NaN and the max-flow
        # never ends
        diff = image[hi][either].astype(np.float64) - image[lo][either]
        weight = (lam / spacing[axis]) * np.exp(-(diff * diff) / two_sigma_sq)
        na, nb = node[lo][either], node[hi][either]
        both = (na >= 0) & (nb >= 0)
        graph.add_edges(na[both], nb[both], weight[both], weight[both])
        # an edge to a fixed neighbour becomes a terminal edge of the free voxel
        for mine, other_fixed in ((na, fixed[hi][either]), (nb, fixed[lo][either])):
            one = (mine >= 0) & ~both
            np.add.at(cap_source, mine[one & other_fixed], weight[one & other_fixed])
            np.add.at(cap_sink, mine[one & ~other_fixed], weight[one & ~other_fixed])
    ids = np.arange(n)
    graph.add_grid_tedges(ids, cap_source, cap_sink)
    graph.maxflow()
    result = fixed.copy()
    result[free] = ~graph.get_grid_segments(ids)
    return result
