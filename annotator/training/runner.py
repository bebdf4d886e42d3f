"""The parent's side of a training job: start the child, read its events, cancel it.

Used by ``annotator train`` and the training dock alike. The child is a separate Python
process, so a crash, an out-of-memory kill or bad data there never takes the app down;
the chosen model only changes when the child finishes a run.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from annotator.datastore import secrets
from annotator.training.config import TrainConfig
from annotator.training.events import parse


def child_command(config_path: Path) -> list[str]:
    """How to start the child: ``python -m annotator.training``, or the frozen app itself."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--train-child", str(config_path)]
    return [sys.executable, "-m", "annotator.training", str(config_path)]


class TrainingProcess:
    """One training run in a child process."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.events: list[dict] = []
        self._queue: "queue.Queue[dict]" = queue.Queue()
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    def start(self) -> None:
        run_dir = self.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "stop").unlink(missing_ok=True)
        request = self.config.save(run_dir / "request.json")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._stderr = open(run_dir / "stderr.log", "w", encoding="utf-8")
        self._proc = subprocess.Popen(child_command(request), stdout=subprocess.PIPE, stderr=self._stderr,
                                      stdin=subprocess.PIPE, text=True, bufsize=1, env=env)
        # a server's secret that only this process holds (no keyring here) goes through the
        # pipe, never the command line, the environment or a file
        try:
            self._proc.stdin.write(json.dumps(secrets.held_here()))
            self._proc.stdin.close()
        except OSError:  # the child has gone already: its error comes through its events
            pass
        self._reader = threading.Thread(target=self._read, daemon=True, name="training-events")
        self._reader.start()

    def _read(self) -> None:
        assert self._proc and self._proc.stdout
        for line in self._proc.stdout:
            event = parse(line)
            if event:
                self._queue.put(event)
        self._proc.wait()
        self._stderr.close()
        if not any(e["event"] in ("done", "cancelled", "error") for e in self.events + list(self._queue.queue)):
            code = self._proc.returncode
            why = f"signal {-code}" if code < 0 else f"exit status {code}"
            self._queue.put({"event": "error", "message": f"training process ended unexpectedly ({why}); "
                             f"the previous model stays in use. Details: {self.run_dir / 'stderr.log'}"})
        self._queue.put({"event": "exit", "returncode": self._proc.returncode})

    def poll(self) -> list[dict]:
        """Events that arrived since the last call (never blocks)."""
        new = []
        while True:
            try:
                new.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self.events.extend(new)
        return new

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def cancel(self) -> None:
        """Ask the child to stop after its current iteration, keeping its last checkpoint."""
        if not self.running:
            return
        (self.run_dir / "stop").touch()
        if os.name == "posix":
            self._proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.running:
            self._proc.kill()

    def wait(self, timeout: float | None = None) -> int | None:
        if self._proc is None:
            return None
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader:
            self._reader.join(timeout=5)
        return code

    def outcome(self) -> str:
        """``running``, ``done``, ``cancelled``, ``failed`` or ``not started``."""
        if self._proc is None:
            return "not started"
        kinds = {e["event"] for e in self.events}
        if self.running and "exit" not in kinds:
            return "running"
        for kind, word in (("done", "done"), ("cancelled", "cancelled"), ("error", "failed")):
            if kind in kinds:
                return word
        return "running" if "exit" not in kinds else "failed"


def past_runs(folder: Path | None = None) -> list[dict]:
    """Finished or stopped runs in the runs folder, newest first: name, method, metrics, state."""
    from annotator.training.config import runs_dir
    from annotator.training.events import read_log

    folder = folder or runs_dir()
    rows = []
    for run in sorted(folder.glob("*/events.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True):
        events = read_log(run)
        start = next((e for e in events if e["event"] == "start"), {})
        end = next((e for e in reversed(events) if e["event"] in ("done", "cancelled", "error")), {})
        vals = [e for e in events if e["event"] == "validation"]
        rows.append({"name": run.parent.name, "method": start.get("method", "?"),
                     "state": {"done": "done", "cancelled": "cancelled", "error": "failed"}.get(end.get("event"), "stopped"),
                     "best_dice": max((v["dice"] for v in vals), default=None),
                     "iterations": max((e.get("iteration", 0) for e in events), default=0),
                     "message": end.get("message", ""), "folder": str(run.parent)})
    return rows
