"""The options of every benchmark, kept apart from the benchmarks themselves so that
building the command line (and ``--help``) imports neither torch nor MONAI."""

from __future__ import annotations

import argparse

#: name -> (module that runs it, one line of help)
BENCHMARKS = {
    "active": ("annotator.bench.active", "how well each ranking strategy's score predicts the model's error"),
    "bundle": ("annotator.bench.bundle", "the frozen app: size, build time, start against the virtualenv's"),
    "app": ("annotator.bench.app", "launch to visible window, event-loop stalls during clicks and accept"),
    "cli": ("annotator.bench.cli", "start-up time and peak memory of `annotator info` and `--help`"),
    "click": ("annotator.bench.click", "click latency of the networks against their bare forward"),
    "dicomweb": ("annotator.bench.dicomweb", "open a series from a local Orthanc, cold and cached, against a raw download"),
    "graphcut": ("annotator.bench.graphcut", "time of one scribbles update, a whole organ, Dice on the hippocampus"),
    "robot": ("annotator.bench.robot", "a simulated annotator scores a click model (or GraphCut), click by click"),
    "train": ("annotator.bench.train", "training throughput and minutes to a validation Dice"),
}
#: the model `bench robot` scores by default
STARTER = "deepedit-hippocampus-mr"
#: the data sets of `bench robot --method graphcut` (see annotator.bench.robot_graphcut)
GRAPHCUT_DATASETS = ("ct", "ctdicom", "mr", "hippocampus", "phantom")


#: training iterations of `bench active`'s brief model (about 3 minutes on 2 CPU cores)
BRIEF_ITERATIONS = 450


def png_name(text: str) -> str:
    """A plot's file name: a PNG (known before the benchmark runs, not after)."""
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"'{text}' is not a .png file name")
    return text


def seeds(text: str) -> list[int]:
    """Comma-separated seeds, each a whole number of 0 or more."""
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not comma-separated seeds (whole numbers, e.g. 1,2)")
    return values


def active(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="the hippocampus dataset folder (default: the shared one)")
    parser.add_argument("--cases", type=int, default=None, help="test cases (default all 52, quick 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random and of the dropout")
    parser.add_argument("--no-brief", action="store_true", help="score the starter model only")
    parser.add_argument("--brief-cases", type=int, default=5, help="train cases of the brief model (default 5)")
    parser.add_argument("--brief-iterations", type=int, default=None,
                        help="its training iterations: a fixed number, so that every run trains the same model "
                             f"(default {BRIEF_ITERATIONS}: about 3 minutes on 2 CPU cores; quick 4)")
    parser.add_argument("--plot", type=png_name, help="PNG: score against 1 - Dice per strategy")
    parser.add_argument("--curve", action="store_true",
                        help="also the simulated learning curve (about 30 minutes more on 2 CPU cores)")
    parser.add_argument("--rounds", type=int, default=4, help="learning-curve rounds (default 4)")
    parser.add_argument("--curve-iterations", type=int, default=None,
                        help=f"training iterations per round (default {BRIEF_ITERATIONS}, quick 4)")
    parser.add_argument("--curve-step", type=int, default=10,
                        help="train cases labelled at the start and added each round (default 10)")
    parser.add_argument("--curve-pool", type=int, default=188,
                        help="train cases the curve draws from (default 188: all but the held-out ones)")
    parser.add_argument("--curve-held-out", type=int, default=None,
                        help="train cases set aside to measure the curve on (default 20, quick 3)")


def bundle(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dist", default="dist", help="where `make bundle` put the app (default dist)")
    parser.add_argument("--repeats", type=int, default=None, help="launches of each (default 3, quick 1)")


def app(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", help="image to open at startup (default: the hippocampus sample)")
    parser.add_argument("--repeats", type=int, default=None, help="app launches (default 3, quick 1)")
    parser.add_argument("--clicks", type=int, default=None, help="clicks for the stall (default 10, quick 3)")


def cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", help="NIfTI image for `annotator info` (default: the hippocampus sample)")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each command (default 7, quick 3)")


def click(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", help="CT image to click on (default: a seeded phantom)")
    parser.add_argument("--slices", type=int, default=None, help="phantom slices (default 120, quick 40)")
    parser.add_argument("--clicks", type=int, default=None, help="timed clicks per method (default 10, quick 3)")
    parser.add_argument("--reference-clicks", type=int, default=None, help="reference clicks (default 3, quick 1)")
    parser.add_argument("--memory-slices", type=int, default=None,
                        help="slices of the 512x512 CT for peak memory (default 300, quick 60)")
    parser.add_argument("--spacing", type=float, default=1.5, help="model grid spacing in mm (default 1.5)")
    parser.add_argument("--roi", type=int, default=96, help="click crop edge on the model grid (default 96)")
    parser.add_argument("--fit-steps", type=int, default=None,
                        help="training steps on the phantom before timing (default 40, quick 4)")


def dicomweb(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slices", type=int, default=None, help="slices of the 512x512 CT (default 200, quick 40)")
    parser.add_argument("--series", type=int, default=None, help="series on the server (default 1000, quick 100)")


def graphcut(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", help="CT-like image to time the update on (default: phantom)")
    parser.add_argument("--label", help="reference label of --image")
    parser.add_argument("--organ", type=int, default=2,
                        help="label value to draw strokes from (default 2, the phantom's spleen)")
    parser.add_argument("--data", help="folder with images/ and labels/ (and split.json) for Dice "
                        "(default: the hippocampus set)")
    parser.add_argument("--repeats", type=int, default=None, help="timed updates (default 10, quick 3)")


def robot(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", choices=["model", "graphcut"], default="model",
                        help="model: the network of --model (default); graphcut: scribbles and clicks with no model "
                             "on several data sets")
    parser.add_argument("--model", default=STARTER, help=f"model name (default: the bundled {STARTER})")
    parser.add_argument("--data", help="dataset or datastore folder (default: the hippocampus set); with "
                        "graphcut: each label of its labelled images, instead of the data sets below")
    parser.add_argument("--split", default=None, choices=["test", "train", "all", "validation"],
                        help="cases of the folder's split.json (default: its test split; all labelled images of "
                        "a folder without one); validation: the model's own validation cases, for choosing "
                        "parameters")
    parser.add_argument("--clicks", type=int, default=None, help="clicks per case (default 10, quick 5)")
    parser.add_argument("--plot", type=png_name, help="PNG of Dice against clicks")
    parser.add_argument("--datasets", help="graphcut: comma-separated data sets (default: all of "
                        + ", ".join(GRAPHCUT_DATASETS) + ")")
    parser.add_argument("--phantom-seeds", type=seeds, default=[1, 2],
                        help="graphcut: phantom seeds (default 1,2; 0 was tuned on)")


def train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", help="summarise this run folder's events.jsonl instead of training")
    parser.add_argument("--method", default="deepedit", choices=["deepedit", "deepgrow3d", "deepgrow2d"])
    parser.add_argument("--data", help="dataset or datastore folder (default: the hippocampus train split)")
    parser.add_argument("--minutes", type=float, default=None, help="training time limit (default 30, quick 0.5)")


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    globals()[name](parser)
