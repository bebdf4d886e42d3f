"""The viewer side of an annotation session: the layers that show it, the input that feeds it.

Each napari viewer has one :class:`Workspace` (:func:`workspace_for`), holding one Qt-free
:class:`~annotator.annotation.AnnotationSession`. The docks are views of that session;
the keyboard shortcuts call its actions. Work runs in worker threads through
:class:`QtRunner`, whose answers arrive on the Qt thread.
"""

from __future__ import annotations

import atexit
import time
import weakref
from pathlib import Path

import napari
import numpy as np
from napari.utils.key_bindings import KeyCode, KeyMod
from qtpy.QtCore import QEvent, QObject, QThreadPool, QTimer, Signal as QtSignal
from qtpy.QtWidgets import QDockWidget, QMessageBox
from psygnal import Signal as PsygnalSignal
from superqt.utils import create_worker

from annotator.annotation import AnnotationSession, Job
from annotator.annotation.session import image_labels
from annotator.datastore import open_datastore
from annotator.datastore.places import Kind, classify
from annotator.engine.loading import finish_warm_up, warm_up
from annotator.errors import AnnotatorError
from annotator.io.volume import Volume
from annotator.models.card import METHOD_TITLES
from annotator.napari import PLUGIN
from annotator.napari import layers as L
from annotator.napari.key_bindings import bind_keys
from annotator.napari.planes import PLANES, acquired, slice_names, view

_WORKSPACES: "weakref.WeakKeyDictionary[napari.Viewer, Workspace]" = weakref.WeakKeyDictionary()


#: work running in worker threads, with its job and the bridge that carries its progress:
#: kept until the work ends, so that work outliving the window that started it (a folder
#: search when the window closes) does not find its signals deleted
_RUNNING: dict = {}


@atexit.register
def _finish_background_work() -> None:
    """At exit, work still running in worker threads ends first: a thread cut off while
    Python shuts down can crash it. Long work (a folder search) is cancelled and stops at
    its next report; short work (a count of the label, an engine step) finishes."""
    for job, _bridge in list(_RUNNING.values()):
        job.cancel()
    QThreadPool.globalInstance().waitForDone(30_000)


def workspace_for(viewer: napari.Viewer) -> "Workspace":
    """The one workspace of ``viewer`` (created on first use)."""
    # plugin docks are handed a public-only proxy of the viewer: one workspace for both
    viewer = getattr(viewer, "__wrapped__", viewer)
    if viewer not in _WORKSPACES:
        _WORKSPACES[viewer] = Workspace(viewer)
    return _WORKSPACES[viewer]


def follow(widget: QObject, *links: tuple) -> None:
    """Connect each ``(signal, slot)`` in ``links`` for as long as ``widget`` lives. The
    session outlives its docks, and work still running when the window closes (a draft
    being written) answers after the docks are gone: a deleted dock must not hear it."""
    for signal, slot in links:
        signal.connect(slot)

    def cut(*_args) -> None:
        for signal, slot in links:
            signal.disconnect(slot)

    widget.destroyed.connect(cut)


class _Bridge(QObject):
    """Carries a job's progress from its worker thread to the Qt thread."""

    progress = QtSignal(object, str, float)


class QtRunner:
    """Runs work in a worker thread; answers and progress arrive on the Qt thread."""

    def __init__(self):
        self._bridge = _Bridge()
        self._bridge.progress.connect(lambda report, text, fraction: report(text, fraction))

    def start(self, work, done, failed, job: Job) -> None:
        report, bridge = job._on_progress, self._bridge
        if report is not None:
            job._on_progress = lambda text, fraction: bridge.progress.emit(report, text, fraction)
        worker = create_worker(work, job, _start_thread=False, _connect={"returned": done, "errored": failed})
        _RUNNING[worker] = (job, bridge)
        worker.finished.connect(lambda w=worker: _RUNNING.pop(w, None))
        worker.start()


#: said when a click is made, or an annotation mode chosen, in napari's 3-D view
THREE_D = ("the 3-D view is for looking: clicks and scribbles go on a slice. "
           "Back to 2-D: Ctrl+Y (napari's 2D/3D button)")


