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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from annotator.bench import report as rep
from annotator.errors import AnnotatorError



def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "annotator_app", *args]


@contextmanager
def _screen() -> Iterator[dict]:
    """The environment of the app's processes: this one's display, else one Xvfb started
    for the whole benchmark (not one per launch: its start-up is not the app's)."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        yield dict(os.environ)
        return
    if not shutil.which("Xvfb"):
        raise AnnotatorError("no display and no Xvfb: the app benchmark needs a screen")
    for number in range(90, 140):
        if not Path(f"/tmp/.X{number}-lock").exists():
            break
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield {**os.environ, "DISPLAY": f":{number}"}
    finally:
        server.terminate()
        server.wait(10)


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
    with _screen() as env:
        for _ in range(repeats):
            start = time.perf_counter()
            proc = subprocess.Popen(_command(*target, "--startup-probe"), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env)
            line = ""
            for line in proc.stdout:
                if line.startswith("{"):
                    break
            startups.append(time.perf_counter() - start)
            proc.communicate(timeout=120)
            if not _json_line(line).get("visible"):
                raise AnnotatorError("the app window did not become visible")
        proc = subprocess.run(_command("--sample", "hippocampus", "--stall-probe", str(clicks)),
                              capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise AnnotatorError(f"stall probe failed: {proc.stderr.strip()[-500:]}")
    stall = _json_line(proc.stdout)
    results = [
        rep.result("startup_s", float(np.median(startups)), "s", "lower", 3.0),
        rep.result("max_event_loop_stall_s", max(stall["max_stall_s"]), "s", "lower", 0.1),
        rep.result("click_engine_median_s", float(np.median(stall["engine_s"])), "s", "lower"),
        rep.result("label_redraw_max_s", max(stall["redraw_s"]), "s", "lower"),
        rep.result("accept_stall_s", stall["accept_stall_s"], "s", "lower", 0.1),
        rep.result("accept_saved_s", stall["accept_saved_s"], "s", "lower"),
    ]
    params = {"startup_image": " ".join(target), "repeats": repeats, "clicks": clicks,
              "stall_volume": "ct_phantom 512x512x120 (0.8 x 0.8 x 2 mm), GraphCut clicks in the liver", "accept_label": "512x512x300, two labels",
              "quick": bool(args.quick)}
    return rep.report("app", params, results, startups_s=startups, stalls_s=stall["max_stall_s"],
                      engine_s=stall["engine_s"], redraw_s=stall["redraw_s"])
