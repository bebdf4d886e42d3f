"""`annotator bench app`: launch to visible window, event-loop stalls during clicks and while accepting a label.

Both run the real app in child processes (``annotator-app --startup-probe`` and
``--stall-probe``); without a display they run under ``xvfb-run``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

from annotator.bench import report as rep
from annotator.errors import AnnotatorError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", help="image to open at startup (default: the hippocampus sample)")
    parser.add_argument("--repeats", type=int, default=None, help="app launches (default 3, quick 1)")
    parser.add_argument("--clicks", type=int, default=None, help="clicks for the stall (default 10, quick 3)")


def _command(*args: str) -> list[str]:
    command = [sys.executable, "-m", "annotator_app", *args]
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        if not shutil.which("xvfb-run"):
            raise AnnotatorError("no display and no xvfb-run: the app benchmark needs a screen")
        command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *command]
    return command


def _json_line(output: str) -> dict:
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AnnotatorError(f"the app printed no measurement: {output[-500:]}")


def run(args: argparse.Namespace) -> dict:
    repeats = args.repeats or (1 if args.quick else 3)
    clicks = args.clicks or (3 if args.quick else 10)
    target = [args.image] if args.image else ["--sample", "hippocampus"]
    startups = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.Popen(_command(*target, "--startup-probe"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        line = ""
        for line in proc.stdout:
            if line.startswith("{"):
                break
        startups.append(time.perf_counter() - start)
        proc.communicate(timeout=120)
        if not _json_line(line).get("visible"):
            raise AnnotatorError("the app window did not become visible")
    proc = subprocess.run(_command("--sample", "hippocampus", "--stall-probe", str(clicks)),
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AnnotatorError(f"stall probe failed: {proc.stderr.strip()[-500:]}")
    stall = _json_line(proc.stdout)
    results = [
        rep.result("startup_s", float(np.median(startups)), "s", "lower", 5.0),
        rep.result("max_event_loop_stall_s", max(stall["max_stall_s"]), "s", "lower", 0.1),
        rep.result("click_engine_median_s", float(np.median(stall["engine_s"])), "s", "lower"),
        rep.result("accept_stall_s", stall["accept_stall_s"], "s", "lower", 0.1),
        rep.result("accept_saved_s", stall["accept_saved_s"], "s", "lower"),
    ]
    params = {"startup_image": " ".join(target), "repeats": repeats, "clicks": clicks,
              "stall_volume": "ct_phantom 128x256x256", "accept_label": "512x512x300, two labels",
              "quick": bool(args.quick)}
    return rep.report("app", params, results, startups_s=startups, stalls_s=stall["max_stall_s"],
                      engine_s=stall["engine_s"])
