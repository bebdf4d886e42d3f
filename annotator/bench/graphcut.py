"""`annotator bench graphcut`: time of one scribbles update, and Dice on the hippocampus set.

The update is timed on a 128³ region of a CT-like volume (the seeded phantom, or
``--image`` with ``--label``): strokes drawn from one organ of the reference label,
clipped to the region, with background marks pinning the region's corners.
A whole organ from sparse strokes (three slices and one background ring) is timed on a
512×512×120 CT phantom (``liver_sparse_s_512``: the region grows from the strokes to
the whole liver), and on the example CT's liver on a grid of that size
(``liver_sparse_s_512_example_ct``: a real abdomen's contrast, noise and neighbours;
not with ``--quick``). Dice is measured on the hippocampus test split with strokes drawn from the ground truth
(:func:`annotator.bench.simulate.scribbles_from_mask`).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from annotator.bench import report as rep
from annotator.bench.simulate import scribbles_from_mask, sparse_scribbles_from_mask
from annotator.datastore.cases import labelled_cases
from annotator.engine.interactive import BACKGROUND, GraphCutParams, segment_scribbles
from annotator.engine.metrics import dice
from annotator.errors import InputError
from annotator.io.phantom import ct_phantom
from annotator.io.read import read_label, read_volume
from annotator.io.volume import Volume
from annotator.samples import data_root

REGION = 128



def _timing_input(args):
    if args.image:
        if not args.label:
            raise InputError("--image needs --label (strokes are drawn from its label --organ)")
        volume = read_volume(args.image)
        label = read_label(args.label, volume)
    else:
        volume, label = ct_phantom()
    if min(volume.shape) < REGION and not args.quick:
        raise InputError(f"the image {volume.shape} is smaller than the {REGION}^3 region")
    size = [min(REGION, n) for n in volume.shape]
    target = label == args.organ
    centre = np.round(np.argwhere(target).mean(axis=0)).astype(int) if target.any() else np.array(volume.shape) // 2
    start = [int(np.clip(c - s // 2, 0, n - s)) for c, s, n in zip(centre, size, volume.shape)]
    box = tuple(slice(a, a + s) for a, s in zip(start, size))
    # strokes stay one margin inside the box, and background marks pin two opposite
    # corners there, so that the region (marks + margin) is exactly the box
    params = GraphCutParams()
    inset = [int(np.ceil(params.scribble_margin_mm / s)) for s in volume.array_spacing]
    inner = tuple(slice(b.start + i, b.stop - i) for b, i in zip(box, inset))
    scribbles = np.zeros(volume.shape, np.uint8)
    scribbles[inner] = scribbles_from_mask(target, every=6, ring=3)[inner]
    scribbles[tuple(b.start for b in inner)] = BACKGROUND
    scribbles[tuple(b.stop - 1 for b in inner)] = BACKGROUND
    return volume, scribbles, params


def _hippocampus_dice(folder: Path, quick: bool) -> tuple[float, list[dict]]:
    split = "test" if (folder / "split.json").exists() else "all"
    rows = []
    for case, volume, label in labelled_cases(folder, split, 8 if quick else None):
        truth = label > 0
        out = segment_scribbles(volume, scribbles_from_mask(truth))
        rows.append({"case": case, "dice": dice(out.label, truth), "seconds": out.seconds})
    return float(np.mean([r["dice"] for r in rows])), rows


def _example_ct_liver(root: Path) -> tuple[Volume, np.ndarray] | None:
    """The TotalSegmentator example CT and its liver (3 mm voxels, 366×303×336 mm) on a
    512×512×120 grid of the same extent, as an abdominal CT of thin pixels and 2.8 mm
    slices holds it: B-spline resampled, with noise of 15 HU (seed 0) for the noise the
    resampling smooths away. None without the data."""
    import SimpleITK as sitk

    from annotator.bench.robot_graphcut import DATASETS, _cases

    ct = next(d for d in DATASETS if d.name == "ct")
    if not (root / ct.image).is_file():
        return None
    (_, volume, structures), = _cases(ct, root, argparse.Namespace(quick=False))
    size = (512, 512, 120)
    spacing = [n * s / m for n, s, m in zip(volume.size, volume.spacing, size)]
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing(spacing)
    grid.SetOrigin(volume.origin)
    grid.SetDirection(volume.direction)
    image = sitk.Resample(volume.to_sitk(volume.array.astype(np.float32)), grid, sitk.Transform(), sitk.sitkBSpline,
                          float(volume.array.min()), sitk.sitkFloat32)
    mask = sitk.Resample(volume.to_sitk(structures["liver"].astype(np.uint8)), grid, sitk.Transform(),
                         sitk.sitkNearestNeighbor, 0)
    array = sitk.GetArrayFromImage(image) + np.random.default_rng(0).normal(0, 15, size[::-1])
    resampled = dataclasses.replace(volume, array=np.round(array).astype(np.int16), spacing=tuple(spacing),
                                    warnings=[])
    return resampled, sitk.GetArrayFromImage(mask).astype(bool)


def _whole_organ_seconds(repeats: int, volume: Volume | None = None, organ: np.ndarray | None = None) -> dict:
    """Median time of one sparse-strokes update that segments a whole organ: by default
    the phantom's liver on a 512×512×120 CT (generated at that size, not the ``--image``)."""
    if volume is None:
        volume, label = ct_phantom(shape=(120, 512, 512), spacing_zyx=(2.0, 0.8, 0.8), seed=1)
        organ = label == 1
    strokes = sparse_scribbles_from_mask(organ)
    out = segment_scribbles(volume, strokes)  # warm-up
    times = [segment_scribbles(volume, strokes).seconds for _ in range(min(repeats, 5))]
    return {"median_s": float(np.median(times)), "dice": dice(out.label, organ)}


