"""The Training dock: start a tiny run, watch its progress, stop it; the app stays responsive."""

from __future__ import annotations

import shutil
import time

from qtpy.QtGui import QCloseEvent
from qtpy.QtWidgets import QApplication

from annotator.napari.stall_meter import StallMeter
from annotator.settings import LabelPreset
from annotator.training.config import TrainConfig
from annotator.napari.workspace import workspace_for as ws_of
from helpers import answer_prompt
from paths import HIPPO

CASES = ["hippocampus_001", "hippocampus_003", "hippocampus_004", "hippocampus_006"]


def _dataset(folder):
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True)
        for case in CASES:
            shutil.copy(HIPPO / sub / f"{case}.nii.gz", folder / sub)
    return folder


def test_start_progress_cancel_and_stay_responsive(make_napari_viewer, qtbot, tmp_path):
    from annotator.napari.training_dock import TrainingDock

    viewer = make_napari_viewer()
    dock = TrainingDock(viewer)
    viewer.window.add_dock_widget(dock, name="Training", area="right")
    viewer.window.show()  # the window a dock is docked in asks it before closing once shown
    qtbot.waitExposed(viewer.window._qt_window)
    # the window's first layout and paint (its GL canvas sized, under Xvfb) hold the loop a
    # while: settled when the loop has turned every 20 ms for half a second
    meter = StallMeter(20)
    meter.start()
    qtbot.waitUntil(lambda: len(meter.gaps) >= 25 and max(meter.gaps[-25:]) < 0.1, timeout=60_000)
    assert dock.data.text() == "no folder open"
    dock.start_button.click()  # nothing to train on yet: says so, starts nothing
    assert dock.job is None and "Open a folder" in dock.status.text()
    # the Label list's names go with a run, for data that names its labels nowhere
    dock.session.set_presets([LabelPreset(1, "left kidney", "#ff0000"), LabelPreset(2, "cyst", "#00ff00")])
    dock.folder = tmp_path
    assert dock.config().value_names == {"1": "left kidney", "2": "cyst"}

    data = _dataset(tmp_path / "data")
    config = TrainConfig(method="deepedit", data=[str(data)], name="gui-run", max_iterations=100_000,
                         batch_size=2, patch=[32, 32, 32], out=str(tmp_path / "run"), val_fraction=0.25)
    meter.reset()
    dock.start(config)
    assert not dock.start_button.isEnabled() and dock.stop_button.isEnabled()
    qtbot.waitUntil(lambda: dock.progress.value() >= 3, timeout=120_000)
    assert "ETA" in dock.progress.format() and "epoch" in dock.progress.format()
    assert len(dock.plot.loss[0]) >= 1  # the loss curve is being drawn
    assert "training" in dock.log.toPlainText()

    # closing the window while it runs asks first: Cancel keeps the window and the run
    seen = []
    answer_prompt(qtbot, "Cancel", seen)
    close = QCloseEvent()
    QApplication.sendEvent(viewer.window._qt_window, close)  # what the window's close button sends
    assert seen and "'gui-run' is still running (epoch" in seen[0] and "checkpoint is kept" in seen[0]
    assert not close.isAccepted() and dock.job.running

    dock.stop_button.click()
    asked = time.monotonic()
    qtbot.waitUntil(lambda: dock.start_button.isEnabled(), timeout=10_000)
    print(f"\nstopped {time.monotonic() - asked:.2f} s after Stop")
    meter.stop()
    assert dock.job.outcome() == "cancelled"
    assert "Stopped at iteration" in dock.status.text()
    assert dock.progress.format() == "cancelled"
    print(f"longest gap of a 20 ms timer while training ran: {meter.longest * 1000:.0f} ms")
    assert meter.longest < 0.5, "the event loop stalled while training ran in its child process"
    assert (tmp_path / "run" / "last.json").exists()
    assert dock.may_close()  # nothing running: nothing asked

    # Stop training and close: the run stops as Stop stops it, and the window may close
    dock.start(config)
    qtbot.waitUntil(lambda: dock.job.running and dock.progress.value() >= 1, timeout=120_000)
    answer_prompt(qtbot, "Stop training and close", seen)
    assert ws_of(viewer).may_close()
    qtbot.waitUntil(lambda: dock.start_button.isEnabled(), timeout=30_000)
    assert dock.job.outcome() == "cancelled" and "Stopped at iteration" in dock.status.text()


