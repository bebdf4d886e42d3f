"""GraphCut from what a person gives: scribbles, or foreground/background clicks.

No trained model is needed, so this is what works on any CT or MR. Both kinds of
input go through the same steps:

1. an intensity model from the marked voxels (:mod:`annotator.engine.likelihood`), on
   a lightly denoised image and on the scale the marks set, so it sees soft-tissue
   contrast on a CT as well as on an MR and does not change when the intensities are
   scaled or shifted. A click marks one voxel; its sample is the voxels of similar
   intensity connected to it, in the widest ball they still fill (:func:`click_scale`):
   several centimetres inside a CT organ, a few millimetres on a low-contrast MR (of a
   ball the image's edge cuts, the part inside the image).
2. a prior from where the marks are (:mod:`annotator.engine.priors`): the structure
   lies around the foreground marks' convex hull and reaches about as far as the
   background marks are drawn from it (for clicks: as far as the clicked tissue was
   found homogeneous);
   a network's probability of the structure can join it (``model_prior``: the strokes
   then correct the network's answer: :func:`annotator.engine.methods.model_prior`).
   Intensity alone cannot tell an unenhanced CT's spleen from the muscle it touches;
   where the intensities differ, they overrule the prior. Background clicks add the
   distances to the clicks: nearer a background click than a foreground one, a voxel
   leans to background.
3. a GraphCut (:mod:`annotator.engine.graphcut`) with the marks as hard seeds, in a
   region around the marks, keeping the parts connected to a foreground mark;
4. while that foreground reaches the region's border, the region grows there (up to the
   whole volume) and the cut runs again: strokes on a few slices of an organ give the
   whole organ, and a look-alike neighbour that is not connected stays out.
5. for strokes, the cut runs once more with the foreground intensities learnt from the
   first cut's inside (eroded, so that the boundary's partial-volume voxels are left
   out), not from the strokes alone: a few strokes sample an organ whose intensity varies
   across it (an MR liver, a CT stomach) too thinly. This second cut corrects the first
   within a few millimetres of its boundary, no further.

Deterministic: same input, same label.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import (binary_erosion, gaussian_filter, generate_binary_structure, maximum_filter,
                           minimum_filter)
from scipy.ndimage import label as ndimage_label

from annotator.engine.edges import at_half_contrast
from annotator.engine.graphcut import estimate_sigma, graphcut, noise_level
from annotator.engine.likelihood import fit_intensity_model
from annotator.engine.priors import click_distance_prior, combine, reach_prior
from annotator.engine.region import (Box, Result, box_around, check_clicks, check_finite, check_step, extent,
                                     offset_box, paste)
from annotator.engine.tidy import SMOOTH_MM, keep_seeded_components, smoothed
from annotator.errors import InputError
from annotator.io.volume import Volume, intensity_range

FOREGROUND, BACKGROUND = 1, 2


@dataclass
class GraphCutParams:
    """Tunable parts of the interactive GraphCut.

    Chosen on the CT phantom (seed 0), the TotalSegmentator example MR and CT DICOM
    series and the hippocampus train split; reported on other data (``annotator bench
    robot --method graphcut``).
    """

    #: weight of the boundary term against the data term
    lam: float = 5.0
    #: Gaussian denoising before the intensity model, in voxels of the finest axis (the
    #: same width in mm along every axis)
    denoise: float = 0.5
    #: factor on the kernel widths of the intensity model
    bandwidth: float = 1.0
    #: share of the background density given to intensities no mark sampled
    unseen: float = 0.1
    #: factor on the boundary term's contrast scale (the image's mean neighbour difference)
    sigma_scale: float = 1.0
    #: region around scribbles before it grows, mm
    scribble_margin_mm: float = 5.0
    #: region around clicks before it grows, mm
    click_margin_mm: float = 15.0
    #: a click's hard seed: a ball of this radius, mm
    click_radius_mm: float = 2.0
    #: a click's intensity sample: similar voxels connected to it, first within this
    #: radius (mm), then in balls twice as wide while they fill ``fill`` of them, up to
    #: ``max_sample_radius_mm`` (:func:`click_scale`)
    sample_radius_mm: float = 5.0
    max_sample_radius_mm: float = 40.0
    fill: float = 0.7
    #: "similar" for that sample: within this many noise deviations of the click's value
    similar: float = 2.5
    #: a clicked voxel farther than this many of those tolerances from the median of the
    #: voxels around it is a structure of its own (a speck, a vessel a voxel wide): the
    #: click's value is then that of the voxels around it that are like it
    apart: float = 2.0
    #: on a CT, the noise that "similar" counts is also measured between voxels this far
    #: apart (mm), the larger kept: a CT's noise is correlated over a millimetre or two (its
    #: reconstruction kernel), and on fine pixels neighbours see a third of it (0: between
    #: neighbours only, as on MR, where what lies 2 mm apart is as often other tissue)
    ct_noise_mm: float = 2.0
    #: sharpness of the click-distance prior (used when there is a background click)
    prior_sharpness: float = 1.0
    #: sharpness of the scribbles' reach prior (0: none)
    reach_sharpness: float = 4.0
    #: the reach prior's P(foreground) just outside the foreground strokes' hull (it falls
    #: off with the distance), and for clicks with no network's answer as prior also in
    #: their samples' hull: below 1, so that intensities that clearly say background
    #: decide there
    reach_max: float = 0.95
    #: a click's structure reaches this share of its sample's radius beyond the sample ...
    click_reach: float = 0.5
    #: ... with this sharpness (0: no reach prior for clicks)
    click_reach_sharpness: float = 2.0
    #: the region grows while the foreground reaches its border (at most this many times)
    max_grow: int = 8
    #: scribbles: the cut runs again with the foreground intensities sampled from the first
    #: cut's inside, eroded by this many voxels (0: one cut) ...
    refit: int = 2
    #: ... and changes the first cut only within this distance of it, mm ...
    refit_band_mm: float = 4.0
    #: ... its boundary term's contrast scale this share of the first cut's: edges count
    #: more there, near the boundary the first cut found
    refit_sigma_scale: float = 0.8
    #: the cut's surface smoothed as the Smooth button does, but cut at half (the button
    #: keeps the volume): blurred by a Gaussian of this width (mm), the marks keeping their
    #: class (0: as cut; not on a network's answer, which is smooth already)
    smooth_mm: float = SMOOTH_MM
    #: then, on edges whose sides differ by at least this many noise deviations, the
    #: boundary voxels go to the side they are nearer in intensity (at half the edge's
    #: contrast: :mod:`annotator.engine.edges`; 0: not) ...
    edge_contrast: float = 10.0
    #: ... moving the boundary by at most this many voxels
    edge_steps: int = 3


def segment_scribbles(volume: Volume, scribbles: np.ndarray, previous: np.ndarray | None = None,
                      params: GraphCutParams | None = None, value: int = 1,
                      model_prior: np.ndarray | None = None) -> Result:
    """Segment from strokes: ``scribbles`` is 1 on foreground strokes, 2 on background;
    ``model_prior``: a network's P(structure) on the image grid, when one is made for the
    image: it joins the priors, and the strokes correct the network's answer."""
    params = params or GraphCutParams()
    if scribbles.shape != volume.shape:
        raise InputError(
            f"scribbles have shape {scribbles.shape} (z,y,x) but the image has {volume.shape}")
    check_step(volume.shape, previous, value)
    fg, bg = scribbles == FOREGROUND, scribbles == BACKGROUND
    if not fg.any():
        raise InputError("no foreground stroke (value 1) in the scribbles")
    return _run(volume, fg, bg, params.scribble_margin_mm, previous, params, "graphcut-scribbles", value,
                model_prior=model_prior)