def run(args: argparse.Namespace) -> dict:
    repeats = args.repeats or (3 if args.quick else 10)
    volume, scribbles, params = _timing_input(args)
    segment_scribbles(volume, scribbles, params=params)  # warm-up: first call pays imports
    times, likelihood, maxflow, smooth, edges = [], [], [], [], []
    for _ in range(repeats):
        out = segment_scribbles(volume, scribbles, params=params)
        times.append(out.seconds)
        likelihood.append(out.timings["likelihood_s"])
        maxflow.append(out.timings["maxflow_s"])
        smooth.append(out.timings.get("smooth_s", 0.0))
        edges.append(out.timings.get("edges_s", 0.0))
    region = [s.stop - s.start for s in out.box]
    median, p95 = rep.summary(times)
    results = [
        rep.result("update_s_128", median, "s", "lower", 1.0),
        rep.result("update_s_128_p95", p95, "s", "lower"),
        rep.result("likelihood_s", float(np.median(likelihood)), "s", "lower"),
        rep.result("maxflow_s", float(np.median(maxflow)), "s", "lower"),
        rep.result("smooth_s", float(np.median(smooth)), "s", "lower"),
        rep.result("edges_s", float(np.median(edges)), "s", "lower"),
    ]
    whole = _whole_organ_seconds(repeats)
    results.append(rep.result("liver_sparse_s_512", whole["median_s"], "s", "lower", 2.0))
    results.append(rep.result("liver_sparse_dice_512", whole["dice"], "dice", "higher"))
    example = None if args.quick or data_root() is None else _example_ct_liver(data_root())
    if example is not None:
        whole = _whole_organ_seconds(repeats, *example)
        results.append(rep.result("liver_sparse_s_512_example_ct", whole["median_s"], "s", "lower"))
        results.append(rep.result("liver_sparse_dice_512_example_ct", whole["dice"], "dice", "higher"))
    extra = {}
    folder = Path(args.data) if args.data else (data_root() or Path()) / "msd_task04_hippocampus"
    if folder.is_dir():
        mean_dice, rows = _hippocampus_dice(folder, args.quick)
        results.append(rep.result("dice_hippocampus_scribbles", mean_dice, "dice", "higher", 0.80))
        extra["cases"] = rows
    params_out = {"image": args.image or "ct_phantom(128x256x256, seed 0)", "volume_zyx": list(volume.shape),
                  "spacing_zyx": list(volume.array_spacing), "region_zyx": region, "repeats": repeats,
                  "dice_data": str(folder), "quick": bool(args.quick), **vars(params)}
    return rep.report("graphcut", params_out, results, **extra)
