"""The Training dock: fine-tune DeepEdit/DeepGrow on the accepted labels, in a child process.

Start/stop, a progress bar with ETA, a live plot of loss and validation Dice, a log, the
"use the new model when done" switch, the past runs with their metrics (any of which
can be chosen as the model in use), and the Models... window (every installed model;
importing one trained elsewhere).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import napari
from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QHeaderView, QLabel,
    QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout,
    QWidget,
)

from annotator.models.card import METHOD_TITLES
from annotator.models.registry import ModelRegistry
from annotator.napari.fit import compact, scrolling_layout, steady
from annotator.napari.markup import ERROR, coloured
from annotator.napari.workspace import follow, workspace_for
from annotator.training.config import TrainConfig, runs_dir
from annotator.training.runner import TrainingProcess, past_runs

POLL_MS = 200


class LossPlot(QWidget):
    """Training loss (left axis) and validation Dice (right axis) against iterations.

    matplotlib (a quarter of a second) loads when the plot is first shown, not while the
    window starts. The figure is built once: new points move its lines' data and rescale
    them, with margins fixed in pixels (no layout pass), drawn at most once every
    ``REDRAW_MS``; a full redraw on every event held the event loop 0.15-0.3 s each time
    while the training child kept both cores busy."""

    REDRAW_MS = 1000
    #: room for the tick labels and the axis labels, in pixels: left, right, bottom, top
    MARGINS = (52, 48, 36, 8)
    TEXT = "#d0d0d0"
    LOSS, DICE = "#4fc3f7", "#ffb74d"

    def __init__(self):
        super().__init__()
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.canvas = None
        self._later = QTimer(self)
        self._later.setSingleShot(True)
        self._later.setInterval(self.REDRAW_MS)
        self._later.timeout.connect(self.redraw)
        self.clear()

    def showEvent(self, event) -> None:
        if self.canvas is None:
            self._build()
        super().showEvent(event)

    def _build(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(3.2, 1.9), dpi=100, facecolor="#262930")
        self.canvas = FigureCanvasQTAgg(figure)
        self.loss_axes = figure.add_subplot()
        self.dice_axes = self.loss_axes.twinx()
        for axes in (self.loss_axes, self.dice_axes):
            axes.set_facecolor("none")
            axes.tick_params(colors=self.TEXT, labelsize=7)
        self.loss_axes.set_facecolor("#262930")
        self.loss_line, = self.loss_axes.plot([], [], color=self.LOSS, linewidth=1)
        self.dice_line, = self.dice_axes.plot([], [], color=self.DICE, marker="o", markersize=3, linewidth=1)
        self.loss_axes.set_xlabel("iteration", color=self.TEXT, fontsize=7)
        self.loss_axes.set_ylabel("loss", color=self.LOSS, fontsize=8)
        self.dice_axes.set_ylabel("validation Dice", color=self.DICE, fontsize=8)
        self.dice_axes.set_ylim(0, 1)
        self.dice_axes.set_autoscaley_on(False)
        self.placeholder = self.loss_axes.text(
            0.5, 0.5, "loss and validation Dice\nappear here during a run", color="#a0a0a0", fontsize=8,
            ha="center", va="center", transform=self.loss_axes.transAxes)
        self._layout.addWidget(self.canvas)
        self.canvas.installEventFilter(self)
        self.redraw()

    def eventFilter(self, watched, event) -> bool:
        if watched is self.canvas and event.type() == QEvent.Resize:
            size = event.size()
            left, right, bottom, top = self.MARGINS
            width, height = max(size.width(), 2 * (left + right)), max(size.height(), 2 * (bottom + top))
            self.canvas.figure.subplots_adjust(left=left / width, right=1 - right / width,
                                               bottom=bottom / height, top=1 - top / height)
        return False

    def clear(self) -> None:
        self.loss, self.dice = ([], []), ([], [])
        self.redraw()

    def add(self, event: dict) -> None:
        """A progress or validation event's point; drawn within ``REDRAW_MS``."""
        series = self.loss if event["event"] == "progress" else self.dice
        series[0].append(event["iteration"])
        series[1].append(event["loss"] if event["event"] == "progress" else event["dice"])
        if not self._later.isActive():
            self._later.start()

    def redraw(self) -> None:
        self._later.stop()
        if self.canvas is None:
            return
        from matplotlib.ticker import MaxNLocator

        self.loss_line.set_data(*self.loss)
        self.dice_line.set_data(*self.dice)
        empty = not self.loss[0] and not self.dice[0]
        self.placeholder.set_visible(empty)
        if empty:  # no run yet: no made-up scale
            self.loss_axes.set_xticks([])
            self.loss_axes.set_yticks([])
            self.dice_axes.set_yticks([])
        else:
            for axis in (self.loss_axes.xaxis, self.loss_axes.yaxis, self.dice_axes.yaxis):
                if not isinstance(axis.get_major_locator(), MaxNLocator):
                    axis.set_major_locator(MaxNLocator(nbins=5))
            for axes in (self.loss_axes, self.dice_axes):
                axes.relim()
                axes.autoscale_view()
        self.canvas.draw_idle()


