"""`annotator bench robot --method graphcut`: scribbles and clicks with no model, per data set and structure.

Three protocols per structure, each from nothing:

- *sparse*: foreground strokes on three slices through the structure and one background
  ring on the middle one (:func:`annotator.bench.simulate.sparse_scribbles_from_mask`),
  as people draw them;
- *dense*: strokes on every third slice and a ring around the structure on every slice
  (:func:`annotator.bench.simulate.scribbles_from_mask`);
- *clicks*: one click at the structure's centre, then corrections at the centre of the
  largest wrongly labelled region (the robot of ``bench robot``).

Data: the organs of the TotalSegmentator example CT (labels are model output: fine for
this), the example CT DICOM series and MR, the hippocampus MR crops (one structure: both
labels) and the generated CT phantom with several seeds. Each data set has a role:
``tune`` (the engine's defaults were chosen on it) or ``report`` (held back to check
them). For the hippocampus also a ceiling, ``dice_dense_oracle_hippocampus``: the dense
strokes cut with an intensity model fitted to the true label (against a band three
voxels around it), at the best of a few boundary weights, its surface smoothed as the
engine's is: what intensities and edges can give there at all; and the strokes on the
installed DeepEdit model's answer, its probability of the structure joined to the cut's
priors (``dice_dense_model_hippocampus``, ``dice_sparse_model_hippocampus``; the app does
this on a label that is still the network's answer: see docs/engine.md). Results per data
set and structure (``dice_sparse_ct_liver``, ...) and the medians over the CT organs
(liver, spleen, kidneys) that the targets are set on.

``--data FOLDER`` runs the same protocols on a person's own labelled images instead (a
dataset or datastore folder; its test split when it has one, else every labelled image):
each label value of an image is a structure, named as the folder names it
(``dice_sparse_liver``, ...; ``label_N`` unnamed), and its CT organs, by those names, make
the medians.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.bench import report as rep
from annotator.bench.options import GRAPHCUT_DATASETS
from annotator.bench.simulate import scribbles_from_mask, sparse_scribbles_from_mask
from annotator.datastore.cases import default_split, labelled_cases, no_labelled_images
from annotator.datastore.factory import open_store
from annotator.engine.graphcut import estimate_sigma, graphcut
from annotator.engine.interactive import GraphCutParams, segment_clicks, segment_scribbles, smooth_cut
from annotator.engine.likelihood import fit_intensity_model
from annotator.engine.metrics import dice
from annotator.errors import InputError
from annotator.io.phantom import ORGANS, ct_phantom
from annotator.io.read import read_label, read_volume
from annotator.io.volume import Volume, intensity_range, label_values
from annotator.samples import data_root
from annotator.training.simulate import next_click

TARGETS = {"dice_sparse_median": 0.85, "dice_click_at_5_median": 0.80,
           "dice_dense_hippocampus": 0.85, "dice_sparse_hippocampus": 0.75}


@dataclass(frozen=True)
class DataSet:
    name: str
    role: str
    modality: str
    image: str = ""
    label: str = ""
    class_map: str = ""
    structures: tuple[str, ...] = ()


_TS = "totalsegmentator_example"
DATASETS = (
    DataSet("ct", "report", "CT", f"{_TS}/example_ct.nii.gz", f"{_TS}/example_seg_fast_force_split.nii.gz",
            f"{_TS}/class_map_total.json",
            ("liver", "spleen", "kidney_right", "kidney_left", "stomach", "aorta", "vertebrae_L1")),
    DataSet("ctdicom", "tune", "CT", f"{_TS}/example_ct_dicom", f"{_TS}/example_seg_dicom.nii.gz",
            f"{_TS}/class_map_total.json", ("liver", "spleen", "stomach", "aorta", "vertebrae_T12")),
    DataSet("mr", "tune", "MR", f"{_TS}/example_mr_sm.nii.gz", f"{_TS}/example_seg_mr.nii.gz",
            f"{_TS}/class_map_total_mr.json", ("liver", "spleen", "kidney_right", "kidney_left")),
    DataSet("hippocampus", "report", "MR", "msd_task04_hippocampus", structures=("hippocampus",)),
    DataSet("phantom", "report", "CT", structures=tuple(name for _, name, *_ in ORGANS)),
)
assert tuple(d.name for d in DATASETS) == GRAPHCUT_DATASETS  # the names the options offer
#: the data set of ``--data``: a person's folder, its structures named by it
FOLDER = DataSet("data", "report", "")
#: the data sets whose structures are named alone, without the data set's name before them
ALONE = ("hippocampus", FOLDER.name)


def _ct_organ(name: str) -> bool:
    """Whether a structure so named is one of the CT organs the targets are set on: the
    liver, the spleen, a kidney or both ("Liver", "right kidney", "kidney_left", "Kidney (L)",
    "kidneys", ...)."""
    words = sorted(w for w in re.split(r"[^a-z]+", name.lower()) if w and w not in _SIDES)
    return words in (["liver"], ["spleen"], ["kidney"], ["kidneys"])


#: words that name a side
_SIDES = ("left", "right", "l", "r", "lt", "rt")


def _folder_cases(folder: str, split: str, limit: int | None):
    """(case id, volume, {structure: mask}) of a person's folder, one image at a time:
    each label value a structure, named as the folder names it."""
    store = open_store(folder)
    for case, volume, label in labelled_cases(folder, split, limit):
        names = store.names_of(case)
        yield case, volume, {names.get(v, f"label_{v}"): label == v for v in label_values(label)}


def _cases(ds: DataSet, root: Path, args) -> list[tuple[str, Volume, dict[str, np.ndarray]]]:
    """(case id, volume, {structure: mask}) of a data set."""
    if ds.name == "phantom":
        seeds = args.phantom_seeds
        shape = (48, 96, 96) if args.quick else (96, 192, 192)
        out = []
        for seed in seeds[:1] if args.quick else seeds:
            volume, label = ct_phantom(shape=shape, spacing_zyx=(2.0, 1.2, 1.2), seed=seed)
            out.append((f"seed{seed}", volume, {name: label == v for v, name, *_ in ORGANS}))
        return out
    if ds.name == "hippocampus":
        split = "train" if args.split == "train" else "test"
        return [(case, volume, {"hippocampus": label > 0})
                for case, volume, label in labelled_cases(root / ds.image, split, 4 if args.quick else None)]
    volume = read_volume(root / ds.image)
    label = read_label(root / ds.label, volume)  # the DICOM CT's is stored the other way round: turned
    names = {v: int(k) for k, v in json.loads((root / ds.class_map).read_text()).items()}
    structures = ds.structures[:2] if args.quick else ds.structures
    return [(ds.name, volume, {s: label == names[s] for s in structures if (label == names[s]).any()})]


def _clicks(volume: Volume, truth: np.ndarray, count: int) -> tuple[list[float], float]:
    """Dice after 1..``count`` robot clicks, and the median time of a click."""
    label = np.zeros(truth.shape, np.uint8)
    fg, bg, curve, seconds = [], [], [], []
    for _ in range(count):
        found = next_click(label, truth.astype(np.uint8))
        if found is None:
            curve.append(curve[-1] if curve else 1.0)
            continue
        cls, point = found
        (fg if cls else bg).append(point)
        out = segment_clicks(volume, fg, bg)
        label = out.label
        seconds.append(out.seconds)
        curve.append(dice(label, truth))
    return curve, float(np.median(seconds)) if seconds else 0.0


#: boundary weights the oracle tries
ORACLE_LAMBDAS = (1.0, 2.5, 5.0)


def _oracle(volume: Volume, truth: np.ndarray, strokes: np.ndarray) -> dict[str, float]:
    """Dice per boundary weight of a cut of the strokes with the intensity model of the
    true label against the three voxels around it (the best any intensity model can do)."""
    from scipy.ndimage import binary_dilation

    image = volume.array.astype(np.float32)
    band = binary_dilation(truth, iterations=3) & ~truth
    model = fit_intensity_model(image[truth], image[band], intensity_range(image))
    fg, bg = strokes == 1, strokes == 2
    out = {}
    for lam in ORACLE_LAMBDAS:
        cut = graphcut(image, model(image), volume.array_spacing, fg, bg, lam=lam, sigma=estimate_sigma(image))
        cut = smooth_cut(cut, fg, bg, volume.array_spacing, GraphCutParams().smooth_mm)  # as the engine's cut is
        out[str(lam)] = round(dice(cut, truth), 4)
    return out


def _model_prior(volume: Volume) -> np.ndarray | None:
    """The installed DeepEdit model's P(any of its labels) on ``volume``, when one is made
    for such an image: strokes on its answer (see docs/engine.md)."""
    from annotator.engine.methods import METHODS

    deepedit = METHODS["deepedit"]
    if not deepedit.available(volume, "automatic"):
        return None
    return deepedit.deep.session(volume).probability(tuple(deepedit.label_names(volume).values()))


def _structure(volume: Volume, truth: np.ndarray, clicks: int, oracle: bool = False) -> dict:
    row = {}
    dense = scribbles_from_mask(truth)
    if oracle:
        row["dense_oracle"] = _oracle(volume, truth, dense)
        prior = _model_prior(volume)  # the hippocampus: strokes also on its starter model's answer
    for protocol, strokes in (("sparse", sparse_scribbles_from_mask(truth)), ("dense", dense)):
        out = segment_scribbles(volume, strokes)
        row[protocol] = round(dice(out.label, truth), 4)
        row[f"{protocol}_s"] = round(out.seconds, 3)
        if oracle and prior is not None:
            row[f"{protocol}_model"] = round(dice(segment_scribbles(volume, strokes, model_prior=prior).label, truth), 4)
    curve, seconds = _clicks(volume, truth, clicks)
    row["clicks"] = [round(d, 4) for d in curve]
    row["click_s"] = round(seconds, 3)
    return row


def _key(dataset: str, structure: str) -> str:
    """A structure's part of its result names: ``ct_liver`` of a bundled data set, the
    hippocampus alone, a folder's structure as it names it, in lower case with ``_``."""
    if dataset == FOLDER.name:
        return re.sub(r"\W+", "_", structure.lower()).strip("_")
    return structure if dataset in ALONE else f"{dataset}_{structure}"