def test_past_runs_and_choosing_a_model(make_napari_viewer, qtbot, tmp_path):
    from annotator.models.registry import ModelRegistry
    from annotator.napari.training_dock import TrainingDock
    from annotator.training.config import runs_dir

    viewer = make_napari_viewer()
    dock = TrainingDock(viewer)
    viewer.window.add_dock_widget(dock, name="Training", area="right")
    data = _dataset(tmp_path / "data")
    config = TrainConfig(method="deepgrow3d", data=[str(data)], name="finished-run", max_iterations=3,
                         batch_size=2, patch=[32, 32, 32], out=str(runs_dir() / "finished-run"), activate=False,
                         val_fraction=0.25)
    dock.start(config)
    qtbot.waitUntil(lambda: dock.start_button.isEnabled(), timeout=180_000)
    assert "Done: best validation Dice" in dock.status.text(), dock.log.toPlainText()
    assert dock.runs.rowCount() == 1 and dock.runs.item(0, 2).text() == "done"
    assert ModelRegistry().chosen() == {}
    dock.runs.selectRow(0)
    dock.use_selected.click()
    qtbot.waitUntil(dock.use_selected.isEnabled, timeout=60_000)  # checked in the worker
    assert ModelRegistry().chosen() == {"deepgrow3d": "finished-run"}
    assert "'finished-run' is now used for DeepGrow 3D" in dock.status.text()


def test_the_plot_reads_loss_left_and_dice_right(qtbot):
    """Before a run the plot says what it will show (no made-up scale); during one, the
    validation Dice axis and its label stay on the right, clear of the loss axis."""
    from annotator.napari.training_dock import LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(400, 200)
    plot.show()
    qtbot.waitUntil(lambda: plot.canvas is not None)
    assert plot.placeholder.get_visible() and plot.placeholder.get_text() == "loss and validation Dice\nappear here during a run"
    assert not plot.loss_axes.get_xticks().size and not plot.loss_axes.get_yticks().size
    for i in range(1, 41):
        plot.add({"event": "progress", "iteration": i, "loss": 1.0 / i})
        if i % 10 == 0:
            plot.add({"event": "validation", "iteration": i, "dice": 0.5 + i / 100})
    # points are drawn together, within a second, not one redraw per event
    assert not len(plot.loss_line.get_xdata())
    qtbot.waitUntil(lambda: len(plot.loss_line.get_xdata()) == 40, timeout=3_000)
    assert list(plot.dice_line.get_xdata()) == [10, 20, 30, 40]
    plot.canvas.draw()
    renderer = plot.canvas.get_renderer()
    assert not plot.placeholder.get_visible()
    assert plot.loss_axes.get_xlim()[1] >= 40 and plot.loss_axes.get_ylim()[1] >= 1.0
    canvas_box = plot.canvas.figure.bbox
    for label in (plot.loss_axes.xaxis.label, plot.loss_axes.yaxis.label, plot.dice_axes.yaxis.label):
        box = label.get_window_extent(renderer)
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= canvas_box.x1 and box.y1 <= canvas_box.y1, label.get_text()
    assert plot.dice_axes.yaxis.get_label_position() == "right"
    dice_label = plot.dice_axes.yaxis.label.get_window_extent(renderer)
    loss_box = plot.loss_axes.get_window_extent(renderer)
    assert dice_label.x0 >= loss_box.x1, "the Dice label lies over the plot or the loss axis"
    loss_ticks = [t.get_window_extent(renderer) for t in plot.loss_axes.get_yticklabels() if t.get_text()]
    assert loss_ticks and all(b.x1 <= loss_box.x0 for b in loss_ticks)


