"""The annotation of one image after another, with no GUI: what the docks show and the
shortcuts act on (as napari keeps its ``ViewerModel`` apart from the Qt window).

The session owns the datastore, the open image, its label (an array the viewer shows
as is), the marks, the engine requests and the queue of requests made while the engine
is busy, undo/redo, the dirty state, autosave, the accept / keep draft / discard
decision and "next image", which follows the worklist's order. File work (opening,
reading labels, saving) goes through one :class:`~annotator.annotation.jobs.FileWorker`;
engine work through the same runner, so neither runs where the person waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from psygnal import Signal

from annotator.annotation.jobs import Cancelled, FileWorker, InlineRunner, Job, Runner
from annotator.annotation.labels import offered_labels, palette_colour
from annotator.datastore import Datastore, Status, Version, open_datastore
from annotator.datastore.base import EARLIER
from annotator.datastore.uploads import SIGN_IN_AGAIN
from annotator.engine.history import Change, LabelHistory
from annotator.engine.methods import FILLS_IMAGE, fills_image
from annotator.engine.region import holding
from annotator.errors import AnnotatorError, CredentialsError
from annotator.io.volume import LABEL_TOP, Volume, as_label, label_counts, label_values, volumes_ml
from annotator.settings import LabelPreset, Settings
from annotator.words import agree, count

#: What to do with unsaved work when leaving an image.
LEAVE_CHOICES = ("accept", "draft", "discard", "cancel")


#: said under a cut of foreground strokes alone
NO_BACKGROUND = ("no background strokes yet: nothing stops the cut where the structure meets tissue like it. "
                 "Paint one around the structure (Alt+4)")


class AnnotationSession:
    """Annotating the images of a datastore, one at a time."""

    datastore_changed = Signal()
    image_opened = Signal(str)  # image id ("" for an image that has no datastore)
    label_changed = Signal(object, str)  # box that changed (None: everywhere), what changed it
    marks_changed = Signal()  # the marks were replaced (undo, redo, clear, a new image)
    busy_changed = Signal(bool)  # the engine runs
    files_busy = Signal(bool)  # file work runs
    progress = Signal(str, float)  # file work: what, fraction (below 0: unknown)
    status = Signal(str)
    warning = Signal(str)  # something the person should know about the image opened (it still opened)
    error = Signal(str)
    sign_in = Signal(str, str)  # a server's place that asks to sign in again, and why (no or a refused secret)
    saved = Signal(str, str)  # image id, version
    records_changed = Signal()  # the datastore's records changed in the background (uploads sent)
    scoring = Signal(str, float)  # ranking the worklist: what, fraction
    scored = Signal(str)  # a ranking ended (finished, cancelled or failed): its strategy
    labels_changed = Signal()  # the labels offered (names, colours) or the one chosen changed
    volumes_counted = Signal(dict)  # value -> (voxels, mL) of the open label (see count_volumes)
    label_map_added = Signal(str)  # a label file handed over joined the open image's label maps (its id)

    def __init__(self, runner: Runner | None = None, settings: Settings | None = None,
                 ask_leave: Callable[[str], str] | None = None, autosave_s: float = 5.0):
        self.runner = runner or InlineRunner()
        self.settings = settings or Settings.load()
        #: asked, with the image's name, what to do with unsaved work (one of LEAVE_CHOICES);
        #: without a GUI: keep a draft
        self.ask_leave = ask_leave or (lambda image_name: "draft")
        self.autosave_s = autosave_s
        self.files = FileWorker(self.runner, self.progress.emit, self.files_busy.emit)
        self.store: Datastore | None = None
        self.image_id = ""
        self.volume: Volume | None = None
        self.label: np.ndarray | None = None
        self.scribbles: np.ndarray | None = None
        self.marks: dict[str, list] = {"fg": [], "bg": []}
        self.history = LabelHistory()
        self.label_maps: dict[str, np.ndarray] = {}  # segmentations found beside the open image
        self.companions: list[Volume] = []  # volumes shown with the open image, never annotated
        self.label_map_names: dict[str, dict[str, int]] = {}  # the names each of them gives its values
        #: the open image's labels saved earlier that can be restored: (key, what), newest first
        self.saved_labels: list[tuple[str, str]] = []
        self.proposed: np.ndarray | None = None  # the engine's latest answer (the "original" on first accept)
        self._proposal_stale = False  # the label changed by other means since ``proposed`` was kept
        self.method = "auto"  # a click method name, or "auto": a network for the image when installed
        #: how far (mm) Grow and Shrink move the chosen label's surface; None: the engine's
        #: default (:data:`annotator.engine.tidy.MARGIN_MM`)
        self.margin_mm: float | None = None
        #: the intensities (low, high, in the image's units: HU on a CT) that Clip and Flood
        #: hold the chosen label to; None: not set yet
        self.intensity_range: tuple[float, float] | None = None
        #: the labels to annotate with: the presets, named as the datastore names them
        self.labels: list[LabelPreset] = list(self.settings.presets)
        self.label_value = self.labels[0].value
        self.order: list[str] | None = None  # the worklist's order, when it shows one
        self.dirty = False
        self._changed_at = 0.0
        self.upload_check_s = 10.0
        self._upload_checked = 0.0
        self._refusals_said: set[str] = set()  # the uploads whose refusal was said
        self._busy = False
        self._scoring: Job | None = None
        self._pending: str | None = None
        self._accept_when_done: str | None = None  # the image whose Accept waits for the engine's answer
        self._bounds: dict[int, tuple] = {}  # per label value, a box known to hold all its voxels
        self._drawn_names: dict[str, int] = {}  # names from what last redrew the label (auto-segment, label map)
        self._network_names: dict[str, int] = {}  # the classes of the network that answers clicks here
        self._models: set[str] = set()  # the models that answered on the open image (a SEG names them)
        self._painted_unseen = False  # painted where the undo history could not see what changed
        self._in_use: set[int] = set()  # label values the open image's label holds (or that were chosen)
        self._counts: np.ndarray | None = None  # voxels of each value of the label (None: count again)
        self._changes = 0  # changes of the label so far (a count begun before the last one is stale)
        self.label_changed.connect(self._uncount)  # whatever changes the label says so
        self._names_problem = ""  # why the datastore's label names cannot be read (said once)

    # ---- datastore and images -----------------------------------------------------------

    def set_datastore(self, store: Datastore, connected: bool = True) -> None:
        """Work in ``store``. ``connected``: the person opened or connected to it, which
        sends at once what waits for its server (signed in anew, the server back); a
        Reload (False) sends only what is due, so a refused password is not tried again
        at each press."""
        from annotator.samples import is_sample_path

        self.store = store
        self.order = None
        if store.place and not is_sample_path(store.place):
            self.settings.last_datastore = store.place
            self.settings.save()
        self._drawn_names = {}
        self._offer_labels()
        self.datastore_changed.emit()
        for notice in store.notices():
            self.warning.emit(notice)
        self.send_uploads(force=connected)

    # ---- labels -------------------------------------------------------------------------

    def set_method(self, method: str) -> None:
        """Answer clicks with ``method`` (a name of :data:`annotator.engine.methods.METHODS`,
        or "auto"); the Label list follows its classes."""
        self.method = method
        self._network_names = self._network_classes()
        self._offer_labels()
        from annotator.engine.methods import METHODS

        chosen = METHODS.get(method)
        missing = chosen.missing(self.volume) if chosen is not None and self.volume is not None else None
        if missing:  # said when chosen, not only at each click
            self.warning.emit(f"{missing}: clicks on this image are not answered with {method}")

    def _network_classes(self) -> dict[str, int]:
        """The classes of the network that would answer clicks on the open image
        (DeepEdit's: a click on label 2 corrects its second class), before it has run."""
        if self.volume is None:
            return {}
        from annotator.engine.methods import choose

        try:
            return choose(self.volume, "clicks", self.method).label_names(self.volume)
        except AnnotatorError:  # nothing installed answers: the presets' names stay
            return {}

    def click_method(self):
        """The method (:mod:`annotator.engine.methods`) that would answer clicks on the open
        image; None when none would."""
        if self.volume is None:
            return None
        from annotator.engine.methods import choose

        try:
            return choose(self.volume, "clicks", self.method)
        except AnnotatorError:
            return None

    def _offer_labels(self) -> None:
        """Offer the presets, named as the datastore names its labels, else as the model of
        the last automatic segmentation in this datastore named what it drew, else as the
        network that answers clicks on the open image names its classes."""
        try:
            names = self.store.label_names() if self.store is not None else None
        except AnnotatorError as exc:  # a broken labels.json: said once per datastore, presets meanwhile
            names = None
            if self._names_problem != str(exc):
                self._names_problem = str(exc)
                self.error.emit(str(exc))
        labels = offered_labels(self.settings.presets, names or self._drawn_names or self._network_names)
        offered = {p.value for p in labels}  # values the label holds are offered too, to correct them
        labels += [LabelPreset(v, f"label {v}", palette_colour(v)) for v in sorted(self._in_use - offered)]
        self.labels = sorted(labels, key=lambda p: p.value)
        if self.label_value not in {p.value for p in self.labels}:
            self.label_value = self.labels[0].value
        self.labels_changed.emit()

    def set_presets(self, presets: list[LabelPreset]) -> None:
        """New label presets (names, colours): saved in the settings, offered at once."""
        if not presets:
            raise ValueError("at least one label preset is needed")
        self.settings.presets = list(presets)
        self.settings.save()
        self._offer_labels()

    def choose_label(self, value: int) -> None:
        """Annotate label ``value`` from now on (one not offered yet joins the list, unnamed).
        The clicks made so far were the last label's: they are put away (what they made
        stays), so that the next click does not take that label's places for this one."""
        value = int(value)
        if not 1 <= value <= LABEL_TOP:
            raise ValueError(f"label value {value} is outside 1..{LABEL_TOP}")
        if value != self.label_value:
            self.label_value = value
            self._hold(value)
            if self.marks["fg"] or self.marks["bg"]:
                self.marks = {"fg": [], "bg": []}
                self.marks_changed.emit()
            if value not in {p.value for p in self.labels}:
                self._in_use.add(value)
                self._offer_labels()
            else:
                self.labels_changed.emit()

    def next_label(self) -> None:
        """Annotate the next label offered (after the last: the first)."""
        values = [p.value for p in self.labels]
        at = values.index(self.label_value) if self.label_value in values else -1
        self.choose_label(values[(at + 1) % len(values)])

    def volumes(self) -> dict[int, tuple[int, float]]:
        """Each value the open label holds: its voxels and its volume in mL (counted once
        per change of the label)."""
        if self.volume is None or self.label is None:
            return {}
        if self._counts is None:
            self._counts = label_counts(self.label)
        return volumes_ml(self._counts, self.volume.spacing)

    def _uncount(self, *_change) -> None:
        """The label changed: its counts are stale."""
        self._counts, self._changes = None, self._changes + 1

    def count_volumes(self) -> None:
        """:meth:`volumes`, told by ``volumes_counted``; a whole count (a tenth of a second on
        a large CT) runs on the runner, not where the person waits. A count that a newer
        change of the label overtook is dropped: that change asks again."""
        if self.volume is None or self.label is None or self._counts is not None:
            self.volumes_counted.emit(self.volumes())
            return
        label, spacing, changes = self.label, self.volume.spacing, self._changes

        def counted(counts: np.ndarray) -> None:
            if changes == self._changes and label is self.label:
                self._counts = counts
                self.volumes_counted.emit(volumes_ml(counts, spacing))

        self.runner.start(lambda _job: label_counts(label), counted, self._failed, Job("counting the label"))

    def open(self, place: str | Path) -> None:
        """Open a folder (its first image not yet labeled), an image file or a DICOM series.
        A label file handed over while an image is open (a label map on its grid, a DICOM
        SEG or RT Structure Set of its series: :func:`labels_image`) joins the open image's
        label maps instead (:meth:`add_label_file`)."""
        path = None if str(place).startswith(("http://", "https://")) else Path(place)
        if self.volume is None or path is None or not path.is_file():
            self._open(place)
            return
        self.add_label_file(path, otherwise=lambda: self._open(place))

    def add_label_file(self, path: Path, otherwise=None, joined=None) -> None:
        """The file at ``path``, when it labels the open image (:func:`labels_image`), joins
        its label maps, as those found beside it (Use as label makes it the label), in the
        file worker; then ``joined()`` is called, and ``otherwise()`` when it does not."""
        from annotator.datastore.label_maps import labels_image, read_map
        from annotator.io.sniff import image_stem

        volume, store, image_id, map_id = self.volume, self.store, self.image_id, image_stem(path)

        def work(job: Job):
            job.report(f"reading {path.name} ...")
            if volume is None or not labels_image(path, volume):
                return None
            before = len(volume.warnings)
            label, names = read_map(path, map_id, image_id or volume.name, volume,
                                    store.known_names() if store is not None else None)
            return map_array(label, path.name), names, volume.warnings[before:]  # what reading it said

        def done(found):
            if found is None:  # an image, or a label of another image
                if otherwise is not None:
                    otherwise()
            elif volume is self.volume:
                label, names, said = found
                for warning in said:
                    self.warning.emit(warning)
                self.label_maps[map_id], self.label_map_names[map_id] = label, names
                self.label_map_added.emit(map_id)
                self.status.emit(f"{path.name} is a label map of {volume.name} now (shown as a layer): "
                                 "Use as label makes it the label")
                if joined is not None:
                    joined()

        self.files.submit(f"reading {path.name}", work, done, self._failed)

    def _open(self, place: str | Path) -> None:
        if not self.leave():
            return

        shown = str(place) if str(place).startswith(("http://", "https://")) else Path(place).name

        def work(job: Job):
            job.report(f"opening {shown} ...")
            store, image_id = open_datastore(place, progress=job.report)
            if image_id is None:
                records = store.records()
                image_id = next((r.id for r in records if r.status != Status.LABELED),
                                records[0].id if records else None)
            return store, image_id, self._read(store, image_id, job) if image_id else None

        def done(result):
            store, image_id, loaded = result
            self.set_datastore(store)
            if loaded is not None:
                self.show(*loaded, image_id=image_id)

        self.files.submit(f"opening {shown}", work, done, lambda exc: self._failed(exc, place))

    def reload(self) -> None:
        """List the datastore's images again (files or series added since it was opened),
        in the file worker; the open image stays open, its work unsaved or not."""
        store = self.store
        if store is None:
            self.status.emit("Open a folder or connect to a server first: there is no list to reload.")
            return

        def work(job: Job):
            job.report(f"listing the images of {store.name} again ...")
            fresh = store.reloaded(progress=job.report)
            records = fresh.records()
            return (fresh, {r.id for r in store.records()}, {r.id for r in records},
                    {r.id for r in records if r.info.get("newer_on_server")})

        def done(result) -> None:
            fresh, before, now, newer = result
            if store is not self.store:  # another folder or server opened meanwhile
                return
            self.set_datastore(fresh, connected=False)
            said = f"{store.name}: {count(len(now), 'image')}"
            changes = [f"{count(len(now - before), 'new image')}"] * bool(now - before) + [
                f"{len(before - now)} no longer there"] * bool(before - now)
            self.status.emit(said + (f" ({', '.join(changes)})" if changes else ", none new"))
            if self.image_id is not None and self.volume is not None and self.image_id not in now:
                self.warning.emit(f"{self.image_name} is no longer in {store.name}: its label cannot be saved there")
            if self.image_id in newer:
                self.warning.emit(f"{self.image_name}: a newer label of it came to the server from another "
                                  "workstation; open it again (double-click it in the Worklist) to take it")

        self.files.submit(f"listing {store.name} again", work, done, self._failed)

    def open_image(self, image_id: str) -> None:
        """Open one image of the datastore (after asking about unsaved work); the one open
        again only when a newer label of it came from another workstation."""
        if self.store is None or image_id == self.image_id and not self.store.record(image_id).info.get(
                "newer_on_server") or not self.leave():
            return
        store = self.store
        self.status.emit(f"opening {image_id} ...")
        self.files.submit(f"opening {image_id}", lambda job: self._read(store, image_id, job),
                          lambda loaded: self.show(*loaded, image_id=image_id) if store is self.store else None,
                          lambda exc: self._failed(exc, store.place))

    @staticmethod
    def _read(store: Datastore, image_id: str, job: Job) -> tuple[Volume, np.ndarray | None, dict, list[Volume], list]:
        """The image, its saved label (draft first), the label maps found beside it (a
        label map that does not fit the image is left out, with a warning on the volume),
        its companions (volumes shown with it: other channels, other acquisitions) and its
        labels saved earlier (:func:`saved_labels`)."""
        job.report(f"reading {image_id} ...")
        volume = store.open_image(image_id, job.report)
        others = store.companions(image_id, volume)
        job.report(f"reading the labels of {image_id} ...", 0.8)
        label, maps, saved = image_labels(store, image_id, volume)
        return volume, label, maps, others, saved

    def show(self, volume: Volume, label: np.ndarray | None = None, label_maps: dict | None = None,
             companions: list[Volume] | None = None, saved: list[tuple[str, str]] | None = None,
             image_id: str = "") -> None:
        """Make ``volume`` the image being annotated (with its saved label, if any, the
        label maps found beside it, id -> (array, the names it gives its values), shown and
        ready to be used as its label, its companions: volumes shown with it, never
        annotated, such as the other channels of a 4-D file, and its labels saved earlier,
        :attr:`saved_labels`)."""
        self.volume, self.image_id = volume, image_id
        self.saved_labels = list(saved or [])
        self.companions = list(companions or [])
        self.label_maps = {k: array for k, (array, _) in (label_maps or {}).items()}
        self.label_map_names = {k: dict(names) for k, (_, names) in (label_maps or {}).items()}
        label = np.zeros(volume.shape, np.uint8) if label is None else as_label(label, "the label", file=False)
        self.label = label.astype(holding(label, self.label_value), copy=False)  # and the value being annotated
        self.scribbles = np.zeros(volume.shape, np.uint8)
        self.marks = {"fg": [], "bg": []}
        self.history = LabelHistory(self.marks, "saved" if label.any() else "")
        self._bounds.clear()
        self._models.clear()
        self._painted_unseen = False
        self._uncount()
        self._in_use = set(self.volumes())  # the one count of the opened label, kept for the dock
        self.proposed = None
        self.dirty = False
        self._pending = self._accept_when_done = None
        self._network_names = self._network_classes()
        self._offer_labels()  # a server's store learns names from the SEGs it reads
        self.image_opened.emit(image_id)
        self.status.emit(f"opened {self.image_name}: {' x '.join(map(str, volume.size))} voxels")
        for warning in volume.warnings:
            self.warning.emit(f"{self.image_name}: {warning}")

    # ---- marks and engine ---------------------------------------------------------------

    def set_marks(self, fg: list, bg: list) -> None:
        """New foreground/background clicks (array indices); the engine answers them."""
        shape = self.volume.shape if self.volume is not None else ()
        inside = lambda p: len(p) == 3 and all(0 <= int(v) < n for v, n in zip(p, shape))
        self.marks = {"fg": [tuple(int(v) for v in p) for p in fg if inside(p)],
                      "bg": [tuple(int(v) for v in p) for p in bg if inside(p)]}
        self.request("clicks")

    def request(self, kind: str) -> None:
        """Run the engine (``clicks``, ``scribbles`` or ``automatic``); queued while it runs."""
        if self.volume is None:
            return
        if self._busy:
            self._pending = kind
            self.status.emit("engine busy: your last input is queued")
            return
        marks = {k: list(v) for k, v in self.marks.items()}
        if kind == "clicks" and not marks["fg"]:
            why = self._background_alone() if marks["bg"] else ""
            if why is not None:
                if why:
                    self.status.emit(why)
                return
        if kind == "scribbles" and not (self.scribbles == 1).any():
            self.status.emit("scribbles need a foreground stroke (Alt+3) inside the structure; background strokes "
                             "(Alt+4) say only what it is not")
            return
        volume, value, label, strokes = self.volume, self.label_value, self.label, self.scribbles
        bound = self._bounds.get(value)
        on_answer = self._on_answer(value)
        from annotator.engine.methods import choose, methods_for  # GraphCut and SciPy load with the first request

        try:
            # clicks: the chosen method (or the best for the image); scribbles: GraphCut;
            # automatic: DeepEdit when chosen (with the notes of what may make it poor), else
            # only with a model for such an image
            automatic = self.method if self.method in methods_for("automatic") else "auto"
            method = choose(volume, kind, {"clicks": self.method, "scribbles": "graphcut",
                                           "automatic": automatic}[kind])
        except AnnotatorError as exc:
            self._failed(exc)
            return

        def work(job: Job):  # noqa: ARG001 - engine steps report no progress
            # the engine reads the label and gives back the box it changed; the box is
            # written where the session lives. The result replaces the structure everywhere.
            if kind == "automatic":
                return method.automatic(volume)
            if kind == "clicks":
                result = method.clicks(volume, marks["fg"], marks["bg"], previous=label, value=value,
                                       on_answer=on_answer)
            else:
                result = method.scribbles(volume, np.array(strokes, np.uint8), previous=label, value=value,
                                          on_answer=on_answer)
            return result.replacing(label, value, within=bound)

        self._set_busy(True)
        # what may make the answer poor (a network's: on an image's first request and with
        # every automatic segmentation; a cut of foreground strokes alone): under the result
        first = method.needs_preparation(volume)
        note = method.warning(volume) if first or kind == "automatic" else None
        if kind == "scribbles" and not (strokes == 2).any():
            note = NO_BACKGROUND
        if first:
            self.status.emit(f"first {'click' if kind == 'clicks' else 'run'} on this image: preparing it for "
                             f"{method.name} (once per image) ...")
        else:
            self.status.emit(f"running {method.name} ({kind}) ...")
        self.runner.start(work, lambda result: self._engine_done(result, marks, volume, value, note),
                          self._engine_failed, Job(f"{method.name} {kind}"))

    def _on_answer(self, value: int) -> bool:
        """Whether structure ``value`` is DeepEdit's answer or a correction of it, by the undo
        history: the last step that drew it (tidying aside) was DeepEdit's or a GraphCut
        step on its answer. Anything else (painting, a restored label, a cut from the marks
        alone, steps no longer kept): not known, and the engine judges by the overlap."""
        from annotator.engine.methods import keeps_the_answer
        from annotator.engine.tidy import STEPS

        if self._painted_unseen:
            return False
        for change in self.history.applied():
            if change.value in (None, value) and change.method not in STEPS.values():
                return keeps_the_answer(change.method)
        return False

    def _background_alone(self) -> str | None:
        """Why background clicks with no foreground click are not answered; None when they
        are: a network takes them away from the label they touch, GraphCut needs a
        foreground click to start from."""
        method, value = self.click_method(), self.label_value
        if method is not None and not method.background_alone:
            return f"{method.name}: needs a foreground click first (a network takes a background click alone)"
        if not (self.label == value).any():
            return f"label {value} has no voxels yet: a background click only takes away. Click foreground first"
        return None

    def margin(self) -> float:
        """How far (mm) Grow and Shrink move the chosen label's surface: ``margin_mm``, or
        the engine's default when none was set."""
        from annotator.engine.tidy import MARGIN_MM

        return MARGIN_MM if self.margin_mm is None else self.margin_mm

    def tidy(self, step: str, axis: int = 0) -> None:
        """Tidy the chosen label (a step of :mod:`annotator.engine.tidy`; on the slices
        across array axis ``axis``: the ones viewed; grown or shrunk by ``margin_mm``;
        clipped to or flooded through ``intensity_range``) on the runner; undone like an
        engine step."""
        if self.volume is None:
            return
        if self._busy:
            self.status.emit("engine busy: tidy the label when it is done")
            return
        from annotator.engine.tidy import RANGE_STEPS, STEPS, tidy

        volume, value, label, mm, within = self.volume, self.label_value, self.label, self.margin(), None
        if step in RANGE_STEPS:
            if self.intensity_range is None:
                self.error.emit(f"{STEPS[step]}: set the range of intensities first")
                return
            within = self.intensity_range
        name = next((p.name for p in self.labels if p.value == value), "")
        marks = {k: list(v) for k, v in self.marks.items()}
        self._set_busy(True)
        how = (f" by {mm:g} mm" if step in ("grow", "shrink") else
               f" {within[0]:g} to {within[1]:g}" if within is not None else "")
        self.status.emit(f"{STEPS.get(step, step)}{how}: {name or f'label {value}'} ...")
        self.runner.start(lambda _job: tidy(label, value, step, axis, volume.array_spacing, name, mm,
                                            image=volume.array, within=within),
                          lambda result: self._engine_done(result, marks, volume, value),
                          self._engine_failed, Job(step))

    def _engine_done(self, result, marks: dict, volume: Volume, value: int, note: str | None = None) -> None:
        if volume is self.volume:  # not when another image was opened meanwhile
            self._hold(result.patch.dtype)
            before = result.apply(self.label)
            if result.model:
                self._models.add(result.model)
            automatic = result.method.endswith("-auto")
            self.history.push(Change(result.box, before, result.patch, marks, result.method,
                                     None if automatic else value))
            if automatic:  # every label redrawn over the image
                self._bounds.clear()
                self._painted_unseen = False
            else:  # the structure now lies in the box; the others can only have shrunk
                self._bounds[value] = result.box
            drawn = set(label_values(result.patch))
            if result.names or not drawn <= self._in_use:  # names or values the Label list lacks
                self._drawn_names = dict(result.names) or self._drawn_names
                self._in_use |= drawn
                self._offer_labels()
            self._propose(result.box)
            self._touch()
            drew = ", ".join(f"{v} {n}" for n, v in sorted(result.names.items(), key=lambda kv: kv[1]))
            said = f"{result.method}: {result.seconds:.2f} s" + (f" (labels {drew})" if drew else "")
            if not automatic and result.patch.size > FILLS_IMAGE * self.label.size:  # else it cannot fill it
                note = fills_image(int(np.count_nonzero(self.label == value)), self.label.size) or note
            if note:
                self.warning.emit(f"{said}\nNote: {note}")
            else:
                self.status.emit(said)
            self.label_changed.emit(result.box, result.method)
        self._set_busy(False)
        if self._pending:
            kind, self._pending = self._pending, None
            self.request(kind)
        self._accept_waiting()

    def _accept_waiting(self) -> None:
        """The Accept pressed while the engine answered, once it has (and what was queued)."""
        if self._accept_when_done is not None and not self._busy:
            image_id, self._accept_when_done = self._accept_when_done, None
            if image_id == self.image_id:
                self._save(Version.FINAL.value)

    def _propose(self, box) -> None:
        """Keep the label as the engine left it (the "original" of the first accept): only
        the changed box is copied, unless the label changed elsewhere since the last time
        (painting, undo, a label map): copying a whole CT label on every click would
        freeze the view."""
        if self.proposed is None or self._proposal_stale or box is None:
            self.proposed = np.array(self.label, copy=True)
        else:
            self.proposed[box] = self.label[box]
        self._proposal_stale = False

    def painted(self, box=None, before: np.ndarray | None = None, after: np.ndarray | None = None) -> None:
        """The label was painted by hand (in place); a stroke that says which ``box`` it
        changed, what the box held ``before`` and ``after`` it is undone like an engine
        step, in the one history."""
        if box is not None and before is not None and after is not None:
            self.history.push(Change(box, before, after, dict(self.marks), "paint"))
        else:
            self._painted_unseen = True
        self._proposal_stale = True
        self._bounds.clear()
        self._touch()
        self.label_changed.emit(None, "paint")

    def _hold(self, value) -> None:
        """Widen the label to two bytes a voxel where ``value`` (a label value, or the type of
        a step's patch) needs them (a FreeSurfer structure numbered 1035, say); the layers
        showing it follow (``label_changed``). A label never narrows while it is open."""
        wider = None if self.label is None else holding(self.label, value)
        if wider is None or wider == self.label.dtype:
            return
        self.label = self.label.astype(wider)
        if self.proposed is not None:
            self.proposed = self.proposed.astype(wider)
        self.label_changed.emit(None, "widened")

    # ---- history ------------------------------------------------------------------------

    def _step(self, move) -> None:
        self._proposal_stale = True
        self.marks = {k: list(v) for k, v in move(self.label).items()} if self.label is not None else self.marks
        self.marks.setdefault("fg", [])
        self.marks.setdefault("bg", [])
        self._bounds.clear()
        self._touch()
        self.marks_changed.emit()
        self.label_changed.emit(None, "history")

    def undo(self) -> None:
        self._move("undo", self.history.can_undo, self.history.undo)

    def redo(self) -> None:
        self._move("redo", self.history.can_redo, self.history.redo)

    def _move(self, name: str, possible: bool, move) -> None:
        """Undo or redo (``name``), or say why not."""
        if self._busy:
            self.status.emit(f"engine busy: {name} when it is done")
        elif possible:
            self._step(move)
            self.status.emit({"undo": "undone", "redo": "redone"}[name])
        else:
            self.status.emit(f"nothing to {name}")

    def use_label_map(self, map_id: str) -> None:
        """Make a label map found beside the image its label (undoable; Accept saves it)."""
        if self.volume is None or self._busy or map_id not in self.label_maps:
            return
        try:
            label = as_label(self.label_maps[map_id], f"label map {map_id}", file=False)
        except AnnotatorError as exc:  # shown as it was read (map_array), not a label's values
            self.warning.emit(f"{exc}: it is shown beside the image, but cannot be its label")
            return
        names = {n: v for n, v in self.label_map_names.get(map_id, {}).items() if 0 < v <= LABEL_TOP}
        self.replace_label(label, "label map", names)
        self.status.emit(f"{map_id} is the label now: Accept saves it")

    def restore(self, key: str) -> None:
        """Make a label saved earlier (a key of :attr:`saved_labels`: an earlier final, or
        the original) the label, read in the file worker; undoable, Accept saves it."""
        what = dict(self.saved_labels).get(key)
        if what is None or self.volume is None or self.store is None:
            return
        store, image_id, volume = self.store, self.image_id, self.volume

        def work(job: Job) -> np.ndarray | None:
            job.report(f"reading the label {what} ...")
            return as_label(store.saved_label(image_id, volume, key), f"the label {what}")

        def done(label: np.ndarray | None) -> None:
            if image_id != self.image_id or label is None:
                return
            if self._busy:  # the engine would write into the label as it changes
                self.warning.emit("the engine is busy: restore again when it is done")
                return
            self.replace_label(label, "restore")
            self.status.emit(f"the label {what} is the label now: Accept saves it")

        self.files.submit(f"reading the label {what}", work, done, self._failed)

    def replace_label(self, after: np.ndarray, what: str, names: dict[str, int] | None = None) -> None:
        """The whole label replaced by ``after`` (undoable, as ``what``; ``names``: name ->
        value it gives); InputError when it holds a value a label cannot (nothing changes)."""
        self._proposal_stale = True
        after = as_label(np.asarray(after), what, file=False)
        self._hold(after.dtype)
        before = np.array(self.label, copy=True)
        self.label[...] = after
        everything = tuple(slice(0, n) for n in self.volume.shape)
        self.history.push(Change(everything, before, np.array(after, copy=True), self.history.marks, what))
        self._touch()
        self.label_changed.emit(None, "history")
        held = set(label_values(after))
        if names or not held <= self._in_use:  # the Label list takes the new values, by their names
            self._in_use |= held
            self._drawn_names = names or self._drawn_names
            self._offer_labels()

    def clear(self) -> None:
        """Remove the marks and the chosen structure of the current image; the other
        structures stay (undoable)."""
        if self.volume is not None and not self._busy:
            self._clear(self.label_value)

    def clear_all(self) -> None:
        """Remove the marks and every structure of the current image (undoable)."""
        if self.volume is not None and not self._busy:
            self._clear(None)

    def _clear(self, value: int | None) -> None:
        """Marks, scribbles and the structure ``value`` (None: every structure) removed."""
        self.scribbles[...] = 0
        before = np.array(self.label, copy=True)
        if value is None:
            self.label[...] = 0
            after = np.broadcast_to(np.uint8(0), before.shape)
        else:
            self.label[self.label == value] = 0
            after = np.array(self.label, copy=True)
        everything = tuple(slice(0, n) for n in self.volume.shape)
        self.history.push(Change(everything, before, after, {"fg": [], "bg": []}, "clear", value))
        self._step(lambda label: self.history.marks)
        if value is None:
            self.status.emit("cleared every structure")
        else:
            name = next((p.name for p in self.labels if p.value == value), f"label {value}")
            self.status.emit(f"cleared {name}; the other structures stay (Alt+Shift+X clears them all)")

    # ---- saving -------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """The engine runs."""
        return self._busy

    @property
    def idle(self) -> bool:
        """Neither the engine nor file work runs."""
        return not self._busy and not self.files.busy

    @property
    def image_name(self) -> str:
        """The open image as a person knows it: a server's series by its description, not
        its UID; a file by its name."""
        return (self.volume.name if self.volume is not None else "") or self.image_id

    @property
    def has_unsaved_work(self) -> bool:
        return self.volume is not None and self.dirty

    def _touch(self) -> None:
        self.dirty = True
        self._changed_at = time.monotonic()

    @property
    def can_keep(self) -> bool:
        """Whether the label can be saved at all: an image of a datastore that can be written
        (not one made from a layer in memory, with no file to keep its label beside)."""
        return self.store is not None and bool(self.image_id) and self.store.writable

    def _can_save(self) -> bool:
        if self.store is None or not self.image_id:
            self.error.emit("this image has no datastore to save into; open it from a file or folder")
            return False
        reason = self.store.read_only_reason()
        if reason:
            self.error.emit(f"{self.store.name}: cannot save: {reason}")
            return False
        return True

    def _save(self, version: str, then: Callable[[], None] | None = None) -> bool:
        """Save a copy of the label as ``version`` in the file worker."""
        if self.volume is None or not self._can_save():
            return False
        store, image_id, volume, name = self.store, self.image_id, self.volume, self.image_name
        label = np.array(self.label, copy=True)  # what is saved, whatever happens to the label next
        # the engine's answer, for the first accept (a copy: the session keeps updating its own)
        proposed = self.proposed.copy() if version == Version.FINAL.value and self.proposed is not None else None
        changed_at = self._changed_at
        names = {p.value: p.name for p in self.labels}  # as the Label list shows them (a SEG's segment names)
        algorithm = ", ".join(sorted(self._models)) or None  # a SEG: SEMIAUTOMATIC with these, else MANUAL
        self.dirty = False

        def work(job: Job):
            job.report(f"saving {name} ({version}) ...")
            start = time.perf_counter()
            if version == Version.FINAL.value:
                store.accept(image_id, label, volume, proposed=proposed, names=names, algorithm=algorithm)
            else:
                store.save_draft(image_id, label, volume)
            unsent = store.unsent(image_id) if version == Version.FINAL.value else None
            return time.perf_counter() - start, saved_labels(store, image_id), unsent

        def done(result: tuple[float, list, dict | None]) -> None:
            seconds, saved, unsent = result
            if image_id == self.image_id:
                self.saved_labels = saved
            self.saved.emit(image_id, version)
            empty = " (empty: no structure)" if not label.any() else ""
            said = f"{'accepted' if version == 'final' else 'draft of'} {name} saved{empty} ({seconds:.2f} s)"
            self.status.emit(said)
            if unsent is not None and unsent.get("error"):
                if unsent.get("refused"):
                    self._refusals_said.add(unsent["sop_uid"])
                self.warning.emit(f"{name}: the accepted label is saved here and waits to be sent: {_waits(unsent)}")
            if then is not None:
                then()

        def failed(exc: BaseException) -> None:
            if image_id == self.image_id and self._changed_at == changed_at:
                self.dirty = True  # nothing was lost: the work is still here, unsaved
            self._failed(exc)

        self.files.submit(f"saving {name}", work, done, failed)
        return True

    def accept(self) -> bool:
        """Save the label as final (and the model's proposal as original). Pressed while the
        engine answers a click (click, then Accept at once), once the answer is in: it is part
        of what the person accepts (saved before it, the final lacked the click, and the
        answer left the image with unsaved work)."""
        if self._busy and self.volume is not None:
            self._accept_when_done = self.image_id
            self.status.emit("accepting once the step under way is done ...")
            return True
        return self._save(Version.FINAL.value)

    def save_draft(self) -> bool:
        """Keep the work in progress as a draft."""
        return self.has_unsaved_work and self._save(Version.DRAFT.value)

    def discard(self) -> None:
        """Forget the unsaved changes (the saved versions stay)."""
        self.dirty = False

    def tick(self) -> None:
        """Call every second or so. Autosave: work unchanged for ``autosave_s`` becomes a
        draft. Uploads: every ``upload_check_s`` labels waiting for a server are sent when
        due (the queue's own backoff decides which are)."""
        if (self.has_unsaved_work and not self._busy and self.can_keep  # else it said so at each tick
                and time.monotonic() - self._changed_at >= self.autosave_s):
            self.save_draft()
        if (self.store is not None and not self.files.busy
                and time.monotonic() - self._upload_checked >= self.upload_check_s):
            self._upload_checked = time.monotonic()
            self.send_uploads()

    def send_uploads(self, force: bool = False) -> None:
        """Send the labels that wait for the server (in the file worker). What keeps them
        waiting is said when the person asked (``force``: Send now, connecting) and when the
        server first refuses the credentials (then only Send now or connecting tries again)."""
        store = self.store
        if store is None or not store.uploads_waiting():
            return

        def work(job: Job):
            sent, waiting = store.send_pending(force)
            return sent, waiting, store.unsent() if waiting else None

        def done(result) -> None:
            sent, waiting, unsent = result
            if sent:
                self.status.emit(f"{count(sent, 'label')} sent to {store.name}"
                                 + (f"; {waiting} waiting" if waiting else ""))
            refused = unsent is not None and unsent.get("refused")
            if unsent is not None and unsent.get("error") and (force or (refused and unsent["sop_uid"] not in
                                                                         self._refusals_said)):
                self.warning.emit(f"{count(waiting, 'accepted label')} wait{'s' * (waiting == 1)} to be sent: "
                                  f"{_waits(unsent)}")
            if refused:
                self._refusals_said.add(unsent["sop_uid"])
            self.records_changed.emit()

        self.files.submit("sending labels", work, done, self._failed)

    def unsent_on_close(self) -> str | None:
        """What a person closing the app should know about the accepted labels that have
        not reached the server (they stay queued here and go the next time it connects);
        None when none wait."""
        store = self.store
        waiting = store.uploads_waiting() if store is not None else 0
        if not waiting:
            return None
        unsent = store.unsent() or {}
        error = str(unsent.get("error") or "").removeprefix(f"{store.name}: ")  # the server is named already
        why = f": {error}" if error else ""
        return (f"{count(waiting, 'accepted label')} {agree(waiting, 'has', 'have')} not reached {store.name} "
                f"yet{why}. {agree(waiting, 'It stays', 'They stay')} saved on this computer and "
                f"{agree(waiting, 'is', 'are')} sent the next time Annotator connects to the server.")

    def export(self, folder: str | Path, channels: bool = False) -> None:
        """Every labelled image of the datastore and its final label into ``folder``, a new
        or empty one, in nnU-Net's layout (:func:`annotator.datastore.export.export_nnunet`),
        in the file worker (progress, cancel; dataset.json is written last)."""
        from annotator.datastore.export import export_nnunet

        store = self.store
        if store is None:
            return

        def done(described: dict) -> None:
            left, number = described["annotator"]["left_out"], described["numTraining"]
            self.status.emit(f"{count(number, 'labelled image')} exported to {folder}"
                             + (f"; {len(left)} left out ({next(iter(left))}: {next(iter(left.values()))})"
                                if left else ""))

        self.files.submit(f"exporting to {Path(folder).name}",
                          lambda job: export_nnunet(store, folder, channels, job.report), done, self._failed)

    def leave(self) -> bool:
        """Settle unsaved work before another image opens or the window closes: the
        person's choice (accept, keep as draft, discard); False when they cancel."""
        if not self.has_unsaved_work:
            return True
        choice = self.ask_leave(self.image_name)
        if choice == "accept":  # now: the image is left at once, its engine's answer with it
            return self._save(Version.FINAL.value)
        if choice == "draft":
            return self.save_draft() or not self.has_unsaved_work
        if choice == "discard":
            self.discard()
            return True
        return False

    # ---- navigation ---------------------------------------------------------------------

    def next_image_id(self) -> str | None:
        """The next image not labeled yet, in the worklist's order (the store's, when the
        worklist shows none): a ranked worklist is followed."""
        if self.store is None:
            return None
        records = {r.id: r for r in self.store.records()}
        ids = [i for i in (self.order or list(records)) if i in records]
        start = ids.index(self.image_id) + 1 if self.image_id in ids else 0
        for image_id in ids[start:] + ids[:start]:
            if records[image_id].status != Status.LABELED and image_id != self.image_id:
                return image_id
        return None

    def next_image(self) -> None:
        image_id = self.next_image_id()
        if image_id is None:
            self.status.emit("No other image to label.")
        else:
            self.open_image(image_id)

    # ---- ranking ------------------------------------------------------------------------

    @property
    def scoring_now(self) -> bool:
        return self._scoring is not None

    def score(self, strategy: str | None = None) -> None:
        """Rank the datastore's unlabeled images (:func:`annotator.active.rank`) in the
        background, beside file work; the scores reach the store image by image."""
        from annotator.active.ranking import rank

        if self.store is None or self._scoring is not None:
            return
        strategy = strategy or self.settings.strategy
        store = self.store
        job = Job(f"ranking by {strategy}", self.scoring.emit)
        self._scoring = job

        def done(ranking) -> None:
            self._scoring = None
            skipped = "".join(f"; skipped {i}: {why}" for i, why in list(ranking.skipped.items())[:3])
            number = len(ranking.ranked)
            self.status.emit(f"{count(number, 'image')} ranked by {strategy}{skipped}")
            self.scored.emit(strategy)

        def failed(exc: BaseException) -> None:
            self._scoring = None
            self._failed(exc)
            self.scored.emit(strategy)

        self.runner.start(lambda j: rank(store, strategy, progress=j.report), done, failed, job)

    def cancel_scoring(self) -> None:
        if self._scoring is not None:
            self._scoring.cancel()

    # ---- errors -------------------------------------------------------------------------

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.busy_changed.emit(busy)

    def _engine_failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        self._pending = None
        self._failed(exc)
        self._accept_waiting()  # the label as it is: the failed step changed nothing

    def _failed(self, exc: BaseException, place: str | Path = "") -> None:
        """Say what failed; a server at ``place`` that has no secret here, or refused it,
        asks to sign in again too (``sign_in``: the Connect dialog)."""
        if isinstance(exc, Cancelled):
            self.status.emit(f"cancelled: {exc}")
            return
        message = str(exc) if isinstance(exc, AnnotatorError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, CredentialsError) and str(place).startswith(("http://", "https://")):
            self.sign_in.emit(str(place), message)
        self.error.emit(message)


def _waits(unsent: dict) -> str:
    """Why an upload waits (its error), and what happens next: retried, or not before the
    person signs in again."""
    return f"{unsent['error']}. " + (SIGN_IN_AGAIN if unsent.get("refused") else "Retried automatically.")


def image_labels(store: Datastore, image_id: str, volume: Volume) -> tuple[np.ndarray | None, dict, list]:
    """What an image of ``store`` opens with, however it was opened (the worklist, or a
    layer read otherwise): its saved label (:func:`label_to_open`), the label maps found
    beside it, id -> (array, the names it gives its values; one that does not fit the image
    is left out, with a warning on ``volume``), and its labels saved earlier
    (:func:`saved_labels`)."""
    maps = {}
    for map_id in store.label_maps(image_id):
        try:
            array, names = store.label_map(image_id, map_id, volume)
            maps[map_id] = (map_array(array, f"label map {map_id}"), names)
        except AnnotatorError as exc:
            volume.warnings.append(f"label map {map_id} left out: {exc}")
    label = label_to_open(store, image_id, volume, saved_labels(store, image_id))
    return label, maps, saved_labels(store, image_id)  # with the one reading it may have made earlier


def map_array(array: np.ndarray, what: str) -> np.ndarray:
    """A label map as the session holds it: as a label (:func:`as_label`), or, when it
    holds values above a label's :data:`LABEL_TOP`, as it was read: shown beside the
    image, never made its label (:meth:`AnnotationSession.use_label_map` says why). A
    negative value is refused (InputError naming ``what``)."""
    try:
        return as_label(array, what)
    except AnnotatorError:
        if array.size and int(array.min()) < 0:
            raise
        return array


def label_to_open(store: Datastore, image_id: str, volume: Volume, saved: list | None = None) -> np.ndarray | None:
    """The label an image opens with: its draft, else its final, else none. A file that
    cannot be read (damaged, or holding a value a label here cannot: :func:`as_label`)
    is passed over with a warning on ``volume``, and stays as it is (``saved``: its
    labels saved earlier, which the warning then says can be restored)."""
    for version in (Version.DRAFT, Version.FINAL):
        try:
            label = as_label(store.label(image_id, volume, version), "it")
        except AnnotatorError as exc:
            volume.warnings.append(f"its {version.value} label cannot be read, it opens without it"
                                   + (" (Earlier restores a label saved before)" if saved else "") + f": {exc}")
            continue
        if label is not None:
            return label
    return None


def saved_labels(store: Datastore, image_id: str) -> list[tuple[str, str]]:
    """(key, what) of the labels of an image saved earlier that can be restored, newest
    first: the finals accepted before the current one ("earlier-1", "accepted 2026-12-01
    15:02", in local time: with seconds it did not fit the dock at 1366 pixels), then what
    the model first proposed ("original")."""
    from datetime import datetime

    def when(saved: str) -> str:
        try:
            return datetime.fromisoformat(saved).astimezone().strftime("%Y-%m-%d %H:%M")
        except (TypeError, ValueError):
            return "earlier"

    try:
        earlier, versions = list(reversed(store.history(image_id))), store.versions(image_id)
    except AnnotatorError:  # an unreadable index is said when something is saved; the image opens
        return []
    out = [(f"{EARLIER}{back}", f"accepted {when(h.get('saved', ''))}") for back, h in enumerate(earlier, 1)]
    if Version.ORIGINAL.value in versions:
        out.append((Version.ORIGINAL.value, "first proposed (original)"))
    return out