class TrainingDock(QWidget):
    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.ws = workspace_for(napari_viewer)
        self.job: TrainingProcess | None = None
        self.registry = ModelRegistry()
        self.setObjectName("AnnotatorTraining")

        self.method = QComboBox()
        for method, text in METHOD_TITLES.items():
            self.method.addItem(text + (" (automatic + clicks)" if method == "deepedit" else ""), method)
        self.data = QLabel()
        self.data.setWordWrap(True)
        self.choose_data = QPushButton("Folder...")
        self.choose_data.setToolTip("Train on the accepted labels of another folder")
        self.choose_data.clicked.connect(self._choose_folder)
        self.folder: Path | None = None
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(20)
        self.init = QComboBox()
        self.init.addItem("fine-tune the model in use", "active")
        self.init.addItem("start from scratch", "scratch")
        self.use_when_done = QCheckBox("Use the new model when done, if it does better")
        self.use_when_done.setToolTip("Better on the validation images than the model it would replace (the one "
                                      "it fine-tunes, or the one in use for the same labels); if not, it is "
                                      "installed and Models... can choose it")
        self.use_when_done.setChecked(True)
        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(lambda: self.start())
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stops after the current iteration and keeps the last checkpoint")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.plot = LossPlot()
        self.plot.setMinimumHeight(170)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        self.log.setMaximumHeight(90)
        self.runs = QTableWidget(0, 4)
        self.runs.setHorizontalHeaderLabels(["run", "method", "state", "best Dice"])
        self.runs.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.runs.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.runs.verticalHeader().hide()
        self.runs.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.runs.setMaximumHeight(120)
        self.use_selected = QPushButton("Use selected model")
        self.use_selected.clicked.connect(self.use_selected_run)
        self.models_button = QPushButton("Models...")
        self.models_button.setToolTip("Every installed model, the one each method uses, and importing one "
                                      "trained elsewhere (MONAI Label, MONAI bundles)")
        self.models_button.clicked.connect(self.show_models)

        form = QFormLayout()
        form.addRow("Method", self.method)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data, 1)
        data_row.addWidget(self.choose_data)
        form.addRow("Labels", data_row)
        form.addRow("Epochs", self.epochs)
        form.addRow("Start from", self.init)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        compact(self.method, self.init)
        steady(self.method, self.init, self.epochs)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.use_when_done)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.plot)
        layout.addWidget(self.log)
        layout.addWidget(QLabel("Past runs"))
        layout.addWidget(self.runs)
        model_buttons = QHBoxLayout()
        model_buttons.addWidget(self.use_selected)
        model_buttons.addWidget(self.models_button)
        layout.addLayout(model_buttons)

        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.session = self.ws.session
        follow(self, (self.session.datastore_changed, self._show_data))
        self.ws.guard_close(self, self.may_close)
        self._show_data()
        self.refresh_runs()

    # ---- data ---------------------------------------------------------------------------

    def data_place(self) -> str | None:
        """Where the run's labelled images are: the folder chosen, else the open datastore's
        place (a folder, or a server's URL, which a path would fold to ``http:/host``)."""
        if self.folder:
            return str(self.folder)
        store = self.session.store
        return store.place if store is not None and store.place else None

    def _show_data(self) -> None:
        place = self.data_place()
        if place is None:
            self.data.setText("no folder open")
            return
        count = ""
        store = self.session.store
        if store is not None and place == store.place:
            count = f" ({len(store.training_ids())} labelled)"
        shown = urlsplit(place).netloc.rpartition("@")[2] if "://" in place else Path(place).name  # its host
        self.data.setText(coloured(f"{shown}{count}"))
        self.data.setToolTip(place)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder with labelled images")
        if folder:
            self.folder = Path(folder)
            self._show_data()

    # ---- running --------------------------------------------------------------------------

    def config(self) -> TrainConfig:
        """A run on the chosen folder; fine-tuning keeps the base model's grid, intensities and
        crop; otherwise the training process plans them from the data and the machine."""
        method = self.method.currentData()
        settings = {}
        base = self.registry.preferred(method) if self.init.currentData() == "active" else None
        if base is not None and base.card.axes == "array":  # a model from MONAI is not fine-tuned: planned anew
            card = base.card
            settings = {"modality": card.modality, "target_spacing": list(card.target_spacing),
                        "intensity": dict(card.intensity),
                        "patch": list(card.roi_size) if card.spatial_dims == 3 else [1, *card.roi_size[-2:]]}
        names = {str(p.value): p.name for p in self.session.labels}  # for data that names none
        return TrainConfig(method=method, data=[self.data_place()], epochs=self.epochs.value(),
                           init=self.init.currentData(), activate=self.use_when_done.isChecked(),
                           value_names=names, **settings)

    def start(self, config: TrainConfig | None = None) -> None:
        if self.job is not None and self.job.running:
            return
        if config is None:
            if self.data_place() is None:
                self._say("Open a folder with accepted labels first.", error=True)
                return
            config = self.config()
        self.job = TrainingProcess(config)
        self.plot.clear()
        self.log.clear()
        self.progress.setRange(0, 0)
        self.progress.setFormat("starting...")
        self._say(f"Training {config.method} in a separate process...")
        try:
            self.job.start()
        except OSError as exc:
            self._say(f"Could not start training: {exc}", error=True)
            self._finished()
            return
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.timer.start()

    def stop(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()
            self.stop_button.setEnabled(False)
            self._say("Stopping after the current iteration...")

    def poll(self) -> None:
        if self.job is None:
            return
        events = self.job.poll()
        for event in events:
            kind = event["event"]
            if kind == "start":
                self.progress.setRange(0, event["iterations"])
                self.progress.setValue(event["start_iteration"])
                self._log(f"{event['train_cases']} training / {event['val_cases']} validation images, "
                          f"{event['iterations']} iterations on {event['device']}")
            elif kind == "progress":
                self.progress.setRange(0, event["iterations"])
                self.progress.setValue(event["iteration"])
                minutes, seconds = divmod(int(event["eta_s"]), 60)
                self.progress.setFormat(f"epoch {event['epoch']}/{event['epochs']}  %p%  ETA {minutes}:{seconds:02d}")
                self.plot.add(event)
            elif kind == "validation":
                self.plot.add(event)
                self._log(f"epoch {event['epoch']}: validation Dice {event['dice']:.3f} (best {event['best_dice']:.3f})")
            elif kind == "message":
                self._log(event["text"])
            elif kind == "done":
                used = " It is now used for clicks." if event.get("activated") else (
                    f" Not used for clicks: {event['not_used']}; Models... can choose it." if event.get("not_used")
                    else "")
                self._say(f"Done: best validation Dice {event['best_dice']:.3f}, model '{event['model']}'.{used}")
                if event.get("activated"):
                    self._rescore()
            elif kind == "cancelled":
                self._say(f"Stopped at iteration {event['iteration']}; the model in use is unchanged.")
            elif kind == "error":
                self._say(f"Training failed: {event['message']}", error=True)
            elif kind == "exit":
                self._finished()

    def _rescore(self) -> None:
        """A new model is in use: the worklist's ranking is recomputed with it (its cached
        scores belong to the old model)."""
        from annotator.active.strategies import needs_model

        if self.session.store is not None and needs_model(self.session.settings.strategy):
            self._log(f"re-ranking the worklist by {self.session.settings.strategy} with the new model")
            self.session.score()

    def _finished(self) -> None:
        self.timer.stop()
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self.progress.setFormat(self.job.outcome() if self.job else "idle")
        self.refresh_runs()

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(coloured(text, ERROR if error else None))
        self._log(text)

    def _log(self, text: str) -> None:
        self.log.appendPlainText(text)

    # ---- past runs ------------------------------------------------------------------------

    def refresh_runs(self) -> None:
        rows = past_runs(runs_dir())
        self.runs.setRowCount(len(rows))
        for i, row in enumerate(rows):
            dice = "" if row["best_dice"] is None else f"{row['best_dice']:.3f}"
            for j, text in enumerate([row["name"], row["method"], row["state"], dice]):
                item = QTableWidgetItem(text)
                item.setToolTip(row["message"] or row["folder"])
                self.runs.setItem(i, j, item)

    def use_selected_run(self) -> None:
        selected = self.runs.selectionModel().selectedRows()
        if not selected:
            self._say("Select a finished run first.")
            return
        from annotator.napari.models_dialog import use_model

        use_model(self.session.runner, self.registry, self.runs.item(selected[0].row(), 0).text(),
                  self.use_selected, self._say)

    def show_models(self) -> None:
        from annotator.napari.models_dialog import ModelsDialog

        ModelsDialog(self.session.runner, self, self.registry).exec_()

    def may_close(self) -> bool:
        """Asked before the window closes: a run still going is stopped (keeping its last
        checkpoint; the model in use stays) when the person says so, else the window stays."""
        if self.job is None or not self.job.running:
            return True
        if self.ask_stop(self.job.config.name or self.job.run_dir.name, self.progress.text()) != "stop":
            return False
        self.job.cancel()
        return True

    def ask_stop(self, run: str, progress: str) -> str:
        """``stop`` or ``cancel``, asked of the person."""
        where = f" ({' '.join(progress.split())})" if progress.strip() else ""
        box = QMessageBox(QMessageBox.Question, "Training is running",
                          f"Training run '{run}' is still running{where}. Closing the window stops it: its "
                          "last checkpoint is kept and the model in use stays as it is.")
        stop = box.addButton("Stop training and close", QMessageBox.DestructiveRole)
        box.addButton(QMessageBox.Cancel)
        box.setObjectName("training-running-prompt")
        box.exec_()
        return "stop" if box.clickedButton() is stop else "cancel"

    def showEvent(self, event) -> None:
        # docked now: the window it is docked in asks before it closes (see may_close)
        if self.window() is not self:
            self.ws.watch_window(self.window())
        super().showEvent(event)

    def closeEvent(self, event) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()
        super().closeEvent(event)
