"""`annotator bench bundle`: the frozen app built by `make bundle`: its size, how long the
build took, and its start to a visible window against `annotator-app` from the
virtualenv, alternated in the same run (same screen, same sample)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from annotator.bench import report as rep
from annotator.bench.app import _json_line, _screen
from annotator.errors import InputError


def _start(command: list[str], env: dict) -> float:
    """Seconds from launch to the window shown (the app's startup probe)."""
    start = time.perf_counter()
    proc = subprocess.Popen([*command, "--sample", "hippocampus", "--startup-probe"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = ""
    for line in proc.stdout:
        if line.startswith("{"):
            break
    seconds = time.perf_counter() - start
    proc.communicate(timeout=120)
    if not _json_line(line).get("visible"):
        raise InputError(f"{command[0]}: the window did not become visible")
    return seconds


def run(args: argparse.Namespace) -> dict:
    dist = Path(args.dist)
    app = dist / "annotator-app" / "annotator-app"
    if not app.exists():
        raise InputError(f"{app} is missing: build it with `make bundle`")
    files = [p for p in (dist / "annotator-app").rglob("*") if p.is_file() and not p.is_symlink()]
    size_gb = sum(p.stat().st_size for p in files) / 1e9  # links to files inside count once
    archive = next(dist.glob("annotator-linux-*.tar.gz"), None)
    build_file = dist / "build-seconds.txt"
    repeats = args.repeats or (1 if args.quick else 3)
    frozen, venv = [], []
    with _screen() as env:
        for _ in range(repeats):
            frozen.append(_start([str(app)], env))
            venv.append(_start([sys.executable, "-m", "annotator_app"], env))
    results = [
        rep.result("bundle_gb", size_gb, "GB", "lower", 1.3),
        rep.result("frozen_startup_s", float(np.median(frozen)), "s", "lower"),
        rep.result("venv_startup_s", float(np.median(venv)), "s", "lower"),
        rep.result("frozen_over_venv", float(np.median(frozen) / np.median(venv)), "ratio", "lower", 1.2),
    ]
    if archive is not None:
        results.append(rep.result("archive_gb", archive.stat().st_size / 1e9, "GB", "lower"))
    if build_file.exists():
        results.append(rep.result("build_minutes", float(build_file.read_text()) / 60, "min", "lower"))
    return rep.report("bundle", {"dist": str(dist), "repeats": repeats, "sample": "hippocampus",
                                 "startup": "launch to visible window, medians, alternated"}, results,
                      frozen_s=frozen, venv_s=venv)
