"""Tidying one structure of a label, as annotation tools offer after a segmentation or
while outlining by hand: fill its holes, keep only its largest connected part, fill the
slices between the ones it was drawn on, smooth its surface, grow or shrink it by a
margin, or hold it to a range of intensities: clip it to the range, or flood it through
the tissue within the range (3D Slicer's Threshold and Flood filling effects, ITK-SNAP's
thresholded region growing: bone, lungs, contrast-filled vessels on a CT, where a
structure is told by its intensity alone).

Each works in the structure's bounding box and gives back a :class:`Result`, so it is
undone like any engine step. Other labels' voxels are never changed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import (binary_fill_holes, distance_transform_edt, gaussian_filter, generate_binary_structure,
                           maximum_filter)
from scipy.ndimage import label as connected_parts

from annotator.engine.region import Result, extent, holding
from annotator.errors import InputError

#: what each tidying step is called (its method name in the undo history and the status)
STEPS = {"fill_holes": "fill holes", "keep_largest": "keep largest part", "fill_between": "fill between slices",
         "smooth": "smooth", "grow": "grow", "shrink": "shrink", "clip": "clip to range",
         "flood": "flood in range"}
#: the steps that read the image's intensities (``image`` and ``within``)
RANGE_STEPS = ("clip", "flood")
#: how far (mm) ``grow`` and ``shrink`` move a structure's surface unless told (3D Slicer's
#: margin starts there too)
MARGIN_MM = 3.0
#: how far (Gaussian sigma, mm) ``smooth`` blurs the structure before cutting it at half
SMOOTH_MM = 1.0
#: the blur's kernel reaches this many blur widths
BLUR_REACH = 4.0
#: how far (in blur widths) ``smooth`` looks for the peak of a structure's blur, that a
#: thin part is cut against (:func:`smoothed`) ...
PEAK_REACH = 1.5
#: ... and the lowest that cut may be (a stray voxel blurs to about 0.06 on 1 mm voxels, less
#: on finer ones: it goes); a voxel whose peak is at least ``BULK`` lies in a structure's
#: bulk, cut at the level; a thinner part is cut at up to ``THIN_SHARE`` of its peak, as
#: its volume asks
FLOOR = 0.1
BULK = 0.75
THIN_SHARE = 0.6
#: the levels a cut that keeps the volume may take (a blurred sphere's surface lies below half,
#: by about sigma^2/r: cut at half, a nodule 8 mm across loses a fifth of its volume); a flat
#: surface's voxels blur to below 0.31 and above 0.69 on either side of it on voxels as large
#: as the blur, so such a cut moves a flat surface by no voxel there
VOLUME_LEVELS = (0.3, 0.7)


def tidy(label: np.ndarray, value: int, step: str, axis: int = 0,
         spacing: Sequence[float] = (1.0, 1.0, 1.0), name: str = "", mm: float = MARGIN_MM,
         image: np.ndarray | None = None, within: tuple[float, float] | None = None) -> Result:
    """``step`` (a key of :data:`STEPS`) applied to structure ``value`` of ``label``
    (``name``: what the person calls it, in the errors).

    - ``fill_holes``: background enclosed by the structure on a slice across ``axis``
      (the slices viewed) joins it: vessels inside a liver, a cavity. A hole closed in
      3-D is closed on each of its slices too.
    - ``keep_largest``: only the structure's largest connected part (26-connected) stays;
      the other parts become background.
    - ``fill_between``: each slice across ``axis`` where the structure is missing,
      between two slices where it is drawn, gets the shape between theirs (the signed
      distances to their outlines, in millimetres of ``spacing``, blended by how near
      the slice is to each): outline a structure on every few slices, fill the rest.
    - ``smooth``: the structure blurred (a Gaussian of :data:`SMOOTH_MM` in each
      direction, in millimetres of ``spacing``) and cut at the level that keeps its
      volume (a part thinner than the blur against its own peak: :func:`smoothed`):
      spikes and single voxels go, notches fill, the bulk stays where it is and a small
      round structure (a nodule) keeps its volume, a vessel a voxel wide stays.
    - ``grow``: the background within ``mm`` of the structure (from voxel centre to voxel
      centre, in millimetres of ``spacing``: a margin, as for a planning volume around a
      tumour) joins it; other labels' voxels stay theirs.
    - ``shrink``: the structure's voxels within ``mm`` of a voxel outside it become
      background. The image's edge is no outside: a structure cut by the field of view
      keeps its cut face.
    - ``clip``: the structure's voxels whose intensity in ``image`` (the image's array, on
      the label's grid) lies outside ``within`` (low, high; both ends in) become
      background: paint roughly over a bone, keep the bone.
    - ``flood``: the background voxels within ``within`` connected to the structure (face
      to face, through background within the range and the structure's own voxels) join
      it, anywhere in the image; its own voxels stay, within the range or not. Click or
      paint inside a lung, flood from -1024 to -400 HU: the lung and its airways.

    A margin that moves nothing (less than a voxel, or nothing to grow into) and a shrink
    that would leave nothing raise :class:`InputError`: the label stays as it is; so do a
    clip that would take all of the structure or none of it, and a flood that finds nothing
    to add.
    """
    if step not in STEPS:
        raise InputError(f"unknown tidying step '{step}' (known: {', '.join(STEPS)})")
    start = time.perf_counter()
    what = f"{name} (label {value})" if name and name != f"label {value}" else f"label {value}"
    box = extent(label == value)
    if box is None:
        raise InputError(f"{what} is empty: nothing to tidy" if step != "flood" else
                         f"{what} is empty: paint or click inside the structure first, then flood from there")
    if step in RANGE_STEPS:
        return _in_range(label, value, step, image, within, what, box, start)
    if step in ("grow", "shrink") and not (np.isfinite(mm) and mm > 0):
        raise InputError(f"a margin of {mm} mm: {step} by more than 0 mm")
    if step in ("smooth", "grow", "shrink"):  # the blur or the margin reaches beyond the structure
        reach = [int(np.ceil(2 * SMOOTH_MM / s)) if step == "smooth" else int(np.ceil(mm / s)) + 1 for s in spacing]
        box = tuple(slice(max(b.start - r, 0), min(b.stop + r, n)) for b, r, n in zip(box, reach, label.shape))
    patch = np.moveaxis(np.array(label[box], holding(label, value)), axis, 0)  # a view: slices first
    moved = [float(spacing[axis]), *(float(s) for a, s in enumerate(spacing) if a != axis)]  # the patch's spacing
    mine = patch == value
    if step == "fill_holes":
        filled = np.stack([binary_fill_holes(plane) for plane in mine])
        patch[filled & (patch == 0)] = value
    elif step == "smooth":
        kept = smoothed(mine, moved, keep_volume=True)
        patch[mine & ~kept] = 0
        patch[kept & (patch == 0)] = value
    elif step in ("grow", "shrink"):
        _margin(patch, mine, value, step, moved, mm, what)
    elif step == "keep_largest":
        parts, count = connected_parts(mine, generate_binary_structure(3, 3))
        if count > 1:
            sizes = np.bincount(parts.ravel())
            sizes[0] = 0
            patch[mine & (parts != int(np.argmax(sizes)))] = 0
    else:
        in_plane = moved[1:]
        drawn = np.flatnonzero(mine.any(axis=(1, 2)))
        if not np.any(np.diff(drawn) > 1):
            raise InputError(f"{what} has no empty slice between two drawn ones: draw it on a few "
                             "slices, leaving the ones between empty, then fill between them")
        for low, high in zip(drawn[:-1], drawn[1:]):
            if high - low < 2:
                continue
            below, above = _signed_distance(mine[low], in_plane), _signed_distance(mine[high], in_plane)
            for k in range(low + 1, high):
                w = (k - low) / (high - low)
                patch[k][((1 - w) * below + w * above < 0) & (patch[k] == 0)] = value
    patch = np.moveaxis(patch, 0, axis)
    return Result(np.ascontiguousarray(patch), box, label.shape, STEPS[step], time.perf_counter() - start,
                  previous=label)


def _margin(patch: np.ndarray, mine: np.ndarray, value: int, step: str, spacing: list[float], mm: float,
            what: str) -> None:
    """``patch`` with structure ``value`` (``mine``) grown or shrunk by ``mm`` in place."""
    finest = min(spacing)
    if mm < finest:
        raise InputError(f"a margin of {mm:g} mm is less than this image's voxels ({finest:g} mm apart): "
                         f"{step} by {finest:g} mm or more")
    within = mm * (1 + 1e-6)  # a voxel exactly ``mm`` away is within the margin
    if step == "grow":
        added = (distance_transform_edt(~mine, sampling=spacing) <= within) & (patch == 0)
        if not added.any():
            raise InputError(f"{what} has no background within {mm:g} mm to grow into")
        patch[added] = value
        return
    if mine.all():  # the structure fills the image: no outside to shrink from
        raise InputError(f"{what} fills the image: it has no outside to shrink from")
    kept = mine & (distance_transform_edt(mine, sampling=spacing) > within)
    if not kept.any():
        raise InputError(f"{what} is nowhere thicker than {2 * mm:g} mm: shrinking it by {mm:g} mm would "
                         "leave nothing (the label stays as it is)")
    patch[mine & ~kept] = 0


def _in_range(label: np.ndarray, value: int, step: str, image: np.ndarray | None,
              within: tuple[float, float] | None, what: str, box: tuple, start: float) -> Result:
    """:func:`tidy`'s ``clip`` and ``flood`` (``box``: the structure's extent)."""
    if image is None or within is None:
        raise InputError(f"{STEPS[step]} needs the image and a range of intensities")
    if np.shape(image) != label.shape:
        raise InputError(f"the image ({np.shape(image)}) and the label ({label.shape}) are on different grids")
    low, high = (float(v) for v in within)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InputError(f"the range {low:g} to {high:g} is not a range of numbers")
    if low > high:
        raise InputError(f"the range's low end ({low:g}) is above its high end ({high:g})")
    span = f"{low:g} to {high:g}"
    if step == "clip":
        patch = np.array(label[box], holding(label, value))
        mine = patch == value
        values = image[box]
        out = mine & ~((values >= low) & (values <= high))  # NaN is out of every range
        if not out.any():
            raise InputError(f"all of {what} lies within {span}: nothing to clip")
        if out.sum() == mine.sum():
            raise InputError(f"none of {what} lies within {span}: clipping would leave nothing "
                             "(the label stays as it is)")
        patch[out] = 0
        return Result(patch, box, label.shape, STEPS[step], time.perf_counter() - start, previous=label)
    mine = label == value
    # the structure's own voxels join what they touch, whatever their intensity: a click on a
    # noisy voxel a little outside the range still floods the tissue around it
    passable = mine | ((label == 0) & (image >= low) & (image <= high))
    parts, count = connected_parts(passable)  # face to face: a thin wall of other tissue stops it
    reached = np.zeros(count + 1, bool)
    reached[parts[mine]] = True
    reached[0] = False
    added = reached[parts] & ~mine
    del parts
    if not added.any():
        raise InputError(f"no background within {span} touches {what}: nothing to flood (set the range to "
                         "take in the intensities of the structure's tissue where it was painted or clicked)")
    added |= mine
    box = extent(added)  # the whole structure: its box after any step holds all of it
    patch = np.array(label[box], holding(label, value))
    patch[added[box]] = value
    return Result(patch, box, label.shape, STEPS[step], time.perf_counter() - start, previous=label)


def smoothed(mask: np.ndarray, spacing: Sequence[float], mm: float = SMOOTH_MM, mode: str = "constant",
             keep_volume: bool = False) -> np.ndarray:
    """``mask`` blurred (a Gaussian of ``mm`` in each direction, in millimetres of
    ``spacing``) and cut at half, where it is thicker than the blur; ``mode``: what lies
    beyond the array (scipy's: "constant" is nothing, "nearest" the border voxels again).
    ``keep_volume``: cut at the level (within :data:`VOLUME_LEVELS`) that keeps as many
    voxels as ``mask`` holds, less its parts that blur to nothing (stray voxels): a round
    surface shrinks by about sigma^2/r when cut at half. Along an axis where ``mask`` is
    one voxel thick (drawn on one slice) nothing is blurred: it stays on that slice.

    A part thinner than the blur (a vessel a voxel or two across) blurs to less than half
    everywhere, and a cut at half would take it away. So each voxel is cut against the
    highest blur within :data:`PEAK_REACH` blur widths of it, its peak: at half where
    the peak is 0.75 or more (the bulk of a structure, as before), 0.25 below a peak
    between 0.5 and 0.75, at half a lower peak, never below :data:`FLOOR`; higher where
    the thin parts would grow wider than they are (:func:`_keep_thin_volume`). A structure
    thin everywhere keeps its course and its width. What this keeps apart from the bulk
    (a peak of :data:`BULK` or more) cut at half, of a structure that has one (the tip of
    a spike off the bulk, whose base goes with the bulk's peak), goes.
    """
    out = np.zeros(mask.shape, bool)
    around = extent(mask)
    if around is None:
        return out
    # not across the slices of a structure drawn on one of them (a lesion outlined on the
    # slice where it is largest): blurred across, it thickened to three slices or five
    sigma = [mm / float(s) if a.stop - a.start > 1 else 0.0 for s, a in zip(spacing, around)]
    # only around the mask (a grown region's box is often several times larger): beyond
    # the blur's and the peak's reach every voxel stays empty, as over the whole array
    reach = [int(BLUR_REACH * g + 0.5) + int(np.ceil(PEAK_REACH * g)) + 1 for g in sigma]
    part = tuple(slice(max(0, a.start - r), min(n, a.stop + r)) for a, r, n in zip(around, reach, mask.shape))
    out[part] = _smoothed_part(mask[part], sigma, mode, keep_volume)
    return out


def _smoothed_part(mask: np.ndarray, sigma: list[float], mode: str, keep_volume: bool) -> np.ndarray:
    blur = gaussian_filter(mask.astype(np.float32), sigma, mode=mode, truncate=BLUR_REACH)
    peak = maximum_filter(blur, size=[2 * int(np.ceil(PEAK_REACH * g)) + 1 for g in sigma], mode="nearest")
    level = _volume_level(mask, blur, peak) if keep_volume else 0.5
    half = blur >= level
    threshold = np.maximum(np.minimum(level, peak - 0.25), np.maximum(level * peak, FLOOR))
    thin = peak < BULK
    _keep_thin_volume(mask, blur, peak, thin, threshold)
    kept = blur >= threshold
    if not (kept & ~half).any():  # nothing thin: as a cut at that level
        return half
    bulk = half & ~thin
    apart = kept & ~keep_seeded_components(kept, bulk)
    bulky = keep_seeded_components(mask, bulk)  # the structures with a bulk
    return kept & ~keep_seeded_components(apart, bulky)


def _keep_thin_volume(mask: np.ndarray, blur: np.ndarray, peak: np.ndarray, thin: np.ndarray,
                      threshold: np.ndarray) -> None:
    """``threshold`` raised in the ``thin`` parts so that they keep as many voxels as
    ``mask`` has there: cut at half its peak, a part thinner than the blur widens to the
    blur's own width (a vessel of 1.6 mm to about 2.4 mm with a 1 mm blur). The voxels
    that ``threshold`` keeps there are cut at the same share of their peaks, the one
    that keeps that count (the k-th highest share), no higher than :data:`THIN_SHARE`,
    no lower than before."""
    count = int(np.count_nonzero(mask & thin))
    kept = thin & (blur >= threshold)  # what the rule above keeps there
    share = blur[kept] / peak[kept]
    if not count or share.size <= count:
        return
    level = min(float(np.partition(share, share.size - count)[share.size - count]), THIN_SHARE)
    threshold[kept] = np.maximum(threshold[kept], level * peak[kept])


def _volume_level(mask: np.ndarray, blur: np.ndarray, peak: np.ndarray) -> float:
    """The level at which :func:`_smoothed_part`'s cut keeps as many voxels as ``mask``
    has in its parts that blur to :data:`FLOOR` somewhere. A voxel is kept by the cut at
    level t while t <= blur/peak and, unless the voxel lies within 0.25 of its peak, t <=
    blur: its own highest level; the cut keeps the voxels whose highest level reaches it."""
    reaching = blur >= FLOOR
    counted = int(keep_seeded_components(mask, reaching).sum())
    b, p = blur[reaching], peak[reaching]
    highest = np.where(p - 0.25 > b, b, b / p)  # a peak is at most 1: blur/peak is never below blur
    if counted == 0 or highest.size == 0:
        return 0.5
    k = min(counted, highest.size)
    level = float(np.partition(highest, highest.size - k)[highest.size - k])  # the k-th highest
    return float(np.clip(level, *VOLUME_LEVELS))


def keep_seeded_components(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Only the connected parts of ``mask`` that hold a voxel of ``seeds``.

    A cut may also switch on look-alike tissue elsewhere in the region; the person
    marked one structure, so what is not connected to their foreground marks is dropped.
    """
    out = np.zeros(mask.shape, bool)
    box = extent(mask)  # a grown region's box is often several times larger than its structure
    if box is None:
        return out
    part = mask[box]
    components, count = connected_parts(part)
    kept = np.zeros(count + 1, bool)
    kept[components[seeds[box] & part]] = True
    kept[0] = False
    out[box] = kept[components]
    return out


def _signed_distance(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Millimetres from each pixel to the outline of ``mask``: negative inside."""
    return (distance_transform_edt(~mask, sampling=spacing) - distance_transform_edt(mask, sampling=spacing)
            + np.where(mask, 0.5, -0.5) * min(spacing))  # the outline half a pixel out of the mask's centres
