"""A DICOMweb server as a datastore: its image series are the images (ids are Series
Instance UIDs), opened through the series cache. A series of several acquisitions at the
same positions (echoes, time points, b-values) is one row until it is first opened: its
files then tell its parts apart, and each part after the first becomes an image of its
own, ``<SeriesInstanceUID>#<n>`` (QIDO rows do not say that a series holds several).
Labels live in a local label store beside the cache (drafts never leave the machine);
an accepted label becomes a DICOM SEG in the persistent upload queue and is sent at once
when the server answers, later when it does not. The worklist shows pending and failed
uploads.
"""

from __future__ import annotations

import copy
import io
import json

import numpy as np

from annotator.datastore.base import Datastore, ImageRecord, Progress, Status, Version, status_of
from annotator.datastore.dicomweb import DicomwebServer, SeriesRow
from annotator.datastore.labels import LabelStore
from annotator.datastore.series_cache import SeriesCache
from annotator.datastore.uploads import UploadQueue
from annotator.errors import AnnotatorError, CredentialsError, DatastoreError, ServerError, detail
from annotator.io.atomic import atomic_write_text
from annotator.io.read import read_volume
from annotator.io.volume import Volume
from annotator.words import count

SEEN = "server_labels_seen"  # an image's info: the server's label series older than its final here


