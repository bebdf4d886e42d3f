"""`annotator bench robot`: a simulated annotator scores a click model, click by click.

For each case: DeepEdit's automatic result first (DeepGrow starts from nothing), then
clicks, each at the centre of the largest wrongly labelled region, with the label that
region should have (:func:`annotator.training.simulate.next_click`); DeepGrow is scored
on each label separately. Reports Dice after 0, 1, 5 and 10 clicks and NoC@85/90 (the
clicks needed to reach that Dice; N when never reached), as means over cases. Dice is
the mean over labels of each case; ``dice_union_*`` scores all labels as one structure
(the hippocampus as a whole), which is what the target after 5 clicks is set on.

DeepGrow is also scored as a person working slice by slice uses it: on the slice where
each structure is largest, clicks made there only, Dice on that slice
(``slice_dice_at_1``, ``slice_dice_at_3``). A 2-D network answers only the slice clicked
on, so its Dice over the volume grows a slice per click; on the slice, it and a 3-D
network compare.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from annotator.bench import report as rep
from annotator.bench import robot_graphcut
from annotator.datastore.cases import default_split, labelled_cases, no_labelled_images
from annotator.engine.device import choose_device
from annotator.engine.metrics import dice
from annotator.engine.deep import model_notes, new_session
from annotator.engine.session import ClickSession
from annotator.errors import InputError

from annotator.models import ModelRegistry, load_checkpoint
from annotator.samples import data_root
from annotator.training.simulate import next_click

#: Dice after 5 clicks that a click model should reach, labels taken as one structure
TARGET_AT_5 = 0.88
#: the share of robot clicks after which Dice is lower than before, at most
TARGET_WORSE = 0.10
#: DeepGrow scored on one slice per structure too: Dice after this many clicks there
SLICE_CLICKS = 3
#: per method, what the starter models must reach on the hippocampus test split (Dice:
#: mean over labels); the automatic Dice no lower than the first starter model's
TARGETS = {"deepedit": {"dice_at_0": 0.8477, "dice_at_5": 0.90, "noc_90": 4},
           "deepgrow3d": {"dice_at_1": 0.86}}


def _mean_dice(pred: np.ndarray, truth: np.ndarray, values) -> float:
    return float(np.mean([dice(pred == v, truth == v) for v in values]))


def _robot(session: ClickSession, truth: np.ndarray, clicks: int,
           z: int | None = None) -> tuple[list[np.ndarray], list[bool]]:
    """Labels after 0..``clicks`` robot clicks (DeepEdit: all labels at once), and for each
    of the ``clicks`` steps whether a click was made (none when nothing is wrong); with
    ``z``, clicks on that slice only, at its errors."""
    if session.card.method == "deepedit":
        label = session.automatic().label
    else:
        label = np.zeros(truth.shape, np.uint8)
    labels, made, marks = [label], [], {}
    for _ in range(clicks):
        found = next_click(label, truth) if z is None else next_click(label[z], truth[z])
        if found is None:
            labels.append(label)
            made.append(False)
            continue
        value, point = found
        marks.setdefault(value, []).append(point if z is None else (z, *point))
        if session.card.method == "deepedit":
            label = session.edit(marks, label).label
            made.append(True)
        else:  # DeepGrow needs a foreground click to start from
            if marks.get(1):
                label = session.click(marks[1], marks.get(0, []), previous=label).label
            made.append(bool(marks.get(1)))
        labels.append(label)
    return labels, made


def _slice_curve(session: ClickSession, truth: np.ndarray, clicks: int) -> list[float]:
    """Dice on the slice where ``truth`` (one structure) is largest, after 1..``clicks``
    robot clicks made on that slice."""
    z = int(np.argmax(truth.sum(axis=(1, 2))))
    labels, _ = _robot(session, truth, clicks, z)
    return [dice(label[z] > 0, truth[z] > 0) for label in labels[1:]]


def _worse(curve: list[float], made: list[bool]) -> tuple[int, int]:
    """(clicks made, clicks after which Dice was lower than before)."""
    return sum(made), sum(1 for k, m in enumerate(made) if m and curve[k + 1] < curve[k] - 1e-6)


def _noc(curve: list[float], threshold: float, cap: int) -> int:
    return next((k for k, d in enumerate(curve) if d >= threshold), cap)


def run(args: argparse.Namespace) -> dict:
    check_args(args)
    if args.method == "graphcut":
        return robot_graphcut.run(args)
    clicks = args.clicks or (5 if args.quick else 10)
    # a folder or a DICOMweb URL (a Path would fold its "//")
    folder = args.data or str((data_root() or Path()) / "msd_task04_hippocampus")
    model, card = load_checkpoint(ModelRegistry().entry(args.model).sidecar, choose_device())
    only = None
    split = args.split or default_split(folder)
    if split == "validation":  # the model's own validation cases, for choosing parameters
        only = card.training.get("validation_cases")
        if not only:
            raise InputError(f"model '{card.name}' names no validation cases")
    cases = labelled_cases(folder, "train" if only else split, 4 if args.quick else None, only)
    # DeepGrow answers for any structure: each label value of the data is one; DeepEdit for its labels' values
    known = sorted(card.foreground.values()) if card.method == "deepedit" else []
    rows, made_total, worse_total, skipped, noted = [], 0, 0, [], set()
    for case, volume, truth in cases:
        if known:  # the structures the model does not answer for are not scored
            truth = np.where(np.isin(truth, known), truth, 0).astype(truth.dtype)
        present = [int(v) for v in np.unique(truth) if v > 0]
        if not present:  # none of the model's labels drawn in this image
            skipped.append(case)
            continue
        for note in (model_notes(card, volume) or "").splitlines():
            if note not in noted:
                noted.add(note)
                warnings.warn(note, stacklevel=1)
        session = new_session(volume, model, card)
        if card.method == "deepedit":
            labels, made = _robot(session, truth, clicks)
            curve = [_mean_dice(lab, truth, present) for lab in labels]
            union = [dice(lab > 0, truth > 0) for lab in labels]
            counts = [_worse(curve, made)]
        else:  # one structure at a time
            runs = [_robot(session, (truth == v).astype(np.uint8), clicks) for v in present]
            curves = [[dice(lab > 0, truth == v) for lab in labels] for (labels, _), v in zip(runs, present)]
            curve = [float(np.mean([c[k] for c in curves])) for k in range(clicks + 1)]
            union = curve
            counts = [_worse(c, made) for c, (_, made) in zip(curves, runs)]
            on_slice = np.mean([_slice_curve(session, (truth == v).astype(np.uint8), min(clicks, SLICE_CLICKS))
                                for v in present], axis=0)
        made_total += sum(m for m, _ in counts)
        worse_total += sum(w for _, w in counts)
        rows.append({"case": case, "dice": [round(d, 4) for d in curve],
                     "dice_union": [round(d, 4) for d in union]})
        if card.method != "deepedit":
            rows[-1]["slice_dice"] = [round(float(d), 4) for d in on_slice]
    if not rows:
        if skipped:
            values = f" (label values {', '.join(map(str, known))})" if known else ""
            raise InputError(f"no labelled image in {folder} holds a structure to score model '{card.name}' "
                             f"on{values}: their labels are empty or hold other values")
        raise no_labelled_images(folder)
    dice_curve = np.mean([r["dice"] for r in rows], axis=0)
    union_curve = np.mean([r["dice_union"] for r in rows], axis=0)
    results = []
    targets = TARGETS.get(card.method, {})
    for k in (0, 1, 5, 10):
        if k <= clicks:
            results.append(rep.result(f"dice_at_{k}", dice_curve[k], "dice", "higher", targets.get(f"dice_at_{k}")))
    for k in (0, 5):  # the target after 5 clicks is on the union of the labels (the structure as a whole)
        if k <= clicks:
            results.append(rep.result(f"dice_union_at_{k}", union_curve[k], "dice", "higher", TARGET_AT_5 if k == 5 else None))
    for threshold in (85, 90):
        nocs = [_noc(r["dice"], threshold / 100, clicks) for r in rows]
        results.append(rep.result(f"noc_{threshold}", float(np.mean(nocs)), "clicks", "lower",
                                  targets.get(f"noc_{threshold}")))
    results.append(rep.result("worse_click_share", worse_total / max(made_total, 1), "share", "lower", TARGET_WORSE))
    if card.method != "deepedit":
        on_slice = np.mean([r["slice_dice"] for r in rows], axis=0)
        for k in (1, SLICE_CLICKS):
            if k <= len(on_slice):
                results.append(rep.result(f"slice_dice_at_{k}", on_slice[k - 1], "dice", "higher"))
    if args.plot:
        _plot(rows, dice_curve, union_curve, card.name, args.plot, targets.get("dice_at_5", TARGET_AT_5))
    params = {"model": card.name, "method": card.method, "data": str(folder), "split": split,
              "cases": len(rows), "clicks": clicks, "quick": bool(args.quick),
              "dice": "mean over labels per case, then over cases", "noc_cap": clicks,
              "clicks_made": made_total, "worse_clicks": worse_total}
    return rep.report("robot", params, results, cases=rows, curve=[round(d, 4) for d in dice_curve])


def _plot(rows: list[dict], curve: np.ndarray, union: np.ndarray, name: str, path: str, target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for r in rows:
        ax.plot(r["dice"], color="#9e9e9e", alpha=0.25, linewidth=0.8)
    ax.plot(curve, color="#1565c0", linewidth=2.5, marker="o", label=f"mean over labels, {len(rows)} cases")
    if not np.allclose(union, curve):
        ax.plot(union, color="#2e7d32", linewidth=2, marker="s", label="labels as one structure (union)")
    if len(curve) > 5:
        ax.plot([5], [target], marker="*", markersize=14, color="#c62828", linestyle="none",
                label=f"target: {target} after 5 clicks")
    ax.axhline(0.9, color="#c62828", linestyle="--", linewidth=1, label="Dice 0.90")
    ax.set_xlabel("robot clicks")
    ax.set_ylabel("Dice")
    ax.set_title(f"Robot user: {name}")
    ax.set_ylim(max(0.0, float(np.min([min(r["dice"]) for r in rows])) - 0.05), 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def check_args(args) -> None:
    if args.clicks is not None and args.clicks < 1:
        raise InputError("--clicks must be at least 1")
