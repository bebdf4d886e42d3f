"""Accepted labels waiting to reach the server: a queue on disk that survives crashes.

An accept puts the SEG to send into ``<root>/<sop uid>.dcm`` and an entry in
``queue.json`` (both written atomically). :meth:`UploadQueue.flush` sends what is due;
a success removes the entry, a failure keeps it with the error and a later retry time
(doubling, from a few seconds to a few minutes). A retry sends the same object, with
the same SOP Instance UID, and asks the server first whether it already has it, so an
upload whose answer was lost is not stored twice. A server that cannot be reached ends
the round (the others wait with the one tried, rather than each waiting for its own
timeout); one that refuses the credentials is not asked again until the person says so
(``force``: Send now, or connecting again): retries with a refused password add
refusals, which may lock the account.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from annotator.errors import AnnotatorError, CredentialsError, ServerError
from annotator.io.atomic import atomic_write_bytes, atomic_write_text, keep_aside

FIRST_RETRY_S, LAST_RETRY_S = 5.0, 300.0
SIGN_IN_AGAIN = ("Not tried again until you sign in again (Worklist > Connect to server...: the labels "
                 "waiting are sent as it connects) or press Send now.")


class UploadQueue:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.root / ".lock"), timeout=30)
        self.notices: list[str] = []  # what the person should know (a damaged queue rebuilt)

    def _read(self) -> list[dict]:
        """The entries (call with the lock held), in step with the SEG files: an entry
        whose file is gone was sent (a crash before the queue was written again) and
        leaves; a file no entry names (a crash between the two writes of :meth:`add`)
        joins, asking the server first whether it has it. A queue file that is not JSON
        is kept aside and the queue rebuilt from the files, with a notice. A queue put
        in step is written back (a waiting file's header is read once)."""
        path = self.root / "queue.json"
        found: list = []
        try:
            found = json.loads(path.read_text("utf-8")) if path.is_file() else []
            if not isinstance(found, list):
                raise ValueError("not a list of uploads")
        except ValueError as exc:
            kept = keep_aside(path)
            found = []
            self.notices.append(f"{path}: the queue of labels to send was damaged ({exc}): kept as {kept.name}, "
                                "and rebuilt from the labels waiting beside it")
        except OSError:
            found = []
        entries = [e for e in found if isinstance(e, dict) and isinstance(e.get("sop_uid"), str)
                   and (self.root / f"{e['sop_uid']}.dcm").is_file()]
        listed = {e["sop_uid"] for e in entries}
        for file in sorted(self.root.glob("*.dcm")):
            if file.stem not in listed:
                entries.append({"image_id": _image_of(file), "sop_uid": file.stem, "attempts": 1,
                                "error": "found waiting after a crash", "next_try": 0.0})
        if entries != found:
            self._write(entries)
        return entries

    def _write(self, entries: list[dict]) -> None:
        atomic_write_text(self.root / "queue.json", json.dumps(entries, indent=1))

    def entries(self) -> list[dict]:
        """Waiting uploads: ``{"image_id", "sop_uid", "attempts", "error", "next_try"}``, and
        ``"refused": True`` while the server refuses the credentials."""
        with self._lock:
            return self._read()

    def state(self, image_id: str, entries: list[dict] | None = None) -> str | None:
        """``"pending"``, ``"failed"`` (tried, will retry) or None when nothing waits (from
        ``entries``, :meth:`entries` read once for many images, when given)."""
        mine = self.waiting(image_id, entries)
        if not mine:
            return None
        return "failed" if any(e.get("attempts") for e in mine) else "pending"

    def waiting(self, image_id: str, entries: list[dict] | None = None) -> list[dict]:
        """The entries of one image (see :meth:`entries`; of ``entries`` when given)."""
        return [e for e in (self.entries() if entries is None else entries) if e["image_id"] == image_id]

    def add(self, image_id: str, sop_uid: str, data: bytes) -> None:
        with self._lock:
            entries = self._read()
            atomic_write_bytes(self.root / f"{sop_uid}.dcm", data)
            entries.append({"image_id": image_id, "sop_uid": sop_uid, "attempts": 0, "error": "", "next_try": 0.0})
            self._write(entries)

    def flush(self, send: Callable[[bytes, str], None], exists: Callable[[str], bool],
              now: float | None = None, force: bool = False) -> tuple[int, int]:
        """Send every due upload (with ``force``, every one); returns (sent, still
        waiting). A server that is not reached or refuses the credentials ends the round:
        each upload after it would fail the same way (the due ones wait as long)."""
        now = time.time() if now is None else now
        sent = 0
        with self._lock:
            entries = self._read()
            for entry in list(entries):
                if not force and (entry.get("refused") or entry.get("next_try", 0) > now):
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
                    entry["refused"] = isinstance(exc, CredentialsError)
                    if isinstance(exc, ServerError):
                        for other in entries[entries.index(entry) + 1:]:
                            other["next_try"] = max(other.get("next_try", 0.0), entry["next_try"])
                        break
                    continue
                entries.remove(entry)
                path.unlink(missing_ok=True)
                sent += 1
            self._write(entries)
            return sent, len(entries)


def _image_of(seg: Path) -> str:
    """The image (series) a waiting SEG labels, as its header says; "" when it cannot."""
    import pydicom

    try:
        ds = pydicom.dcmread(seg, stop_before_pixels=True)
        return str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID)
    except Exception:  # noqa: BLE001 - a damaged file is still sent, and the server says what it thinks
        return ""