def run(args: argparse.Namespace) -> dict:
    clicks = args.clicks or (5 if args.quick else 10)
    root = data_root() or Path()
    if args.split == "validation":
        raise InputError("--split validation names a model's validation cases; GraphCut has no model "
                         "(use test, train or all)")
    if args.data:
        if args.datasets:
            raise InputError("--data and --datasets: give one (--data runs the robot on that folder only)")
        folder = args.data  # a folder or a DICOMweb URL
        wanted, split = [FOLDER.name], args.split or default_split(folder)
        sources = [(FOLDER, _folder_cases(folder, split, 4 if args.quick else None))]
    else:
        wanted = args.datasets.split(",") if args.datasets else [d.name for d in DATASETS]
        unknown = set(wanted) - {d.name for d in DATASETS}
        if unknown:
            raise InputError(f"unknown data set(s) {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(d.name for d in DATASETS)})")
        split = "hippocampus " + ("train" if args.split == "train" else "test")
        sources = ((ds, _cases(ds, root, args)) for ds in DATASETS if ds.name in wanted
                   and (ds.name == "phantom" or (root / (ds.image or ds.name)).exists()))
    rows, results = [], []
    started = time.perf_counter()
    for ds, cases in sources:  # a data set is read when it is scored, a folder's cases one at a time
        for case, volume, structures in cases:
            for name, truth in structures.items():
                row = {"dataset": ds.name, "role": ds.role, "modality": ds.modality or volume.modality,
                       "case": case, "structure": name, "voxels": int(truth.sum()),
                       **_structure(volume, truth, clicks, oracle=ds.name == "hippocampus")}
                rows.append(row)
    if not rows:
        raise no_labelled_images(args.data) if args.data else InputError(
            "no data found for the GraphCut robot (is ../shared/data beside the checkout?)")
    for (ds_name, name) in dict.fromkeys((r["dataset"], r["structure"]) for r in rows):
        mine = [r for r in rows if r["dataset"] == ds_name and r["structure"] == name]
        key = _key(ds_name, name)
        for protocol in ("sparse", "dense"):
            results.append(rep.result(f"dice_{protocol}_{key}", np.mean([r[protocol] for r in mine]), "dice",
                                      "higher", TARGETS.get(f"dice_{protocol}_{key}")))
        for k in (1, 5, 10):
            if k <= clicks:
                results.append(rep.result(f"dice_click_at_{k}_{key}", np.mean([r["clicks"][k - 1] for r in mine]),
                                          "dice", "higher"))
        for protocol in ("sparse_model", "dense_model"):  # the strokes on a model's answer
            if protocol in mine[0]:
                results.append(rep.result(f"dice_{protocol}_{key}", np.mean([r[protocol] for r in mine]), "dice",
                                          "higher"))
        if "dense_oracle" in mine[0]:
            results.append(rep.result(f"dice_dense_oracle_{key}", max(
                np.mean([r["dense_oracle"][str(lam)] for r in mine]) for lam in ORACLE_LAMBDAS), "dice", "higher"))
        results.append(rep.result(f"seconds_{key}", np.median([r["sparse_s"] for r in mine]), "s", "lower"))
    ct = [r for r in rows if r["modality"] == "CT" and r["dataset"] != "phantom" and _ct_organ(r["structure"])]
    if ct:
        results.append(rep.result("dice_sparse_median", np.median([r["sparse"] for r in ct]), "dice", "higher",
                                  TARGETS["dice_sparse_median"]))
        results.append(rep.result("dice_dense_median", np.median([r["dense"] for r in ct]), "dice", "higher"))
        if clicks >= 5:
            results.append(rep.result("dice_click_at_5_median", np.median([r["clicks"][4] for r in ct]), "dice",
                                      "higher", TARGETS["dice_click_at_5_median"]))
    if args.plot:
        _plot(rows, args.plot)
    params = {"method": "graphcut", "datasets": wanted, **({"data": str(args.data)} if args.data else {}),
              "split": split, "clicks": clicks, "quick": bool(args.quick),
              "seconds_total": round(time.perf_counter() - started, 1),
              "ct_organs": "liver, spleen, kidneys of the CT data sets (not the phantom)"}
    return rep.report("robot", params, results, cases=rows)


