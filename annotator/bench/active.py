"""`annotator bench active`: does a strategy's score say where the model is wrong?

On the hippocampus test split, for each model (the bundled starter, and a model trained
briefly on a few train cases, so that errors spread), each test case gets the Dice of
the automatic prediction against its label and every strategy's score; the result is
Spearman's correlation between score and 1 − Dice per strategy (1: the ranking puts the
worst cases first; 0: no better than chance), and for the model-based strategies also
Pearson's (which weighs a case by how badly it failed: a score that puts the one failed
case first and orders the good ones at random has a high Pearson and a low Spearman).
Also: scoring seconds per image per strategy, and :func:`annotator.active.rank` of 100
train volumes with the default strategy, end to end. ``--curve``: a simulated learning
curve (optional, long): from 10 labeled train cases, 10 more per round chosen by random
and by the default strategy, a brief retraining each round, validation Dice per round.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from annotator.bench import report as rep
from annotator.errors import InputError
from annotator.samples import data_root

STRATEGY_NAMES = ("tta", "epistemic", "random", "first")


def _dataset(folder: Path, source: Path, train: list[str], test: list[str] = ()) -> Path:
    """A dataset folder of links to ``source``'s cases with this split."""
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for case in [*train, *test]:
            link = folder / sub / f"{case}.nii.gz"
            if not link.exists():
                os.symlink(source / sub / f"{case}.nii.gz", link)
    (folder / "split.json").write_text(json.dumps({"train": list(train), "test": list(test)}))
    return folder


def _train_briefly(source: Path, cases: list[str], out: Path, iterations: int, quick: bool) -> Path:
    """A DeepEdit model trained for ``iterations`` on ``cases`` (a count, not a time: the
    seeded training then gives the same model on every run); its sidecar."""
    from annotator.bench.train import run_training, starter_config

    data = _dataset(out / "data", source, cases)
    overrides = {"max_iterations": iterations, "max_minutes": 0, "name": "bench-active-brief", "install": False,
                 "epochs": 1000, "val_fraction": 0.2, "val_every": 1000}
    if quick:
        overrides.update(patch=[32, 32, 32])
    run_training(starter_config("deepedit", data, out / "run", **overrides))
    for name in ("best.json", "last.json"):
        if (out / "run" / name).exists():
            return out / "run" / name
    raise InputError("the brief training left no checkpoint")


def _score_cases(sidecar: Path, source: Path, cases: list[str], seed: int) -> list[dict]:
    from annotator.active.strategies import model_score, plain_score
    from annotator.engine.deep import new_session
    from annotator.engine.device import choose_device
    from annotator.engine.metrics import dice_per_label
    from annotator.io import read_label, read_volume
    from annotator.models import load_checkpoint

    model, card = load_checkpoint(sidecar, choose_device())
    values = sorted(card.foreground.values())
    rows = []
    for position, case in enumerate(cases):
        volume = read_volume(source / "images" / f"{case}.nii.gz")
        truth = read_label(source / "labels" / f"{case}.nii.gz", volume)
        session = new_session(volume, model, card)
        predicted = session.automatic().label
        row = {"id": case, "dice": float(np.mean(list(dice_per_label(predicted, truth, values).values())))}
        for strategy in ("tta", "epistemic"):
            start = time.perf_counter()
            row[strategy] = model_score(strategy, session, seed).score
            row[f"{strategy}_s"] = time.perf_counter() - start
        for strategy in ("random", "first"):
            row[strategy] = plain_score(strategy, case, position, seed).score
        rows.append(row)
    return rows


def _rank_many(source: Path, cases: list[str], folder: Path) -> tuple[float, int, str]:
    """Seconds for :func:`rank` with the default strategy over a folder of ``cases``."""
    from annotator.active import DEFAULT, rank
    from annotator.datastore import LocalDatastore

    folder.mkdir(parents=True)
    for case in cases:
        os.symlink(source / "images" / f"{case}.nii.gz", folder / f"{case}.nii.gz")
    store = LocalDatastore(folder, labels_dir=folder.parent / "labels-of-ranked")
    start = time.perf_counter()
    ranking = rank(store, DEFAULT)
    return time.perf_counter() - start, len(ranking.ranked), DEFAULT


def _curve(source: Path, split: dict, folder: Path, rounds: int, iterations: int, seed: int, pool: int) -> dict:
    """Validation Dice per round, random against the default strategy (each round: the 10
    best-scored unlabeled train cases join, a brief retraining from scratch)."""
    from annotator.active.strategies import DEFAULT, model_score, plain_score
    from annotator.engine.deep import new_session
    from annotator.io import read_volume
    from annotator.models import load_checkpoint
    from annotator.training.events import read_log

    pool = list(split["train"])[:pool]
    rng = np.random.default_rng(seed)
    start = [str(c) for c in rng.choice(pool, 10, replace=False)]
    curves = {}
    for strategy in ("random", DEFAULT):
        labeled, dice = list(start), []
        for r in range(rounds):
            out = folder / f"{strategy}-{r}"
            sidecar = _train_briefly(source, labeled, out, iterations, quick=False)
            events = read_log(out / "run" / "events.jsonl")
            dice.append(max((e["dice"] for e in events if e["event"] == "validation"), default=float("nan")))
            unlabeled = [c for c in pool if c not in labeled]
            if strategy == "random":
                scores = {c: plain_score("random", c, i, seed + r).score for i, c in enumerate(unlabeled)}
            else:
                model, card = load_checkpoint(sidecar)
                scores = {c: model_score(strategy, new_session(read_volume(source / "images" / f"{c}.nii.gz"),
                                                               model, card), seed).score for c in unlabeled}
            labeled += sorted(scores, key=lambda c: -scores[c])[:10]
        curves[strategy] = dice
    return curves