def segment_clicks(volume: Volume, fg_points: list[tuple[int, int, int]],
                   bg_points: list[tuple[int, int, int]] = (), previous: np.ndarray | None = None,
                   params: GraphCutParams | None = None, value: int = 1,
                   model_prior: np.ndarray | None = None) -> Result:
    """Segment from clicks given as array indices ``(z, y, x)``.

    Each click is a small ball of hard seed; its intensity sample is the similar tissue
    around it. One foreground click already gives a structure; background clicks
    correct it, with a prior from the distances to the clicks.
    """
    params = params or GraphCutParams()
    if not fg_points and bg_points:  # check_clicks's reason (a label with no voxels) would mislead here
        raise InputError("GraphCut needs a foreground click: it cuts the structure from the tissue clicked "
                         "(background clicks alone correct a structure with a network's method)")
    check_clicks(volume.shape, fg_points, bg_points)
    check_step(volume.shape, previous, value)
    fg = _balls(volume, fg_points, params.click_radius_mm)
    bg = _balls(volume, bg_points, params.click_radius_mm) & ~fg
    clicks = ([tuple(int(v) for v in p) for p in fg_points], [tuple(int(v) for v in p) for p in bg_points])
    return _run(volume, fg, bg, params.click_margin_mm, previous, params, "graphcut-clicks", value, clicks,
                model_prior)


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
    for p in points:  # each ball painted where it lies (a dilation of the whole volume by a
        # ball of several cm would hold the interpreter for a long time: the view would freeze)
        centre = np.asarray([int(v) for v in p])
        lo, hi = centre - radius, centre + radius + 1
        inside = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, mask.shape))
        part = tuple(slice(s.start - a, s.stop - a) for s, a in zip(inside, lo))
        mask[inside] |= ball[part]
    return mask


