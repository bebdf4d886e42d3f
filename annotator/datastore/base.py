"""The one datastore interface: images and their labels, keyed by image id.

A folder of images, a dataset folder, a DICOMweb server and a test's in-memory store all
answer the same questions; no file path crosses this interface (what an id stands for
is the store's business). The GUI, the CLI, training and active learning use only this.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from annotator.errors import AnnotatorError, DatastoreError
from annotator.io.volume import Volume, label_values

#: ``progress(text, fraction)`` of long store work; fraction 0..1
Progress = Callable[[str, float], None]


class Status(str, Enum):
    """Where an image stands. The upload states are for stores that send labels on."""

    UNLABELED = "unlabeled"
    IN_PROGRESS = "in_progress"
    LABELED = "labeled"
    UPLOAD_PENDING = "upload_pending"
    UPLOAD_FAILED = "upload_failed"


class Version(str, Enum):
    ORIGINAL = "original"
    FINAL = "final"
    DRAFT = "draft"


#: how the name of an earlier final starts ("earlier-1": the one accepted before the final)
EARLIER = "earlier-"


def status_of(versions: list[str], upload: str | None = None) -> Status:
    """An image's status from its saved label versions and its upload state
    (``"pending"``, ``"failed"`` or None): a draft means in progress, a final labeled."""
    if upload is not None:
        return Status.UPLOAD_FAILED if upload == "failed" else Status.UPLOAD_PENDING
    if Version.DRAFT.value in versions:
        return Status.IN_PROGRESS
    return Status.LABELED if Version.FINAL.value in versions else Status.UNLABELED


@dataclass
class ImageRecord:
    """One image as the worklist shows it."""

    id: str
    name: str
    status: Status
    versions: list[str]
    score: float | None = None
    info: dict = field(default_factory=dict)
    label_maps: list[str] = field(default_factory=list)  # label maps found beside it (ids)

    def versions_shown(self) -> list[str]:
        """Its label versions as people read them, "on the server" for a label there that
        was not opened here yet (a server's ``labelled_on_server``), "newer on the server"
        for one sent from another workstation since the final here (``newer_on_server``)."""
        return self.versions + (["on the server"] if self.info.get("labelled_on_server") else []) \
            + (["newer on the server"] if self.info.get("newer_on_server") else [])

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "status": self.status.value, "versions": list(self.versions),
                "score": self.score, "label_maps": list(self.label_maps)}


class Datastore(ABC):
    """Images and versioned labels, keyed by image id."""

    #: how the store was opened (a folder or a server URL): what reopens it elsewhere
    place: str = ""
    #: a short name for people
    name: str = ""

    @property
    def writable(self) -> bool:
        """Whether labels can be saved (a store on read-only media opens for viewing)."""
        return self.read_only_reason() is None

    def notices(self) -> list[str]:
        """What the person should know about the store itself (a damaged index rebuilt)."""
        return []

    def read_only_reason(self) -> str | None:
        """Why labels cannot be saved here, or None when they can."""
        return None

    @abstractmethod
    def records(self) -> list[ImageRecord]:
        """Every image with its status, label versions and score, in the store's order."""

    def ids(self) -> list[str]:
        return [r.id for r in self.records()]

    def record(self, image_id: str) -> ImageRecord:
        for r in self.records():
            if r.id == image_id:
                return r
        raise DatastoreError(f"{self.name}: no image '{image_id}'")

    @abstractmethod
    def open_image(self, image_id: str, progress: Progress | None = None) -> Volume:
        """Read the image behind ``image_id``. A store that downloads reports
        ``progress(text, fraction)``; progress may raise to stop the download."""

    @abstractmethod
    def label(self, image_id: str, image: Volume, version: Version | str = Version.FINAL) -> np.ndarray | None:
        """A saved label version, checked against ``image``; None when there is none."""

    @abstractmethod
    def save_draft(self, image_id: str, label: np.ndarray, image: Volume) -> None:
        """Keep work in progress; the image becomes *in progress*."""

    @abstractmethod
    def discard_draft(self, image_id: str) -> None:
        """Forget the work in progress (the final, if any, stays)."""

    @abstractmethod
    def accept(self, image_id: str, label: np.ndarray, image: Volume, proposed: np.ndarray | None = None,
               names: dict[int, str] | None = None, algorithm: str | None = None) -> None:
        """``label`` becomes the final version (the previous one goes to the history);
        ``proposed`` (what a model suggested) becomes the original the first time.
        ``names`` (label value -> name) and ``algorithm`` (the models that contributed)
        describe it: a server store writes them into the SEG it sends."""

    @abstractmethod
    def history(self, image_id: str) -> list[dict]:
        """Earlier finals, oldest first: ``{"saved": time}`` each."""

    @abstractmethod
    def earlier_label(self, image_id: str, image: Volume, back: int = 1) -> np.ndarray:
        """An earlier final, checked against ``image``: ``back`` 1 the one accepted before
        the final, 2 the one before that ... (the last of :meth:`history` is 1)."""

    def saved_label(self, image_id: str, image: Volume, version: str) -> np.ndarray | None:
        """:meth:`label` of ``version`` (final, original, draft), or for ``earlier-N`` the
        :meth:`earlier_label` N back."""
        if version.startswith(EARLIER):
            return self.earlier_label(image_id, image, int(version.removeprefix(EARLIER)))
        return self.label(image_id, image, version)

    def versions(self, image_id: str) -> list[str]:
        """The label versions saved of the image (final, original, draft)."""
        return self.record(image_id).versions

    @abstractmethod
    def set_info(self, image_id: str, **info) -> None:
        """Store JSON-serialisable facts about an image (notes, per-label scores)."""

    @abstractmethod
    def set_scores(self, scores: dict[str, float | None]) -> None:
        """The worklist's ranking scores (None clears one)."""

    def companions(self, image_id: str, image: Volume) -> list[Volume]:
        """Volumes shown with the image, on its grid, never annotated: the other channels
        (or time points) of a 4-D file (:func:`annotator.io.read.companions`). What cannot be shown is said in a
        warning on ``image``."""
        from annotator.io.read import companions

        return companions(image)

    def label_maps(self, image_id: str) -> list[str]:
        """Ids of the label maps found beside the image (a segmentation made elsewhere that
        can be shown with it and accepted as its label)."""
        return []

    def label_map(self, image_id: str, map_id: str, image: Volume) -> tuple[np.ndarray, dict[str, int]]:
        """A label map of the image, on its grid, and the names it gives its values (name ->
        value; empty when it names none)."""
        raise DatastoreError(f"{self.name}: '{image_id}' has no label map '{map_id}'")

    def reloaded(self, progress: Progress | None = None) -> Datastore:
        """The store with its images listed again (files or series added or gone since it
        was opened), its labels the same: a new object, so that the one in use can still be
        read while the listing is under way. A store of fixed images is itself."""
        return self

    def uploads_waiting(self) -> int:
        """Accepted labels not yet sent to a server (stores that send labels on)."""
        return 0

    def send_pending(self, force: bool = False) -> tuple[int, int]:
        """Send the waiting uploads that are due (all with ``force``); (sent, still waiting)."""
        return 0, 0

    def unsent(self, image_id: str | None = None) -> dict | None:
        """Why the image's accepted label has not reached the server: its waiting upload
        (``error``, ``refused``: see :class:`annotator.datastore.uploads.UploadQueue`), or
        with no image the one that says most (refused, else failed); None when nothing waits."""
        return None

    def label_names(self) -> dict[str, int] | None:
        """Label name -> value of the store's labels, when it records them."""
        return None

    def known_names(self) -> dict[str, int] | None:
        """:meth:`label_names`, or None where they cannot be read (a broken ``labels.json``
        is said where the names are offered): the values a SEG made elsewhere gives its
        segments here."""
        try:
            return self.label_names()
        except AnnotatorError:
            return None

    def remember_names(self, image_id: str, names: dict[int, str] | None, label: np.ndarray | None = None) -> None:
        """Keep with the image the names of its label's values (value -> name; of the
        values ``label`` holds, when given)."""
        held = set(label_values(label)) if label is not None else None
        kept = {str(int(v)): str(n) for v, n in (names or {}).items() if held is None or int(v) in held}
        if kept:
            self.set_info(image_id, segment_names=kept)

    def names_of(self, image_id: str) -> dict[int, str]:
        """Value -> name of the image's label: as kept when it was accepted, else as the
        store names its labels."""
        try:
            names = {v: n for n, v in (self.label_names() or {}).items()}
        except AnnotatorError:  # a broken labels.json: said where the names are offered
            names = {}
        kept = self.record(image_id).info.get("segment_names") or {}
        names.update({int(v): str(n) for v, n in kept.items() if str(v).isdigit()})
        return names

    def training_ids(self, split: str = "all") -> list[str]:
        """Images with a final label (a store with a fixed split can narrow it)."""
        if split != "all":
            raise DatastoreError(f"{self.name}: has no '{split}' split (only dataset folders with split.json do)")
        return [r.id for r in self.records() if Version.FINAL.value in r.versions]
