"""A folder of images as a datastore, with versioned labels beside it.

The labels live in ``<folder>/labels`` (:mod:`annotator.datastore.labels`), or wherever
``labels_dir`` says. A folder that cannot take a ``labels`` folder (a read-only archive)
gets its labels in the user data folder, one subfolder per image folder; a folder whose
``labels`` folder exists but cannot be written (a finished datastore on read-only media)
opens for viewing, and saving says why it cannot. A dataset folder (``images/`` +
``labels/`` of reference labels) is never written to: its reference labels are the
final versions, and new work goes to the user data folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from platformdirs import user_data_dir

from annotator.datastore import channels, label_maps
from annotator.datastore.base import Datastore, ImageRecord, Version, status_of
from annotator.datastore.dicom_folders import split_series
from annotator.datastore.labels import LabelStore
from annotator.datastore.places import Kind, classify, find_images
from annotator.errors import AnnotatorError, DatastoreError
from annotator.io.label_names import names_by_value
from annotator.io.read import MAX_COMPANIONS, channel_modality, read_label, read_parts, read_volume
from annotator.io.sniff import IMAGE_SUFFIXES, image_stem, is_image_file, looks_like_dicom
from annotator.io.volume import Volume
from annotator.words import agree, count


def fallback_labels_dir(folder: Path) -> Path:
    """Labels of an image folder that cannot hold them: in the user data folder."""
    digest = hashlib.sha1(str(folder).encode("utf-8")).hexdigest()[:12]
    return Path(user_data_dir("annotator")) / "datastores" / f"{folder.name}-{digest}" / "labels"


def _writable_dir(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


#: what an empty folder is told: what counts as an image here
NO_IMAGES = (f"no images found. Images are files ending in {', '.join(IMAGE_SUFFIXES)} and DICOM series "
             "(folders of slices); a DICOM SEG or RT Structure Set is a label, offered beside the series it "
             "belongs to when that series is in the folder too")


class LocalDatastore(Datastore):
    """Images in ``folder`` (files and DICOM series folders) and their labels."""

    def __init__(self, folder: str | os.PathLike, labels_dir: str | os.PathLike | None = None,
                 history: int = 10, lock_timeout: float = 30.0, progress=None,
                 annotate: str | os.PathLike | None = None):
        """``progress(text, fraction)`` hears the search for images (a large folder takes a
        while); an exception it raises stops it. ``annotate``: a file the person opened by
        name, an image to annotate even where it looks like a label map (an integer image of
        few values: a phantom, a mask)."""
        self.folder = Path(folder).resolve()
        self._opened_with = {"labels_dir": labels_dir, "history": history, "lock_timeout": lock_timeout,
                             "annotate": annotate}  # for reloaded()
        if not self.folder.is_dir():
            raise DatastoreError(f"{folder}: not a folder")
        self.place = str(self.folder)
        self.name = self.folder.name
        self.dataset = classify(self.folder) == Kind.DATASET
        #: image id -> its reference label: a dataset's ``labels/`` file here, a task
        #: folder's ``labelsTr/`` one found when first asked (:meth:`_references`)
        self._reference: dict[str, Path] | None = None
        if self.dataset:
            images_root = self.folder / "images"
            self._images = find_images(images_root, progress=progress)
            labels = {image_stem(p): p for p in (self.folder / "labels").iterdir() if is_image_file(p)}
            self._reference = {i: labels[i] for i in self._images if i in labels}
            root = Path(labels_dir) if labels_dir else fallback_labels_dir(self.folder)
        else:
            root = Path(labels_dir) if labels_dir else self.folder / "labels"
        self.labels = self._label_store(root, labels_dir is not None or self.dataset, history, lock_timeout)
        self._maps: dict[str, Path] = {}
        self._links: dict[str, list[str]] | None = None
        self._groups: dict[str, dict[str, list[str]]] = {}  # image id -> {folder of its masks: their map ids}
        if not self.dataset:  # label maps among the files are not images to annotate
            found, self._series, segs = split_series(find_images(self.folder, self.labels.root, progress), progress,
                                                     self._pinned(), root=self.folder)
            self._images, self._maps = label_maps.split(found, progress)
            if annotate is not None:
                chosen = Path(annotate).resolve()
                for map_id in [i for i, p in self._maps.items() if p.resolve() == chosen]:
                    self._images[map_id] = self._maps.pop(map_id)
            self._maps.update(segs)
        else:
            self._images, self._series, _ = split_series(self._images, progress, self._pinned())
        self._images, self._channels = channels.group(self._images)  # nnU-Net's files of one case
        if self.labels.read_only is None and (self.labels.root / Version.FINAL.value).is_dir():
            with self.labels.locked():  # a store that was written before: recover from a crash now
                pass

    def reloaded(self, progress=None) -> LocalDatastore:
        return LocalDatastore(self.folder, progress=progress, **self._opened_with)

    def _pinned(self) -> dict[str, str]:
        """The series that each DICOM folder's image had when its labels were saved, by id."""
        try:
            index = self.labels.read_index()["images"]
        except DatastoreError:  # said where the labels are listed
            return {}
        infos = {i: e.get("info") for i, e in index.items() if isinstance(e, dict)}
        found = {i: info.get("series") for i, info in infos.items() if isinstance(info, dict)}
        return {i: key for i, key in found.items() if isinstance(key, str)}

    def _pin(self, image_id: str) -> None:
        """Keep the id of a DICOM folder's image on its series once labels are saved under it,
        whatever series join the folder later (a larger one would take the folder's id)."""
        series = self._series.get(image_id)
        if series is not None and self.labels.entry(image_id).get("info", {}).get("series") != series.key:
            self.labels.set_info(image_id, series=series.key)

    def _label_store(self, root: Path, chosen: bool, history: int, lock_timeout: float) -> LabelStore:
        """Nothing is created here: the label folders appear with the first save."""
        if root.is_dir() and not _writable_dir(root):
            return LabelStore(root, history, read_only="its labels folder is read-only")
        blocked = root.exists() and not root.is_dir() or not root.exists() and not _writable_dir(root.parent)
        if blocked and not chosen:  # e.g. a read-only archive: the labels are kept for the user
            root = fallback_labels_dir(self.folder)
        return LabelStore(root, history, lock_timeout)

    @property
    def labels_root(self) -> Path:
        return self.labels.root

    def read_only_reason(self) -> str | None:
        return self.labels.read_only

    def notices(self) -> list[str]:
        empty = [] if self._images else [f"{self.folder}: {NO_IMAGES}"]
        if empty and self._maps:  # TotalSegmentator's segmentations/ opened without its CT, say
            shown = ", ".join(sorted(self._maps)[:3]) + (", ..." if len(self._maps) > 3 else "")
            n = len(self._maps)
            empty = [f"{empty[0]}. Here {agree(n, 'is', 'are')} only {count(n, 'label map')} "
                     f"({shown}): open the folder that holds {agree(n, 'its', 'their')} image too, and "
                     f"{agree(n, 'it opens', 'they open')} beside it"]
        return [*empty, *self.labels.notices]

    # ---- images -------------------------------------------------------------------------

    def ids(self) -> list[str]:
        return list(self._images)

    def _path(self, image_id: str) -> Path:
        try:
            return self._images[image_id]
        except KeyError:
            raise DatastoreError(f"{self.folder}: no image '{image_id}'") from None

    def open_image(self, image_id: str, progress=None) -> Volume:
        from annotator.samples import modality_of

        series = self._series.get(image_id)
        volume = read_volume(self._path(image_id), series.key if series else None)
        if volume.modality == "unknown":  # the sample data's files: as the samples' manifest says
            volume.modality = modality_of(self._path(image_id)) or volume.modality
        files = self._channels.get(image_id)
        if files:  # a case of several channel files: named as its task names the first
            volume.name = f"{channels.case_name(files[0][1])} ({files[0][0]})"
            volume.modality = channel_modality(files[0][0]) or volume.modality
            volume.warnings.append(f"{len(files)} channels ({', '.join(n for n, _ in files)}): {files[0][0]} is "
                                   "annotated and the others are shown beneath it")
        return volume

    def companions(self, image_id: str, image: Volume) -> list[Volume]:
        """Beyond a 4-D file's other volumes: the other channel files of an nnU-Net case
        (on its grid), and the other acquisitions of a DICOM series (echoes, b-values: each
        also an image of its own), up to :data:`MAX_COMPANIONS` of them."""
        files = self._channels.get(image_id)
        series = self._series.get(image_id)
        if files:
            return self._channel_files(files, image)
        if series is not None and "/" in series.key:
            return self._acquisitions(image_id, series.key, image)
        return super().companions(image_id, image)

    def _acquisitions(self, image_id: str, key: str, image: Volume) -> list[Volume]:
        folder, uid = self._images[image_id], key.split("/")[0]
        others = [s.key for i, s in self._series.items()  # in the order of the series' parts
                  if i != image_id and self._images[i] == folder and s.key.split("/")[0] == uid]
        return read_parts(folder, others, image) if 0 < len(others) < MAX_COMPANIONS else []

    def _channel_files(self, files: list[tuple[str, Path]], image: Volume) -> list[Volume]:
        others = []
        for name, path in files[1:]:
            try:
                other = read_volume(path)
            except AnnotatorError as exc:
                image.warnings.append(f"channel {name} left out: {exc}")
                continue
            if not other.same_geometry(image, rtol=1e-5):
                image.warnings.append(f"channel {name} left out: {path.name} does not lie on the grid of "
                                      f"{files[0][1].name} (size, spacing, origin or orientation differ)")
                continue
            other.name = f"{channels.case_name(path)} ({name})"
            other.modality = channel_modality(name) or other.modality
            others.append(other)
        return others

    def id_of(self, path: str | os.PathLike) -> str:
        """The id of an image file or DICOM folder of this store (a folder of several series:
        the folder's own id), of the series (or acquisition) a DICOM file belongs to (its
        headers are read only where the folder holds several), or of the case a channel
        file belongs to."""
        path = Path(path).resolve()
        if path.is_file() and looks_like_dicom(path):  # a file of a DICOM folder
            ids = [i for i, p in self._images.items() if p.resolve() == path.parent]
            if len(ids) > 1:  # a folder of several series: the one that holds the file
                from annotator.io.dicom import series_of

                key = series_of(path).key
                ids = [i for i in ids if i in self._series and self._series[i].key == key]
        else:
            ids = [i for i, p in self._images.items() if p.resolve() == path]
            ids = ids or [i for i, files in self._channels.items() if any(p.resolve() == path for _, p in files)]
        if not ids:
            raise DatastoreError(f"{path}: not an image of {self.folder}")
        return ids[0]  # a folder of several series: its largest

    def _label_maps_of(self) -> dict[str, list[str]]:
        """Image id -> the ids of the label maps linked to it (worked out once), a folder of
        its masks one of them (:func:`annotator.datastore.label_maps.groups`)."""
        if self._links is None:
            series = {i: s.key for i, s in self._series.items()}
            links = label_maps.link(self._images, self._maps, series) if self._maps else {}
            self._groups = label_maps.groups(links, self._maps, self._images)
            self._links = links
        found: dict[str, list[str]] = {}
        for map_id, image_ids in self._links.items():
            for image_id in image_ids:
                found.setdefault(image_id, []).append(map_id)
        for image_id, folders in self._groups.items():
            grouped = {m for members in folders.values() for m in members}
            found[image_id] = [m for m in found[image_id] if m not in grouped] + sorted(folders)
        return found

    def _references(self) -> dict[str, Path]:
        """Image id -> its reference label, the final version until one is accepted: a
        dataset folder's ``labels/`` file, or a Decathlon or nnU-Net task's ``labelsTr/``
        label map (the task's training label, by its layout), which training and the
        benchmarks then use as they use accepted labels."""
        if self._reference is None:
            task = {}  # whole before it is kept: the worklist's thread may ask meanwhile
            for image_id, map_ids in self._label_maps_of().items():
                found = [self._maps[m] for m in map_ids if m in self._maps  # not a folder of masks
                         and self._maps[m].parent.name.lower() == "labelstr" and not looks_like_dicom(self._maps[m])]
                if len(found) == 1:  # two would leave which is the label to guess
                    task[image_id] = found[0]
            self._reference = task
        return self._reference

    def label_maps(self, image_id: str) -> list[str]:
        self._path(image_id)
        return self._label_maps_of().get(image_id, [])

    def label_map(self, image_id: str, map_id: str, image: Volume) -> tuple[np.ndarray, dict[str, int]]:
        if map_id not in self.label_maps(image_id):
            raise DatastoreError(f"{self.folder}: '{map_id}' is not a label map of '{image_id}'")
        members = self._groups.get(image_id, {}).get(map_id)
        if members is not None:
            return label_maps.read_group({m: self._maps[m] for m in members}, image_id, image, self.known_names())
        return label_maps.read_map(self._maps[map_id], map_id, image_id, image, self.known_names())

    def records(self) -> list[ImageRecord]:
        index = self.labels.read_index()["images"]
        maps = self._label_maps_of()
        records, saved = [], self.labels.saved()
        for image_id in self._images:
            versions = self.labels.versions(image_id, saved)
            if image_id in self._references() and Version.FINAL.value not in versions:
                versions.append(Version.FINAL.value)
            entry = index.get(image_id, {})
            status = status_of(versions)
            score = entry.get("score")
            series = self._series.get(image_id)
            name = f"{image_id} ({series.title})" if series and series.title else image_id
            records.append(ImageRecord(image_id, name, status, versions,
                                       float(score) if isinstance(score, (int, float)) else None,
                                       dict(entry.get("info", {})), maps.get(image_id, [])))
        return records

    # ---- labels -------------------------------------------------------------------------

    def label(self, image_id: str, image: Volume, version: Version | str = Version.FINAL) -> np.ndarray | None:
        self._path(image_id)
        found = self.labels.read(image_id, image, version)
        reference = self._references().get(image_id)
        if found is None and Version(version) == Version.FINAL and reference is not None:
            found = read_label(reference, image)
        return found

    def save_draft(self, image_id: str, label: np.ndarray, image: Volume) -> None:
        self._path(image_id)
        self.labels.save_draft(image_id, label, image)
        self._pin(image_id)

    def discard_draft(self, image_id: str) -> None:
        self._path(image_id)
        self.labels.discard_draft(image_id)

    def accept(self, image_id: str, label: np.ndarray, image: Volume, proposed: np.ndarray | None = None,
               names: dict[int, str] | None = None, algorithm: str | None = None) -> None:
        self._path(image_id)
        self.labels.accept(image_id, label, image, proposed)
        self._pin(image_id)
        self.remember_names(image_id, names, label)  # a DICOM SEG made of it later names its segments

    def history(self, image_id: str) -> list[dict]:
        self._path(image_id)
        return self.labels.history(image_id)

    def earlier_label(self, image_id: str, image: Volume, back: int = 1) -> np.ndarray:
        self._path(image_id)
        return self.labels.earlier(image_id, image, back)

    def versions(self, image_id: str) -> list[str]:
        self._path(image_id)
        return self.labels.versions(image_id)

    def set_info(self, image_id: str, **info) -> None:
        self._path(image_id)
        self.labels.set_info(image_id, **info)

    def set_scores(self, scores: dict[str, float | None]) -> None:
        for image_id in scores:
            self._path(image_id)
        self.labels.set_scores(scores)

    def label_names(self) -> dict[str, int] | None:
        """From the folder's ``labels.json`` or ``dataset.json`` (the Decathlon's; both
        ``{"labels": {"1": "name"}}``; nnU-Net's ``{"labels": {"name": 1}}``), if any; for
        the ``images/`` folder of a dataset (``labels/`` beside it), or the ``imagesTr/``
        and ``imagesTs/`` folders of a task, the dataset's or the task's; else as the
        labels accepted in this folder named them."""
        places = [self.folder]
        if self.folder.name == "images" and (self.folder.parent / "labels").is_dir() or self.folder.name in (
                "imagesTr", "imagesTs"):  # a dataset's images, or a Decathlon or nnU-Net task's
            places.append(self.folder.parent)
        for place in places:
            for name in ("labels.json", "dataset.json"):
                path = place / name
                if not path.is_file():
                    continue
                try:
                    raw = json.loads(path.read_text("utf-8"))
                except (OSError, ValueError) as exc:
                    raise DatastoreError(f"{path}: not readable JSON ({exc}); its label names are not used") from exc
                labels = raw.get("labels") if isinstance(raw, dict) else None
                if name == "dataset.json" and labels is None:
                    continue  # a dataset.json of another kind
                try:
                    return names_by_value(labels)
                except (AttributeError, TypeError, ValueError) as exc:
                    raise DatastoreError(f'{path}: "labels" must map values to names, e.g. {{"1": "liver"}}, or '
                                         f'names to values, e.g. {{"liver": 1}} ({exc}); its label names are not used'
                                         ) from exc
        return self.labels.segment_names()

    def training_ids(self, split: str = "all") -> list[str]:
        labelled = [r.id for r in self.records() if Version.FINAL.value in r.versions]
        if split == "all":
            return labelled
        split_file = self.folder / "split.json"
        try:
            chosen = set(json.loads(split_file.read_text("utf-8"))[split])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatastoreError(f"{split_file}: no readable '{split}' list ({exc})") from exc
        return [i for i in labelled if i in chosen]
