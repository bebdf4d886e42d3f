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
curve (optional, long): from 10 labeled train cases, 10 more per round (``--curve-step``)
chosen by random and by the default strategy, a brief retraining each round, and each
round's Dice on train cases held out of the pool (the same for every round and strategy).
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
#: seeds of the random strategy whose rankings say what chance gives on the same cases
CHANCE_SEEDS = 1000


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


def _train_briefly(source: Path, cases: list[str], out: Path, iterations: int, quick: bool,
                   val_fraction: float = 0.2) -> Path:
    """A DeepEdit model trained for ``iterations`` on ``cases`` (a count, not a time: the
    seeded training then gives the same model on every run), ``val_fraction`` of them set
    aside for its validation (one at least); its sidecar."""
    from annotator.bench.train import run_training, starter_config

    data = _dataset(out / "data", source, cases)
    overrides = {"max_iterations": iterations, "max_minutes": 0, "name": "bench-active-brief", "install": False,
                 "epochs": 1000, "val_fraction": val_fraction, "val_every": 1000}
    if quick:
        overrides.update(patch=[32, 32, 32])
    run_training(starter_config("deepedit", data, out / "run", **overrides))
    for name in ("best.json", "last.json"):
        if (out / "run" / name).exists():
            return out / "run" / name
    raise InputError("the brief training left no checkpoint")


def _session(source: Path, case: str, model, card):
    from annotator.engine.deep import new_session
    from annotator.io import read_volume

    return new_session(read_volume(source / "images" / f"{case}.nii.gz"), model, card)


def _automatic(source: Path, case: str, model, card) -> tuple[object, float]:
    """A session of ``case`` and the Dice of its automatic prediction (mean over labels)."""
    from annotator.engine.metrics import dice_per_label
    from annotator.io import read_label

    session = _session(source, case, model, card)
    truth = read_label(source / "labels" / f"{case}.nii.gz", session.volume)
    dice = dice_per_label(session.automatic().label, truth, sorted(card.foreground.values()))
    return session, float(np.mean(list(dice.values())))


def _score_cases(sidecar: Path, source: Path, cases: list[str], seed: int) -> list[dict]:
    from annotator.active.strategies import model_score, plain_score
    from annotator.engine.device import choose_device
    from annotator.models import load_checkpoint

    model, card = load_checkpoint(sidecar, choose_device())
    rows = []
    for position, case in enumerate(cases):
        session, dice = _automatic(source, case, model, card)
        row = {"id": case, "dice": dice}
        for strategy in ("tta", "epistemic"):
            start = time.perf_counter()
            row[strategy] = model_score(strategy, session, seed).score
            row[f"{strategy}_s"] = time.perf_counter() - start
        for strategy in ("random", "first"):
            row[strategy] = plain_score(strategy, case, position, seed).score
        rows.append(row)
    return rows


def _chance(cases: list[str], errors: list[float], best: float, seed: int) -> list[tuple[str, float, str, str]]:
    """What a random ranking gives on these cases: the mean and spread of Spearman's rho
    over :data:`CHANCE_SEEDS` seeds of the ``random`` strategy from ``seed`` on (the
    reported seed's rho is one draw from this spread), and the share of them that reach
    ``best``: a permutation test of the better model-based score."""
    from scipy.stats import spearmanr

    from annotator.active.strategies import plain_score

    rhos = np.array([spearmanr([plain_score("random", c, i, k).score for i, c in enumerate(cases)],
                               errors).correlation for k in range(seed, seed + CHANCE_SEEDS)])
    return [("spearman_random_mean", float(rhos.mean()), "rho", "higher"),
            ("spearman_random_sd", float(rhos.std()), "rho", "lower"),
            ("random_reaching_best", float(np.mean(rhos >= best - 1e-9)), "share", "lower")]  # a tie reaches


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


