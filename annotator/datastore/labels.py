"""Versioned label files of a datastore, kept in one folder: what a local folder and a
remote store's local cache both use.

Layout::

    <root>/
        final/<name>.nii.gz        what the person accepted last
        original/<name>.nii.gz     what the model proposed when the image was first accepted
        draft/<name>.nii.gz        autosaved work in progress
        history/<name>/<time>-final.nii.gz   earlier finals, the newest ``history`` kept
        datastore.json             index: save times, history, scores, per-image info
        .lock                      inter-process lock held by every writer

``<name>`` is the image id percent-encoded (``/`` becomes ``%2F``): two ids never share
a file and the id can be read back from the name. Nothing read from the index is trusted
as a path: every file the store reads, writes or deletes is one it names itself, inside
``<root>``. Every file is replaced atomically (temp file, check of what was written,
fsync, rename) while the lock is held, so a save that fails or is killed leaves the
previous version intact, and two processes cannot interleave their index updates.
History files orphaned by a crash between archiving and the index update are taken
into the index when the store next opens for writing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
from filelock import FileLock, Timeout

from annotator.datastore.base import Version
from annotator.errors import DatastoreError
from annotator.io.atomic import TEMP_PREFIX, atomic_path, atomic_write_text, keep_aside
from annotator.io.read import read_label
from annotator.io.volume import Volume
from annotator.io.write import write_label

INDEX_NAME = "datastore.json"
LABEL_SUFFIX = ".nii.gz"
_SAFE = " _-+=,@()[]{}~!&'"
_HISTORY_NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-final\.nii\.gz$")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def file_name(image_id: str) -> str:
    """The file name of an id's labels (without the suffix): injective and reversible."""
    name = quote(image_id, safe=_SAFE)
    if name.startswith("."):  # never hidden, never taken for a temporary file
        name = "%2E" + name[1:]
    return name


def image_id_of(name: str) -> str:
    """The id a label file name stands for (the inverse of :func:`file_name`)."""
    return unquote(name)


