"""A cut's boundary put where a sharp edge's contrast is half: the voxels that a sharp edge
runs through hold part of each side (partial volume) and go to the side whose intensity
they are nearer.

The intensity model of a cut learns the structure's intensities from the marks, and a
voxel between the structure's and its surroundings' is unlike both: it goes to the
background. On a large organ that is a thin shell; on a lung nodule or a contrast-filled
vessel a few millimetres across, on fine or coarse voxels, the shell is much of the
structure (a nodule 8 mm across kept half its volume). Radiologists measure such
structures at half their contrast (full width at half maximum), and so does this step.

It changes only voxels on the boundary, where the intensities just inside and just
outside it differ by at least ``contrast`` noise deviations (on a faint edge a voxel's
intensity says little, and the cut's smooth surface is kept), and only voxels unlike
both sides (:data:`LIKE`; a voxel like one side is the cut's to decide, as its intensity
model and its neighbours did: muscle beside a cut that ends in fat three layers out stays
out), one voxel layer a step, at most ``steps`` layers. The inside's intensity is the
mean of the cut's voxels within about :data:`NEAR_MM` of the boundary voxel; the
outside's that of the voxels three and four layers out (the layers next to the boundary
hold partial voxels too).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

from annotator.engine.graphcut import noise_level
from annotator.engine.region import extent
from annotator.engine.tidy import keep_seeded_components

#: how far (mm) around a boundary voxel the inside's and outside's intensities are
#: averaged: over the blocks of about this size around its own block
NEAR_MM = 3.0
#: least share of either side in that neighbourhood for a voxel to be decided here
MIN_SHARE = 0.02
#: a voxel within this many noise deviations of either side's intensity is like that side
#: (the cut's to decide: its intensity model and its neighbours did), not part of each
LIKE = 2.5


def grown(mask: np.ndarray) -> np.ndarray:
    """``mask`` and its 6 neighbours (a dilation by one voxel; shifted copies, some ten
    times faster than scipy's on a large box)."""
    out = mask.copy()
    for axis in range(mask.ndim):
        head = [slice(None)] * mask.ndim
        tail = [slice(None)] * mask.ndim
        head[axis], tail[axis] = slice(1, None), slice(None, -1)
        out[tuple(head)] |= mask[tuple(tail)]
        out[tuple(tail)] |= mask[tuple(head)]
    return out


def shrunk(mask: np.ndarray) -> np.ndarray:
    """``mask`` less the voxels that have a neighbour outside it (beyond the array: inside)."""
    return ~grown(~mask)


def _block_sums(values: np.ndarray, block: list[int]) -> np.ndarray:
    """Sums of ``values`` over blocks of ``block`` voxels (the last ones of an axis that
    ``block`` does not divide: fewer), float32."""
    out = values.astype(np.float32, copy=False)
    for axis, size in enumerate(block):
        if size == 1:
            continue
        lead = (slice(None),) * axis
        shape = list(out.shape)
        shape[axis] = -(-shape[axis] // size)
        summed = np.zeros(shape, np.float32)
        for start in range(size):
            part = out[lead + (slice(start, None, size),)]
            summed[lead + (slice(0, part.shape[axis]),)] += part
        out = summed
    return out


def _means_near(image: np.ndarray, mask: np.ndarray, block: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(mean of ``image`` over ``mask``, share of ``mask``) in the 3×3×3 blocks of ``block``
    voxels around each block: coarse arrays, a value per block (a smoothing over the whole
    box at this width cost as much as the cut)."""
    weight = uniform_filter(_block_sums(mask, block), 3, mode="constant")
    total = uniform_filter(_block_sums(np.where(mask, image, np.float32(0)), block), 3, mode="constant")
    return total / np.maximum(weight, np.float32(1e-6)), weight / np.float32(np.prod(block))


def at_half_contrast(region: np.ndarray, image: np.ndarray, fg: np.ndarray, bg: np.ndarray, spacing,
                     contrast: float, steps: int) -> np.ndarray:
    """``region`` with its boundary voxels on sharp edges moved to the side they are nearer
    in intensity (see the module), the marks ``fg`` and ``bg`` kept in their class, and
    only what is connected to ``fg``. ``image``: the intensities of ``region``'s box as
    the cut saw them (denoised); only the part around ``region`` is read."""
    around = extent(region)
    if steps <= 0 or contrast <= 0 or around is None:
        return region
    block = [max(1, round(NEAR_MM / float(s))) for s in spacing]
    # what a decision reads: the voxels ``steps`` out, the outside four layers beyond
    # them, and the blocks around theirs
    part = tuple(slice(max(0, a.start - pad), min(n, a.stop + pad))
                 for a, n, pad in zip(around, region.shape, (steps + 4 + 2 * b for b in block)))
    moved = _moved(region[part], image[part], fg[part], bg[part], block, contrast, steps)
    if (region[part] & ~moved).any():  # taken away: a part may be cut off from the marks
        moved = keep_seeded_components(moved, fg[part])
    out = region.copy()
    out[part] = moved
    return out


def _moved(region, image, fg, bg, block, contrast, steps) -> np.ndarray:
    # the sides' intensities from the cut as it came (a layer moved changes them little)
    near = grown(region)
    inside, inside_share = _means_near(image, region, block)
    outside, outside_share = _means_near(image, grown(grown(grown(near))) & ~grown(near), block)
    noise = noise_level(image)
    sharp = ((inside_share > MIN_SHARE) & (outside_share > MIN_SHARE)
             & (np.abs(inside - outside) >= contrast * noise))
    if not sharp.any():
        return region
    for _ in range(steps):
        at = np.nonzero(grown(region) & ~shrunk(region))
        cell = tuple(i // b for i, b in zip(at, block))
        decided = sharp[cell]
        at, cell = tuple(i[decided] for i in at), tuple(c[decided] for c in cell)
        if not at[0].size:
            break
        values = image[at]
        to_inside, to_outside = np.abs(values - inside[cell]), np.abs(values - outside[cell])
        between = np.minimum(to_inside, to_outside) > LIKE * noise
        at, to_inside, to_outside = tuple(i[between] for i in at), to_inside[between], to_outside[between]
        moved = region.copy()
        moved[at] = to_inside < to_outside
        moved = (moved | fg) & ~bg
        if np.array_equal(moved, region):
            break
        region = moved
    return region