def test_the_models_window_lists_chooses_and_imports(make_napari_viewer, qtbot, tmp_path):
    """Models... lists every installed model and the one each method uses; Use chooses the
    selected one; Import... converts a MONAI Label checkpoint in a worker (the table shows
    it when done) and says plainly why a file that is no checkpoint cannot be."""
    import torch

    from annotator.models import build_network
    from annotator.models.networks import VARIANTS
    from annotator.models.registry import ModelRegistry
    from annotator.napari.models_dialog import ImportDialog, ModelsDialog
    from annotator.napari.training_dock import TrainingDock

    from annotator.models import load_checkpoint, save_checkpoint
    from annotator.models.registry import user_dir

    # a model a training run installed without using it (it did worse than the starter)
    model, card = load_checkpoint(ModelRegistry().entry("deepedit-hippocampus-mr").sidecar)
    card.name, card.training = "worse", {**card.training, "not_used": "its validation Dice 0.055 is below 0.879"}
    save_checkpoint(model, card, user_dir() / "worse.json")
    viewer = make_napari_viewer()
    dock = TrainingDock(viewer)
    dialog = ModelsDialog(dock.session.runner, dock, dock.registry)
    qtbot.addWidget(dialog)
    names = [dialog.table.item(i, 1).text() for i in range(dialog.table.rowCount())]
    assert {"deepedit-hippocampus-mr", "deepgrow3d-hippocampus-mr", "worse"} <= set(names)
    # none chosen yet: each method's default is marked as such; the one not to be used says so
    assert dialog.table.item(names.index("deepedit-hippocampus-mr"), 0).text() == "default"
    assert dialog.table.item(names.index("worse"), 0).text() == "not used"
    assert "0.055" in dialog.table.item(names.index("worse"), 0).toolTip()
    assert "✓" not in [dialog.table.item(i, 0).text() for i in range(dialog.table.rowCount())]
    dialog.use_selected()
    assert "Select a model first" in dialog.message.text()
    dialog.table.selectRow(names.index("deepgrow3d-hippocampus-mr"))
    dialog.use_selected()  # checked in the worker (a checkpoint loads in seconds): the window stays responsive
    assert not dialog.use_button.isEnabled() and "checking 'deepgrow3d-hippocampus-mr'" in dialog.message.text()
    qtbot.waitUntil(dialog.use_button.isEnabled, timeout=60_000)
    assert ModelRegistry().chosen() == {"deepgrow3d": "deepgrow3d-hippocampus-mr"}
    row = [dialog.table.item(i, 1).text() for i in range(dialog.table.rowCount())].index("deepgrow3d-hippocampus-mr")
    assert dialog.table.item(row, 0).text() == "✓"

    # the form names what is missing or malformed before anything runs
    form = ImportDialog(dialog)
    qtbot.addWidget(form)
    form._check_and_accept()
    assert "choose the checkpoint" in form.message.text()
    form.path.setText(str(tmp_path / "grow.pt"))
    form.window.setText("250,-175")
    form._check_and_accept()
    assert "LOW must be below HIGH" in form.message.text()
    form.window.setText("")
    form.method.setCurrentIndex(form.method.findData("deepgrow3d"))
    form.name.setText("grow-from-monai")
    torch.manual_seed(0)
    spec = {**VARIANTS["sample-app"]["deepgrow3d"], "in_channels": 3, "out_channels": 1}
    torch.save(build_network(spec).state_dict(), tmp_path / "grow.pt")
    dialog.start_import(form.request())
    qtbot.waitUntil(lambda: dialog.import_button.isEnabled(), timeout=120_000)
    assert "'grow-from-monai' installed" in dialog.message.text(), dialog.message.text()
    assert dialog.selected_name() == "grow-from-monai"
    row = [dialog.table.item(i, 1).text() for i in range(dialog.table.rowCount())].index("grow-from-monai")
    assert dialog.table.item(row, 6).text() == "imported from grow.pt"
    assert dialog.table.item(row, 5).text() == "any size"  # its training images are not known
    bundled = [dialog.table.item(i, 1).text() for i in range(dialog.table.rowCount())].index("deepedit-hippocampus-mr")
    assert dialog.table.item(bundled, 5).text() == "40 x 32 x 26 mm to 58 x 47 x 41 mm"
    dialog.use_selected()
    qtbot.waitUntil(dialog.use_button.isEnabled, timeout=60_000)
    assert ModelRegistry().chosen()["deepgrow3d"] == "grow-from-monai"
    # its weights damaged since: said, and the model in use stays
    weights = dock.registry.entry("grow-from-monai").sidecar.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:100])
    dialog.table.selectRow(row)
    dialog.use_selected()
    qtbot.waitUntil(dialog.use_button.isEnabled, timeout=60_000)
    assert "Cannot use 'grow-from-monai'" in dialog.message.text()
    weights.unlink()
    assert ModelRegistry().chosen()["deepgrow3d"] == "grow-from-monai"

    (tmp_path / "notes.pt").write_text("not a checkpoint")
    dialog.start_import({**form.request(), "path": str(tmp_path / "notes.pt"), "name": "broken"})
    qtbot.waitUntil(lambda: dialog.import_button.isEnabled(), timeout=60_000)
    assert "Import failed" in dialog.message.text() and "notes.pt: not a PyTorch checkpoint" in dialog.message.text()
    assert "broken" not in [dialog.table.item(i, 1).text() for i in range(dialog.table.rowCount())]
    dialog.resize(820, 340)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.grab().save(str(tmp_path / "models.png"))
    print(f"screenshot: {tmp_path / 'models.png'}")


