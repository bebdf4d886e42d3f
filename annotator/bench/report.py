"""The one result format of every benchmark: JSON and a short markdown table."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

import annotator
from annotator.errors import InputError


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "gpu": None, "python": platform.python_version()}
    try:
        import torch  # optional: only benchmarks of networks need it

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
        info["device"] = "cuda" if info["gpu"] else "cpu"
    except ImportError:
        info["device"] = "cpu"
    return info


def result(name: str, value: float, unit: str, better: str, target: float | None = None) -> dict:
    row = {"name": name, "value": round(float(value), 6), "unit": unit, "better": better}
    if target is not None:
        row["target"] = target
    return row


def summary(values: list[float]) -> tuple[float, float]:
    """Median and 95th percentile."""
    return float(np.median(values)), float(np.percentile(values, 95))


def report(benchmark: str, params: dict, results: list[dict], **extra) -> dict:
    return {"benchmark": benchmark, "version": annotator.__version__, "machine": machine(),
            "params": params, "results": results, **extra}


def markdown(rep: dict) -> str:
    lines = [f"### annotator bench {rep['benchmark']}", "",
             f"{rep['machine']['cpu']}, {rep['machine']['cores']} cores, device {rep['machine']['device']}",
             "", "| result | value | unit | target | met |", "|---|---|---|---|---|"]
    for r in rep["results"]:
        target = r.get("target")
        met = ""
        if target is not None:
            ok = r["value"] <= target if r["better"] == "lower" else r["value"] >= target
            met = "yes" if ok else "no"
        lines.append(f"| {r['name']} | {r['value']:.4g} | {r['unit']} | "
                     f"{'' if target is None else target} | {met} |")
    return "\n".join(lines) + "\n"


def check_outputs(*paths: str | None) -> None:
    """Each result file can be written: its folder made where it is missing; a folder in its
    place, or one that cannot be made, is said before a benchmark runs for minutes."""
    for path in filter(None, paths):
        target = Path(path)
        if target.is_dir():
            raise InputError(f"{path}: a folder; give a file name for the results")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{path}: its folder cannot be made ({exc.strerror or exc})") from None


def write(rep: dict, json_path: str | None, md_path: str | None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps(rep, indent=1) + "\n")
    if md_path:
        Path(md_path).write_text(markdown(rep))
