"""The Annotation dock: label preset, method, run/undo/redo/clear/accept, status and progress."""

from __future__ import annotations

import weakref

import napari
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QComboBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton, QVBoxLayout,
    QWidget,
)

from annotator.engine import CLICK_METHODS
from annotator.engine.methods import DESCRIPTIONS
from annotator.napari import layers as L
from annotator.napari.key_bindings import SHORTCUTS, bind_keys
from annotator.napari.presets_dialog import PresetsDialog
from annotator.napari.workspace import workspace_for

#: Seconds between an engine step or paint and its autosaved draft.
AUTOSAVE_S = 3.0


class AnnotationDock(QWidget):
    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.ws = workspace_for(napari_viewer)
        self.setObjectName("AnnotatorAnnotation")

        self.preset = QComboBox()
        self._fill_presets()
        self.preset.currentIndexChanged.connect(self._preset_changed)
        edit_presets = QPushButton("Edit...")
        edit_presets.setToolTip("Edit label names and colours")
        edit_presets.clicked.connect(self.edit_presets)
        self.method = QComboBox()
        self.method.addItem("auto (a network for the modality, else GraphCut)", "auto")
        for name in CLICK_METHODS:
            self.method.addItem(f"{name} ({DESCRIPTIONS[name]})", name)
        self.method.setToolTip("What answers clicks. Scribbles always use GraphCut, which needs no model and "
                               "works on any CT or MR;\nthe networks need a model made for the image's modality "
                               "(the bundled ones: hippocampus MR).")
        self.method.currentIndexChanged.connect(lambda: setattr(self.ws, "method", self.method.currentData()))
        self.use_layer = QPushButton("Annotate selected image layer")
        self.use_layer.clicked.connect(self._use_selected_layer)

        self.buttons = {}
        grid = QGridLayout()
        for i, (key, text, slot) in enumerate([
            ("fg", "Foreground clicks", lambda: self._mode(L.FOREGROUND)),
            ("bg", "Background clicks", lambda: self._mode(L.BACKGROUND)),
            ("scribble_fg", "Scribble foreground", lambda: self._scribble(1)),
            ("scribble_bg", "Scribble background", lambda: self._scribble(2)),
            ("run", "Run scribbles", lambda: self.ws.request("scribbles")),
            ("clear", "Clear", self.ws.clear),
            ("undo", "Undo", self.ws.undo),
            ("redo", "Redo", self.ws.redo),
            ("automatic", "Auto-segment (DeepEdit)", lambda: self.ws.request("automatic")),
            ("accept", "Accept", self.ws.accept),
            ("next", "Next image", self.next_image),
        ]):
            button = QPushButton(text)
            button.clicked.connect(slot)
            shortcut = SHORTCUTS.get(key)
            if shortcut:
                button.setToolTip(f"{text} ({shortcut[0]})")
            self.buttons[key] = button
            grid.addWidget(button, i // 2, i % 2)

        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.progress.hide()
        self.status = QLabel("Open an image: File > Open, the worklist, or a sample.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        help_text = "\n".join(f"{keys}: {what}" for keys, what in SHORTCUTS.values())
        self.setToolTip("Keyboard shortcuts (in the viewer):\n" + help_text)

        form = QFormLayout()
        preset_row = QHBoxLayout()
        preset_row.addWidget(self.preset, 1)
        preset_row.addWidget(edit_presets)
        form.addRow("Label", preset_row)
        form.addRow("Method", self.method)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.use_layer)
        layout.addLayout(grid)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        shortcuts = QPushButton("Keyboard shortcuts")
        shortcuts.clicked.connect(lambda: QMessageBox.information(self, "Annotator shortcuts", help_text))
        layout.addWidget(shortcuts)
        layout.addStretch(1)

        self.autosave = QTimer(self)
        self.autosave.setSingleShot(True)
        self.autosave.setInterval(int(AUTOSAVE_S * 1000))
        self.autosave.timeout.connect(self.ws.save_draft)

        self.ws.status.connect(lambda text: self.status.setText(text))
        self.ws.error.connect(lambda m: self.status.setText(f"<span style='color:#ff6b6b'>{m}</span>"))
        self.ws.busy_changed.connect(lambda busy: self.progress.setVisible(busy))
        self.ws.label_changed.connect(lambda _m: self.autosave.start())
        bind_keys(napari_viewer, self)
        self._main_window = None

    def showEvent(self, event) -> None:
        # docked now: watch the main window's close (a plugin sees it only as its window())
        if self._main_window is None and self.window() is not self:
            self._main_window = weakref.ref(self.window())  # weak: the dock must not keep the window
            self.window().installEventFilter(self)
        super().showEvent(event)

    def eventFilter(self, obj, event) -> bool:
        """Ask about unaccepted work before the window closes."""
        if event.type() == QEvent.Close and self._main_window is not None and obj is self._main_window():
            if not self.confirm_leave():
                event.ignore()
                return True
        return False

    def _fill_presets(self) -> None:
        self.preset.blockSignals(True)
        self.preset.clear()
        for p in self.ws.settings.presets:
            swatch = QPixmap(12, 12)
            swatch.fill(QColor(p.color))
            self.preset.addItem(QIcon(swatch), f"{p.value}: {p.name}", p.value)
        self.preset.blockSignals(False)

    def edit_presets(self) -> None:
        dialog = PresetsDialog(self.ws.settings.presets, self)
        dialog.setObjectName("presets-dialog")
        if dialog.exec_():
            self.ws.set_presets(dialog.presets)
            self._fill_presets()
            self._preset_changed()

    def _preset_changed(self) -> None:
        self.ws.label_value = int(self.preset.currentData())
        if L.SEGMENTATION in self.viewer.layers:
            self.viewer.layers[L.SEGMENTATION].selected_label = self.ws.label_value

    def _mode(self, name: str) -> None:
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            self.viewer.layers.selection.active = layer
            layer.mode = "add"

    def _scribble(self, value: int) -> None:
        if L.SCRIBBLES in self.viewer.layers:
            layer = self.viewer.layers[L.SCRIBBLES]
            self.viewer.layers.selection.active = layer
            layer.selected_label = value
            layer.mode = "paint"

    def _use_selected_layer(self) -> None:
        layer = self.viewer.layers.selection.active
        if not isinstance(layer, napari.layers.Image):
            self.status.setText("Select an image layer first.")
            return
        try:
            self.ws.use_layer(layer)
        except Exception as exc:  # shown, never raised into Qt
            self.ws._failed(exc)

    def confirm_leave(self) -> bool:
        """Ask what to do with unsaved work; False when the person cancels."""
        if not self.ws.has_unsaved_work:
            return True
        box = QMessageBox(QMessageBox.Question, "Unsaved annotation",
                          f"'{self.ws.image_id or 'this image'}' has changes that are not accepted.",
                          parent=self)
        accept = box.addButton("Accept", QMessageBox.AcceptRole)
        draft = box.addButton("Keep as draft", QMessageBox.ActionRole)
        discard = box.addButton("Discard", QMessageBox.DestructiveRole)
        box.addButton(QMessageBox.Cancel)
        box.setObjectName("unsaved-prompt")
        box.exec_()
        clicked = box.clickedButton()
        if clicked is accept:
            return self.ws.accept()
        if clicked is draft:
            return self.ws.save_draft() or not self.ws.has_unsaved_work
        if clicked is discard:
            self.ws.discard()
            return True
        return False

    def open_image(self, image_id: str) -> None:
        if image_id == self.ws.image_id or not self.confirm_leave():
            return
        self.autosave.stop()
        self.ws.open_image(image_id)

    def next_image(self) -> None:
        image_id = self.ws.next_image_id()
        if image_id is None:
            self.status.setText("No other image to label.")
            return
        self.open_image(image_id)
