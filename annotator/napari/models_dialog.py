"""The installed models (bundled, trained here, imported) in a window: which one each
method uses, choosing another, importing a model trained elsewhere (a MONAI Label
checkpoint or a MONAI bundle; :func:`annotator.models.importer.import_model`) and
calibrating one on labelled images (:func:`annotator.training.calibrate.calibrate_installed`)
without a terminal."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QHeaderView,
    QLabel, QLineEdit, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout,
)

from annotator.annotation.jobs import Job
from annotator.errors import AnnotatorError
from annotator.models.card import METHOD_TITLES
from annotator.models.registry import ModelRegistry

_ERROR = "color: #ff6b6b"


class ImportDialog(QDialog):
    """What :func:`import_model` needs, as a form; :meth:`request` reads it (or says what
    is wrong)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Import a model trained elsewhere")
        self.setMinimumWidth(560)
        self.path = QLineEdit()
        self.path.setPlaceholderText("checkpoint (.pt) or bundle folder")
        file_button, folder_button = QPushButton("File..."), QPushButton("Bundle folder...")
        file_button.clicked.connect(self._choose_file)
        folder_button.clicked.connect(self._choose_folder)
        self.method = QComboBox()
        for method, text in METHOD_TITLES.items():
            self.method.addItem(text, method)
        self.labels = QLineEdit()
        self.labels.setPlaceholderText("spleen=1,liver=2,background=0 (DeepEdit; a bundle gives them)")
        self.labels.setToolTip("In the order of the model's label list: DeepEdit's click channels follow it "
                               "(MONAI Label's apps put background last)")
        self.modality = QComboBox()
        self.modality.addItems(["unknown", "CT", "MR"])
        self.window = QLineEdit()
        self.window.setPlaceholderText("LOW,HIGH (default: the bundle's, else MONAI Label's)")
        self.window.setToolTip("The intensities its training mapped to 0..1 (ScaleIntensityRanged a_min, a_max)")
        self.name = QLineEdit()
        self.name.setPlaceholderText("default: method and file name")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet(_ERROR)
        where = QHBoxLayout()
        where.addWidget(self.path, 1)
        where.addWidget(file_button)
        where.addWidget(folder_button)
        form = QFormLayout()
        form.addRow("Model", where)
        form.addRow("Method", self.method)
        form.addRow("Labels", self.labels)
        form.addRow("Modality", self.modality)
        form.addRow("Window", self.window)
        form.addRow("Name", self.name)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText("Import")
        buttons.accepted.connect(self._check_and_accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(buttons)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "MONAI Label checkpoint", "", "PyTorch state dict (*.pt *.pth)")
        if path:
            self.path.setText(path)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "MONAI bundle folder")
        if path:
            self.path.setText(path)

    def request(self) -> dict:
        """The keyword arguments of :func:`import_model`; :class:`AnnotatorError` naming
        what is missing or malformed."""
        from annotator.models.importer import parse_labels, parse_window

        path = self.path.text().strip()
        if not path:
            raise AnnotatorError("choose the checkpoint file or the bundle folder")
        labels = self.labels.text().strip()
        window = self.window.text().strip()
        return {"path": path, "method": self.method.currentData(), "labels": parse_labels(labels) if labels else None,
                "modality": self.modality.currentText(), "window": parse_window(window) if window else None,
                "name": self.name.text().strip()}

    def _check_and_accept(self) -> None:
        try:
            self.request()
        except AnnotatorError as exc:
            self.message.setText(str(exc))
            return
        self.accept()


def use_model(runner, registry: ModelRegistry, name: str, button, say, then=None) -> None:
    """Make the model ``name`` its method's model, checked first (it is loaded: seconds, in
    the worker; ``button`` is off meanwhile). ``say(text, error=False)`` tells how it went:
    a damaged or missing model is said and the one in use stays; ``then(card)`` after."""
    button.setEnabled(False)
    say(f"checking '{name}' ...")

    def done(card) -> None:
        button.setEnabled(True)
        if then is not None:
            then(card)
        say(f"'{card.name}' is now used for {METHOD_TITLES.get(card.method, card.method)}.")

    def failed(exc: BaseException) -> None:
        button.setEnabled(True)
        say(f"Cannot use '{name}': {exc}", error=True)

    runner.start(lambda _job: registry.choose(name), done, failed, Job(f"checking model {name}"))