def _denoise(image: np.ndarray, sigma: float, spacing) -> np.ndarray:
    """``image`` blurred by a Gaussian of ``sigma`` voxels of its finest axis, the same
    width in mm along every axis (a thick slice is averaged across its thickness already:
    blurred by half a slice as well, a small structure's edge voxels became intensities no
    mark sampled). With no blur, ``image`` itself when it is float32: never write to it."""
    image = image.astype(np.float32, copy=False)
    if sigma <= 0:
        return image
    finest = min(spacing)
    return gaussian_filter(image, [sigma * finest / s for s in spacing], mode="nearest")


def click_sample(image: np.ndarray, point: tuple[int, ...], spacing, radius_mm: float, similar: float,
                 denoise: float, apart: float = GraphCutParams.apart, noise_mm: float = 0.0) -> tuple[Box, np.ndarray, float]:
    """The voxels that a click at ``point`` samples: within ``radius_mm``, of (denoised)
    intensity within ``similar`` noise deviations of the click's own neighbourhood (the
    median of the 3×3×3 voxels around it; of those like the clicked voxel where that
    voxel lies ``apart`` such tolerances from the median: a speck or a line a voxel wide),
    and connected to it, as (the window around the ball, their mask in it); and the
    share of that ball that lies in the image (less than all near its edges, or in a
    volume of few slices). ``noise_mm``: the noise is also measured between voxels that
    far apart, the larger kept (:attr:`GraphCutParams.ct_noise_mm`)."""
    reach = [max(1, int(np.ceil(radius_mm / s))) for s in spacing]
    lo = [max(0, p - r) for p, r in zip(point, reach)]
    hi = [min(n, p + r + 1) for p, n, r in zip(point, image.shape, reach)]
    window = tuple(slice(a, b) for a, b in zip(lo, hi))
    check_finite(image, "the image", window)
    values = _denoise(image[window], denoise, spacing)
    axes = np.ogrid[tuple(slice(a - p, b - p) for a, b, p in zip(lo, hi, point))]
    ball = sum((a * s) ** 2 for a, s in zip(axes, spacing)) <= radius_mm**2
    centre = tuple(p - a for p, a in zip(point, lo))
    near = values[tuple(slice(max(0, c - 1), c + 2) for c in centre)]
    # a noiseless image samples the voxels of the click's own value (a floor relative to
    # the intensities, not in their units: the same image in any units samples the same)
    noise = noise_level(values)
    if noise_mm:
        noise = max(noise, noise_level(values, lags=[max(1, round(noise_mm / s)) for s in spacing]))
    tolerance = similar * max(noise, 1e-6 * float(np.abs(values).max()))
    reference, own = float(np.median(near)), float(values[centre])
    if abs(own - reference) > apart * tolerance:  # unlike the voxels around it, whose median would
        # sample what surrounds the structure clicked (a click on a vessel a voxel wide took the image)
        reference = float(np.median(near[np.abs(near - own) <= tolerance]))
    similar_mask = ball & (np.abs(values - reference) <= tolerance)
    similar_mask[centre] = True
    components, _ = ndimage_label(similar_mask)
    whole = np.ogrid[tuple(slice(-r, r + 1) for r in reach)]
    whole_ball = sum((a * s) ** 2 for a, s in zip(whole, spacing)) <= radius_mm**2
    return window, components == components[centre], float(ball.sum() / whole_ball.sum())