def _plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["dataset"], r["structure"]) for r in rows))
    names = [s if d in ALONE else f"{d} {s}" for d, s in groups]
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(13, 4.8), dpi=100, gridspec_kw={"width_ratios": [2.2, 1]})
    x = np.arange(len(groups))
    colours = {"sparse": "#1565c0", "dense": "#90caf9", "click 5": "#ef6c00"}
    for i, (label, colour) in enumerate(colours.items()):
        values = []
        for d, s in groups:
            mine = [r for r in rows if r["dataset"] == d and r["structure"] == s]
            values.append(np.mean([r["clicks"][min(4, len(r["clicks"]) - 1)] if label == "click 5" else r[label]
                                   for r in mine]))
        bars.bar(x + (i - 1) * 0.27, values, 0.27, color=colour, label=label if label != "click 5" else "5 clicks")
    bars.axhline(0.85, color="#c62828", linestyle="--", linewidth=1, label="Dice 0.85")
    bars.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    bars.set_ylabel("Dice")
    bars.set_ylim(0, 1)
    bars.set_title("GraphCut, no model: strokes and clicks", pad=24)
    bars.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=8, frameon=False)
    bars.grid(axis="y", alpha=0.3)
    for d in dict.fromkeys(r["dataset"] for r in rows):  # one curve per data set: mean over its structures
        per_structure = [np.mean([r["clicks"] for r in rows if r["dataset"] == d and r["structure"] == s], axis=0)
                         for dd, s in groups if dd == d]
        curve = np.mean(per_structure, axis=0)
        curves.plot(np.arange(1, len(curve) + 1), curve, marker="o", markersize=3, linewidth=1.5,
                    label=f"{d} ({len(per_structure)} structures)")
    curves.set_xlabel("robot clicks")
    curves.set_ylabel("Dice (mean over structures)")
    curves.set_ylim(0, 1)
    curves.set_title("Clicks from nothing", pad=24)
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
