"""Progress of a training job as JSON lines: one object per line, ``{"event": ..., ...}``.

Events: ``start`` (cases, iterations, max_minutes: the time limit, 0 for none),
``progress`` (epoch, iteration, loss, it_per_s, eta_s: to the last iteration or to the
time limit, whichever comes first), ``validation`` (epoch, iteration, dice, best_dice), ``message`` (text),
``done`` (best_dice, model, activated; not_used: why a model asked to be used was not),
``cancelled`` (iteration, checkpoint),
``error`` (message). The child writes them to stdout and to ``events.jsonl`` in its
run folder; the parent reads either.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO


class EventWriter:
    def __init__(self, log: Path | None, stream: IO[str] | None = sys.stdout):
        self.stream = stream
        self.log = open(log, "a", encoding="utf-8") if log else None

    def __call__(self, event: str, **fields) -> None:
        line = json.dumps({"event": event, "time": round(time.time(), 3), **fields})
        for out in (self.log, self.stream):  # the log first: it outlives a parent that is gone
            if out is None:
                continue
            try:
                out.write(line + "\n")
                out.flush()
            except (BrokenPipeError, ValueError):  # the parent closed its end (or died)
                if out is self.stream:
                    self.stream = None

    def close(self) -> None:
        if self.log:
            self.log.close()


def parse(line: str) -> dict | None:
    """An event from one line of the child's output; None for anything else (e.g. a warning)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def read_log(path: Path) -> list[dict]:
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError:
        return []
    return [e for e in map(parse, lines) if e]