class DicomwebDatastore(Datastore):
    def __init__(self, server: DicomwebServer, cache: SeriesCache | None = None, modality: str = "",
                 progress: Progress | None = None):
        """``progress(text, fraction)`` hears the first listing of the server's series (the
        labels on it, new ones asked for one by one)."""
        self.server = server
        self.progress = progress
        self.cache = cache or SeriesCache(server)
        self.place = server.url
        self.name = server.url
        self.modality = modality
        self.labels = LabelStore(self.cache.root / "labels")
        self.uploads = UploadQueue(self.cache.root / "uploads")
        self._rows: dict[str, SeriesRow] | None = None
        self._labelled: dict[str, set[str]] = {}  # image series -> the server's label series (SEG, RTSTRUCT) of it
        self._unreached = ""  # why the server's list could not be had, when the one seen last is shown

    # ---- images -------------------------------------------------------------------------

    def _series(self) -> dict[str, SeriesRow]:
        """The server's image series; offline, the list seen last."""
        if self._rows is None:
            known = self.cache.root / "series.json"
            try:
                rows = list(self.server.series(modality=self.modality))
                atomic_write_text(known, json.dumps([r.__dict__ for r in rows]))
            except DatastoreError as exc:
                if not known.is_file():
                    raise
                rows = [SeriesRow(**r) for r in json.loads(known.read_text("utf-8"))]
                self._unreached = str(exc) + ("; sign in again (Worklist > Connect to server...)"
                                              if isinstance(exc, CredentialsError) else "")
            self._rows = {r.series_uid: r for r in rows}
            self._labelled = self._labels_on_server(reached=not self._unreached)
        return self._rows

    def _labels_on_server(self, reached: bool) -> dict[str, set[str]]:
        """The image series that the server's SEGs and RT Structure Sets label (from another
        workstation, or sent from here), each with the label series that refer to it, in the
        studies of the series listed; each label series asked for once and remembered;
        offline, or when the server cannot say, as seen last."""
        known_file = self.cache.root / "labels-on-server.json"
        try:
            known = json.loads(known_file.read_text("utf-8"))
        except (OSError, ValueError):
            known = None
        known = known if isinstance(known, dict) else {}
        if reached:
            try:
                self.server.labels_on_server(known, {r.study_uid for r in self._rows.values()}, self.progress)
            except DatastoreError:
                pass  # the list of images stands without what was not answered
            finally:  # what was answered is kept, the listing cancelled too
                atomic_write_text(known_file, json.dumps(known))
        labelled: dict[str, set[str]] = {}
        for label_series, series in known.items():
            for uid in series if isinstance(series, list) else []:
                labelled.setdefault(uid, set()).add(label_series)
        return labelled

    def reloaded(self, progress: Progress | None = None) -> DicomwebDatastore:
        fresh = copy.copy(self)  # the same server, cache, labels and queue
        fresh._rows, fresh._unreached, fresh._labelled, fresh.progress = None, "", {}, progress
        fresh._series()
        return fresh

    def _row(self, image_id: str) -> SeriesRow:
        uid, part = _split(image_id)
        row = self._series().get(uid)
        known = self._parts(uid)  # before the series is first opened, any part may exist
        if row is None or part < 1 or (known and part > max(1, len(known))):
            raise DatastoreError(f"{self.name}: no image series '{image_id}'")
        return row

    def _parts(self, uid: str, index: dict | None = None) -> list[str]:
        """The keys (for :func:`read_volume`) of the series' acquisitions, as found when it
        was first opened; empty before."""
        index = self.labels.read_index()["images"] if index is None else index
        parts = index.get(uid, {}).get("info", {}).get("parts")
        return [str(p) for p in parts] if isinstance(parts, list) else []

    @staticmethod
    def _size(row: SeriesRow, number: int, info: dict) -> str:
        """How many slices the series' ``number``-th acquisition holds, once opened (a
        multi-frame image is one file of many slices); before, its count of images."""
        slices = info.get("slices")
        if isinstance(slices, list) and len(slices) >= number and isinstance(slices[number - 1], int):
            return f"{slices[number - 1]} slices"
        return count(row.instances, "image")

    def records(self) -> list[ImageRecord]:
        index = self.labels.read_index()["images"]
        entries = self.uploads.entries()
        waiting = {e["image_id"]: e for e in entries}
        records, saved = [], self.labels.saved()
        for uid, row in self._series().items():
            parts = self._parts(uid, index)
            for number, key in enumerate(parts if len(parts) > 1 else [""], start=1):
                image_id = uid if number == 1 else f"{uid}#{number}"
                versions = self.labels.versions(image_id, saved)
                status = status_of(versions, self.uploads.state(image_id, entries))
                # a label on the server, not opened here yet: labeled (it opens with it), unless
                # it was found unusable when opened; of a series of several acquisitions, which
                # one it labels is known only once opened
                unusable = set(index.get(uid, {}).get("info", {}).get("unusable_labels", []))
                on_server = status == Status.UNLABELED and bool(self._labelled.get(uid, set()) - unusable) \
                    and len(parts) <= 1
                if on_server:
                    status = Status.LABELED
                entry = index.get(image_id, {})
                newer = bool(self._unseen(image_id, entry)) and image_id not in waiting and len(parts) <= 1
                score = entry.get("score")
                size = self._size(row, number, index.get(uid, {}).get("info", {}))
                part = f"{key.partition('/')[2]}, " if key else ""
                name = " ".join(p for p in (row.modality, row.description or uid[-12:], f"({part}{size})") if p)
                info = {k: v for k, v in entry.get("info", {}).items()
                        if k not in ("parts", "slices", "unusable_labels", SEEN)}
                if row.modality:
                    info["modality"] = row.modality  # known before a download (ranking skips a misfit)
                if on_server:
                    info["labelled_on_server"] = True
                if newer:
                    info["newer_on_server"] = True
                if image_id in waiting and waiting[image_id].get("error"):
                    info["upload_error"] = waiting[image_id]["error"]
                    info["upload_next_try"] = waiting[image_id].get("next_try", 0.0)
                    info["upload_refused"] = bool(waiting[image_id].get("refused"))
                records.append(ImageRecord(image_id, name, status, versions,
                                           float(score) if isinstance(score, (int, float)) else None, info))
        return records

    def training_ids(self, split: str = "all") -> list[str]:
        """Images with a final label here, and those a label on the server labels (sent from
        another workstation): reading their label fetches it and keeps it here as their
        final one (None, and no longer labeled, where it cannot be used for the image)."""
        if split != "all":
            return super().training_ids(split)  # which says there is no such split
        return [r.id for r in self.records()
                if Version.FINAL.value in r.versions or r.info.get("labelled_on_server")]

    def open_image(self, image_id: str, progress: Progress | None = None) -> Volume:
        row = self._row(image_id)

        def downloaded(done: int, total: int) -> None:
            if progress is not None:
                progress(f"downloading {row.description or image_id}: {done} of {total} images", done / total)

        from annotator.io.dicom import scan_folder

        try:
            folder = self.cache.fetch(row.study_uid, row.series_uid, downloaded, pinned=self._pinned())
        except ServerError as exc:  # what was downloaded before opens offline: this one was not
            raise type(exc)(f"{_title(row)} ({image_id}) is not downloaded here yet and needs the server: {exc}") from None
        except DatastoreError as exc:  # the worklist's name of the series, not its UID alone
            raise DatastoreError(f"{_title(row)}: {exc}") from None
        scan = scan_folder(folder)  # which acquisitions its files hold: listed from now on
        parts = [info.key for info in scan.series]
        slices = [info.slices for info in scan.series]
        known = self.labels.read_index()["images"].get(row.series_uid, {}).get("info", {})
        if parts != known.get("parts") or slices != known.get("slices"):
            self.labels.set_info(row.series_uid, parts=parts, slices=slices)
        _, number = _split(image_id)
        if number > max(1, len(parts)):
            raise DatastoreError(f"{self.name}: no image series '{image_id}' (the series holds "
                                 f"{count(len(parts), 'acquisition')})")
        return read_volume(folder, parts[number - 1] if len(parts) > 1 else None, scan)

    def companions(self, image_id: str, image: Volume) -> list[Volume]:
        """The series' other acquisitions (echoes, b-values), read from the cache that
        opening the image filled, up to :data:`annotator.io.read.MAX_COMPANIONS` of them."""
        from annotator.io.read import MAX_COMPANIONS, read_parts

        uid, number = _split(image_id)
        parts = self._parts(uid)
        row = self._series().get(uid)
        folder = self.cache.cached(row.study_uid, uid) if row is not None and 1 < len(parts) <= MAX_COMPANIONS else None
        if folder is None:
            return []
        return read_parts(folder, [key for place, key in enumerate(parts, start=1) if place != number], image)

    def _pinned(self):
        series = self._series()
        uids = {_split(e["image_id"])[0] for e in self.uploads.entries()}
        return [self.cache.folder(series[uid].study_uid, uid) for uid in uids if uid in series]

    # ---- labels -------------------------------------------------------------------------

    def label(self, image_id, image, version=Version.FINAL):
        row = self._row(image_id)
        found = self.labels.read(image_id, image, version)
        if Version(version) != Version.FINAL:
            return found
        if found is None:
            return self._server_label(image_id, row, image)
        newer = self._newer_on_server(image_id)
        if newer and not self.uploads.state(image_id):  # sent from another workstation since this final was kept
            taken = self._server_label(image_id, row, image, among=newer)
            if taken is not None:
                image.warnings.append("a newer label of it came to the server from another workstation: it opens with "
                                      "that one (the one kept here before is its earlier version)")
                return taken
        return found

    def _newer_on_server(self, image_id: str) -> set[str]:
        """The server's label series of the image that came after its final label here was
        kept (sent from another workstation since). Of a final kept before this was
        remembered, none: the labels on the server then are taken as seen (offline, they
        are not known yet)."""
        unseen = self._unseen(image_id, self.labels.read_index()["images"].get(image_id, {}))
        if unseen is None:
            if not self._unreached:
                self._seen(image_id)
            return set()
        return unseen

    def _unseen(self, image_id: str, entry: dict) -> set[str] | None:
        """The server's label series of the image not in its index ``entry``'s seen list;
        None where it has none."""
        seen = entry.get("info", {}).get(SEEN)
        return self._labelled.get(_split(image_id)[0], set()) - set(seen) if isinstance(seen, list) else None

    def _seen(self, image_id: str, *also: str) -> None:
        """The server's label series of the image, as listed, and ``also`` (one sent from
        here), are older than its final label here."""
        self.labels.set_info(image_id, **{SEEN: sorted(self._labelled.get(_split(image_id)[0], set()) | set(also))})

    def _server_label(self, image_id: str, row: SeriesRow, image: Volume,
                      among: set[str] | None = None) -> np.ndarray | None:
        """The newest SEG or RT Structure Set the server has for the image (made elsewhere,
        or sent from another workstation), kept here as its final label; None offline or
        when none. Of a series of several acquisitions, only one of this one's instances.
        ``among``: the label series not seen here since its final was kept; the server's
        newest label (by its content date and time, as every workstation orders them, so
        that they agree on it) is taken only if it is one of them, and none usable leaves
        the image as it is."""
        from annotator.io import rtstruct
        from annotator.io.seg import refers_to, seg_to_label

        def mine(ds) -> bool:
            if ds.get("Modality") == "RTSTRUCT":
                outlined = rtstruct.referenced_instances(ds)
                return not outlined or bool(outlined & set(image.source.sop_uids))
            return refers_to(ds, image)

        try:
            found = [ds for ds in self.server.labels_of(row.study_uid, row.series_uid) if mine(ds)]
        except DatastoreError:
            return None
        if among is not None:
            self._seen(image_id)  # asked once: a newer label unusable here is not asked for again
            if not found or str(found[-1].get("SeriesInstanceUID", "")) not in among:
                return None  # the final here is newer than those (sent from here while it was offline)
        if not found:  # the label the listing saw is of another acquisition
            self._unusable(row.series_uid)
            return None
        try:
            if found[-1].get("Modality") == "RTSTRUCT":
                label, names, left_out = rtstruct.rtstruct_to_label(found[-1], image, known=self.label_names())
                image.warnings.extend(left_out)
            else:
                label, names = seg_to_label(found[-1], image, known=self.label_names())
        except Exception as exc:  # noqa: BLE001 - pydicom and highdicom raise many types on damaged files
            image.warnings.append(f"the server's {found[-1].get('Modality', '')} {found[-1].get('SOPInstanceUID', '')} "
                                  f"of {image.name} not used: {detail(exc, 200)}")
            if among is None:
                self._unusable(row.series_uid)
            return None
        if self.labels.read(image_id, image, Version.DRAFT) is None:
            self.labels.accept(image_id, label, image, proposed=label)
            self._seen(image_id)
        self.remember_names(image_id, names)
        return label

    def _unusable(self, uid: str) -> None:
        """The server's labels of series ``uid``, seen at listing, give no label to open
        with: the series is unlabeled here, until another label of it reaches the server (of a
        series no label referred to, nothing is written)."""
        if uid in self._labelled:
            self.labels.set_info(uid, unusable_labels=sorted(self._labelled[uid]))

    def label_names(self) -> dict[str, int] | None:
        """The segment names of the SEGs accepted here or read from the server
        (a value named differently in different SEGs: its most frequent name)."""
        return self.labels.segment_names()

    def save_draft(self, image_id, label, image):
        self._row(image_id)
        self.labels.save_draft(image_id, label, image)

    def discard_draft(self, image_id):
        self.labels.discard_draft(image_id)

    def accept(self, image_id: str, label: np.ndarray, image: Volume, proposed: np.ndarray | None = None,
               names: dict[int, str] | None = None, algorithm: str | None = None) -> None:
        """Keep the final locally, queue it as a SEG, and try to send it now. An empty
        label (nothing there) is sent too, as a SEG whose segment has no voxels: the
        server's newest label for the image is then empty, not one sent before."""
        import pydicom

        from annotator.io.seg import series_seg

        row = self._row(image_id)
        self.labels.accept(image_id, label, image, proposed)
        self.cache.fetch(row.study_uid, row.series_uid)  # its files, should the cache have let them go
        sop_uid, data = series_seg(label, image, names or {}, algorithm=algorithm, deflated=True)
        self.remember_names(image_id, names, label)
        self.uploads.add(image_id, sop_uid, data)
        self._seen(image_id, str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SeriesInstanceUID))
        self.send_pending(force=True)

    def uploads_waiting(self) -> int:
        return len(self.uploads.entries())

    def send_pending(self, force: bool = False) -> tuple[int, int]:
        """Send the queued uploads that are due; (sent, still waiting)."""
        def exists(sop_uid: str) -> bool:
            try:
                self.server.find_instance(sop_uid)
                return True
            except ServerError:
                raise  # sending would fail the same way
            except AnnotatorError:
                return False

        return self.uploads.flush(self.server.store, exists, force=force)

    def unsent(self, image_id: str | None = None) -> dict | None:
        waiting = self.uploads.waiting(image_id) if image_id is not None else self.uploads.entries()
        return max(waiting, key=lambda e: (bool(e.get("refused")), bool(e.get("error"))), default=None)

    def notices(self):
        self.uploads.entries()  # a damaged queue is found (and rebuilt) now, not when it is next sent
        try:  # (the app has asked for the list in its file worker by now: known, not fetched again)
            self._series()
        except DatastoreError:
            pass  # no list seen before either: said where the list is asked for
        unreached = [f"{self._unreached}; the series seen last are listed, and those downloaded before "
                     f"open offline"] if self._unreached else []
        return [*unreached, *self.labels.notices, *self.uploads.notices]

    def history(self, image_id):
        return self.labels.history(image_id)

    def earlier_label(self, image_id, image, back=1):
        return self.labels.earlier(image_id, image, back)

    def versions(self, image_id):
        return self.labels.versions(image_id)

    def set_info(self, image_id, **info):
        self.labels.set_info(image_id, **info)

    def set_scores(self, scores):
        self.labels.set_scores(scores)


def _title(row: SeriesRow) -> str:
    """A series as the worklist names it: its modality and description."""
    return " ".join(filter(None, (row.modality, row.description))) or row.series_uid


def _split(image_id: str) -> tuple[str, int]:
    """(SeriesInstanceUID, which acquisition: 1 for the first, 0 for none) of an image id."""
    uid, mark, number = image_id.partition("#")
    if not mark:
        return uid, 1
    return uid, int(number) if number.isdigit() and int(number) > 1 else 0