class LabelStore:
    """The versioned labels in ``root``; ``read_only`` gives a reason when nothing may be written."""

    def __init__(self, root: str | os.PathLike, history: int = 10, lock_timeout: float = 30.0,
                 read_only: str | None = None):
        self.root = Path(root)
        self.history_size = history
        self.read_only = read_only
        self._lock_timeout = lock_timeout
        self._lock: FileLock | None = None  # the folders and the lock are made at the first save
        self.notices: list[str] = []  # what the person should know about the store (an index rebuilt)

    # ---- reading ------------------------------------------------------------------------

    def path(self, image_id: str, version: Version | str) -> Path:
        return self._inside(self.root / Version(version).value / (file_name(image_id) + LABEL_SUFFIX))

    def has(self, image_id: str, version: Version | str) -> bool:
        return self.path(image_id, version).is_file()

    def versions(self, image_id: str, saved: dict[str, set[str]] | None = None) -> list[str]:
        """The versions saved of an image; from ``saved`` (:meth:`saved`) when given."""
        if saved is None:
            return [v.value for v in Version if self.has(image_id, v)]
        name = file_name(image_id) + LABEL_SUFFIX
        return [v for v, names in saved.items() if name in names]

    def saved(self) -> dict[str, set[str]]:
        """Version -> the names of the label files saved under it: one listing of each
        folder for a worklist of thousands of images (asking each file, and where its links
        lead, took a millisecond an image at every refresh). A link is no saved label here
        (:meth:`path` refuses one that leads outside)."""
        found = {}
        for version in Version:
            try:
                with os.scandir(self.root / version.value) as entries:
                    found[version.value] = {e.name for e in entries if e.is_file(follow_symlinks=False)}
            except OSError:  # no such folder yet
                found[version.value] = set()
        return found

    def read(self, image_id: str, image: Volume, version: Version | str = Version.FINAL) -> np.ndarray | None:
        path = self.path(image_id, version)
        return read_label(path, image) if path.is_file() else None

    def entry(self, image_id: str) -> dict:
        return dict(self.read_index()["images"].get(image_id, {}))

    def history(self, image_id: str) -> list[dict]:
        return [{"saved": h.get("saved", "")} for h in self._history_entries(image_id, self.read_index())]

    def earlier(self, image_id: str, image: Volume, back: int = 1) -> np.ndarray:
        """The final accepted before the current one (``back`` 1), or before that (2) ..."""
        entries = self._history_entries(image_id, self.read_index())
        if not 1 <= back <= len(entries):
            raise DatastoreError(f"'{image_id}' has {len(entries) or 'no'} earlier label{'s' * (len(entries) != 1)}"
                                 f"{f', not {back}' if entries else ''}")
        path = self._history_dir(image_id) / entries[-back]["file"]
        if not path.is_file():
            raise DatastoreError(f"{path}: the label accepted at {entries[-back]['saved']} is missing")
        return read_label(path, image)

    def read_index(self) -> dict:
        """The index; a damaged one (not JSON, not an index) is kept aside and rebuilt
        from the label files (:meth:`_rebuild_index`), a notice says so."""
        path = self.root / INDEX_NAME
        if not path.is_file():
            return {"version": 2, "images": {}}
        try:
            return _parsed_index(path)
        except ValueError as exc:
            if self.read_only is not None:  # nothing may be written here: the files alone
                self._notice(f"{path}: datastore index is damaged ({exc}); the labels are listed from their files")
                return {"version": 2, "images": {}}
            return self._rebuild_index(path, exc)
        except OSError as exc:
            raise DatastoreError(f"{path}: datastore index is unreadable ({exc.strerror or exc})") from exc

    def _rebuild_index(self, path: Path, damage: ValueError) -> dict:
        """A fresh index in place of the damaged ``path``, which is kept beside it; the
        history comes back from its files (:meth:`_reconcile_history`), the save times and
        versions always come from the files; scores and notes are lost."""
        with self.locked():
            try:  # another process may have rebuilt it meanwhile
                return _parsed_index(path)
            except ValueError:
                pass
            kept = keep_aside(path)
            self._write_index({"version": 2, "images": {}})
            self._reconcile_history()
        self._notice(f"{path}: datastore index was damaged ({damage}): kept as {kept.name}, and rebuilt from the "
                     "label files (the earlier labels are back; ranking scores and notes are not)")
        return _parsed_index(path)

    def _notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)

    # ---- writing ------------------------------------------------------------------------

    def segment_names(self) -> dict[str, int] | None:
        """Name -> value, as the labels accepted here named their values (a value named
        differently for different images: its most frequent name); None if none was."""
        seen: dict[int, dict[str, int]] = {}
        for entry in self.read_index()["images"].values():
            for value, name in (entry.get("info", {}).get("segment_names") or {}).items():
                if str(value).isdigit():
                    counts = seen.setdefault(int(value), {})
                    counts[str(name).lower()] = counts.get(str(name).lower(), 0) + 1
        names: dict[str, int] = {}
        for value, counts in sorted(seen.items()):
            names.setdefault(max(sorted(counts), key=counts.get), value)
        return names or None

    def save_draft(self, image_id: str, label: np.ndarray, image: Volume) -> None:
        with self.locked():
            write_label(self.path(image_id, Version.DRAFT), label, image)
            self._update(image_id, draft_saved=_now())

    def discard_draft(self, image_id: str) -> None:
        with self.locked():
            self.path(image_id, Version.DRAFT).unlink(missing_ok=True)
            self._update(image_id, draft_saved=None)

    def accept(self, image_id: str, label: np.ndarray, image: Volume, proposed: np.ndarray | None = None) -> None:
        final, original = self.path(image_id, Version.FINAL), self.path(image_id, Version.ORIGINAL)
        with self.locked():
            index = self.read_index()
            history = self._history_entries(image_id, index)
            if final.is_file():
                history.append(self._archive(image_id, final))
            if not original.is_file():
                write_label(original, label if proposed is None else proposed, image)
            write_label(final, label, image)
            history = self._trim(image_id, history)
            self.path(image_id, Version.DRAFT).unlink(missing_ok=True)
            self._update(image_id, final_saved=_now(), draft_saved=None, history=history)

    def set_info(self, image_id: str, **info) -> None:
        with self.locked():
            index = self.read_index()
            index["images"].setdefault(image_id, {}).setdefault("info", {}).update(info)
            self._write_index(index)

    def set_scores(self, scores: dict[str, float | None]) -> None:
        with self.locked():
            index = self.read_index()
            for image_id, score in scores.items():
                entry = index["images"].setdefault(image_id, {})
                if score is None:
                    entry.pop("score", None)
                else:
                    entry["score"] = float(score)
            self._write_index(index)

    # ---- internals ----------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's inter-process lock (made, with the folders, on first use)."""
        if self.read_only is not None:
            raise DatastoreError(f"{self.root}: labels cannot be saved here: {self.read_only}")
        first = self._lock is None
        if first:
            try:
                for version in Version:
                    (self.root / version.value).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatastoreError(f"{self.root}: cannot create the label folders ({exc.strerror or exc})") from exc
            self._lock = FileLock(str(self.root / ".lock"), timeout=self._lock_timeout)
        try:
            with self._lock:
                if first:
                    self.recover()
                yield
        except Timeout:
            raise DatastoreError(f"{self.root}: another program holds the datastore lock; try again") from None

    def recover(self) -> None:
        """After a crash (call with the lock held): remove half-written temporary files and
        take orphaned history files back into the index."""
        self._remove_stale_temp_files()
        self._reconcile_history()

    def _inside(self, path: Path) -> Path:
        """``path`` if it stays inside the labels folder once links are resolved."""
        resolved, root = path.resolve(), self.root.resolve()
        if resolved != root and root not in resolved.parents:
            raise DatastoreError(f"{path}: refused, it leads outside the labels folder {self.root}")
        return path

    def _history_dir(self, image_id: str) -> Path:
        return self._inside(self.root / "history" / file_name(image_id))

    def _history_entries(self, image_id: str, index: dict) -> list[dict]:
        """The index's history of an image, keeping only entries that name a history file
        of this image by a name the store makes (a crafted entry names nothing else)."""
        entries = []
        for item in index["images"].get(image_id, {}).get("history", []):
            name = Path(str(item.get("file", "")) if isinstance(item, dict) else "").name
            if _HISTORY_NAME.match(name):
                entries.append({"file": name, "saved": str(item.get("saved", ""))})
        return entries

    def _archive(self, image_id: str, final: Path) -> dict:
        folder = self._history_dir(image_id)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        target = folder / f"{stamp}-final{LABEL_SUFFIX}"
        with atomic_path(target) as tmp:
            shutil.copyfile(final, tmp)
        saved = datetime.fromtimestamp(final.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
        return {"file": target.name, "saved": saved}

    def _trim(self, image_id: str, history: list[dict]) -> list[dict]:
        keep = history[-self.history_size:] if self.history_size else []
        for old in history[: len(history) - len(keep)]:
            (self._history_dir(image_id) / old["file"]).unlink(missing_ok=True)
        return keep

    def _update(self, image_id: str, **fields) -> None:
        index = self.read_index()
        entry = index["images"].setdefault(image_id, {})
        for key, value in fields.items():
            if value is None:
                entry.pop(key, None)
            else:
                entry[key] = value
        self._write_index(index)

    def _write_index(self, index: dict) -> None:
        index["version"] = 2
        atomic_write_text(self.root / INDEX_NAME, json.dumps(index, indent=1, sort_keys=True))

    def _remove_stale_temp_files(self) -> None:
        """Temporary files left by a writer that died (every writer holds the lock)."""
        for tmp in self.root.rglob(TEMP_PREFIX + "*"):
            tmp.unlink(missing_ok=True)

    def _reconcile_history(self) -> None:
        """History files the index does not list (a crash between archiving a final and
        writing the index) go back into it, oldest first, then the history is trimmed."""
        history_root = self.root / "history"
        if not history_root.is_dir():
            return
        index = self.read_index()
        changed = False
        for folder in sorted(p for p in history_root.iterdir() if p.is_dir() and not p.is_symlink()):
            image_id = image_id_of(folder.name)
            listed = self._history_entries(image_id, index)
            known = {h["file"] for h in listed}
            found = sorted(p.name for p in folder.iterdir() if _HISTORY_NAME.match(p.name) and p.is_file())
            missing = [name for name in found if name not in known]
            gone = [h for h in listed if h["file"] not in found]
            if not missing and not gone:
                continue
            merged = sorted([h for h in listed if h["file"] in found] +
                            [{"file": n, "saved": _stamp_time(n)} for n in missing], key=lambda h: h["file"])
            index["images"].setdefault(image_id, {})["history"] = self._trim(image_id, merged)
            changed = True
        if changed:
            self._write_index(index)


def _parsed_index(path: Path) -> dict:
    """The index in ``path``; ValueError when it is not one (OSError when unreadable)."""
    index = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(index, dict) or not isinstance(index.setdefault("images", {}), dict):
        raise ValueError("not an index object")
    return index


def _stamp_time(name: str) -> str:
    return datetime.strptime(name.split("-final")[0], "%Y%m%dT%H%M%S.%fZ").replace(
        tzinfo=timezone.utc).isoformat(timespec="seconds")