def test_the_models_window_calibrates_the_selected_model(make_napari_viewer, qtbot, tmp_path):
    """Calibrate... chooses, on a folder of labelled images and in the worker, where the
    selected DeepGrow model's first answer is cut, says what it chose and keeps it in the
    sidecar; too few images, or a folder of none, are said plainly and change nothing."""
    from annotator.active.calibration import MIN_CASES
    from annotator.models import load_checkpoint
    from annotator.napari.models_dialog import ModelsDialog
    from annotator.napari.training_dock import TrainingDock
    from balls import ball_folder, install_tiny_deepgrow

    sidecar = install_tiny_deepgrow("grown-here")
    dock = TrainingDock(make_napari_viewer())
    dialog = ModelsDialog(dock.session.runner, dock, dock.registry)
    qtbot.addWidget(dialog)
    dialog.ask_calibrate()
    assert "Select a model first" in dialog.message.text()
    names = [dialog.table.item(i, 1).text() for i in range(dialog.table.rowCount())]
    dialog.table.selectRow(names.index("grown-here"))

    def calibrated(folder) -> str:
        dialog.start_calibrate(dialog.selected_name(), str(folder))
        assert not dialog.calibrate_button.isEnabled()
        qtbot.waitUntil(dialog.calibrate_button.isEnabled, timeout=120_000)
        return dialog.message.text()

    said = calibrated(ball_folder(tmp_path / "few", MIN_CASES - 1))
    assert "too few labelled images" in said and load_checkpoint(sidecar)[1].first_answer == {}
    (tmp_path / "empty").mkdir()
    assert "too few labelled images" in calibrated(tmp_path / "empty")
    said = calibrated(tmp_path / "missing")
    assert "Calibration failed" in said and f"{tmp_path / 'missing'}: no such" in said
    said = calibrated(ball_folder(tmp_path / "balls", MIN_CASES))
    chosen = load_checkpoint(sidecar)[1].first_answer
    assert "'grown-here': a first answer keeps the voxels" in said and f"log-odds of {chosen['threshold']:g}" in said
    assert chosen["structures"] == MIN_CASES and dialog.selected_name() == "grown-here"
    dialog.resize(980, 340)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.grab().save(str(tmp_path / "models_calibrated.png"))
    print(f"screenshot: {tmp_path / 'models_calibrated.png'}")
