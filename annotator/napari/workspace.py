"""The annotation state of one napari viewer: image, layers, history, datastore, engine runs.

Both docks (worklist, annotation) talk to the same :class:`Workspace`, found with
:func:`workspace_for`. Engine work and saves run in worker threads; a request made
while the engine is busy is queued and run afterwards with the latest marks, so no
click is lost and the Qt thread never waits for the engine.
"""

from __future__ import annotations

import time
import weakref
from pathlib import Path

import napari
import numpy as np
from superqt.utils import create_worker
from psygnal import Signal

from annotator.datastore import LocalDatastore, datastore_for_image, fallback_labels_dir
from annotator.engine import CLICK_METHODS, SCRIBBLE_METHODS, choose_click_method
from annotator.engine.deep import DeepClicks
from annotator.engine.history import Change, LabelHistory
from annotator.errors import AnnotatorError
from annotator.io import read_volume
from annotator.io.dicom import holds_dicom
from annotator.io.volume import Volume
from annotator.napari import layers as L
from annotator.samples import is_sample_path
from annotator.settings import Settings

_WORKSPACES: "weakref.WeakKeyDictionary[napari.Viewer, Workspace]" = weakref.WeakKeyDictionary()


def _warm_engine() -> None:
    """Import what the networks need (torch, MONAI: several seconds) so that the first
    click does not wait for it; run in the background once the window is up."""
    import annotator.engine.session  # noqa: F401
    import monai.networks.nets  # noqa: F401 - what annotator.models.networks builds from


def workspace_for(viewer: napari.Viewer) -> "Workspace":
    """The one workspace of ``viewer`` (created on first use)."""
    if viewer not in _WORKSPACES:
        _WORKSPACES[viewer] = Workspace(viewer)
    return _WORKSPACES[viewer]


