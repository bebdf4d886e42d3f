"""`annotator bench cli`: how fast the command answers, against a bare Python in the same run.

Each command runs as a fresh process ``--repeats`` times, interleaved with ``python -c
pass`` so that all meet the same load on a shared machine. Peak memory is the process's
own high-water mark (``VmHWM``), read as it exits: the rusage of a child also counts the
memory of the parent it was forked from.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from annotator.bench import report as rep
from annotator.errors import InputError
from annotator.samples import data_root


#: Run as ``python -c``: the module (or code) in sys.argv[1:], then the peak memory on stderr.
_WRAPPER = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            sys.stderr.write('\\npeak_kb ' + line.split()[1] + '\\n')\n"
    "atexit.register(peak)\n"
    "module, sys.argv = sys.argv[1], sys.argv[1:]\n"
    "if module != 'pass':\n"
    "    runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
)


def _run(args: list[str]) -> tuple[float, float]:
    """Seconds and peak resident memory (MB) of one run of ``python -m args...``."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=300)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise InputError(f"python -m {' '.join(args)} failed: {proc.stderr[-300:]}")
    peak = [line for line in proc.stderr.splitlines() if line.startswith("peak_kb ")]
    return seconds, int(peak[-1].split()[1]) / 1024 if peak else float("nan")


def run(args: argparse.Namespace) -> dict:
    repeats = args.repeats or (3 if args.quick else 7)
    image = Path(args.image) if args.image else (data_root() or Path()) / "msd_task04_hippocampus/images/hippocampus_001.nii.gz"
    if not image.exists():
        raise InputError(f"{image}: no such image (give --image)")
    commands = {"python": ["pass"], "info": ["annotator", "info", str(image)], "help": ["annotator", "--help"],
                "bench_help": ["annotator", "bench", "robot", "--help"]}
    times: dict[str, list[float]] = {k: [] for k in commands}
    memory: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            seconds, mb = _run(command)
            times[name].append(seconds)
            memory[name].append(mb)
    median = {k: float(np.median(v)) for k, v in times.items()}
    results = [
        rep.result("info_s", median["info"], "s", "lower", 1.0),
        rep.result("help_s", median["help"], "s", "lower"),
        rep.result("bench_help_s", median["bench_help"], "s", "lower"),
        rep.result("python_s", median["python"], "s", "lower"),
        rep.result("info_over_python", median["info"] / median["python"], "ratio", "lower"),
        rep.result("info_peak_mb", max(memory["info"]), "MB", "lower", 150.0),
        rep.result("help_peak_mb", max(memory["help"]), "MB", "lower"),
        rep.result("python_peak_mb", max(memory["python"]), "MB", "lower"),
    ]
    params = {"image": str(image), "repeats": repeats, "quick": bool(args.quick)}
    return rep.report("cli", params, results, seconds=times, peak_mb=memory)
