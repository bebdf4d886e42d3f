"""Series downloaded from a DICOMweb server, kept on disk so that they open offline.

One folder per series under the user cache dir, keyed by the server and the UIDs. A
download goes instance by instance into ``<series>.partial/`` (each file written
atomically), so a download that stops halfway is resumed where it stopped, never taken
for a whole series: the folder is renamed into place only when every instance the server
lists is there, and its ``manifest.json`` records them. Opening a cached series asks the
server nothing. The cache is trimmed to a size cap, least recently used first, sparing
the series ``pinned`` (those with a label not yet sent).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from platformdirs import user_cache_dir

from annotator.datastore.dicomweb import DicomwebServer
from annotator.errors import DatastoreError
from annotator.io.atomic import atomic_write_bytes, atomic_write_text

MANIFEST = "manifest.json"


def cache_root() -> Path:
    return Path(user_cache_dir("annotator")) / "dicomweb"


def _safe(uid: str) -> str:
    if not uid or not all(c.isdigit() or c == "." for c in uid) or len(uid) > 64:
        raise DatastoreError(f"'{uid}' is not a DICOM UID")
    return uid


class SeriesCache:
    """The cached series of one server."""

    def __init__(self, server: DicomwebServer, root: str | os.PathLike | None = None, cap_gb: float = 20.0):
        self.server = server
        digest = hashlib.sha1(server.url.encode("utf-8")).hexdigest()[:16]
        self.root = Path(root or cache_root()) / digest
        self.cap = int(cap_gb * 2**30)

    def folder(self, study_uid: str, series_uid: str) -> Path:
        return self.root / _safe(study_uid) / _safe(series_uid)

    def cached(self, study_uid: str, series_uid: str) -> Path | None:
        """The series' folder when it is whole here (no server asked)."""
        folder = self.folder(study_uid, series_uid)
        try:
            manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if all((folder / f"{uid}.dcm").is_file() for uid in manifest.get("instances", [])):
            manifest["last_used"] = time.time()
            atomic_write_text(folder / MANIFEST, json.dumps(manifest))
            return folder
        return None

    def fetch(self, study_uid: str, series_uid: str, progress: Callable[[int, int], None] | None = None,
              cancelled: Callable[[], bool] = lambda: False, pinned: Iterable[Path] = ()) -> Path:
        """The series' folder, downloading what is missing (resumes an interrupted download)."""
        found = self.cached(study_uid, series_uid)
        if found is not None:
            return found
        folder = self.folder(study_uid, series_uid)
        partial = folder.with_name(folder.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        uids = self.server.instances(study_uid, series_uid)
        if not uids:
            raise DatastoreError(f"{self.server.url}: series {series_uid} has no instances")
        for done, sop_uid in enumerate(uids):
            if progress is not None:
                progress(done, len(uids))
            target = partial / f"{_safe(sop_uid)}.dcm"
            if target.is_file():
                continue  # fetched before an interruption
            if cancelled():
                raise DatastoreError(f"download of series {series_uid} cancelled ({done} of {len(uids)} kept)")
            atomic_write_bytes(target, self.server.instance_bytes(study_uid, series_uid, sop_uid))
        atomic_write_text(partial / MANIFEST, json.dumps({"server": self.server.url, "study": study_uid,
                                                          "series": series_uid, "instances": uids,
                                                          "last_used": time.time()}))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(partial, folder)
        if progress is not None:
            progress(len(uids), len(uids))
        self.trim(keep={folder, *map(Path, pinned)})
        return folder

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def trim(self, keep: Iterable[Path] = ()) -> list[Path]:
        """Remove whole series, least recently used first, until the cache fits its cap."""
        keep = {Path(p).resolve() for p in keep}
        series = []
        for manifest in self.root.glob(f"*/*/{MANIFEST}"):
            try:
                used = float(json.loads(manifest.read_text("utf-8")).get("last_used", 0))
            except (OSError, ValueError):
                used = 0.0
            series.append((used, manifest.parent))
        total, removed = self.size(), []
        for _, folder in sorted(series):
            if total <= self.cap:
                break
            if folder.resolve() in keep:
                continue
            freed = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder, ignore_errors=True)
            total -= freed
            removed.append(folder)
        return removed