def _curve(source: Path, split: dict, folder: Path, rounds: int, iterations: int, seed: int, pool: int,
           held_out: int, quick: bool, step: int) -> dict:
    """The learning curve of random against the default strategy: from ``step`` labelled
    train cases, each round a model trained briefly on the labelled cases scores the rest
    of the pool, the ``step`` it ranks first join, and a model is trained again from scratch.
    Measured after each training: the automatic prediction's Dice (mean over labels) on
    ``held_out`` train cases set aside first, the same for every round and strategy."""
    from annotator.active.strategies import DEFAULT, model_score, plain_score
    from annotator.engine.device import choose_device
    from annotator.models import load_checkpoint

    order = [str(c) for c in np.random.default_rng(seed).permutation(list(split["train"]))]
    held, pool = order[:held_out], order[held_out:held_out + pool]
    device = choose_device()

    def trained(labeled: list[str], out: Path) -> tuple:
        # all labelled cases but one train it (the training's own check needs one)
        model, card = load_checkpoint(_train_briefly(source, labeled, out, iterations, quick, 0.0), device)
        return model, card, float(np.mean([_automatic(source, c, model, card)[1] for c in held]))

    start = pool[:step]
    first = trained(start, folder / "start")  # both strategies start from the same model
    dice: dict[str, list[float]] = {}
    chosen: dict[str, list[str]] = {}
    for strategy in ("random", DEFAULT):
        labeled, (model, card, measured) = list(start), first
        dice[strategy] = [measured]
        for r in range(1, rounds):
            unlabeled = [c for c in pool if c not in labeled]
            if strategy == "random":
                scores = {c: plain_score("random", c, i, seed + r).score for i, c in enumerate(unlabeled)}
            else:
                scores = {c: model_score(strategy, _session(source, c, model, card), seed).score
                          for c in unlabeled}
            labeled += sorted(scores, key=lambda c: -scores[c])[:step]
            model, card, measured = trained(labeled, folder / f"{strategy}-{r}")
            dice[strategy].append(measured)
        chosen[strategy] = labeled
    return {"labelled": [step * (r + 1) for r in range(rounds)], "held_out": held, "dice": dice, "chosen": chosen}


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


def _plot_curve(curve: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.8))
    for strategy, dice in curve["dice"].items():
        ax.plot(curve["labelled"], dice, marker="o", label=strategy)
    ax.set_xticks(curve["labelled"])
    ax.set_xlabel("labelled train cases")
    ax.set_ylabel(f"Dice on {len(curve['held_out'])} held-out train cases")
    ax.set_title("Simulated learning curve (automatic prediction)")
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
    if args.curve and (args.rounds < 1 or args.curve_step < 1 or args.curve_pool < args.rounds * args.curve_step):
        raise InputError("the learning curve needs --rounds and --curve-step of at least 1, and a --curve-pool "
                         "of at least rounds x step cases")
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
            for result, value, unit, better in _chance([r["id"] for r in rows], y, best, args.seed):
                results.append(rep.result(f"{result}_{name}", value, unit, better))
            results.append(rep.result(f"mean_dice_{name}", float(np.mean([r["dice"] for r in rows])), "dice", "higher"))
            for strategy in ("tta", "epistemic"):
                results.append(rep.result(f"seconds_per_image_{strategy}_{name}",
                                          float(np.mean([r[f"{strategy}_s"] for r in rows])), "s", "lower"))
        many = split["train"][: 4 if args.quick else 100]
        seconds, ranked, strategy = _rank_many(source, many, tmp / "ranked")
        results.append(rep.result(f"rank_{len(many)}_volumes_min", seconds / 60, "min", "lower",
                                  None if args.quick else 3.0))
        params.update({"data": str(source), "test_cases": len(test), "seed": args.seed, "ranked_volumes": ranked,
                       "rank_strategy": strategy, "quick": bool(args.quick),
                       "dice": "mean over the labels of the automatic prediction"})
        extra = {"cases": per_model}
        if args.curve:
            held_out = args.curve_held_out or (3 if args.quick else 20)
            iterations = args.curve_iterations or (4 if args.quick else BRIEF_ITERATIONS)
            extra["curve"] = _curve(source, split, tmp / "curve", args.rounds, iterations, args.seed,
                                    args.curve_pool, held_out, args.quick, args.curve_step)
            params["curve"] = {"rounds": args.rounds, "step": args.curve_step, "iterations": iterations,
                               "held_out_cases": held_out}
            for strategy, dice in extra["curve"]["dice"].items():
                results.append(rep.result(f"curve_final_dice_{strategy}", dice[-1], "dice", "higher"))
                results.append(rep.result(f"curve_mean_dice_{strategy}", float(np.mean(dice)), "dice", "higher"))
    if args.plot:
        _plot(per_model, args.plot)
        if "curve" in extra:
            _plot_curve(extra["curve"], str(Path(args.plot).with_name(Path(args.plot).stem + "_curve.png")))
    return rep.report("active", params, results, **extra)
