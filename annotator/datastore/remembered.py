"""What was found by reading a folder's files, remembered between runs in a JSON file of
the user cache folder: each entry under a key (a file's or folder's path) with a stamp
of what it was found in (a file's size and modification time; a folder's: see
:mod:`annotator.datastore.dicom_folders`). An entry whose stamp no longer matches is
found again; the entries used or found last are kept longest, up to a limit. A cache
that cannot be read or written only costs the time.
"""

from __future__ import annotations

import json
from pathlib import Path

from platformdirs import user_cache_dir

from annotator.io.atomic import atomic_write_text


def file_stamp(path: Path) -> list[int]:
    """What changes when the file at ``path`` is rewritten (OSError: it cannot be seen)."""
    info = path.stat()
    return [info.st_size, info.st_mtime_ns]


class Remembered:
    """One cache file (``name`` in the user cache folder), read when first asked and
    written by :meth:`save` when an entry was found anew."""

    def __init__(self, name: str, limit: int = 20_000):
        self.path = Path(user_cache_dir("annotator")) / name
        self.limit = limit
        self._entries: dict | None = None
        self._changed = False

    def _loaded(self) -> dict:
        if self._entries is None:
            try:
                entries = json.loads(self.path.read_text("utf-8"))
            except (OSError, ValueError):
                entries = {}
            self._entries = entries if isinstance(entries, dict) else {}
        return self._entries

    def get(self, key: str, stamp: list):
        """What was kept under ``key`` for ``stamp`` (None: nothing, or found for another)."""
        entries = self._loaded()
        entry = entries.pop(key, None)
        if not isinstance(entry, dict) or entry.get("stamp") != stamp or "found" not in entry:
            return None
        entries[key] = entry  # used last: kept longest
        return entry["found"]

    def put(self, key: str, stamp: list, found) -> None:
        entries = self._loaded()
        entries.pop(key, None)
        entries[key] = {"stamp": stamp, "found": found}
        self._changed = True

    def save(self) -> None:
        if self._entries is None or not (self._changed or len(self._entries) > self.limit):
            return
        kept = dict(list(self._entries.items())[-self.limit:])
        try:
            atomic_write_text(self.path, json.dumps(kept))
        except OSError:
            pass
        self._changed = False
