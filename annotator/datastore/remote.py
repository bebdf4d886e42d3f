"""A DICOMweb server as a datastore: its image series are the images (ids are Series
Instance UIDs), opened through the series cache; labels live in a local label store
beside the cache (drafts never leave the machine); an accepted label becomes a DICOM SEG
in the persistent upload queue and is sent at once when the server answers, later when
it does not. The worklist shows pending and failed uploads.
"""

from __future__ import annotations

import json

import numpy as np

from annotator.datastore.base import Datastore, ImageRecord, Progress, Version, status_of
from annotator.datastore.dicomweb import DicomwebServer, SeriesRow
from annotator.datastore.labels import LabelStore
from annotator.datastore.series_cache import SeriesCache
from annotator.datastore.uploads import UploadQueue
from annotator.errors import AnnotatorError, DatastoreError
from annotator.io.atomic import atomic_write_text
from annotator.io.read import read_volume
from annotator.io.volume import Volume, label_values


class DicomwebDatastore(Datastore):
    def __init__(self, server: DicomwebServer, cache: SeriesCache | None = None, modality: str = ""):
        self.server = server
        self.cache = cache or SeriesCache(server)
        self.place = server.url
        self.name = server.url
        self.modality = modality
        self.labels = LabelStore(self.cache.root / "labels")
        self.uploads = UploadQueue(self.cache.root / "uploads")
        self._rows: dict[str, SeriesRow] | None = None

    # ---- images -------------------------------------------------------------------------

    def _series(self) -> dict[str, SeriesRow]:
        """The server's image series; offline, the list seen last."""
        if self._rows is None:
            known = self.cache.root / "series.json"
            try:
                rows = list(self.server.series(modality=self.modality))
                atomic_write_text(known, json.dumps([r.__dict__ for r in rows]))
            except DatastoreError:
                if not known.is_file():
                    raise
                rows = [SeriesRow(**r) for r in json.loads(known.read_text("utf-8"))]
            self._rows = {r.series_uid: r for r in rows}
        return self._rows

    def _row(self, image_id: str) -> SeriesRow:
        try:
            return self._series()[image_id]
        except KeyError:
            raise DatastoreError(f"{self.name}: no image series '{image_id}'") from None

    def records(self) -> list[ImageRecord]:
        index = self.labels.read_index()["images"]
        waiting = {e["image_id"]: e for e in self.uploads.entries()}
        records = []
        for uid, row in self._series().items():
            versions = self.labels.versions(uid)
            status = status_of(versions, self.uploads.state(uid))
            entry = index.get(uid, {})
            score = entry.get("score")
            name = " ".join(p for p in (row.modality, row.description or uid[-12:], f"({row.instances})") if p)
            info = dict(entry.get("info", {}))
            if uid in waiting and waiting[uid].get("error"):
                info["upload_error"] = waiting[uid]["error"]
                info["upload_next_try"] = waiting[uid].get("next_try", 0.0)
            records.append(ImageRecord(uid, name, status, versions,
                                       float(score) if isinstance(score, (int, float)) else None, info))
        return records

    def open_image(self, image_id: str, progress: Progress | None = None) -> Volume:
        row = self._row(image_id)

        def downloaded(done: int, total: int) -> None:
            if progress is not None:
                progress(f"downloading {row.description or image_id}: {done} of {total} images", done / total)

        return read_volume(self.cache.fetch(row.study_uid, row.series_uid, downloaded, pinned=self._pinned()))

    def _pinned(self):
        waiting = {e["image_id"] for e in self.uploads.entries()}
        return [self.cache.folder(self._series()[i].study_uid, i) for i in waiting if i in self._series()]

    # ---- labels -------------------------------------------------------------------------

    def label(self, image_id, image, version=Version.FINAL):
        row = self._row(image_id)
        found = self.labels.read(image_id, image, version)
        if found is None and Version(version) == Version.FINAL:
            found = self._server_label(row, image)
        return found

    def _server_label(self, row: SeriesRow, image: Volume) -> np.ndarray | None:
        """The newest SEG the server has for the series (made elsewhere, or sent from
        another workstation), kept here as its final label; None offline or when none."""
        from annotator.io.seg import seg_to_label

        try:
            segs = self.server.segs_of(row.study_uid, row.series_uid)
        except DatastoreError:
            return None
        if not segs:
            return None
        label, names = seg_to_label(segs[-1], image, known=self.label_names())
        if self.labels.read(row.series_uid, image, Version.DRAFT) is None:
            self.labels.accept(row.series_uid, label, image, proposed=label)
        self._remember_names(row.series_uid, names)
        return label

    def _remember_names(self, image_id: str, names: dict[int, str] | None) -> None:
        if names:
            self.labels.set_info(image_id, segment_names={str(int(v)): str(n) for v, n in names.items()})

    def label_names(self) -> dict[str, int] | None:
        """The segment names of the SEGs accepted here or read from the server (a value
        named differently in different SEGs: its most frequent name)."""
        seen: dict[int, dict[str, int]] = {}
        for entry in self.labels.read_index()["images"].values():
            for value, name in (entry.get("info", {}).get("segment_names") or {}).items():
                counts = seen.setdefault(int(value), {})
                counts[name.lower()] = counts.get(name.lower(), 0) + 1
        names = {}
        for value, counts in sorted(seen.items()):
            name = max(sorted(counts), key=counts.get)
            names.setdefault(name, value)
        return names or None

    def save_draft(self, image_id, label, image):
        self._row(image_id)
        self.labels.save_draft(image_id, label, image)

    def discard_draft(self, image_id):
        self.labels.discard_draft(image_id)

    def accept(self, image_id: str, label: np.ndarray, image: Volume, proposed: np.ndarray | None = None,
               names: dict[int, str] | None = None, algorithm: str | None = None) -> None:
        """Keep the final locally, queue it as a SEG, and try to send it now."""
        from annotator.io.seg import series_seg

        row = self._row(image_id)
        self.labels.accept(image_id, label, image, proposed)
        self.cache.fetch(row.study_uid, row.series_uid)  # its files, should the cache have let them go
        sop_uid, data = series_seg(label, image, names or {}, algorithm=algorithm)
        held = set(label_values(label))
        self._remember_names(image_id, {v: n for v, n in (names or {}).items() if v in held})
        self.uploads.add(image_id, sop_uid, data)
        self.send_pending(force=True)

    def uploads_waiting(self) -> int:
        return len(self.uploads.entries())

    def send_pending(self, force: bool = False) -> tuple[int, int]:
        """Send the queued uploads that are due; (sent, still waiting)."""
        def exists(sop_uid: str) -> bool:
            try:
                self.server.find_instance(sop_uid)
                return True
            except AnnotatorError:
                return False

        return self.uploads.flush(self.server.store, exists, force=force)

    def history(self, image_id):
        return self.labels.history(image_id)

    def set_info(self, image_id, **info):
        self.labels.set_info(image_id, **info)

    def set_scores(self, scores):
        self.labels.set_scores(scores)