class Workspace:
    """What is being annotated in a viewer, and the actions on it."""

    image_opened = Signal(str)  # image id ("" when the image has no datastore)
    label_changed = Signal(str)  # method that produced it
    busy_changed = Signal(bool)
    status = Signal(str)
    error = Signal(str)
    saved = Signal(str, str)  # image id, version
    datastore_changed = Signal()

    def __init__(self, viewer: napari.Viewer):
        # weak: _WORKSPACES is keyed weakly by the viewer, which a strong value would keep alive
        self.viewer = weakref.proxy(viewer)
        self.settings = Settings.load()
        self.datastore: LocalDatastore | None = None
        self.image_id = ""
        self.volume: Volume | None = None
        self.history: LabelHistory | None = None
        self.proposed: np.ndarray | None = None  # the latest engine output
        self.method = "auto"  # a click method name, or "auto": a network for the image when installed
        self.label_value = self.settings.presets[0].value
        self.dirty = False  # changes not yet in a draft or final
        self._busy = False
        self._pending: str | None = None
        self._muted = False
        # per label value, a box known to hold all its voxels (absent: unknown, search the image)
        self._bounds: dict[int, tuple] = {}
        create_worker(_warm_engine, _start_thread=True, _ignore_errors=True)

    # ---- opening ------------------------------------------------------------------------

    def open_path(self, path: str | Path) -> None:
        """Open an image file, a DICOM series folder, or a datastore folder.

        Reading runs in a worker thread; errors arrive through :attr:`error`.
        """
        path = Path(path)
        if path.is_dir() and not holds_dicom(path, limit=5):
            self.set_datastore(LocalDatastore(path, labels_dir=self._labels_dir_for(path)))
            first = next((r.id for r in self.datastore.records() if r.status != "labeled"),
                         next(iter(self.datastore.ids()), None))
            if first is not None:
                self.open_image(first)
            return
        def load():
            return read_volume(path), *self._store_for(path)

        def loaded(result):
            volume, store, image_id = result
            self._set_busy(False)
            self.set_datastore(store)
            self.show(volume, image_id)

        self.status.emit(f"opening {path.name} ...")
        self._set_busy(True)
        self._in_thread(load, loaded)

    def set_datastore(self, store: LocalDatastore) -> None:
        self.datastore = store
        if not is_sample_path(store.folder):
            self.settings.last_datastore = str(store.folder)
            self.settings.save()
        self.datastore_changed.emit()

    def open_image(self, image_id: str) -> None:
        """Open one image of the datastore (reading runs in a worker thread)."""
        assert self.datastore is not None
        store = self.datastore
        self.status.emit(f"opening {image_id} ...")
        self._set_busy(True)
        self._in_thread(lambda: store.open_image(image_id),
                        lambda volume: (self._set_busy(False), self.show(volume, image_id)))

    def use_layer(self, layer: napari.layers.Image) -> None:
        """Annotate an image layer opened some other way (plugin use: File > Open, samples)."""
        volume = layer.metadata.get(L.VOLUME_KEY)
        if volume is None:
            data = np.asarray(layer.data)
            if data.ndim != 3:
                raise AnnotatorError(f"layer '{layer.name}' is {data.ndim}-D; Annotator needs a 3-D image")
            scale = tuple(float(s) for s in layer.scale)
            volume = Volume(data, tuple(reversed(scale)), tuple(float(t) for t in reversed(layer.translate)),
                            (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), name=layer.name)
        image_id, store = "", None
        if volume.source.path and Path(volume.source.path).exists():
            store, image_id = self._store_for(Path(volume.source.path))
            self.set_datastore(store)
        self.show(volume, image_id, image_layer=layer)

    def _labels_dir_for(self, folder: Path) -> Path | None:
        """Samples keep their labels in the user data dir, never beside the shipped data."""
        return fallback_labels_dir(folder.resolve()) if is_sample_path(folder) else None

    def _store_for(self, image: Path) -> tuple[LocalDatastore, str]:
        """The datastore (the image's folder) and id of an image file or series folder."""
        return datastore_for_image(image, labels_dir=self._labels_dir_for(image.resolve().parent))

    def show(self, volume: Volume, image_id: str, image_layer=None) -> None:
        """Put ``volume`` and its companion layers in the viewer; load its saved label."""
        self._muted = True
        try:
            for name in (L.SEGMENTATION, L.FOREGROUND, L.BACKGROUND, L.SCRIBBLES):
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)
            if image_layer is None:
                for layer in [lay for lay in self.viewer.layers if L.VOLUME_KEY in lay.metadata]:
                    self.viewer.layers.remove(layer)
                data, kwargs, _ = L.image_layer_data(volume)
                image_layer = self.viewer.add_image(data, **kwargs)
            self.volume, self.image_id = volume, image_id
            label = self._saved_label()
            self.history = LabelHistory({"fg": [], "bg": []}, "saved" if label.any() else "")
            self._bounds.clear()
            self.proposed = None
            self.dirty = False
            affine = L.affine(volume)
            scribbles = self.viewer.add_labels(np.zeros(volume.shape, np.uint8), name=L.SCRIBBLES,
                                               affine=affine, colormap=L.scribble_colormap(), opacity=0.8)
            scribbles.brush_size = max(1, round(min(volume.shape[1:]) / 25))  # a stroke, not a blob
            seg = self.viewer.add_labels(label, name=L.SEGMENTATION, affine=affine,
                                         colormap=L.label_colormap(self.settings.presets), opacity=0.5)
            for name, colour in ((L.BACKGROUND, "#ff00ff"), (L.FOREGROUND, "#00e000")):
                self.viewer.add_points(ndim=3, name=name, affine=affine, face_color=colour,
                                       border_color="white", size=max(2.0, min(volume.shape) / 12),
                                       out_of_slice_display=False)
            self.layer(L.FOREGROUND).events.data.connect(self._points_changed)
            self.layer(L.BACKGROUND).events.data.connect(self._points_changed)
            self.layer(L.SCRIBBLES).events.paint.connect(lambda e: self.request("scribbles"))
            seg.events.paint.connect(self._painted)
            self.viewer.layers.selection.active = self.layer(L.FOREGROUND)
            self.layer(L.FOREGROUND).mode = "add"
            self.viewer.reset_view()
            mid = [int(s) // 2 for s in volume.shape]
            world = (affine @ np.array([*mid, 1.0]))[:3]
            self.viewer.dims.set_point(range(3), tuple(world))
        finally:
            self._muted = False
        self.image_opened.emit(image_id)
        self.status.emit(f"opened {volume.name or image_id}: {' x '.join(map(str, volume.size))} voxels")

    def _saved_label(self) -> np.ndarray:
        assert self.volume is not None
        if self.datastore is not None and self.image_id:
            for version in ("draft", "final"):
                label = self.datastore.label(self.image_id, self.volume, version)
                if label is not None:
                    return label
        return np.zeros(self.volume.shape, np.uint8)

    def layer(self, name: str):
        return self.viewer.layers[name]

    def set_presets(self, presets) -> None:
        """New label names/colours: saved in the settings and shown at once."""
        self.settings.presets = list(presets)
        self.settings.save()
        if self.volume is not None:
            self.layer(L.SEGMENTATION).colormap = L.label_colormap(self.settings.presets)
        if self.label_value not in {p.value for p in presets}:
            self.label_value = presets[0].value

    # ---- engine -------------------------------------------------------------------------

    def _points_changed(self, event) -> None:
        if self._muted or getattr(event, "action", "added") not in ("added", "removed", "changed"):
            return
        self.request("clicks")

    def _painted(self, event=None) -> None:
        if not self._muted:
            self._bounds.clear()
            self.dirty = True
            self.label_changed.emit("paint")  # starts the autosave like an engine step

    def request(self, kind: str) -> None:
        """Run the engine on the current marks; queued while a run is going on."""
        if self.volume is None:
            return
        if self._busy:
            self._pending = kind
            self.status.emit("engine busy: your last input is queued")
            return
        marks = self._marks()
        if kind == "clicks" and not marks["fg"]:
            return
        # only references are taken here; copies and scans of whole volumes run in the worker
        seg, strokes = self.layer(L.SEGMENTATION).data, self.layer(L.SCRIBBLES).data
        volume, value, bound = self.volume, self.label_value, self._bounds.get(self.label_value)
        try:
            method = {"clicks": lambda: choose_click_method(volume, self.method),
                      "automatic": lambda: "deepedit", "scribbles": lambda: "graphcut"}[kind]()
        except AnnotatorError as exc:
            self._failed(exc)
            return
        engine = SCRIBBLE_METHODS[method] if kind == "scribbles" else CLICK_METHODS[method]
        first = isinstance(engine, DeepClicks) and not engine.prepared(volume)

        def work():
            # the engine reads the label and gives back the box it changed; the label is
            # written on the Qt thread. The marks on screen are all the marks of this
            # structure: the result replaces the structure everywhere, other structures stay
            if kind == "automatic":  # every label of the model, over the whole image
                return engine.session(volume).automatic()
            if kind == "clicks":
                result = engine(volume, marks["fg"], marks["bg"], previous=seg, value=value)
            else:
                scribbles = np.array(strokes, np.uint8)
                if not (scribbles == 1).any():
                    return None
                result = engine(volume, scribbles, previous=seg, value=value)
            return result.replacing(seg, value, within=bound)

        self._set_busy(True)
        if first:
            text = f"first click on this image: preparing it for {method} (once per image) ..."
            warning = engine.modality_warning(volume)
            if warning:
                napari.utils.notifications.show_warning(warning)
                text += f"\nNote: {warning}"
            self.status.emit(text)
        else:
            self.status.emit(f"running {method} ({kind}) ...")
        self._in_thread(work, lambda out: self._engine_done(out, marks, volume, value))

    def _marks(self) -> dict:
        def points(name):
            return [tuple(int(round(v)) for v in p) for p in np.asarray(self.layer(name).data)]

        inside = lambda p: all(0 <= v < n for v, n in zip(p, self.volume.shape))
        return {"fg": [p for p in points(L.FOREGROUND) if inside(p)],
                "bg": [p for p in points(L.BACKGROUND) if inside(p)]}

    def _engine_done(self, result, marks, volume, value: int) -> None:
        if result is not None and volume is self.volume:  # not when another image was opened meanwhile
            # only the label: clicks made while the engine ran stay on screen (and are queued)
            seg = self.layer(L.SEGMENTATION)
            before = result.apply(seg.data)
            seg.refresh()
            self.history.push(Change(result.box, before, result.patch, marks, result.method))
            if result.method.endswith("-auto"):  # every label redrawn over the image
                self._bounds.clear()
            else:  # the structure now lies in the box; the others can only have shrunk
                self._bounds[value] = result.box
            self.proposed = np.array(seg.data, copy=True)
            self.dirty = True
            self.status.emit(f"{result.method}: {result.seconds:.2f} s")
            self.label_changed.emit(result.method)
        self._set_busy(False)
        if self._pending:
            kind, self._pending = self._pending, None
            self.request(kind)

    def _in_thread(self, work, done) -> None:
        """Run ``work`` in a worker thread; ``done(result)`` or :meth:`_failed` on the Qt thread."""
        create_worker(work, _connect={"returned": done, "errored": self._failed})

    def _failed(self, exc: Exception) -> None:
        self._set_busy(False)
        self._pending = None
        message = str(exc) if isinstance(exc, AnnotatorError) else f"{type(exc).__name__}: {exc}"
        self.error.emit(message)
        napari.utils.notifications.show_error(message)

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.busy_changed.emit(busy)

    @property
    def busy(self) -> bool:
        return self._busy

    # ---- history ------------------------------------------------------------------------

    def _step(self, move) -> None:
        """Undo or redo one change: its box is written back into the layer, its marks shown."""
        seg = self.layer(L.SEGMENTATION)
        marks = move(seg.data)
        seg.refresh()
        self._bounds.clear()
        self._muted = True
        try:
            for name, key in ((L.FOREGROUND, "fg"), (L.BACKGROUND, "bg")):
                pts = np.array(marks.get(key, []), float).reshape(-1, 3)
                if len(self.layer(name).data) != len(pts) or not np.allclose(self.layer(name).data, pts):
                    self.layer(name).data = pts
        finally:
            self._muted = False
        self.dirty = True

    def undo(self) -> None:
        if self.history and self.history.can_undo:
            self._step(self.history.undo)
            self.status.emit("undone")

    def redo(self) -> None:
        if self.history and self.history.can_redo:
            self._step(self.history.redo)
            self.status.emit("redone")

    def clear(self) -> None:
        """Remove marks and label of the current image (undoable)."""
        if self.volume is None:
            return
        self._muted = True
        self.layer(L.SCRIBBLES).data = np.zeros(self.volume.shape, np.uint8)
        self._muted = False
        seg = self.layer(L.SEGMENTATION)
        before = np.array(seg.data, copy=True)
        seg.data[...] = 0
        everything = tuple(slice(0, n) for n in self.volume.shape)
        self.history.push(Change(everything, before, np.broadcast_to(np.uint8(0), before.shape),
                                 {"fg": [], "bg": []}, "clear"))
        self._step(lambda label: self.history.marks)
        self.status.emit("cleared")

    # ---- saving -------------------------------------------------------------------------

    @property
    def has_unsaved_work(self) -> bool:
        return self.volume is not None and self.dirty

    def current_label(self) -> np.ndarray:
        return np.asarray(self.layer(L.SEGMENTATION).data)

    def accept(self) -> bool:
        """Save the current label as final (and the model's proposal as original)."""
        if self.volume is None:
            return False
        if self.datastore is None or not self.image_id:
            self.error.emit("this image has no folder to save into; open it from a file or folder")
            return False
        start = time.perf_counter()
        try:
            self.datastore.accept(self.image_id, self.current_label(), self.volume, proposed=self.proposed)
        except AnnotatorError as exc:
            self._failed(exc)
            return False
        self.dirty = False
        self.saved.emit(self.image_id, "final")
        self.status.emit(f"accepted {self.image_id} ({time.perf_counter() - start:.2f} s)")
        return True

    def save_draft(self) -> bool:
        """Keep the work in progress as a draft (autosave and on leaving an image)."""
        if not self.has_unsaved_work or self.datastore is None or not self.image_id:
            return False
        try:
            self.datastore.save_draft(self.image_id, self.current_label(), self.volume)
        except AnnotatorError as exc:
            self._failed(exc)
            return False
        self.dirty = False
        self.saved.emit(self.image_id, "draft")
        self.status.emit(f"draft of {self.image_id} saved")
        return True

    def discard(self) -> None:
        self.dirty = False

    def next_image_id(self) -> str | None:
        """The next image in the datastore's order that is not labeled yet."""
        if self.datastore is None:
            return None
        records = self.datastore.records()
        ids = [r.id for r in records]
        start = ids.index(self.image_id) + 1 if self.image_id in ids else 0
        for record in records[start:] + records[:start]:
            if record.status != "labeled" and record.id != self.image_id:
                return record.id
        return None

