"""Series downloaded from a DICOMweb server, kept on disk so that they open offline.

One folder per series under the user cache dir, keyed by the server and the UIDs. A
download streams the series (one WADO-RS request, each instance written as it arrives,
numbered in arrival order) into ``<series>.partial/``, so a download that stops halfway
is resumed where it stopped, never taken for a whole series: a resume lists the series'
instances, reads the SOP Instance UIDs of the files already there, and fetches the
missing ones one by one when they are few, or streams again keeping only what is
missing. The folder is renamed into place only when the server's instance count is
reached; its ``manifest.json`` (written last, atomically)
records each instance and its size, and a series opens from the cache only when every
file is there with that size (instances are not fsynced one by one: a killed download
leaves its writes to the system, and a file that lost its data in a power cut has lost
its size too). Opening a cached series asks the server nothing. The
cache is trimmed to a size cap, least recently used first, sparing the series
``pinned`` (those with a label not yet sent).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pydicom
from platformdirs import user_cache_dir

from annotator.datastore.dicomweb import DicomwebServer
from annotator.errors import DatastoreError
from annotator.io.atomic import atomic_write_text

MANIFEST = "manifest.json"


def cache_root() -> Path:
    return Path(user_cache_dir("annotator")) / "dicomweb"


def _sop_uid(data: bytes) -> str:
    """The SOP Instance UID of a DICOM file's bytes (its header only is read)."""
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        return _safe(str(dataset.SOPInstanceUID))
    except Exception as exc:  # noqa: BLE001 - whatever the parser says, the part is not an instance
        raise DatastoreError(f"the server sent a part that is not a DICOM instance ({exc})") from None


def _file_sop_uid(path: Path) -> str:
    """The SOP Instance UID of a DICOM file (its meta information only is read)."""
    try:
        return str(pydicom.filereader.read_file_meta_info(path).MediaStorageSOPInstanceUID)
    except Exception:  # noqa: BLE001 - a file that cannot say is fetched again
        path.unlink(missing_ok=True)
        return ""


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
            whole = all((folder / f"{uid}.dcm").stat().st_size == size
                        for uid, size in manifest["instances"].items())
        except (OSError, ValueError, KeyError, AttributeError):
            return None
        if not whole:
            return None
        manifest["last_used"] = time.time()
        atomic_write_text(folder / MANIFEST, json.dumps(manifest))
        return folder

    def fetch(self, study_uid: str, series_uid: str, progress: Callable[[int, int], None] | None = None,
              cancelled: Callable[[], bool] = lambda: False, pinned: Iterable[Path] = ()) -> Path:
        """The series' folder, downloading what is missing (resumes an interrupted download).
        ``progress(done, total)`` may raise to stop; what arrived is kept for the resume."""
        found = self.cached(study_uid, series_uid)
        if found is not None:
            return found
        folder = self.folder(study_uid, series_uid)
        partial = folder.with_name(folder.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        for temp in partial.glob("*.part"):  # a write that was killed
            temp.unlink()
        expected = self.server.find_series(series_uid).instances
        if not expected:
            raise DatastoreError(f"{self.server.url}: series {series_uid} has no instances")
        count = len(list(partial.glob("*.dcm")))

        def keep(name: str, data: bytes) -> None:
            nonlocal count
            target = partial / f"{name}.dcm"
            temp = target.with_suffix(".part")  # renamed when whole: a killed write leaves no instance
            temp.write_bytes(data)
            os.replace(temp, target)
            count += 1
            step()

        def step() -> None:
            if progress is not None:
                progress(min(count, expected), expected)
            if cancelled():
                raise DatastoreError(f"download of series {series_uid} cancelled "
                                     f"({count} of {expected} instances kept)")

        step()
        if count == 0:  # the first download: streamed, files numbered as they arrive
            with contextlib.closing(self.server.iter_series(study_uid, series_uid)) as stream:
                for number, data in enumerate(stream):
                    keep(f"{number:06d}", data)
        if count != expected:  # a resume, or a stream that came short: by SOP Instance UID
            listed = self.server.instances(study_uid, series_uid)
            have = {_file_sop_uid(path) for path in partial.glob("*.dcm")}
            missing = [uid for uid in listed if uid not in have]
            if len(missing) > len(listed) // 2:
                with contextlib.closing(self.server.iter_series(study_uid, series_uid)) as stream:
                    for data in stream:
                        uid = _sop_uid(data)
                        if uid in missing and uid not in have:
                            keep(uid, data)
                            have.add(uid)
            for uid in listed:  # the few missing, one by one
                if uid not in have:
                    keep(_safe(uid), self.server.instance_bytes(study_uid, series_uid, uid))
                    have.add(uid)
        # no fsync per instance: a killed process leaves its writes in the page cache, and
        # after a power cut a file that lost its data no longer has the size recorded here
        sizes = {path.stem: path.stat().st_size for path in partial.glob("*.dcm")}
        atomic_write_text(partial / MANIFEST, json.dumps({"server": self.server.url, "study": study_uid,
                                                          "series": series_uid, "instances": sizes,
                                                          "last_used": time.time()}))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(partial, folder)
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
