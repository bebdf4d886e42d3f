"""A datastore that keeps everything in memory: written here, in the tests, against the
interface alone, to show that the session and the docks need nothing else."""

from __future__ import annotations

import numpy as np

from annotator.datastore import Datastore, ImageRecord, Version
from annotator.datastore.base import status_of
from annotator.errors import DatastoreError
from annotator.io.volume import Volume


class MemoryDatastore(Datastore):
    def __init__(self, volumes: dict[str, Volume], name: str = "memory"):
        self.volumes = dict(volumes)
        self.labels: dict[tuple[str, str], np.ndarray] = {}
        self.histories: dict[str, list[np.ndarray]] = {}
        self.info: dict[str, dict] = {}
        self.scores: dict[str, float] = {}
        self.name = name
        self.place = ""
        self.saves: list[tuple[str, str]] = []
        self.described: dict[str, tuple[dict, str | None]] = {}  # image -> (names, algorithm) of its accept

    def _check(self, image_id: str) -> None:
        if image_id not in self.volumes:
            raise DatastoreError(f"{self.name}: no image '{image_id}'")

    def records(self) -> list[ImageRecord]:
        out = []
        for image_id in self.volumes:
            versions = [v.value for v in Version if (image_id, v.value) in self.labels]
            out.append(ImageRecord(image_id, image_id, status_of(versions), versions, self.scores.get(image_id),
                                   dict(self.info.get(image_id, {}))))
        return out

    def open_image(self, image_id: str, progress=None) -> Volume:
        self._check(image_id)
        return self.volumes[image_id]

    def label(self, image_id, image, version=Version.FINAL):
        self._check(image_id)
        found = self.labels.get((image_id, Version(version).value))
        return None if found is None else found.copy()

    def save_draft(self, image_id, label, image):
        self._check(image_id)
        self.labels[(image_id, "draft")] = np.array(label, np.uint8)
        self.saves.append((image_id, "draft"))

    def discard_draft(self, image_id):
        self.labels.pop((image_id, "draft"), None)

    def accept(self, image_id, label, image, proposed=None, names=None, algorithm=None):
        self._check(image_id)
        if (image_id, "final") in self.labels:
            self.histories.setdefault(image_id, []).append(self.labels[(image_id, "final")])
        self.labels.setdefault((image_id, "original"), np.array(label if proposed is None else proposed, np.uint8))
        self.labels[(image_id, "final")] = np.array(label, np.uint8)
        self.labels.pop((image_id, "draft"), None)
        self.saves.append((image_id, "final"))
        self.described[image_id] = (dict(names or {}), algorithm)  # what a server's SEG would say

    def history(self, image_id):
        return [{"saved": ""} for _ in self.histories.get(image_id, [])]

    def earlier_label(self, image_id, image, back=1):
        earlier = self.histories.get(image_id, [])
        if not 1 <= back <= len(earlier):
            raise DatastoreError(f"'{image_id}' has {len(earlier)} earlier labels, not {back}")
        return earlier[-back].copy()

    def set_info(self, image_id, **info):
        self.info.setdefault(image_id, {}).update(info)

    def set_scores(self, scores):
        for image_id, score in scores.items():
            if score is None:
                self.scores.pop(image_id, None)
            else:
                self.scores[image_id] = float(score)
