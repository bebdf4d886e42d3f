"""The Annotation dock: a view of the session: label preset, method, the actions, status and progress."""

from __future__ import annotations

import contextlib

import napari
import numpy as np
from qtpy.QtCore import QSignalBlocker, Qt, QTimer
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton,
    QStyle, QStyleOptionComboBox, QStylePainter, QWidget,
)

from annotator.annotation.labels import format_ml
from annotator.engine import METHODS, choose, methods_for
from annotator.errors import AnnotatorError
from annotator.napari import layers as L
from annotator.napari.fit import compact, scrolling_layout, steady
from annotator.napari.key_bindings import SHORTCUTS
from annotator.napari.markup import ERROR, WARNING, coloured
from annotator.napari.planes import PLANES
from annotator.napari.presets_dialog import PresetsDialog
from annotator.napari.workspace import follow, workspace_for

#: The buttons: action name (see the workspace's actions) and text.
BUTTONS = [("fg", "Foreground clicks"), ("bg", "Background clicks"), ("scribble_fg", "Scribble foreground"),
           ("scribble_bg", "Scribble background"), ("run", "Run scribbles"), ("clear", "Clear"),
           ("undo", "Undo"), ("redo", "Redo"), ("fill_holes", "Fill holes"), ("keep_largest", "Keep largest part"),
           ("fill_between", "Fill between slices"), ("smooth", "Smooth"), ("automatic", "Auto-segment (DeepEdit)"),
           ("accept", "Accept"), ("next", "Next image")]
#: shortcuts a button's tooltip names besides its own: a variant of its action with no button
VARIANTS = {"clear": "clear_all"}


def tooltip(key: str) -> str:
    """What a button does and its keys (and those of its variant)."""
    return "\n".join(f"{keys}: {what}" for keys, what in (SHORTCUTS[a] for a in (key, VARIANTS.get(key)) if a))


class MethodBox(QComboBox):
    """The methods that answer clicks. One that cannot answer on the open image (a network
    with no model for it) is greyed, the reason its tooltip; checked when an image opens
    and again each time the list opens (a model may have been trained or imported since).
    The list says what each method needs and works on; the closed box, too narrow for
    that, names the method, and for auto the one it takes on the open image."""

    def __init__(self, session):
        super().__init__()
        self.session = session
        self.shown = ""  # what the closed box says
        self.currentIndexChanged.connect(lambda _i: self._name_it())

    def showPopup(self) -> None:
        self.refresh()
        super().showPopup()  # as wide as its longest description

    def refresh(self) -> None:
        volume = self.session.volume
        for index in range(self.count()):
            method = METHODS.get(self.itemData(index))
            why = method.missing(volume) if method is not None and volume is not None else None
            item = self.model().item(index)
            item.setEnabled(why is None)
            item.setToolTip(f"{why}; Models... (in the Training dock) imports one" if why else "")
        self._name_it()

    def _name_it(self) -> None:
        name, volume = self.currentData() or "", self.session.volume
        self.shown = name
        if name == "auto" and volume is not None:
            with contextlib.suppress(AnnotatorError):
                self.shown = f"auto: {choose(volume).name}"
        self.update()

    def paintEvent(self, _event) -> None:
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        option.currentText = self.shown
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