def click_scale(image: np.ndarray, point: tuple[int, ...], spacing, params: "GraphCutParams",
                ct: bool = False) -> tuple[np.ndarray, float]:
    """A click's sample and the size of the homogeneous tissue it sits in: the largest
    radius (doubling from ``params.sample_radius_mm`` up to ``params.max_sample_radius_mm``)
    at which the click's similar, connected voxels still fill ``params.fill`` of the ball
    (of its part in the image: tissue that runs on past the image's edge fills a ball
    that the edge cuts).

    Inside an organ of a CT the sample fills balls of several centimetres; on a
    low-contrast MR structure it does not fill even the smallest one, and the click says
    little beyond its own neighbourhood.
    """
    spacing = np.asarray(spacing, float)
    noise_mm = params.ct_noise_mm if ct else 0.0

    def fills(sample: np.ndarray, inside: float, radius: float) -> bool:
        return np.count_nonzero(sample) * np.prod(spacing) >= params.fill * inside * 4 / 3 * np.pi * radius**3

    radius = params.sample_radius_mm
    window, sample, inside = click_sample(image, point, spacing, radius, params.similar, params.denoise, params.apart,
                                          noise_mm)
    while radius * 2 <= params.max_sample_radius_mm and fills(sample, inside, radius):
        wider = click_sample(image, point, spacing, radius * 2, params.similar, params.denoise, params.apart,
                             noise_mm)
        if not fills(wider[1], wider[2], radius * 2):
            break
        (window, sample, inside), radius = wider, radius * 2
    mask = np.zeros(image.shape, bool)  # the volume's mask made once, for the sample kept
    mask[window] = sample
    return mask, radius


