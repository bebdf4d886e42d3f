"""A folder of images as a datastore, with versioned labels beside it.

Layout (labels root defaults to ``<folder>/labels``; ``labels_dir`` moves it; when the
image folder cannot take a ``labels`` folder, e.g. a read-only archive, the labels go to
the user data folder, one subfolder per image folder)::

    <labels root>/
        final/<id>.nii.gz        what the person submitted (latest accept)
        original/<id>.nii.gz     what the model proposed when the image was first accepted
        draft/<id>.nii.gz        autosaved work in progress
        history/<id>/<time>-final.nii.gz   earlier finals, the newest ``history`` kept
        datastore.json           index: save times, history, scores and other per-image info
        .lock                    inter-process lock held by every writer

Every file is replaced atomically (temp file, fsync, rename) while the lock is held,
so an interrupted save leaves the previous version intact, and two processes cannot
interleave their index updates. An image's status follows from its files: a draft
means *in progress*, a final means *labeled*.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from platformdirs import user_data_dir

from annotator.errors import DatastoreError
from annotator.io.dicom import looks_like_dicom
from annotator.io.atomic import TEMP_PREFIX, atomic_path, atomic_write_text
from annotator.io.read import image_stem, is_image_file, read_label, read_volume
from annotator.io.volume import Volume
from annotator.io.write import write_label

INDEX_NAME = "datastore.json"
LABEL_SUFFIX = ".nii.gz"


class Status(str, Enum):
    UNLABELED = "unlabeled"
    IN_PROGRESS = "in_progress"
    LABELED = "labeled"


class Version(str, Enum):
    ORIGINAL = "original"
    FINAL = "final"
    DRAFT = "draft"


@dataclass
class ImageRecord:
    """One image of the datastore as the worklist shows it."""

    id: str
    path: Path
    status: Status
    versions: list[str]
    info: dict = field(default_factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def fallback_labels_dir(folder: Path) -> Path:
    """Labels of an image folder that cannot hold them: in the user data folder."""
    digest = hashlib.sha1(str(folder).encode("utf-8")).hexdigest()[:12]
    return Path(user_data_dir("annotator")) / "datastores" / f"{folder.name}-{digest}" / "labels"


class LocalDatastore:
    """Images in ``folder`` (files and DICOM series folders) and their labels."""

    def __init__(self, folder: str | os.PathLike, labels_dir: str | os.PathLike | None = None,
                 history: int = 10, lock_timeout: float = 30.0):
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise DatastoreError(f"{folder}: not a folder")
        self.history_size = history
        if labels_dir:
            self.labels_root = self._make_label_folders(Path(labels_dir).resolve())
        else:
            try:
                self.labels_root = self._make_label_folders(self.folder / "labels")
            except DatastoreError:
                self.labels_root = self._make_label_folders(fallback_labels_dir(self.folder))
        self._lock = FileLock(str(self.labels_root / ".lock"), timeout=lock_timeout)
        self._paths = self._discover()
        with self._locked():
            self._remove_stale_temp_files()

    @staticmethod
    def _make_label_folders(root: Path) -> Path:
        try:
            for version in Version:
                (root / version.value).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatastoreError(f"{root}: cannot create the label folders ({exc})") from exc
        return root

    # ---- images -------------------------------------------------------------------------

    def _discover(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for root, dirs, names in os.walk(self.folder):
            root_path = Path(root)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                             and (root_path / d).resolve() != self.labels_root)
            files = [root_path / n for n in sorted(names) if not n.startswith(".")]
            for path in files:
                if is_image_file(path):
                    found[self._id_for(path.parent / image_stem(path))] = path
            if root_path != self.folder and any(looks_like_dicom(p) for p in files[:5]):
                found[self._id_for(root_path)] = root_path
        return dict(sorted(found.items()))

    def _id_for(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()

    def ids(self) -> list[str]:
        return list(self._paths)

    def image_path(self, image_id: str) -> Path:
        try:
            return self._paths[image_id]
        except KeyError:
            raise DatastoreError(f"{self.folder}: no image '{image_id}'") from None

    def open_image(self, image_id: str) -> Volume:
        """Read the image (file or DICOM series) behind ``image_id``."""
        return read_volume(self.image_path(image_id))

    def status(self, image_id: str) -> Status:
        self.image_path(image_id)
        if self.label_path(image_id, Version.DRAFT).exists():
            return Status.IN_PROGRESS
        if self.label_path(image_id, Version.FINAL).exists():
            return Status.LABELED
        return Status.UNLABELED

    def records(self) -> list[ImageRecord]:
        """Every image with its status, label versions and index info."""
        index = self._read_index()["images"]
        return [
            ImageRecord(
                id=i,
                path=p,
                status=self.status(i),
                versions=[v.value for v in Version if self.label_path(i, v).exists()],
                info=dict(index.get(i, {}).get("info", {})),
            )
            for i, p in self._paths.items()
        ]

    # ---- labels -------------------------------------------------------------------------

    def label_path(self, image_id: str, version: Version | str = Version.FINAL) -> Path:
        return self.labels_root / Version(version).value / (self._slug(image_id) + LABEL_SUFFIX)

    @staticmethod
    def _slug(image_id: str) -> str:
        return image_id.replace("/", "__")

    def label(self, image_id: str, image: Volume, version: Version | str = Version.FINAL) -> np.ndarray | None:
        """The stored label of one version, checked against ``image``; None when absent."""
        path = self.label_path(image_id, version)
        return read_label(path, image) if path.exists() else None

    def save_draft(self, image_id: str, label: np.ndarray, image: Volume) -> Path:
        """Autosave work in progress; the image becomes *in progress*."""
        self.image_path(image_id)
        with self._locked():
            path = write_label(self.label_path(image_id, Version.DRAFT), label, image)
            self._update_index(image_id, draft_saved=_now())
        return path

    def accept(self, image_id: str, label: np.ndarray, image: Volume,
               proposed: np.ndarray | None = None) -> Path:
        """Store ``label`` as the final version; the image becomes *labeled*.

        ``proposed`` (what the model suggested) becomes the ``original`` version the first
        time an image is accepted; without it the first final label is the original. The
        previous final moves into the history. The draft, if any, is removed.
        """
        self.image_path(image_id)
        final = self.label_path(image_id, Version.FINAL)
        original = self.label_path(image_id, Version.ORIGINAL)
        with self._locked():
            entry = self._read_index()["images"].get(image_id, {})
            history = list(entry.get("history", []))
            if final.exists():
                history.append(self._archive(image_id, final))
            if not original.exists():
                write_label(original, label if proposed is None else proposed, image)
            write_label(final, label, image)
            history = self._trim_history(history)
            self.label_path(image_id, Version.DRAFT).unlink(missing_ok=True)
            self._update_index(image_id, final_saved=_now(), history=history)
        return final

    def history(self, image_id: str) -> list[dict]:
        """Earlier final versions, oldest first: ``{"file", "saved"}``."""
        return list(self._read_index()["images"].get(image_id, {}).get("history", []))

    def set_info(self, image_id: str, **info) -> None:
        """Store JSON-serialisable per-image facts (score, notes) in the index."""
        self.image_path(image_id)
        with self._locked():
            index = self._read_index()
            entry = index["images"].setdefault(image_id, {})
            entry.setdefault("info", {}).update(info)
            self._write_index(index)

    # ---- internals ----------------------------------------------------------------------

    def _archive(self, image_id: str, final: Path) -> dict:
        folder = self.labels_root / "history" / self._slug(image_id)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        target = folder / f"{stamp}-final{LABEL_SUFFIX}"
        with atomic_path(target) as tmp:
            shutil.copyfile(final, tmp)
        saved = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(final.stat().st_mtime))
        return {"file": str(target.relative_to(self.labels_root)), "saved": saved}

    def _trim_history(self, history: list[dict]) -> list[dict]:
        keep = history[-self.history_size:] if self.history_size else []
        for old in history[: len(history) - len(keep)]:
            (self.labels_root / old["file"]).unlink(missing_ok=True)
        return keep

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            with self._lock:
                yield
        except Timeout:
            raise DatastoreError(
                f"{self.labels_root}: another program holds the datastore lock; try again"
            ) from None

    def _read_index(self) -> dict:
        path = self.labels_root / INDEX_NAME
        if not path.exists():
            return {"version": 1, "images": {}}
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DatastoreError(f"{path}: datastore index is unreadable ({exc})") from exc
        index.setdefault("images", {})
        return index

    def _write_index(self, index: dict) -> None:
        atomic_write_text(self.labels_root / INDEX_NAME, json.dumps(index, indent=1, sort_keys=True))

    def _update_index(self, image_id: str, **fields) -> None:
        index = self._read_index()
        index["images"].setdefault(image_id, {}).update(fields)
        self._write_index(index)

    def _remove_stale_temp_files(self) -> None:
        """Temporary files left by a writer that died (every writer holds the lock)."""
        for tmp in self.labels_root.rglob(TEMP_PREFIX + "*"):
            tmp.unlink(missing_ok=True)


def datastore_for_image(path: str | os.PathLike, labels_dir: str | os.PathLike | None = None,
                        ) -> tuple[LocalDatastore, str]:
    """The datastore an image file or DICOM series folder belongs to (its parent folder)."""
    path = Path(path).resolve()
    store = LocalDatastore(path.parent, labels_dir=labels_dir)
    image_id = store._id_for(path.parent / image_stem(path)) if path.is_file() else store._id_for(path)
    store.image_path(image_id)
    return store, image_id
