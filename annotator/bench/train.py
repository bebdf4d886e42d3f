"""`annotator bench train`: training throughput and how soon validation Dice reaches 0.8.

Runs a training job (default: the starter DeepEdit recipe on the hippocampus train
split; ``--quick``: a few iterations) through the same child process as ``annotator
train``, or summarises the event log of an earlier run (``--run FOLDER``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from annotator.bench import report as rep
from annotator.datastore.cases import default_split
from annotator.errors import InputError
from annotator.samples import data_root
from annotator.training.config import TrainConfig
from annotator.training.events import read_log
from annotator.training.runner import TrainingProcess



def starter_config(method: str, data: str | Path, out: Path, **overrides) -> TrainConfig:
    """The CPU recipe of the starter models (hippocampus MR, 1 mm grid, 48x64x48 crops,
    batch 2): the DeepGrow 3D starter's; the DeepEdit starter was trained on a GPU with
    the medium network and batches of 8 (docs/training.md)."""
    settings = dict(method=method, data=[str(data)], split="train", name=f"{method}-hippocampus-mr",
                    modality="MR", epochs=80, max_minutes=29, batch_size=2, patch=[48, 64, 48], val_every=4,
                    out=str(out), activate=False, licence="CC-BY-SA 4.0",
                    source="Medical Segmentation Decathlon, Task04 Hippocampus, Vanderbilt University Medical Center")
    settings.update(overrides)
    return TrainConfig(**settings)


def run_training(config: TrainConfig) -> list[dict]:
    """Run a training job to its end in its child process; its events (a failure raises)."""
    job = TrainingProcess(config)
    job.start()
    job.wait()
    job.poll()
    error = next((e for e in job.events if e["event"] == "error"), None)
    if error:
        raise InputError(f"training failed: {error['message']}")
    return job.events


def summarise(events: list[dict]) -> tuple[list[dict], dict]:
    start = next((e for e in events if e["event"] == "start"), None)
    progress = [e for e in events if e["event"] == "progress"]
    vals = [e for e in events if e["event"] == "validation"]
    if start is None or not progress:
        raise InputError("the run has no training progress to summarise")
    last = progress[-1]
    trained = last["iteration"] - start.get("start_iteration", 0)
    reached = next((v["elapsed_s"] / 60 for v in vals if v["dice"] >= 0.8), float("nan"))
    results = [rep.result("iterations_per_s", trained / max(last["elapsed_s"], 1e-6), "it/s", "higher"),
               rep.result("minutes_to_val_dice_0_8", reached, "min", "lower", 30.0),
               rep.result("final_val_dice", max((v["dice"] for v in vals), default=float("nan")), "dice", "higher")]
    info = {"method": start["method"], "train_cases": start["train_cases"], "val_cases": start["val_cases"],
            "iterations": last["iteration"], "minutes": round(last["elapsed_s"] / 60, 2), "device": start["device"],
            "parameters": start["parameters"], "validation": [{"epoch": v["epoch"], "minutes": round(v["elapsed_s"] / 60, 2),
                                                              "dice": v["dice"]} for v in vals]}
    return results, info


def run(args: argparse.Namespace) -> dict:
    if args.run:
        events = read_log(Path(args.run) / "events.jsonl")
        if not events:
            raise InputError(f"{args.run}: no events.jsonl with training events")
        results, info = summarise(events)
        return rep.report("train", {"run": args.run, **info}, results)
    data = args.data or str((data_root() or Path()) / "msd_task04_hippocampus")  # a folder or a DICOMweb URL
    minutes = args.minutes or (0.5 if args.quick else 30)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"max_minutes": minutes, "name": f"bench-{args.method}", "install": False}
        if args.quick:
            # the few cases of a dataset's test split; a folder without one, all it has
            overrides.update(epochs=1, max_iterations=6, batch_size=2, patch=[32, 32, 32], split=default_split(data))
        results, info = summarise(run_training(starter_config(args.method, data, Path(tmp) / "run", **overrides)))
    return rep.report("train", {"data": str(data), "quick": bool(args.quick), "minutes_limit": minutes, **info},
                      results)