def _touching(mask: np.ndarray, box: Box, shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """(axis, side) of the box's faces that ``mask`` reaches and that are not the volume's."""
    faces = []
    for axis in range(3):
        for side, index, at_edge in ((0, 0, box[axis].start == 0), (1, -1, box[axis].stop == shape[axis])):
            if at_edge:
                continue
            if np.take(mask, index, axis=axis).any():
                faces.append((axis, side))
    return faces


def _grow(box: Box, faces, shape, spacing, margin_mm: float) -> Box:
    """The box widened on ``faces``: by its own extent on that axis (at least the margin)."""
    new = [list((b.start, b.stop)) for b in box]
    for axis, side in faces:
        step = max(box[axis].stop - box[axis].start, int(np.ceil(margin_mm / spacing[axis])))
        if side == 0:
            new[axis][0] = max(0, box[axis].start - step)
        else:
            new[axis][1] = min(shape[axis], box[axis].stop + step)
    return tuple(slice(a, b) for a, b in new)  # type: ignore[return-value]


def _noiseless(image: np.ndarray, box: Box, fg: np.ndarray, points) -> bool:
    """Whether the marked tissue has no noise (a phantom, a mask shown as an image): the
    foreground marks' voxels, and the 3×3×3 around each click (a click's mark may be one
    voxel on a coarse grid), are all of one value."""
    values = np.concatenate([image[box][fg[box]].ravel()] + [
        image[tuple(slice(max(0, int(c) - 1), int(c) + 2) for c in p)].ravel() for p in points])
    return values.size > 1 and np.ptp(values) == 0


#: the cut works in float32: intensities beyond this magnitude, below its inverse in
#: spread, or far from zero beside their spread (:func:`in_float32_range`) are brought in
#: first
FLOAT32_REACH = 1e15
FLOAT32_OFFSET = 1e4


def in_float32_range(volume: Volume) -> Volume:
    """``volume``, or where float32 cannot hold its intensities faithfully (a float
    image of values about 10³⁰, or 10⁻³⁰, or 10⁹ ± 10: squares overflow, contrast
    rounds away), a copy shifted and scaled to about ±500. The cut does not depend on
    intensity scale or offset, so the label is the same."""
    lo, hi = intensity_range(volume.array)
    big, spread = max(abs(lo), abs(hi)), hi - lo
    if big <= FLOAT32_REACH and (spread == 0 or (spread >= 1 / FLOAT32_REACH and big <= FLOAT32_OFFSET * spread)):
        return volume
    centre, scale = (lo + hi) / 2, (spread or big) / 1000
    array = ((volume.array.astype(np.float64) - centre) / scale).astype(np.float32)
    return dataclasses.replace(volume, array=array)


def _run(volume, fg, bg, margin_mm, previous, params, method, value, clicks=None, model_prior=None) -> Result:
    start = time.perf_counter()
    volume = in_float32_range(volume)
    spacing = volume.array_spacing
    box = box_around(fg | bg, spacing, margin_mm)
    if params.denoise > 0 and _noiseless(volume.array, box, fg, clicks[0] if clicks else ()):
        # denoising would only blur its edges into intensities no mark sampled, and the
        # structure lose its surface
        params = dataclasses.replace(params, denoise=0.0)
    fg_s, bg_s = fg, bg  # the voxels the intensity model and the reach prior learn from
    if clicks is not None:
        fg_s, bg_s = fg.copy(), bg.copy()
        scales = []
        for points, sample in ((clicks[0], fg_s), (clicks[1], bg_s)):
            for p in points:
                one, radius = click_scale(volume.array, p, spacing, params, ct=volume.modality == "CT")
                if sample is fg_s:
                    scales.append(radius)
                sample |= one
        bg_s &= ~fg_s

    def prior(box: Box, prob: np.ndarray, part: Box | None = None) -> np.ndarray:
        """``prob`` with the spatial priors of ``box``; ``part``: ``prob`` covers only that
        part of it (the priors stay those of the whole box)."""
        part = part or tuple(slice(0, b.stop - b.start) for b in box)
        inner = offset_box(part, box)
        if params.reach_sharpness > 0:
            # clicks: background clicks act through the distance prior below; the
            # structure's reach stays what the foreground clicks say
            if clicks is None:
                spatial = reach_prior(fg_s[box], bg_s[box], spacing, params.reach_sharpness, top=params.reach_max,
                                      part=part)
            else:
                r0 = params.click_reach * float(np.median(scales))
                # below 1 in the samples' hull as well (what it encloses may be other
                # tissue), unless a network's answer is the other prior: it is sure where it
                # is wrong, and the click, sure too, has to overrule it there
                top = 1.0 if model_prior is not None else params.reach_max
                spatial = reach_prior(fg_s[box], None, spacing, params.click_reach_sharpness, r0,
                                      top=top, in_hull=top, part=part)
            if spatial is not None:
                prob = combine(prob, spatial)
        if model_prior is not None:
            prob = combine(prob, model_prior[inner])
        if clicks is not None and clicks[1]:
            prob = combine(prob, click_distance_prior(prob.shape, tuple(b.start for b in inner), *clicks,
                                                      spacing, params.prior_sharpness))
        return prob

    timings = {"likelihood_s": 0.0, "maxflow_s": 0.0}
    refit = clicks is None and params.refit > 0  # the second cut refines the first: it may be rough
    # the second cut looks this far beyond the first cut's box: the image is denoised that
    # far once, for both cuts and the edges
    pad = _refit_reach(params, spacing) + 1 if refit else np.zeros(3, int)
    region, box, denoised = _cut_growing(volume, box, fg, bg, (fg_s, bg_s), prior, params, margin_mm, timings,
                                         pad, rough=refit)
    if refit:
        region, box = _second_cut(volume, region, box, denoised, fg, bg, fg_s, bg_s, prior, params, timings)
    if params.smooth_mm > 0 and model_prior is None:  # a network's answer is smooth already
        t0 = time.perf_counter()
        region = smooth_cut(region, fg[box], bg[box], spacing, params.smooth_mm)
        timings["smooth_s"] = time.perf_counter() - t0
    if params.edge_contrast > 0 and volume.modality == "CT":
        t0 = time.perf_counter()
        region = at_half_contrast(region, denoised.on(box), fg[box], bg[box], spacing, params.edge_contrast,
                                  params.edge_steps)
        timings["edges_s"] = time.perf_counter() - t0
    t_paste = time.perf_counter()
    patch = paste(region, box, previous, value)
    end = time.perf_counter()
    return Result(patch, box, volume.shape, method, end - start, previous, {**timings, "paste_s": end - t_paste})


def smooth_cut(region: np.ndarray, fg: np.ndarray, bg: np.ndarray, spacing, mm: float) -> np.ndarray:
    """The cut's surface smoothed (:func:`annotator.engine.tidy.smoothed`; beyond the
    region's box the cut runs on as it is at the box's faces, so a structure the image's
    edge cuts is not worn away there), the marks in their class, and only what is
    connected to a foreground mark. The cut puts the boundary a voxel in or out where
    the edge is faint; a surface drawn by hand runs smoothly through such places."""
    kept = (smoothed(region, spacing, mm, mode="nearest") | fg) & ~bg
    return keep_seeded_components(kept, fg)


@dataclass(frozen=True)
class Denoised:
    """The image denoised (:func:`_denoise`) in ``box``: one blur for every step of a cut
    that reads the voxels there (the blur of a part of it would differ only at that
    part's faces)."""

    box: Box
    image: np.ndarray

    def on(self, box: Box) -> np.ndarray:
        """The denoised intensities of ``box`` (inside :attr:`box`): a view, not to be
        written to."""
        return self.image[tuple(slice(b.start - o.start, b.stop - o.start) for b, o in zip(box, self.box))]


def _refit_reach(params: GraphCutParams, spacing) -> np.ndarray:
    """How far the second cut reaches on either side of the first cut's boundary, in
    voxels per axis."""
    return np.maximum(1, np.round(params.refit_band_mm / np.asarray(spacing, float))).astype(int)


def _second_cut(volume, region, box, denoised, fg, bg, fg_s, bg_s, prior, params, timings) -> tuple[np.ndarray, Box]:
    """The first cut of strokes corrected near its boundary: (the new region, its box).

    A few strokes sample a structure whose intensity varies across it (an MR liver, a
    CT stomach) too thinly. The first cut's inside, eroded by ``params.refit`` voxels so
    that the boundary's partial-volume voxels are left out, samples it fully: with the
    strokes, it is the foreground of a new intensity model (the background stays the
    strokes'), and the cut runs again within ``refit_band_mm`` of the first cut's
    boundary, inside and out. Only there: a model widened by a whole organ's inside would
    otherwise let the cut run on into a neighbour of the same attenuation (a kidney into
    the spleen on an unenhanced CT). ``denoised``: the image around ``box``, one voxel
    beyond that distance (where the second cut works).
    """
    t0 = time.perf_counter()
    spacing = volume.array_spacing
    reach = _refit_reach(params, spacing)
    near_box, work = denoised.box, denoised.image
    first = np.zeros(tuple(b.stop - b.start for b in near_box), bool)
    first[tuple(slice(b.start - nb.start, b.stop - nb.start) for b, nb in zip(box, near_box))] = region
    # the band and the eroded inside around the first cut only (the same as over the box)
    around = tuple(slice(max(0, a.start - int(r)), min(n, a.stop + int(r)))
                   for a, r, n in zip(extent(first), reach, first.shape))
    cube = tuple(2 * reach + 1)
    band, inside = np.zeros(first.shape, bool), np.zeros(first.shape, bool)
    band[around] = maximum_filter(first[around], size=cube, mode="constant", cval=False)
    band[around] &= ~minimum_filter(first[around], size=cube, mode="constant", cval=True)
    inside[around] = binary_erosion(first[around], generate_binary_structure(3, 1), iterations=params.refit)
    fg_r, bg_r = fg[near_box], bg[near_box]
    model = fit_intensity_model(work[inside | fg_s[near_box]], work[bg_s[near_box]], intensity_range(volume.array),
                                bandwidth=params.bandwidth, unseen=params.unseen,
                                min_spread=noise_level(work))
    crop = _within(band | fg_s[near_box] | bg_s[near_box])
    prob = prior(near_box, model(work[crop]), crop)
    work = np.clip(work, *model.span)  # a copy: the edges read the denoised image after
    t1 = time.perf_counter()
    cut = np.zeros(first.shape, bool)
    cut[crop] = graphcut(work[crop], prob, spacing, fg_r[crop], bg_r[crop], lam=params.lam,
                         sigma=params.refit_sigma_scale * params.sigma_scale * estimate_sigma(work), band=band[crop],
                         outside_band=first[crop])
    region = keep_seeded_components(cut, fg_r)
    timings["likelihood_s"] += t1 - t0
    timings["maxflow_s"] += time.perf_counter() - t1
    # the box of the result: the first cut's, widened only where the second cut went beyond it
    found = extent(region)
    crop = tuple(slice(b.start - nb.start, b.stop - nb.start) for b, nb in zip(box, near_box))
    if found is not None:
        crop = tuple(slice(min(c.start, f.start), max(c.stop, f.stop)) for c, f in zip(crop, found))
    return region[crop], offset_box(crop, near_box)


def _within(mask: np.ndarray) -> Box:
    """Where the second cut, its priors and its likelihood are computed: around ``mask``
    (its band and the marks; a grown region's box is often several times larger than its
    structure), one voxel wider, as the voxels beyond the band's outer face are its
    neighbours."""
    return tuple(slice(max(0, c.start - 1), min(n, c.stop + 1)) for c, n in zip(extent(mask), mask.shape))


def _cut_growing(volume, box, fg, bg, samples, prior, params, margin_mm, timings, pad,
                 rough=False) -> tuple[np.ndarray, Box, Denoised]:
    """The cut in ``box``, grown while its foreground reaches the box's border: (the part
    connected to a foreground mark, in the last box; that box; the image denoised in it
    and ``pad`` voxels beyond, per axis). The intensity model learns from the ``samples``
    (foreground, background masks) in the first box; ``prior(box, prob)`` adds the
    spatial priors to its P(foreground)."""
    spacing = volume.array_spacing
    model = None
    for grown in range(params.max_grow + 1):
        t0 = time.perf_counter()
        around = tuple(slice(max(0, b.start - int(p)), min(n, b.stop + int(p)))
                       for b, p, n in zip(box, pad, volume.shape))
        check_finite(volume.array, "the image", around)
        denoised = Denoised(around, _denoise(volume.array[around], params.denoise, spacing))
        work = denoised.on(box)
        fg_r, bg_r = fg[box], bg[box]
        if model is None:  # the samples lie in the first region
            model = fit_intensity_model(work[samples[0][box]], work[samples[1][box]], intensity_range(volume.array),
                                        bandwidth=params.bandwidth, unseen=params.unseen,
                                        min_spread=noise_level(work))
        prob = prior(box, model(work))
        # intensities far outside what the samples cover saturate: air and bone edges
        # stay cheap to cut without setting the contrast scale of the boundary term (a
        # copy: the denoised image is read again after)
        work = np.clip(work, *model.span)
        t1 = time.perf_counter()
        cut = graphcut(work, prob, spacing, fg_r, bg_r, lam=params.lam,
                       sigma=params.sigma_scale * estimate_sigma(work), rough=rough)
        region = keep_seeded_components(cut, fg_r)
        timings["likelihood_s"] += t1 - t0
        timings["maxflow_s"] += time.perf_counter() - t1
        faces = _touching(region, box, volume.shape)
        if not faces or grown == params.max_grow:  # the last box is the region's
            break
        box = _grow(box, faces, volume.shape, spacing, margin_mm)
    return region, box, denoised
