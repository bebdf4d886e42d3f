"""Fault injection: writers of a label store killed (SIGKILL) at random moments.

A driver process forks one writer after another; each accepts, saves drafts and writes
index info in a random order, reporting every save that returned, and is killed after a
random delay. After each kill the store is reopened (as the app would after a crash) and
checked: every label file readable and whole, no final or draft lost, no temporary file
and no history file the index does not list.
"""

from __future__ import annotations

import json
import subprocess
import sys


_DRIVER = r"""
import json, os, signal, sys, time
import numpy as np
from annotator.datastore import LocalDatastore
from annotator.io.read import read_label

folder, kills = sys.argv[1], int(sys.argv[2])
ID = "hippocampus_001"
store = LocalDatastore(folder, history=3)
image = store.open_image(ID)
rng = np.random.default_rng(0)
report = {"kills": 0, "unreadable": 0, "lost_finals": 0, "lost_drafts": 0, "orphans": 0, "temp": 0,
          "confirmed": 0, "mixed": 0}
value, last_final, last_draft = 1, None, None

def writer(start, seed, out):
    store = LocalDatastore(folder, history=3)
    r = np.random.default_rng(seed)
    v = start
    while True:
        op = ("accept", "draft", "info")[int(r.integers(3))]
        label = np.full(image.shape, v % 250 + 1, np.uint8)
        if op == "accept":
            store.accept(ID, label, image)
        elif op == "draft":
            store.save_draft(ID, label, image)
        else:
            store.set_info(ID, step=v)
        os.write(out, f"{op} {v}\n".encode())
        v += 1

for k in range(kills):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            writer(value, k, write)
        finally:
            os._exit(0)
    os.close(write)
    time.sleep(float(rng.uniform(0.005, 0.15)))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    report["kills"] += 1
    lines = [line.split() for line in data.decode().splitlines() if line.strip()]
    report["confirmed"] += len(lines)
    for op, v in lines:
        v = int(v)
        if op == "accept":
            last_final, last_draft = v, None
        elif op == "draft":
            last_draft = v
        value = v + 1
    in_flight = value  # the save that may have been cut short
    value += 1  # never reuse a value that may have reached the disk
    reopened = LocalDatastore(folder, history=3)  # recovers: stale temp files, orphaned history
    root = reopened.labels_root
    report["temp"] += len(list(root.rglob(".tmp-*")))
    for path in root.rglob("*.nii.gz"):
        try:
            label = read_label(path, image)
        except Exception:
            report["unreadable"] += 1
            continue
        if len(np.unique(label)) != 1:
            report["mixed"] += 1
    def value_of(version):
        path = root / version / f"{ID}.nii.gz"
        return int(read_label(path, image).flat[0]) if path.exists() else None
    final, draft = value_of("final"), value_of("draft")
    if last_final is not None and final not in (last_final % 250 + 1, in_flight % 250 + 1):
        report["lost_finals"] += 1
    if last_draft is not None and draft not in (last_draft % 250 + 1, in_flight % 250 + 1) \
            and final != in_flight % 250 + 1:
        report["lost_drafts"] += 1
    if final == in_flight % 250 + 1:
        last_final, last_draft = in_flight, None
    elif draft == in_flight % 250 + 1:
        last_draft = in_flight
    index = json.loads((root / "datastore.json").read_text())
    listed = {h["file"] for h in index["images"].get(ID, {}).get("history", [])}
    folder_h = root / "history" / ID
    present = {p.name for p in folder_h.iterdir()} if folder_h.is_dir() else set()
    report["orphans"] += len(present ^ listed)
print(json.dumps(report))
"""


def test_a_hundred_kills_lose_nothing(hippo_store):
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(hippo_store), "100"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nfault injection: {report}")
    assert report["kills"] == 100
    assert report["confirmed"] > 100  # the writers got work done between kills
    for key in ("unreadable", "mixed", "lost_finals", "lost_drafts", "orphans", "temp"):
        assert report[key] == 0, (key, report)