class AnnotationDock(QWidget):
    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.ws = workspace_for(napari_viewer)
        self.session = session = self.ws.session
        self.setObjectName("AnnotatorAnnotation")

        self.preset = QComboBox()
        self._fill_presets()
        self.preset.currentIndexChanged.connect(self._preset_changed)
        edit_presets = QPushButton("Edit...")
        edit_presets.setToolTip("Edit your label names and colours (a folder's labels.json or dataset.json\n"
                                "names its labels; your own names stay). Alt+B: next label")
        edit_presets.clicked.connect(self.edit_presets)
        self.method = MethodBox(session)
        self.method.addItem("auto (a network made for such images, else GraphCut)", "auto")
        for name in methods_for("clicks"):
            self.method.addItem(f"{name} ({METHODS[name].description})", name)
        self.method.setToolTip("What answers clicks. Scribbles always use GraphCut, which needs no model and "
                               "works on any CT or MR,\nbest where the structure differs in intensity from its "
                               "surroundings (CT organs such as liver, spleen, kidneys;\nfor lungs, bone and "
                               "contrast-filled vessels, Flood and Clip below hold a label to a range of "
                               "intensities);\nthe networks need a model made for the image's modality and trained on "
                               "images of about its size\n(the bundled ones: hippocampus MR crops of 26 to 58 mm; "
                               "auto leaves them for a whole head).")
        self.method.currentIndexChanged.connect(lambda: session.set_method(self.method.currentData()))
        self.display_window = QComboBox()
        for name in L.WINDOWS:
            keys = SHORTCUTS.get(f"window_{name}", ("",))[0]
            self.display_window.addItem(f"{name}" + (f"  ({keys})" if keys else ""), name)
        self.display_window.setToolTip("How the image is shown (display only: the engine sees the image's own values)")
        self.display_window.activated.connect(lambda _i: self.ws.window(self.display_window.currentData()))
        self.view_plane = QComboBox()
        for name in PLANES:
            self.view_plane.addItem(name, name)
        self.view_plane.setToolTip("The plane the image is viewed in (Alt+E: the next one); each image opens in the "
                                   "plane its slices were acquired in")
        self.view_plane.activated.connect(lambda _i: self.ws.plane(self.view_plane.currentData()))
        self.label_map = QComboBox()
        self.label_map.setToolTip("Segmentations found beside this image, or dropped on the window (or opened with "
                                  "File > Open) while it is open, shown as layers: the one chosen here is shown")
        self.label_map.activated.connect(lambda _: self.ws.show_label_map(self.label_map.currentData()))
        self.use_map = QPushButton("Use as label")
        self.use_map.setToolTip("Make the chosen label map this image's label (undoable; Accept saves it)")
        self.use_map.clicked.connect(lambda: session.use_label_map(self.label_map.currentData()))
        self.earlier = QComboBox()
        self.earlier.setToolTip("The labels of this image accepted before its final one, newest first, and what "
                                "was first proposed (the original)")
        self.restore = QPushButton("Restore")
        self.restore.setToolTip("Make the chosen earlier label the label (undoable; Accept saves it as the final)")
        self.restore.clicked.connect(lambda: session.restore(self.earlier.currentData()))
        self.use_layer = QPushButton("Annotate layer")
        self.use_layer.setToolTip("Annotate the image layer selected in the layer list (one opened with File > Open, "
                                  "a sample or another plugin)")
        self.use_layer.clicked.connect(self._use_selected_layer)

        self.buttons = {}
        grid = QGridLayout()
        actions = self.ws.actions()
        for i, (key, text) in enumerate(BUTTONS):
            grid.addWidget(self._button(key, text, actions), i // 2, i % 2)
        grid.addWidget(self.use_layer, len(BUTTONS) // 2, len(BUTTONS) % 2)  # beside Next image
        margin_row = self._margin_row(actions)
        range_row = self._range_row(actions)

        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.progress.hide()
        self.files = QProgressBar()
        self.files.setRange(0, 0)
        self.files.setFormat("%p%")
        self.files.hide()
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop reading or saving (what is already saved stays)")
        self.cancel.clicked.connect(session.files.cancel)
        self.cancel.hide()
        self.status = QLabel("Open an image: File > Open, the worklist, or a sample.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.volume_text = QLabel()
        self.volume_text.setObjectName("volumes")
        self.volume_text.setWordWrap(True)
        self.volume_text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self._count_later = QTimer(self)  # counted once the label rests (a paint stroke changes it often)
        self._count_later.setSingleShot(True)
        self._count_later.setInterval(250)
        self._count_later.timeout.connect(session.count_volumes)
        help_text = "\n".join(f"{keys}: {what}" for keys, what in SHORTCUTS.values())
        self.setToolTip("Keyboard shortcuts (anywhere in the window):\n" + help_text)

        form = QFormLayout()
        form.addRow("Label", _beside(self.preset, edit_presets))
        form.addRow("Method", self.method)
        display = QHBoxLayout()  # how the image is shown: one row, so the worklist below keeps more rows
        display.addWidget(self.display_window, 3)
        display.addWidget(QLabel("View"))
        display.addWidget(self.view_plane, 2)
        form.addRow("Window", display)
        # rows shown only for an image with label maps beside it, with labels saved earlier
        self.map_row = (QLabel("Label map"), self.label_map, self.use_map)
        self.earlier_row = (QLabel("Earlier"), self.earlier, self.restore)
        for name, choice, button in (self.map_row, self.earlier_row):
            form.addRow(name, _beside(choice, button))
            for widget in (name, choice, button):
                widget.hide()
        files_row = QHBoxLayout()
        files_row.addWidget(self.files, 1)
        files_row.addWidget(self.cancel)
        compact(self.preset, self.method, self.label_map, self.earlier)
        compact(self.display_window, self.view_plane, chars=4)  # two in a row: the dock no wider for them
        steady(self.preset, self.method, self.display_window, self.view_plane, self.label_map, self.earlier)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addLayout(grid)
        layout.addLayout(margin_row)
        layout.addLayout(range_row)
        layout.addWidget(self.progress)
        layout.addLayout(files_row)
        layout.addWidget(self.status)
        layout.addWidget(self.volume_text)
        shortcuts = QPushButton("Keyboard shortcuts")
        shortcuts.clicked.connect(lambda: QMessageBox.information(self, "Annotator shortcuts", help_text))
        layout.addWidget(shortcuts)
        layout.addStretch(1)

        follow(self, (session.status, lambda text: self.status.setText(coloured(text))),
               (session.error, lambda m: self.status.setText(coloured(m, ERROR))),
               (session.warning, lambda m: self.status.setText(coloured(m, WARNING))),
               (session.busy_changed, lambda busy: self.progress.setVisible(busy)),
               (session.files_busy, self._files_busy), (session.progress, self._progress),
               (session.image_opened, self._image_opened), (self.ws.window_shown, self._window_shown),
               (session.label_map_added, lambda map_id: self._fill_maps(map_id)),
               (self.ws.plane_shown, lambda name: self.view_plane.setCurrentIndex(self.view_plane.findData(name))),
               (session.labels_changed, self._fill_presets), (session.labels_changed, lambda: self._count_later.start()),
               (session.label_changed, lambda *_: self._count_later.start()),
               (session.volumes_counted, self._show_volumes),
               (session.saved, lambda image_id, _version: self._fill_earlier()))
        if session.volume is not None:  # opened on an image already open (from the Worklist dock, say)
            self._image_opened("")
            self._count_later.start()

    def _margin_row(self, actions: dict) -> QHBoxLayout:
        """Grow and Shrink, and the margin (mm) they move the chosen label's surface by."""
        self.margin = QDoubleSpinBox()
        self.margin.setRange(0.1, 100.0)
        self.margin.setDecimals(1)
        self.margin.setSingleStep(0.5)
        self.margin.setSuffix(" mm")
        self.margin.setValue(self.session.margin())
        self.margin.setToolTip("How far Grow and Shrink move the chosen label's surface (a margin of less than "
                               "a voxel moves nothing)")
        self.margin.valueChanged.connect(lambda mm: setattr(self.session, "margin_mm", float(mm)))
        steady(self.margin)
        row = QHBoxLayout()
        for key, text in (("grow", "Grow"), ("shrink", "Shrink")):
            row.addWidget(self._button(key, text, actions), 2)
        row.addWidget(self.margin, 1)
        return row

    def _range_row(self, actions: dict) -> QHBoxLayout:
        """Clip and Flood, and the range of intensities (low, high) they hold the chosen
        label to. The range starts as the window an image opens with, and stays while
        images of the same modality follow."""
        self.range_ends = (QDoubleSpinBox(), QDoubleSpinBox())
        self._range_for: str | None = None  # the modality the range was set for
        what = ("Intensities of the chosen label's tissue, in the image's units (HU on a CT: lungs -1024 to "
                "-400; bone and contrast-filled vessels about 100 to 3000, clipped after painting roughly)")
        for end, box in zip(("Lowest", "Highest"), self.range_ends):
            box.setRange(-1e9, 1e9)
            box.setKeyboardTracking(False)
            box.setToolTip(f"{end} intensity of the range Clip and Flood use. {what}")
            box.setMinimumWidth(box.fontMetrics().horizontalAdvance("-10000") + 60)  # and its − + buttons
            box.valueChanged.connect(self._range_chosen)
        steady(*self.range_ends)
        row = QHBoxLayout()
        for key, text in (("clip", "Clip"), ("flood", "Flood")):
            row.addWidget(self._button(key, text, actions), 2)
        for box in self.range_ends:
            row.addWidget(box, 1)
        return row

    def _range_chosen(self, _value: float) -> None:
        """A range set by hand: used, and its voxels shown until Flood or Clip runs."""
        low, high = (box.value() for box in self.range_ends)
        self.session.intensity_range = (low, high)
        self.ws.show_range(low, high)

    def _fit_range(self, volume) -> None:
        """The range for a newly opened image: its window, unless one was set on an image of
        its modality (or before this dock opened); its steps and decimals fitted to the
        image's intensities."""
        low, high = L.window_limits(volume)
        decimals = 0 if high - low >= 100 else 1 if high - low >= 10 else 4
        for box in self.range_ends:
            box.setDecimals(decimals)
            box.setSingleStep(10.0 ** max(-decimals, int(np.floor(np.log10(max(high - low, 1e-9)))) - 1))
        if self.session.intensity_range is None or self._range_for not in (None, volume.modality):
            self.session.intensity_range = (low, high)
        self._range_for = volume.modality
        for box, value in zip(self.range_ends, self.session.intensity_range):
            with QSignalBlocker(box):
                box.setValue(value)

    def _button(self, key: str, text: str, actions: dict) -> QPushButton:
        """The button of action ``key``, its tooltip its keys; kept in ``buttons``."""
        button = QPushButton(text)
        button.clicked.connect(lambda _checked=False, a=actions[key]: a())
        button.setToolTip(tooltip(key))
        self.buttons[key] = button
        return button

    def _image_opened(self, _image_id: str) -> None:
        volume = self.session.volume
        if volume is None:
            return
        self._fill_maps()
        self._fill_earlier()
        header = self.display_window.model().item(self.display_window.findData("header"))
        header.setEnabled(volume.window is not None)
        self.method.refresh()
        self._window_shown(L.default_window(volume))
        self._fit_range(volume)

    def _fill_maps(self, chosen: str | None = None) -> None:
        """The open image's label maps (the row hidden when none), ``chosen`` the one offered."""
        self.label_map.clear()
        for map_id in self.session.label_maps:
            self.label_map.addItem(map_id, map_id)
        if chosen is not None:
            self.label_map.setCurrentIndex(self.label_map.findData(chosen))
        for widget in self.map_row:
            widget.setVisible(bool(self.session.label_maps))

    def _fill_earlier(self) -> None:
        """The open image's labels saved earlier, newest first (the row hidden when none)."""
        self.earlier.clear()
        for key, what in self.session.saved_labels:
            self.earlier.addItem(what, key)
        for widget in self.earlier_row:
            widget.setVisible(bool(self.session.saved_labels))

    def _show_volumes(self, volumes: dict) -> None:
        """The chosen label's volume (and all labels' together); each label's on hover."""
        names = {p.value: p.name for p in self.session.labels}
        chosen = self.session.label_value
        text = f"Volume of {names.get(chosen, f'label {chosen}')}: {format_ml(volumes.get(chosen, (0, 0.0))[1])}"
        if set(volumes) - {chosen}:
            text += f"; all labels: {format_ml(sum(ml for _n, ml in volumes.values()))}"
        self.volume_text.setText(coloured(text))
        self.volume_text.setToolTip("\n".join(
            f"{v}: {names.get(v, f'label {v}')}  {format_ml(ml)} ({n:,} voxels)" for v, (n, ml) in volumes.items())
            or "The label is empty")

    def _window_shown(self, name: str) -> None:
        self.display_window.setCurrentIndex(max(0, self.display_window.findData(name)))

    def _files_busy(self, busy: bool) -> None:
        self.files.setVisible(busy)
        self.cancel.setVisible(busy)

    def _progress(self, text: str, fraction: float) -> None:
        self.status.setText(coloured(text))
        if fraction < 0:
            self.files.setRange(0, 0)
        else:
            self.files.setRange(0, 100)
            self.files.setValue(int(round(100 * fraction)))

    def showEvent(self, event) -> None:
        # docked now: the workspace watches the main window's close (a plugin sees it only as its window())
        if self.window() is not self:
            self.ws.watch_window(self.window())
        super().showEvent(event)

    def _fill_presets(self) -> None:
        """The labels the session offers (the presets, named as the datastore names them)."""
        self.preset.blockSignals(True)
        self.preset.clear()
        for p in self.session.labels:
            swatch = QPixmap(12, 12)
            swatch.fill(QColor(p.color))
            self.preset.addItem(QIcon(swatch), f"{p.value}: {p.name}", p.value)
        self.preset.setCurrentIndex(max(0, self.preset.findData(self.session.label_value)))
        self.preset.blockSignals(False)

    def edit_presets(self) -> None:
        dialog = PresetsDialog(self.session.settings.presets, self)
        dialog.setObjectName("presets-dialog")
        if dialog.exec_():
            self.session.set_presets(dialog.presets)

    def _preset_changed(self) -> None:
        self.session.choose_label(int(self.preset.currentData()))

    def _use_selected_layer(self) -> None:
        layer = self.viewer.layers.selection.active
        if not isinstance(layer, napari.layers.Image):
            self.status.setText("Select an image layer first.")
            return
        try:
            self.ws.use_layer(layer)
        except Exception as exc:  # shown, never raised into Qt
            self.session._failed(exc)


def _beside(widget, button) -> QHBoxLayout:
    """A row of ``widget``, as wide as there is room, and ``button`` after it."""
    row = QHBoxLayout()
    row.addWidget(widget, 1)
    row.addWidget(button)
    return row