class Workspace:
    """Layers of one viewer kept in step with its annotation session."""

    window_shown = PsygnalSignal(str)  # the display window chosen (a name of layers.WINDOWS)
    plane_shown = PsygnalSignal(str)  # the view plane shown (a name of planes.PLANES)

    def __init__(self, viewer: napari.Viewer):
        # weak: _WORKSPACES is keyed weakly by the viewer, which a strong value would keep alive
        self.viewer = weakref.proxy(viewer)
        self.session = AnnotationSession(QtRunner(), ask_leave=self._ask_leave)
        self.ask_close = self._ask_close  # (message) -> whether the window closes all the same
        self._muted = False
        self._image_layer = None  # an image layer opened some other way (plugin use)
        self._image_limits = None  # the contrast limits of the image's layer, deleted, until it is back
        self._coloured: list = []  # the labels whose colours the label layer shows
        s = self.session
        window = viewer.window._qt_window  # what is shown goes with it; the session stays
        follow(window, (s.image_opened, self._show), (s.label_changed, self._label_changed),
               (s.label_map_added, self._label_map_added),
               (s.marks_changed, self._marks_changed), (s.labels_changed, self._labels_changed),
               (s.error, napari.utils.notifications.show_error),
               (s.warning, napari.utils.notifications.show_warning))
        self._autosave = QTimer(window)
        self._autosave.setInterval(1000)
        self._autosave.timeout.connect(s.tick)
        self._autosave.start()
        self._windows: list = []
        self._guards: list[weakref.WeakMethod] = []  # the docks' questions before the window closes
        self.shortcuts = bind_keys(viewer, self)
        follow(window, (viewer.layers.events.removed, self._layer_removed),
               (viewer.layers.events.inserted, self._layer_inserted),
               (viewer.dims.events.ndisplay, self._aim_cursor))
        # the network stack loads once an image is up (not while the window starts: they
        # would compete for the CPU); a window closing first never starts it, or waits for it
        self._warm = QTimer(window)
        self._warm.setSingleShot(True)
        self._warm.setInterval(300)
        self._warm.timeout.connect(warm_up)
        window.installEventFilter(_WarmUpFilter(window, self._warm))
        self.last_redraw_s = 0.0  # the label layer's last redraw after an engine step
        self.shown_plane = ""  # the view plane shown (a name of planes.PLANES)

    # ---- opening ------------------------------------------------------------------------

    def use_layer(self, layer: napari.layers.Image) -> None:
        """Annotate an image layer opened some other way (plugin use: File > Open, samples)."""
        volume = layer.metadata.get(L.VOLUME_KEY)
        if volume is None and self._read_again(layer):
            return
        if volume is None:
            volume = L.layer_volume(layer)
        if not self.session.leave():
            return
        moved = L.place_like_annotation(layer, volume)
        path = volume.source.path
        shown = self._shown_with(layer, volume)
        if not (path and Path(path).exists()):
            self._annotate(layer, volume, companions=shown)
            if moved:
                self.session.warning.emit(f"'{layer.name}' is now shown on its own grid, upright, as its "
                                          "annotation is (its transform turned or flipped it)")
            return

        def work(job):  # its folder is searched for images in the file worker (a home folder takes long)
            store, image_id = open_datastore(path, progress=job.report)
            # the other volumes of its file or series came with it as layers; else the store finds
            # them (an nnU-Net case's other channel files)
            others = shown or store.companions(image_id, volume)
            return store, image_id, image_labels(store, image_id, volume), others

        def done(found):
            store, image_id, (label, maps, saved), others = found
            self.session.set_datastore(store)
            self._annotate(layer, volume, label, image_id, maps, saved, others)

        self.session.files.submit(f"finding the images beside {layer.name}", work, done, self.session._failed)

    def _read_again(self, layer: napari.layers.Image) -> bool:
        """A layer that another reader made of a file or a DICOM series the Annotator reads
        (napari's built-in reader takes any file and folder, and keeps no spacing or
        orientation) is opened again with the Annotator reader, as the Worklist opens it, and
        hidden; whether it was."""
        source = layer.source
        if not source.path or source.reader_plugin in (None, PLUGIN):
            return False
        if classify(source.path) not in (Kind.IMAGE_FILE, Kind.DICOM_SERIES):
            return False
        if not self.session.leave():  # the person keeps the image open: nothing changes
            return True
        self.session.warning.emit(
            f"'{layer.name}' was read by the {source.reader_plugin} reader, which keeps no spacing or orientation: "
            "it is opened again with the Annotator reader (the layer is hidden)")
        layer.visible = False
        self.session.open(source.path)
        return True

    def _annotate(self, layer, volume: Volume, label: np.ndarray | None = None, image_id: str = "",
                  label_maps: dict | None = None, saved: list | None = None,
                  companions: list[Volume] | None = None) -> None:
        """Annotate ``volume`` shown in ``layer`` (the layer stays: no second copy of the
        image), with what its folder holds for it (:func:`image_labels`) and its
        companions (those without a layer get one)."""
        self._image_layer = layer
        layer.metadata[L.VOLUME_KEY] = volume  # found again as the image annotated (brought back)
        try:
            self.session.show(volume, label, label_maps, companions, saved, image_id)
        finally:
            self._image_layer = None

    def _shown_with(self, layer, volume: Volume) -> list[Volume]:
        """The volumes of the other layers that came from ``volume``'s file or DICOM series
        on its grid (the other channels of a 4-D file, a series' other echoes), in the
        order they were read: its companions."""
        same = (volume.source.path, volume.source.series_uid, volume.shape)
        found = [v for other in self.viewer.layers if other is not layer
                 and isinstance(v := other.metadata.get(L.VOLUME_KEY), Volume) and v is not volume
                 and (v.source.path, v.source.series_uid, v.shape) == same]
        return found[::-1]  # the reader puts the first volume on top

    def watch_window(self, window) -> None:
        """Ask about unsaved work, and what the docks' guards ask, before ``window`` (the
        viewer's main window) closes."""
        if window is not None and all(w() is not window for w in self._windows):
            self._windows.append(weakref.ref(window))  # weak: a dock must not keep the window
            window.installEventFilter(_CloseFilter(window, self))

    def guard_close(self, widget: QObject, may_close) -> None:
        """``may_close()`` (a method of ``widget``, a dock) is asked too before the window
        closes, after the unsaved work, for as long as ``widget`` lives: it may ask the person
        and answers whether the window may close."""
        guard = weakref.WeakMethod(may_close)  # weak: the workspace must not keep a dock
        self._guards.append(guard)
        widget.destroyed.connect(lambda *_: self._guards.remove(guard))

    def may_close(self) -> bool:
        """Whether the window may close: the unsaved work asked about first (accepted, kept
        as a draft or discarded), then labels that wait for the server, then each dock's
        guard; any of them can say no."""
        if not self.session.leave():
            return False
        unsent = self.session.unsent_on_close()
        if unsent and not self.ask_close(unsent):
            return False
        return all(guard()() for guard in list(self._guards) if guard() is not None)

    def _ask_close(self, message: str) -> bool:
        box = QMessageBox(QMessageBox.Warning, "Labels not sent", message + "\n\nSend now, in the Worklist, tries "
                          "again; so does connecting to the server again (Connect to server...).")
        close = box.addButton("Close", QMessageBox.AcceptRole)
        box.addButton(QMessageBox.Cancel)
        box.setDefaultButton(QMessageBox.Cancel)
        box.setObjectName("unsent-prompt")
        box.exec_()
        return box.clickedButton() is close

    def _ask_leave(self, image_name: str) -> str:
        """Accept, keep as draft, discard or cancel; for an image with nowhere to keep its
        label (a layer made in memory) only discard or cancel, and how to keep it first."""
        name = image_name or "this image"
        if not self.session.can_keep:
            box = QMessageBox(QMessageBox.Question, "Unsaved annotation",
                              f"'{name}' has changes that cannot be kept here: it has no file or folder to keep "
                              f"its label beside. To keep them, cancel and save the '{L.SEGMENTATION}' layer "
                              "(File > Save Selected Layers).")
            choices = {}
        else:
            box = QMessageBox(QMessageBox.Question, "Unsaved annotation", f"'{name}' has changes that are not accepted.")
            choices = {box.addButton("Accept", QMessageBox.AcceptRole): "accept",
                       box.addButton("Keep as draft", QMessageBox.ActionRole): "draft"}
        choices[box.addButton("Discard", QMessageBox.DestructiveRole)] = "discard"
        box.addButton(QMessageBox.Cancel)
        box.setObjectName("unsaved-prompt")
        box.exec_()
        return choices.get(box.clickedButton(), "cancel")

    # ---- the session shown --------------------------------------------------------------

    def _show(self, image_id: str) -> None:
        self._warm.start()
        s = self.session
        volume = s.volume
        self._muted = True
        try:
            # the new image comes in before the old layers go: with no 3-D layer between,
            # napari reshuffles its sliders, the canvas is resized and repainted at once,
            # half rebuilt, and that repaint crashed the app in the GL driver (a segmentation
            # fault: scribbling, then Next twice; clicks, then Next)
            old = [lay for lay in self.viewer.layers if lay.name in (*L.ANNOTATION_LAYERS, L.RANGE)
                   or lay.metadata.get(L.LABEL_MAP_KEY)]
            added = []
            if self._image_layer is None:
                old += [lay for lay in self.viewer.layers if L.VOLUME_KEY in lay.metadata]
                data, kwargs, _ = L.image_layer_data(volume)
                added.append((self.viewer.add_image(data, **kwargs), kwargs["name"]))
            kept = [lay.metadata.get(L.VOLUME_KEY) for lay in self.viewer.layers if lay not in old]
            for other in s.companions:  # beneath the image, in their order, hidden: one click shows each
                if not any(other is k for k in kept):  # (plugin use: those opened with it are shown already)
                    data, kwargs, _ = L.image_layer_data(other)
                    added.append((self.viewer.add_image(data, visible=False, **kwargs), kwargs["name"]))
                    self.viewer.layers.move(len(self.viewer.layers) - 1, 0)
            # the image's maps shown again (a deleted layer brought back): as they were shown
            shown = {lay.metadata[L.LABEL_MAP_KEY]: lay.visible for lay in old
                     if lay.metadata.get(L.LABEL_MAP_KEY) and lay.metadata.get(L.LABEL_OF_KEY) is volume}
            for layer in old:
                self.viewer.layers.remove(layer)
            for layer, name in added:  # named as its image, not "[1]" beside the old one of that name
                layer.name = name
            affine = L.affine(volume)
            first = next(iter(s.label_maps), None)
            for map_id in s.label_maps:  # found beside the image: shown, not edited
                self._label_map_layer(map_id, shown.get(map_id, map_id == first))  # the one offered
            scribbles = self.viewer.add_labels(s.scribbles, name=L.SCRIBBLES, affine=affine,
                                               colormap=L.scribble_colormap(), opacity=0.8)
            scribbles.brush_size = L.brush_size(volume.shape, 25)  # a stroke, not a blob
            seg = self.viewer.add_labels(s.label, name=L.SEGMENTATION, affine=affine,
                                         colormap=L.label_colormap(s.labels), opacity=0.5,
                                         features=L.preset_features(s.labels), metadata={L.LABEL_OF_KEY: volume})
            seg.brush_size = L.brush_size(volume.shape, 50)  # napari's 10 voxels: a third of a hippocampus crop
            self._coloured = list(s.labels)  # the labels the layer's colours show
            seg.selected_label = s.label_value
            # the label picked in the layer's own controls is the one clicks and scribbles make
            seg.events.selected_label.connect(lambda e, seg=seg: None if self._muted or not seg.selected_label
                                              else s.choose_label(seg.selected_label))
            for name, colour in ((L.BACKGROUND, "#ff00ff"), (L.FOREGROUND, "#00e000")):
                self.viewer.add_points(ndim=3, name=name, affine=affine, face_color=colour,
                                       border_color="white", size=L.click_size(volume.shape),
                                       canvas_size_limits=L.CLICK_PIXELS, out_of_slice_display=False)
            self.layer(L.FOREGROUND).events.data.connect(self._points_changed)
            self.layer(L.BACKGROUND).events.data.connect(self._points_changed)
            scribbles.events.paint.connect(self._scribbled)
            # Ctrl+Z on the scribbles takes back a stroke, and the label follows the strokes left
            scribbles.bind_key(KeyMod.CtrlCmd | KeyCode.KeyZ, lambda layer: self._scribbled(layer.undo()),
                               overwrite=True)
            scribbles.bind_key(KeyMod.CtrlCmd | KeyMod.Shift | KeyCode.KeyZ,
                               lambda layer: self._scribbled(layer.redo()), overwrite=True)
            seg.events.paint.connect(self._painted)
            # Ctrl+Z on the label layer is the session's undo: one history of engine steps and strokes
            seg.bind_key(KeyMod.CtrlCmd | KeyCode.KeyZ, lambda _layer: s.undo(), overwrite=True)
            seg.bind_key(KeyMod.CtrlCmd | KeyMod.Shift | KeyCode.KeyZ, lambda _layer: s.redo(), overwrite=True)
            seg.events.data.connect(self._label_replaced)
            self.viewer.layers.selection.active = self.layer(L.FOREGROUND)
            self.layer(L.FOREGROUND).mode = "add"
            start = L.first_view(volume.shape, [s.label, *s.label_maps.values()])
            self.viewer.dims.set_point(range(3), tuple((affine @ np.array([*start, 1.0]))[:3]))
        finally:
            self._muted = False
        self.plane(acquired(volume))  # the plane its slices lie in

    def plane(self, name: str) -> None:
        """View the image in the plane ``name`` (axial, coronal, sagittal), oriented as
        radiologists read it; the slice shown goes through the same point."""
        volume = self.session.volume
        if volume is None or self.viewer.dims.ndim != 3:
            return
        order, orientation = view(volume, name)
        if tuple(self.viewer.dims.axis_labels) != slice_names(volume):
            self.viewer.dims.axis_labels = slice_names(volume)  # the slider says which slices it walks
            # napari widens the slider's label when a person edits it, not when code sets it
            qt_dims = getattr(getattr(self.viewer.window, "_qt_viewer", None), "dims", None)
            getattr(qt_dims, "_resize_axis_labels", lambda: None)()
        self.viewer.dims.order = order
        getattr(self.viewer, "scene", self.viewer).camera.orientation2d = orientation  # napari < 0.9: viewer.camera
        self.viewer.reset_view()
        self.shown_plane = name
        self.plane_shown.emit(name)

    def sliced_axis(self) -> int:
        """The image's array axis the view walks through (its slices are the ones shown):
        world axis i of the image's layers is its array axis i (:mod:`planes`)."""
        return int(self.viewer.dims.order[0]) if self.viewer.dims.ndim == 3 else 0

    def outline(self) -> None:
        """Show the label (and the label maps beside it) filled, or as outlines one voxel
        wide, so that the boundary can be checked against the image under it."""
        layers = [lay for lay in self.viewer.layers if lay.name == L.SEGMENTATION or lay.metadata.get(L.LABEL_MAP_KEY)]
        if not layers:
            return
        width = 0 if layers[0].contour else 1
        for layer in layers:
            layer.contour = width
        self.session.status.emit("labels as outlines" if width else "labels filled")

    def show_range(self, low: float, high: float) -> None:
        """Show the image's voxels within ``low`` to ``high`` (the range Flood and Clip
        use, being chosen) in a layer over the image and its label maps, under the label,
        until one of them runs or another image opens; the layer chosen in the layer list
        stays chosen."""
        volume = self.session.volume
        if volume is None or self.image_layer() is None:
            return
        inside = ((volume.array >= low) & (volume.array <= high)).view(np.uint8)
        if L.RANGE in self.viewer.layers:
            self.layer(L.RANGE).data = inside
            return
        active = self.viewer.layers.selection.active
        layer = self.viewer.add_labels(inside, name=L.RANGE, affine=L.affine(volume), opacity=0.45,
                                       colormap=L.range_colormap())
        if L.SEGMENTATION in self.viewer.layers:  # over the image and its label maps, under the label
            self.viewer.layers.move(self.viewer.layers.index(layer), self.viewer.layers.index(L.SEGMENTATION))
        if active is not None:
            self.viewer.layers.selection.active = active

    def hide_range(self) -> None:
        """The range's layer gone (:meth:`show_range`)."""
        if L.RANGE in self.viewer.layers:
            self.viewer.layers.remove(L.RANGE)

    def _range_step(self, step: str) -> None:
        """Flood or Clip (``step``), the range shown no longer."""
        self.hide_range()
        self.session.tidy(step)

    def next_plane(self) -> None:
        """View the image in the next plane: axial, coronal, sagittal, axial ..."""
        names = list(PLANES)
        self.plane(names[(names.index(self.shown_plane) + 1) % len(names)] if self.shown_plane in names else names[0])
        self.session.status.emit(f"{self.shown_plane} view")

    def layer(self, name: str):
        return self.viewer.layers[name]

    def _layer_removed(self, event) -> None:
        """A layer of the annotation deleted while its image is shown (the layer list's
        Delete key, its bin), the image's own layer among them, is put back: the session
        still holds what it showed, and opening the same image again would not show it.
        With the image and all the annotation's layers gone (the viewer cleared, the window
        closing), or with no Annotator dock open, nothing comes back."""
        layer = event.value
        name = getattr(layer, "name", "")
        image = getattr(layer, "metadata", {}).get(L.VOLUME_KEY)
        ours = name in L.ANNOTATION_LAYERS or (image is not None and image is self.session.volume)
        if not self._muted and self.session.volume is not None and ours and self._docks_open():
            if image is not None:  # it comes back as it was shown (its window), not as it first opened
                self._image_limits = tuple(layer.contrast_limits)
            QTimer.singleShot(0, lambda: self._bring_back(name))

    def _layer_inserted(self, event) -> None:
        """A file opened into the viewer another way than the Annotator's own (plugin use:
        File > Open, which gives a label map a Labels layer) while an image is annotated,
        that labels it, joins its label maps as a file handed over does
        (:meth:`AnnotationSession.add_label_file`): its layer gives way to the label map's
        (Use as label makes it the label). A Labels layer no file gave (napari's new labels
        layer) stays the person's."""
        layer = event.value
        path = getattr(layer.source, "path", None)
        if (self._muted or self.session.volume is None or not isinstance(layer, napari.layers.Labels)
                or layer.metadata.get(L.LABEL_MAP_KEY) or layer.name in L.ANNOTATION_LAYERS or not path):
            return

        def joined():
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)  # the label map's layer shows it now

        self.session.add_label_file(Path(path), joined=joined)

    def _docks_open(self) -> bool:
        """Whether an Annotator dock is in the window: with all of them closed (plugin
        use: the person is done annotating) the layers are the person's to delete."""
        try:
            docks = self.viewer.window._qt_window.findChildren(QDockWidget)
        except (ReferenceError, RuntimeError):  # the viewer, or its window, is gone
            return False
        return any(type(dock.widget()).__module__.startswith("annotator.")
                   for dock in docks if dock.widget() is not None)

    def _aim_cursor(self, event=None) -> None:
        """In 3-D napari asks a label layer that has features (the label names) for its
        value along the view direction of the last mouse event on the canvas; after one in
        2-D there is none, and the label layer chosen or added in 3-D before the mouse
        moved there raised a TypeError (napari 0.9: a deleted layer was then brought back
        in part). The camera's direction stands in until the mouse moves."""
        viewer = self.viewer
        if viewer.dims.ndisplay == 3 and viewer.cursor._view_direction is None:
            viewer.cursor._view_direction = getattr(viewer, "scene", viewer).camera.calculate_nd_view_direction(
                viewer.dims.ndim, viewer.dims.displayed)

    def _bring_back(self, name: str) -> None:
        try:
            image = self.image_layer()
            left = [n for n in L.ANNOTATION_LAYERS if n in self.viewer.layers]
            if self.session.volume is None or (image is None and not left) \
                    or (image is not None and len(left) == len(L.ANNOTATION_LAYERS)):
                return
            point, plane = self.viewer.dims.point, self.shown_plane
            camera = getattr(self.viewer, "scene", self.viewer).camera
            centre, zoom = camera.center, camera.zoom
        except (ReferenceError, RuntimeError):  # the viewer, or its window, is gone
            return
        self._image_layer = image  # shown again around the image as it is (made again if deleted)
        try:
            self._show(self.session.image_id)
        finally:
            self._image_layer = None
        if image is None and self._image_limits is not None:
            L.show_limits(self.image_layer(), *self._image_limits)
        self._image_limits = None
        self._marks_changed()
        self.plane(plane or acquired(self.session.volume))
        self.viewer.dims.point = point
        camera.center, camera.zoom = centre, zoom
        self.session.warning.emit(f"the '{name}' layer is part of the annotation: shown again "
                                  "(its eye in the layer list hides it)")

    def _points_changed(self, event) -> None:
        if self._muted or getattr(event, "action", "added") not in ("added", "removed", "changed"):
            return
        if getattr(event, "action", "") == "added" and self.viewer.dims.ndisplay == 3:
            # napari puts a click made in 3-D at the depth of the view's centre, not on what
            # is seen there: the engine would segment whatever lies at that depth
            self._muted = True
            try:
                event.source.data = np.asarray(event.source.data)[:-1]
            finally:
                self._muted = False
            self._say_if_3d()
            return
        if not all(name in self.viewer.layers for name in (L.FOREGROUND, L.BACKGROUND)):
            return  # one deleted: both come back with the session's marks
        points = lambda name: [tuple(int(round(v)) for v in p) for p in np.asarray(self.layer(name).data)]
        self._to_answering_plane(event)
        self.session.set_marks(points(L.FOREGROUND), points(L.BACKGROUND))

    def _to_answering_plane(self, event) -> None:
        """A click added in a plane the method does not answer in (DeepGrow 2D answers on
        the image's own slices): that plane is shown, through the click, so that the
        answer is seen where it is drawn."""
        volume = self.session.volume
        if getattr(event, "action", "added") != "added" or volume is None or not len(event.source.data):
            return
        own = acquired(volume)
        method = None if self.shown_plane == own else self.session.click_method()
        if method is None or not method.on_slices:
            return
        click = np.asarray(event.source.data[-1], float)
        self.viewer.dims.set_point(range(3), tuple((L.affine(volume) @ np.array([*click, 1.0]))[:3]))
        self.plane(own)
        self.session.status.emit(f"{own} view: {METHOD_TITLES.get(method.name, method.name)} answers on the "
                                 f"{own} slices the image was acquired in")

    def _scribbled(self, event=None) -> None:
        # napari says a dab or a fill is painted before it writes it: the engine runs once it is written
        QTimer.singleShot(0, self._run_scribbles)

    def _run_scribbles(self) -> None:
        if L.SCRIBBLES in self.viewer.layers:
            # the layer's array is the session's, unless a script replaced it with ``layer.data = ...``
            self.session.scribbles = np.asarray(self.layer(L.SCRIBBLES).data)
            self.session.request("scribbles")

    def _painted(self, event) -> None:
        if not self._muted:
            stroke = L.stroke(getattr(event, "value", ()) or (), self.session.label)
            self.session.painted(*(stroke or ()))

    def _label_replaced(self, event=None) -> None:
        """A script set the segmentation layer's data: the label takes it (undoable), and the
        layer shows the session's label again, or, where it holds a value a label cannot (a
        negative one or one above 65535, which would wrap round) or lies on another grid,
        shows it as it was, and a warning says why."""
        data = np.asarray(self.layer(L.SEGMENTATION).data)
        if self._muted or data is self.session.label or self.session.volume is None:
            return
        if data.shape != self.session.label.shape:
            self.session.warning.emit(
                f"the segmentation layer was given {'x'.join(map(str, data.shape[::-1]))} voxels (x,y,z), but "
                f"{self.session.image_id} has {'x'.join(map(str, self.session.label.shape[::-1]))}: its label "
                "is shown again, as it was")
        else:
            try:
                self.session.replace_label(data, "the segmentation layer's data")
            except AnnotatorError as exc:
                self.session.warning.emit(str(exc))
        self._show_label()

    def _show_label(self) -> None:
        """The segmentation layer shows the session's label array (one a script set, or the
        session widened to hold a value above 255, is replaced by it)."""
        layer = self.layer(L.SEGMENTATION)
        if layer.data is not self.session.label:
            self._muted = True
            try:
                layer.data = self.session.label
            finally:
                self._muted = False

    def _label_changed(self, box, method: str) -> None:
        if L.SEGMENTATION in self.viewer.layers and self.layer(L.SEGMENTATION).data is not self.session.label:
            self._show_label()
        elif L.SEGMENTATION in self.viewer.layers and method != "paint":
            start = time.perf_counter()
            L.refresh_box(self.layer(L.SEGMENTATION), box)
            self.last_redraw_s = time.perf_counter() - start

    def _marks_changed(self) -> None:
        self._muted = True
        try:
            for name, key in ((L.FOREGROUND, "fg"), (L.BACKGROUND, "bg")):
                if name not in self.viewer.layers:
                    continue
                pts = np.array(self.session.marks.get(key, []), float).reshape(-1, 3)
                if len(self.layer(name).data) != len(pts) or not np.allclose(self.layer(name).data, pts):
                    self.layer(name).data = pts
            if L.SCRIBBLES in self.viewer.layers:
                self.layer(L.SCRIBBLES).refresh()
        finally:
            self._muted = False

    # ---- actions the shortcuts and buttons share -----------------------------------------

    def mode(self, name: str) -> None:
        """Make the clicks layer ``name`` active, adding points."""
        if name in self.viewer.layers:
            layer = self.layer(name)
            self.viewer.layers.selection.active = layer
            layer.mode = "add"
            self._say_if_3d()

    def scribble(self, value: int) -> None:
        """Paint scribbles of ``value`` (1 foreground, 2 background)."""
        if L.SCRIBBLES in self.viewer.layers:
            layer = self.layer(L.SCRIBBLES)
            self.viewer.layers.selection.active = layer
            layer.selected_label = value
            layer.mode = "paint"
            self._say_if_3d()

    def _say_if_3d(self) -> None:
        if self.viewer.dims.ndisplay == 3:
            self.session.warning.emit(THREE_D)

    def _labels_changed(self) -> None:
        """The labels offered or the one chosen changed: the label layer's colours and brush follow."""
        if L.SEGMENTATION in self.viewer.layers:
            seg = self.layer(L.SEGMENTATION)
            muted, self._muted = self._muted, True  # the layer's own events must not choose back
            try:
                if self._coloured != self.session.labels:  # a new colour map redraws the label
                    seg.colormap = L.label_colormap(self.session.labels)
                    seg.features = L.preset_features(self.session.labels)
                    self._coloured = list(self.session.labels)
                seg.selected_label = self.session.label_value
            finally:
                self._muted = muted

    def image_layer(self):
        """The image layer being annotated (None before one is open)."""
        if self._image_layer is not None:
            return self._image_layer
        return next((lay for lay in self.viewer.layers if L.VOLUME_KEY in lay.metadata
                     and lay.metadata[L.VOLUME_KEY] is self.session.volume), None)

    def _label_map_layer(self, map_id: str, visible: bool):
        """A layer of the open image's label map ``map_id`` (shown, not edited)."""
        s = self.session
        named = {v: n for n, v in s.label_map_names.get(map_id, {}).items()}
        return self.viewer.add_labels(s.label_maps[map_id], name=f"{map_id} (label map)", affine=L.affine(s.volume),
                                      opacity=0.35, visible=visible, features=L.label_features(named),
                                      metadata={L.LABEL_MAP_KEY: map_id, L.LABEL_OF_KEY: s.volume})

    def _label_map_added(self, map_id: str) -> None:
        """A label file handed over is now one of the image's label maps: its layer, beneath
        the strokes and the label, the one shown."""
        volume = self.session.volume
        for layer in list(self.viewer.layers):
            if layer.metadata.get(L.LABEL_MAP_KEY) == map_id and layer.metadata.get(L.LABEL_OF_KEY) is volume:
                self.viewer.layers.remove(layer)  # handed over again: the new one
        layer = self._label_map_layer(map_id, True)
        below = next((i for i, lay in enumerate(self.viewer.layers) if lay.name == L.SCRIBBLES), None)
        if below is not None:
            self.viewer.layers.move(self.viewer.layers.index(layer), below)
        self.show_label_map(map_id)

    def show_label_map(self, map_id: str | None) -> None:
        """Show the label map ``map_id`` (the one the dock's Label map offers to use), the
        others hidden: with several all hidden, the one about to be used was not seen."""
        for layer in self.viewer.layers:
            if layer.metadata.get(L.LABEL_MAP_KEY):
                layer.visible = layer.metadata[L.LABEL_MAP_KEY] == map_id

    def next_volume(self) -> None:
        """Show the image's next volume (the one annotated, then its companions: other
        channels, echoes, time points) in place of the one shown."""
        s = self.session
        volumes = [s.volume, *s.companions]
        layers = [lay for v in volumes for lay in self.viewer.layers if lay.metadata.get(L.VOLUME_KEY) is v]
        if len(layers) < 2:
            s.status.emit("this image has no other volume to show")
            return
        shown = next((i for i, lay in enumerate(layers) if lay.visible), -1)
        for layer in layers:
            layer.visible = False
        layers[(shown + 1) % len(layers)].visible = True
        s.status.emit(f"showing {layers[(shown + 1) % len(layers)].name}")

    def window(self, name: str) -> None:
        """Show the image through the display window ``name`` (see ``layers.WINDOWS``)."""
        layer, volume = self.image_layer(), self.session.volume
        if layer is not None and volume is not None:
            L.set_window(layer, volume, name)
            self.window_shown.emit(name)

    def actions(self) -> dict:
        """Shortcut and button actions by name (the keys of ``SHORTCUTS``, and buttons' without one)."""
        s = self.session
        windows = {f"window_{name}": (lambda n=name: self.window(n)) for name in L.WINDOWS if name != "percentiles"}
        on_an_image = {**windows, "fg": lambda: self.mode(L.FOREGROUND), "bg": lambda: self.mode(L.BACKGROUND),
                       "scribble_fg": lambda: self.scribble(1), "scribble_bg": lambda: self.scribble(2),
                       "run": lambda: s.request("scribbles"), "automatic": lambda: s.request("automatic"),
                       "clear": s.clear, "clear_all": s.clear_all, "accept": s.accept,
                       "next_label": s.next_label, "next_plane": self.next_plane,
                       "fill_holes": lambda: s.tidy("fill_holes", self.sliced_axis()),
                       "keep_largest": lambda: s.tidy("keep_largest"),
                       "fill_between": lambda: s.tidy("fill_between", self.sliced_axis()),
                       "smooth": lambda: s.tidy("smooth"), "grow": lambda: s.tidy("grow"),
                       "shrink": lambda: s.tidy("shrink"), "clip": lambda: self._range_step("clip"),
                       "flood": lambda: self._range_step("flood"), "outline": self.outline}
        return {**{name: self._on_an_image(action) for name, action in on_an_image.items()},
                "undo": s.undo, "redo": s.redo, "next": s.next_image, "next_volume": self.next_volume,
                "reload": s.reload}

    def _on_an_image(self, action):
        """``action``, which works on the open image: with none open it says so (a shortcut
        pressed before an image opened did nothing, and said nothing)."""
        def act():
            if self.session.volume is None:
                self.session.status.emit("Open an image first: File > Open, the worklist, or a sample.")
                return
            action()
        return act


class _WarmUpFilter(QObject):
    """When the window closes: the warm-up not started yet never starts, one under way is
    waited for."""

    def __init__(self, window, timer: QTimer):
        super().__init__(window)
        self.timer = timer

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Close:
            self.timer.stop()
            finish_warm_up()
        return False


class _CloseFilter(QObject):
    """Asks the workspace whether the window it watches may close."""

    def __init__(self, window, workspace: Workspace):
        super().__init__(window)
        self.may_close = workspace.may_close

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Close and not self.may_close():
            event.ignore()
            return True
        return False