class ModelsDialog(QDialog):
    """The installed models; Use makes the selected one its method's model; Import... brings
    one from MONAI; Calibrate... chooses on a folder of labelled images how the selected
    one is used (both in a worker thread, the window stays responsive)."""

    def __init__(self, runner, parent=None, registry: ModelRegistry | None = None):
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setMinimumSize(960, 320)
        self.runner = runner
        self.registry = registry or ModelRegistry()
        self.table = QTableWidget(0, 7)
        self.table.setHorizontalHeaderLabels(["in use", "name", "method", "modality", "labels", "trained on", "from"])
        self.table.horizontalHeaderItem(0).setToolTip("✓: chosen for its method; default: used while none is chosen "
                                                      "(a model for the image's modality and size comes first)")
        self.table.horizontalHeaderItem(5).setToolTip("The sizes of its training images; an image more than twice "
                                                      "as large, or half as small, goes to another model")
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        for column in range(7):
            header.setSectionResizeMode(column, QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)
        self.use_button = QPushButton("Use selected")
        self.use_button.setToolTip("Clicks (and training's 'fine-tune the model in use') use this model for its method")
        self.use_button.clicked.connect(self.use_selected)
        self.import_button = QPushButton("Import...")
        self.import_button.setToolTip("A MONAI Label checkpoint or a MONAI bundle, converted to this app's format")
        self.import_button.clicked.connect(self.ask_import)
        self.calibrate_button = QPushButton("Calibrate...")
        self.calibrate_button.setToolTip("On a folder's labelled images (only the model's own validation cases when "
                                         "the folder holds them): "
                                         "where a DeepGrow model's first answer is cut, how the worklist weighs a "
                                         "DeepEdit model's scores; as a training run chooses them")
        self.calibrate_button.clicked.connect(self.ask_calibrate)
        close = QDialogButtonBox(QDialogButtonBox.Close)
        close.rejected.connect(self.reject)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.use_button)
        row.addWidget(self.import_button)
        row.addWidget(self.calibrate_button)
        row.addStretch(1)
        row.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.message)
        layout.addLayout(row)
        self.refresh()

    def refresh(self, select: str = "") -> None:
        entries = self.registry.entries()
        chosen = self.registry.chosen()
        defaults = self.registry.defaults()
        self.table.setRowCount(len(entries))
        for i, entry in enumerate(entries):
            card = entry.card
            origin = "bundled" if entry.bundled else str(card.training.get("source") or "trained here")
            use = "✓" if chosen.get(card.method) == card.name else "default" if defaults.get(card.method) == \
                entry.sidecar else ""
            cells = [use, card.name, METHOD_TITLES.get(card.method, card.method), card.modality,
                     ", ".join(card.foreground), card.trained_extent or "any size", origin]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(entry.sidecar))
                self.table.setItem(i, j, item)
            if not use and card.not_used:  # installed by a run that did not use it
                self.table.item(i, 0).setText("not used")
                self.table.item(i, 0).setToolTip(f"Used only when chosen: {card.not_used}")
            if card.name == select:
                self.table.selectRow(i)
        if self.registry.problems:
            self._say("skipped (unreadable): " + "; ".join(f"{p}: {why}" for p, why in self.registry.problems.items()),
                      error=True)

    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 1).text() if rows else None

    def use_selected(self) -> None:
        name = self.selected_name()
        if name is None:
            self._say("Select a model first.")
            return
        use_model(self.runner, self.registry, name, self.use_button, self._say,
                  then=lambda card: self.refresh(select=card.name))

    def ask_import(self) -> None:
        form = ImportDialog(self)
        if form.exec_():
            self.start_import(form.request())

    def start_import(self, request: dict) -> None:
        """Convert and install a model in the worker; the table shows it when done."""
        from annotator.models.importer import import_model

        self.import_button.setEnabled(False)
        self._say(f"importing {request['path']}...")
        self.runner.start(lambda _job: import_model(**request), self._imported, self._import_failed,
                          Job("importing a model"))

    def _imported(self, sidecar) -> None:
        self.import_button.setEnabled(True)
        self.refresh(select=sidecar.stem)
        self._say(f"'{sidecar.stem}' installed: press Use selected to click with it.")

    def _import_failed(self, exc: BaseException) -> None:
        self.import_button.setEnabled(True)
        self._say(f"Import failed: {exc}", error=True)

    def ask_calibrate(self) -> None:
        name = self.selected_name()
        if name is None:
            self._say("Select a model first.")
            return
        folder = QFileDialog.getExistingDirectory(self, f"Labelled images to calibrate '{name}' on")
        if folder:
            self.start_calibrate(name, folder)

    def start_calibrate(self, name: str, folder: str) -> None:
        """Choose on ``folder``'s labelled images how model ``name`` is used, in the worker;
        each case is said as it is clicked, and what was chosen at the end."""
        from annotator.training.calibrate import COPY_SUFFIX, calibrate_installed

        shown = name + COPY_SUFFIX if self.registry.entry(name).bundled else name  # a bundled one is copied
        self.calibrate_button.setEnabled(False)
        self._say(f"calibrating '{name}' on {folder} ...")

        def heard(text: str, fraction: float) -> None:
            self._say(f"{text} ({fraction:.0%})" if fraction > 0 else text)

        self.runner.start(lambda job: calibrate_installed(name, folder, job.report, self.registry),
                          lambda text: self._calibrated(name, text, shown), self._calibrate_failed,
                          Job(f"calibrating {name}", heard))

    def _calibrated(self, name: str, text: str, shown: str) -> None:
        from annotator.active.calibration import MIN_CASES

        self.calibrate_button.setEnabled(True)
        self.refresh(select=shown if text else name)
        self._say(f"'{name}': {text}" if text else f"'{name}': too few labelled images to choose by (at least "
                                                    f"{MIN_CASES}); unchanged", error=not text)

    def _calibrate_failed(self, exc: BaseException) -> None:
        self.calibrate_button.setEnabled(True)
        self._say(f"Calibration failed: {exc}", error=True)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet(_ERROR if error else "")
        self.message.setText(text)
