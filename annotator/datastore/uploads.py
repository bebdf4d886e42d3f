"""Accepted labels waiting to reach the server: a queue on disk that survives crashes.

An accept puts the SEG to send into ``<root>/<sop uid>.dcm`` and an entry in
``queue.json`` (both written atomically). :meth:`UploadQueue.flush` sends what is due;
a success removes the entry, a failure keeps it with the error and a later retry time
(doubling, from a few seconds to a few minutes). A retry sends the same object, with
the same SOP Instance UID, and asks the server first whether it already has it, so an
upload whose answer was lost is not stored twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from annotator.errors import AnnotatorError
from annotator.io.atomic import atomic_write_bytes, atomic_write_text

FIRST_RETRY_S, LAST_RETRY_S = 5.0, 300.0


class UploadQueue:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.root / ".lock"), timeout=30)

    def _read(self) -> list[dict]:
        try:
            entries = json.loads((self.root / "queue.json").read_text("utf-8"))
            return [e for e in entries if isinstance(e, dict) and "sop_uid" in e] if isinstance(entries, list) else []
        except (OSError, ValueError):
            return []

    def _write(self, entries: list[dict]) -> None:
        atomic_write_text(self.root / "queue.json", json.dumps(entries, indent=1))

    def entries(self) -> list[dict]:
        """Waiting uploads: ``{"image_id", "sop_uid", "attempts", "error", "next_try"}``."""
        with self._lock:
            return self._read()

    def state(self, image_id: str) -> str | None:
        """``"pending"``, ``"failed"`` (tried, will retry) or None when nothing waits."""
        mine = [e for e in self.entries() if e["image_id"] == image_id]
        if not mine:
            return None
        return "failed" if any(e.get("attempts") for e in mine) else "pending"

    def add(self, image_id: str, sop_uid: str, data: bytes) -> None:
        with self._lock:
            atomic_write_bytes(self.root / f"{sop_uid}.dcm", data)
            entries = self._read()
            entries.append({"image_id": image_id, "sop_uid": sop_uid, "attempts": 0, "error": "", "next_try": 0.0})
            self._write(entries)

    def flush(self, send: Callable[[bytes, str], None], exists: Callable[[str], bool],
              now: float | None = None, force: bool = False) -> tuple[int, int]:
        """Send every due upload; returns (sent, still waiting)."""
        now = time.time() if now is None else now
        sent = 0
        with self._lock:
            entries = self._read()
            for entry in list(entries):
                if not force and entry.get("next_try", 0) > now:
                    continue
                path = self.root / f"{entry['sop_uid']}.dcm"
                try:
                    if not (entry.get("attempts") and exists(entry["sop_uid"])):
                        send(path.read_bytes(), entry["sop_uid"])
                except (AnnotatorError, OSError) as exc:
                    entry["attempts"] = int(entry.get("attempts", 0)) + 1
                    entry["error"] = str(exc)
                    delay = min(LAST_RETRY_S, FIRST_RETRY_S * 2 ** (entry["attempts"] - 1))
                    entry["next_try"] = now + delay
                    continue
                entries.remove(entry)
                path.unlink(missing_ok=True)
                sent += 1
            self._write(entries)
            return sent, len(entries)