def _plot(per_model: dict[str, list[dict]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import spearmanr

    fig, axes = plt.subplots(1, len(STRATEGY_NAMES), figsize=(4 * len(STRATEGY_NAMES), 3.8), squeeze=False)
    colours = {"starter": "#4285f4", "brief": "#db4437"}
    for ax, strategy in zip(axes[0], STRATEGY_NAMES):
        for name, rows in per_model.items():
            x = [r[strategy] for r in rows]
            y = [1 - r["dice"] for r in rows]
            rho = spearmanr(x, y).correlation
            ax.scatter(x, y, s=12, alpha=0.7, color=colours.get(name), label=f"{name} model (ρ {rho:.2f})")
        ax.set_title(strategy)
        ax.set_xlabel("score (higher: label sooner)")
        ax.set_ylabel("1 − Dice of the automatic prediction")
        ax.legend(fontsize=8)
    fig.suptitle("Does the score find the images the model gets wrong? (hippocampus test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curve(curve: dict[str, list[float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.8))
    for strategy, dice in curve.items():
        ax.plot([10 * (i + 1) for i in range(len(dice))], dice, marker="o", label=strategy)
    ax.set_xlabel("labelled train cases")
    ax.set_ylabel("validation Dice after a brief training")
    ax.set_title("Simulated learning curve")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict:
    from scipy.stats import pearsonr, spearmanr

    from annotator.bench.options import BRIEF_ITERATIONS, STARTER
    from annotator.models.registry import ModelRegistry

    source = Path(args.data) if args.data else (data_root() or Path()) / "msd_task04_hippocampus"
    if not (source / "split.json").is_file():
        raise InputError(f"{source}: not the hippocampus dataset folder (images/, labels/, split.json)")
    split = json.loads((source / "split.json").read_text())
    test = split["test"][: args.cases or (6 if args.quick else None)]
    results, params, per_model = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = {"starter": ModelRegistry().entry(STARTER).sidecar}
        if not args.no_brief:
            cases = split["train"][: args.brief_cases]
            iterations = args.brief_iterations or (4 if args.quick else BRIEF_ITERATIONS)
            models["brief"] = _train_briefly(source, cases, tmp / "brief", iterations, args.quick)
            params["brief_model"] = {"train_cases": len(cases), "iterations": iterations}
        for name, sidecar in models.items():
            rows = _score_cases(Path(sidecar), source, test, args.seed)
            per_model[name] = rows
            y = [1 - r["dice"] for r in rows]
            best = -1.0
            for strategy in STRATEGY_NAMES:
                scores = [r[strategy] for r in rows]
                rho = float(spearmanr(scores, y).correlation)
                results.append(rep.result(f"spearman_{strategy}_{name}", rho, "rho", "higher"))
                if strategy in ("tta", "epistemic"):
                    best = max(best, rho)
                    # the linear correlation weighs a failed case by how badly it failed
                    results.append(rep.result(f"pearson_{strategy}_{name}", float(pearsonr(scores, y).statistic),
                                              "r", "higher"))
            results.append(rep.result(f"spearman_best_{name}", best, "rho", "higher", 0.4))
            results.append(rep.result(f"mean_dice_{name}", float(np.mean([r["dice"] for r in rows])), "dice", "higher"))
            for strategy in ("tta", "epistemic"):
                results.append(rep.result(f"seconds_per_image_{strategy}_{name}",
                                          float(np.mean([r[f"{strategy}_s"] for r in rows])), "s", "lower"))
        many = split["train"][: 10 if args.quick else 100]
        seconds, ranked, strategy = _rank_many(source, many, tmp / "ranked")
        results.append(rep.result(f"rank_{len(many)}_volumes_min", seconds / 60, "min", "lower",
                                  None if args.quick else 3.0))
        params.update({"data": str(source), "test_cases": len(test), "seed": args.seed, "ranked_volumes": ranked,
                       "rank_strategy": strategy, "quick": bool(args.quick),
                       "dice": "mean over the labels of the automatic prediction"})
        extra = {"cases": per_model}
        if args.curve:
            extra["curve"] = _curve(source, split, tmp / "curve", args.rounds, args.curve_iterations, args.seed,
                                    args.curve_pool)
            for strategy, dice in extra["curve"].items():
                results.append(rep.result(f"curve_final_dice_{strategy}", dice[-1], "dice", "higher"))
    if args.plot:
        _plot(per_model, args.plot)
        if "curve" in extra:
            _plot_curve(extra["curve"], str(Path(args.plot).with_name(Path(args.plot).stem + "_curve.png")))
    return rep.report("active", params, results, **extra)
