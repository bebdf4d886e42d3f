"""Acting as a person: open, click, scribble, undo, accept, switch images — in a real viewer."""

from __future__ import annotations

import time

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt, QTimer
from qtpy.QtGui import QCloseEvent, QColor
from qtpy.QtWidgets import QApplication, QColorDialog
from scipy.ndimage import binary_erosion, distance_transform_edt

from annotator.engine.metrics import dice
from annotator.bench.simulate import scribbles_from_mask
from annotator.napari import layers as L
from annotator.napari.worklist_dock import ID_ROLE
from annotator.napari.stall_meter import StallMeter
from helpers import EngineSteps, answer_prompt, truth


def _click_points(mask: np.ndarray, n: int) -> list[tuple[int, int, int]]:
    """``n`` points deep inside ``mask``, spread along its first axis."""
    depth = distance_transform_edt(mask)
    slices = np.nonzero(mask.any(axis=(1, 2)))[0]
    points = []
    for z in np.linspace(slices[1], slices[-2], n).astype(int):
        yx = np.unravel_index(np.argmax(depth[z]), depth[z].shape)
        points.append((int(z), int(yx[0]), int(yx[1])))
    return points


def _ring_points(mask: np.ndarray, n: int) -> list[tuple[int, int, int]]:
    ring = (distance_transform_edt(~mask) > 3) & (distance_transform_edt(~mask) <= 4)
    coords = np.argwhere(ring)
    return [tuple(int(v) for v in coords[i]) for i in np.linspace(0, len(coords) - 1, n).astype(int)]


def test_clicks_segment_the_hippocampus(annotator_window, qtbot):
    viewer, ws, dock, _ = annotator_window
    assert ws.image_id == "hippocampus_001"
    gt = truth("hippocampus_001", ws.volume)
    steps = EngineSteps(ws)
    fg, bg = viewer.layers[L.FOREGROUND], viewer.layers[L.BACKGROUND]
    for i, p in enumerate(_click_points(gt, 4)):
        fg.add(np.array(p, float))
    for p in _ring_points(gt, 6):
        bg.add(np.array(p, float))
    steps.wait(qtbot, 1)
    qtbot.waitUntil(lambda: not ws.busy and ws._pending is None, timeout=60000)
    seg = np.asarray(viewer.layers[L.SEGMENTATION].data)
    score = dice(seg > 0, gt)
    print(f"\nGUI clicks (4 foreground, 6 background) on hippocampus_001: Dice {score:.3f}")
    assert score > 0.6
    assert "graphcut-clicks" in dock.status.text()
    assert ws.history.current.marks["fg"] == [tuple(int(v) for v in p) for p in fg.data]


def test_scribbles_segment_the_hippocampus(annotator_window, qtbot):
    viewer, ws, dock, _ = annotator_window
    gt = truth("hippocampus_001", ws.volume)
    steps = EngineSteps(ws)
    layer = viewer.layers[L.SCRIBBLES]
    strokes = scribbles_from_mask(gt)
    assert layer.brush_size < 5  # sized to the image, not napari's default
    assert viewer.layers[L.SEGMENTATION].brush_size == 1  # napari's 10 voxels: a third of this crop
    layer.data = strokes  # the strokes a person drew...
    inside = np.argwhere(binary_erosion(gt, iterations=2) & (strokes == 0))
    layer.brush_size = 1
    layer.paint(tuple(int(v) for v in inside[len(inside) // 2]), 1)  # ...and the last dab of the brush
    steps.wait(qtbot, 1)
    score = dice(np.asarray(viewer.layers[L.SEGMENTATION].data) > 0, gt)
    print(f"\nGUI scribbles on hippocampus_001: Dice {score:.3f}")
    assert score > 0.75
    assert "graphcut-scribbles" in dock.status.text()


def test_the_first_foreground_dab_runs_the_engine(annotator_window, qtbot):
    """napari says a dab is painted before it writes it: the engine looked, found no
    foreground stroke yet, and did not run (or ran without the dab, depending on
    timing). It runs once the dab is written, and sees it."""
    viewer, ws, dock, _ = annotator_window
    gt = truth("hippocampus_001", ws.volume)
    steps = EngineSteps(ws)
    layer = viewer.layers[L.SCRIBBLES]
    strokes = scribbles_from_mask(gt)
    strokes[strokes == 1] = 0  # background strokes only, so far
    layer.data = strokes
    inside = np.argwhere(binary_erosion(gt, iterations=2))
    layer.brush_size = 1
    dab = tuple(int(v) for v in inside[len(inside) // 2])
    layer.paint(dab, 1)
    steps.wait(qtbot, 1, timeout=20000)
    assert ws.label[dab] == 1 and "graphcut-scribbles" in dock.status.text()


def _press(layer, keys: str) -> None:
    """What napari does for ``keys`` pressed over ``layer``: the layer's own binding, else
    its class's."""
    from napari.utils.key_bindings import KeyBinding

    key = KeyBinding.from_str(keys)
    (layer.keymap.get(key) or type(layer).class_keymap[key])(layer)


def _activate(viewer, qtbot) -> None:
    """The viewer's window shown and active, as a person's is: its shortcuts answer keys."""
    window = viewer.window._qt_window
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)


def test_ctrl_z_on_the_scribbles_takes_back_a_stroke_and_the_label_follows(annotator_window, qtbot):
    """A stroke taken back with Ctrl+Z on the scribbles layer (napari's own undo) left the
    label as that stroke had made it; now the label is cut again from the strokes left,
    and Ctrl+Shift+Z brings the stroke and its label back."""
    viewer, ws, dock, _ = annotator_window
    gt = truth("hippocampus_001", ws.volume)
    steps = EngineSteps(ws)
    layer = viewer.layers[L.SCRIBBLES]
    layer.data = scribbles_from_mask(gt)  # foreground and background strokes
    inside = np.argwhere(binary_erosion(gt, iterations=2) & (np.asarray(layer.data) == 0))
    layer.brush_size = 1
    layer.paint(tuple(int(v) for v in inside[len(inside) // 2]), 1)
    steps.wait(qtbot, 1)
    first = ws.label.copy()
    outside = np.argwhere(~gt)
    layer.brush_size = 3
    layer.paint(tuple(int(v) for v in outside[len(outside) // 3]), 1)  # a foreground stroke in the wrong place
    steps.wait(qtbot, 2)
    wrong = ws.label.copy()
    assert not np.array_equal(wrong, first)
    _press(layer, "Control-Z")
    steps.wait(qtbot, 3)
    np.testing.assert_array_equal(ws.label, first)
    _press(layer, "Control-Shift-Z")
    steps.wait(qtbot, 4)
    np.testing.assert_array_equal(ws.label, wrong)


def test_undo_redo_and_accept(annotator_window, qtbot, store_folder):
    viewer, ws, dock, worklist = annotator_window
    gt = truth("hippocampus_001", ws.volume)
    steps = EngineSteps(ws)
    points = _click_points(gt, 3)
    viewer.layers[L.FOREGROUND].add(np.array(points[0], float))
    steps.wait(qtbot, 1)
    first = np.asarray(viewer.layers[L.SEGMENTATION].data).copy()
    viewer.layers[L.FOREGROUND].add(np.array(points[2], float))
    steps.wait(qtbot, 2)
    second = np.asarray(viewer.layers[L.SEGMENTATION].data).copy()
    assert not np.array_equal(first, second)
    # look at a slice where the two steps differ: the canvas must follow undo and redo
    z = int(np.flatnonzero((first != second).any(axis=(1, 2)))[0])
    viewer.dims.set_point(0, float((L.affine(ws.volume) @ [z, 0, 0, 1])[0]))
    viewer.window.show()  # a hidden canvas draws nothing
    shown = viewer.screenshot(canvas_only=True)

    dock.buttons["undo"].click()
    np.testing.assert_array_equal(viewer.layers[L.SEGMENTATION].data, first)
    assert len(viewer.layers[L.FOREGROUND].data) == 1  # the click is undone too
    assert not np.array_equal(viewer.screenshot(canvas_only=True), shown)
    dock.buttons["redo"].click()
    np.testing.assert_array_equal(viewer.layers[L.SEGMENTATION].data, second)
    np.testing.assert_array_equal(viewer.screenshot(canvas_only=True), shown)

    dock.buttons["accept"].click()
    qtbot.waitUntil(lambda: ws.idle, timeout=30000)  # saved in the file worker
    final = store_folder / "labels" / "final" / "hippocampus_001.nii.gz"
    original = store_folder / "labels" / "original" / "hippocampus_001.nii.gz"
    assert final.exists() and original.exists()
    from annotator.io import read_label

    np.testing.assert_array_equal(read_label(final, ws.volume), second)
    statuses = {worklist.table.item(r, 0).data(ID_ROLE): worklist.table.item(r, 1).text()
                for r in range(worklist.table.rowCount())}
    assert statuses["hippocampus_001"] == "labeled"
    assert not ws.has_unsaved_work
    # accepted again after a clear: the first accept is offered under Earlier, and restored
    assert dock.earlier.isVisible() and [dock.earlier.itemText(i) for i in range(dock.earlier.count())] == \
        ["first proposed (original)"]
    dock.buttons["clear"].click()
    dock.buttons["accept"].click()
    qtbot.waitUntil(lambda: ws.idle and dock.earlier.count() == 2, timeout=30000)
    assert dock.earlier.itemText(0).startswith("accepted ")
    assert not np.asarray(viewer.layers[L.SEGMENTATION].data).any()
    dock.earlier.setCurrentIndex(0)
    dock.restore.click()
    qtbot.waitUntil(lambda: ws.idle and np.asarray(viewer.layers[L.SEGMENTATION].data).any(), timeout=30000)
    np.testing.assert_array_equal(viewer.layers[L.SEGMENTATION].data, second)
    assert "is the label now" in dock.status.text() and ws.has_unsaved_work
    dock.buttons["undo"].click()
    assert not np.asarray(viewer.layers[L.SEGMENTATION].data).any()


def test_switching_image_with_unsaved_work_prompts(annotator_window, qtbot, store_folder):
    viewer, ws, dock, worklist = annotator_window
    steps = EngineSteps(ws)
    gt = truth("hippocampus_001", ws.volume)
    viewer.layers[L.FOREGROUND].add(np.array(_click_points(gt, 1)[0], float))
    steps.wait(qtbot, 1)
    assert ws.has_unsaved_work

    seen = []
    answer_prompt(qtbot, "Cancel", seen)
    worklist.open_image("hippocampus_003")
    assert seen and "hippocampus_001" in seen[0]
    assert ws.image_id == "hippocampus_001" and ws.has_unsaved_work  # nothing dropped

    answer_prompt(qtbot, "Keep as draft", seen)
    worklist.open_image("hippocampus_003")
    qtbot.waitUntil(lambda: ws.image_id == "hippocampus_003" and ws.idle, timeout=30000)
    assert (store_folder / "labels" / "draft" / "hippocampus_001.nii.gz").exists()
    statuses = {worklist.table.item(r, 0).data(ID_ROLE): worklist.table.item(r, 1).text()
                for r in range(worklist.table.rowCount())}
    assert statuses["hippocampus_001"] == "in_progress"

    # back to the first image: the draft comes back
    worklist.open_image("hippocampus_001")
    qtbot.waitUntil(lambda: ws.image_id == "hippocampus_001" and ws.idle, timeout=30000)
    assert np.asarray(viewer.layers[L.SEGMENTATION].data).any()


def test_a_click_during_a_run_is_queued_not_lost(make_napari_viewer, qtbot):
    from annotator.io.phantom import ct_phantom
    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.workspace import workspace_for

    viewer = make_napari_viewer()
    viewer.window.add_dock_widget(AnnotationDock(viewer), area="right")
    ws = workspace_for(viewer).session
    volume, organs = ct_phantom()
    ws.show(volume)
    steps = EngineSteps(ws)
    liver = np.argwhere(organs == 1)
    fg = viewer.layers[L.FOREGROUND]

    start = time.perf_counter()
    fg.add(liver[len(liver) // 2].astype(float))
    fg.add(liver[len(liver) // 3].astype(float))  # while the first one runs
    assert ws._pending == "clicks"
    steps.wait(qtbot, 2)
    engine_s = time.perf_counter() - start
    assert ws.history.current.marks["fg"] == [tuple(int(v) for v in p) for p in fg.data]
    assert len(ws.history.current.marks["fg"]) == 2  # the queued click was not lost
    print(f"\ntwo queued clicks on a 128x256x256 CT: {engine_s:.2f} s of engine work")


def test_event_loop_stall_while_the_engine_runs(make_napari_viewer, qtbot):
    from annotator.io.phantom import ct_phantom
    from annotator.napari.workspace import workspace_for

    viewer = make_napari_viewer()
    ws = workspace_for(viewer).session
    volume, organs = ct_phantom()
    ws.show(volume)
    steps = EngineSteps(ws)
    liver = np.argwhere(organs == 1)
    meter = StallMeter()
    meter.start()
    qtbot.wait(100)
    meter.reset()
    start = time.perf_counter()
    viewer.layers[L.FOREGROUND].add(liver[len(liver) // 2].astype(float))
    steps.wait(qtbot, 1)
    engine_s = time.perf_counter() - start
    meter.stop()
    stall, gaps = meter.longest, meter.gaps
    print(f"\nengine step {engine_s:.2f} s; longest event-loop stall {stall * 1000:.0f} ms "
          f"over {len(gaps)} ticks")
    assert len(gaps) > 5  # the loop kept ticking during the run
    assert stall < 0.5 * engine_s  # the engine did not run on the Qt thread


def test_closing_with_unsaved_work_prompts(annotator_window, qtbot):
    viewer, ws, dock, _ = annotator_window
    steps = EngineSteps(ws)
    gt = truth("hippocampus_001", ws.volume)
    viewer.layers[L.FOREGROUND].add(np.array(_click_points(gt, 1)[0], float))
    steps.wait(qtbot, 1)
    viewer.window.show()  # the workspace watches the window a dock is docked in once shown
    qtbot.waitUntil(dock.isVisible)
    seen = []
    answer_prompt(qtbot, "Cancel", seen)
    close = QCloseEvent()
    QApplication.sendEvent(viewer.window._qt_window, close)  # what the window's close button sends
    assert seen and "hippocampus_001" in seen[0]
    assert not close.isAccepted()  # the window stays, and so does the work
    assert ws.has_unsaved_work and L.SEGMENTATION in viewer.layers
    viewer.window._qt_window.hide()


def test_painting_the_label_autosaves_a_draft(annotator_window, qtbot, store_folder):
    viewer, ws, dock, _ = annotator_window
    ws.autosave_s = 0.2
    seg = viewer.layers[L.SEGMENTATION]
    seg.brush_size = 3
    seg.paint((17, 25, 17), 1)
    assert ws.has_unsaved_work
    draft = store_folder / "labels" / "draft" / "hippocampus_001.nii.gz"
    qtbot.waitUntil(draft.exists, timeout=10000)
    assert not ws.has_unsaved_work


def _edit_presets(dock, edit) -> None:
    """Open the dock's presets dialog and run ``edit(dialog)`` in it, as a person would."""

    def run():
        dialog = QApplication.activeModalWidget()
        if dialog is None or dialog.objectName() != "presets-dialog":
            QTimer.singleShot(50, run)
            return
        try:
            edit(dialog)
        finally:
            if dialog.isVisible():  # a failed check must not leave the test waiting on the dialog
                dialog.reject()

    QTimer.singleShot(50, run)
    dock.edit_presets()


def test_label_presets_are_editable(annotator_window, qtbot):
    from annotator.settings import Settings

    viewer, ws, dock, _ = annotator_window

    def edit(dialog):
        dialog.table.item(0, 1).setText("hippocampus")
        dialog.table.item(0, 2).setText("#00aaff")
        assert not dialog.table.item(0, 2).icon().isNull()  # the cell shows its colour
        dialog.table.item(1, 2).setText("not a colour")
        assert dialog.table.item(1, 2).icon().isNull()
        tries = []

        def choose():  # the colour dialog that a double-click opens
            picker = QApplication.activeModalWidget()
            if not isinstance(picker, QColorDialog):
                tries.append(1)
                if len(tries) < 100:
                    QTimer.singleShot(50, choose)
                return
            picker.setCurrentColor(QColor("#123456"))
            picker.accept()

        QTimer.singleShot(50, choose)
        cell = dialog.table.visualItemRect(dialog.table.item(1, 2)).center()
        qtbot.mouseClick(dialog.table.viewport(), Qt.LeftButton, pos=cell)  # a double-click, as a
        qtbot.mouseDClick(dialog.table.viewport(), Qt.LeftButton, pos=cell)  # person's arrives
        assert dialog.table.item(1, 2).text() == "#123456" and not dialog.table.item(1, 2).icon().isNull()
        dialog._add_next()
        dialog.table.item(1, 1).setText("Hippocampus")  # two labels of one name: which is which?
        assert dialog.read_rows() is None and "another label is named 'Hippocampus'" in dialog.message.text()
        dialog.table.item(1, 1).setText("posterior")
        dialog._check_and_accept()

    _edit_presets(dock, edit)
    assert dock.preset.itemText(0) == "1: hippocampus"
    assert dock.preset.count() == 5
    saved = Settings.load().presets
    assert saved[0].name == "hippocampus" and saved[0].color == "#00aaff" and saved[1].color == "#123456"
    colour = viewer.layers[L.SEGMENTATION].colormap.map(np.array([1]))[0]
    np.testing.assert_allclose(colour[:3], [0, 0xAA / 255, 1], atol=0.01)


def test_a_label_numbered_beyond_255_is_drawn_painted_and_shown(annotator_window, qtbot, tmp_path):
    """A structure numbered 1035 (FreeSurfer's left precuneus), added in the presets
    dialog: a click draws it, the label layer becomes the session's widened label (two
    bytes a voxel) and shows it in its colour, the layer's own brush paints it, and the
    value is counted and saved."""
    viewer, ws, dock, _ = annotator_window

    def add(dialog):
        dialog._add_row(1035, "ctx-lh-precuneus", "#dc3c14")
        dialog._check_and_accept()

    _edit_presets(dock, add)
    dock.preset.setCurrentIndex(dock.preset.findData(1035))
    assert ws.label_value == 1035 and "1035: ctx-lh-precuneus" in dock.preset.currentText()
    seg = viewer.layers[L.SEGMENTATION]
    assert seg.data is ws.label and seg.data.dtype == np.uint16 and seg.selected_label == 1035
    steps = EngineSteps(ws)
    gt = truth("hippocampus_001", ws.volume)
    viewer.layers[L.FOREGROUND].add(np.array(_click_points(gt, 1)[0], float))
    steps.wait(qtbot, 1)
    assert seg.data is ws.label and set(np.unique(seg.data).tolist()) == {0, 1035}
    np.testing.assert_allclose(seg.colormap.map(np.array([1035]))[0][:3], [0xDC / 255, 0x3C / 255, 0x14 / 255],
                               atol=0.01)
    corner = (0, 0, 0)
    seg.paint(corner, 1035, refresh=True)  # the layer's own brush
    assert ws.label[corner] == 1035
    ws.count_volumes()
    qtbot.waitUntil(lambda: 1035 in ws.volumes(), timeout=10000)
    assert ws.accept()
    qtbot.waitUntil(lambda: not ws.files.busy, timeout=30000)
    saved = ws.store.label(ws.image_id, ws.volume)
    assert saved.dtype == np.uint16 and saved[corner] == 1035


def test_the_dock_shows_the_volume_of_each_label(annotator_window, qtbot):
    """The chosen label's volume in mL under the status, all labels' on hover; it follows
    painting, the label chosen and undo."""
    viewer, ws, dock, _ = annotator_window
    name = {p.value: p.name for p in ws.labels}
    qtbot.waitUntil(lambda: dock.volume_text.text() == f"Volume of {name[1]}: 0 mL", timeout=5000)
    assert dock.volume_text.toolTip() == "The label is empty"
    voxel_ml = float(np.prod(ws.volume.spacing)) / 1000
    ws.label[2:12, 5:25, 5:25] = 1  # 4,000 voxels
    ws.label[20:25, 5:25, 5:25] = 2  # 2,000 voxels
    ws.painted()
    one, two = f"{4000 * voxel_ml:.3g} mL", f"{2000 * voxel_ml:.3g} mL"
    qtbot.waitUntil(lambda: dock.volume_text.text()
                    == f"Volume of {name[1]}: {one}; all labels: {6000 * voxel_ml:.3g} mL", timeout=5000)
    assert dock.volume_text.toolTip().splitlines() == [f"1: {name[1]}  {one} (4,000 voxels)",
                                                      f"2: {name[2]}  {two} (2,000 voxels)"]
    dock.preset.setCurrentIndex(dock.preset.findData(2))
    qtbot.waitUntil(lambda: dock.volume_text.text().startswith(f"Volume of {name[2]}: {two};"), timeout=5000)
    dock.buttons["clear"].click()  # the chosen label goes; the other stays
    qtbot.waitUntil(lambda: dock.volume_text.text().startswith(f"Volume of {name[2]}: 0 mL;"), timeout=5000)
    assert (ws.label == 1).sum() == 4000 and not (ws.label == 2).any()
    assert "the other structures stay" in dock.status.text()
    assert dock.buttons["clear"].toolTip().splitlines() == [
        "Alt+X: clear the marks and the chosen label (the others stay)", "Alt+Shift+X: clear the marks and every label"]
    _activate(viewer, qtbot)
    qtbot.keyClick(dock.preset, Qt.Key_X, Qt.AltModifier | Qt.ShiftModifier)
    qtbot.waitUntil(lambda: dock.volume_text.text() == f"Volume of {name[2]}: 0 mL", timeout=5000)
    assert not ws.label.any()
    dock.buttons["undo"].click()
    assert (ws.label == 1).sum() == 4000


def test_fill_holes_and_keep_largest_part_from_the_dock(annotator_window, qtbot):
    """The dock's tidy buttons change the label layer; Undo brings the label back."""
    viewer, ws, dock, _ = annotator_window
    seg = viewer.layers[L.SEGMENTATION]
    ws.label[5:25, 10:40, 8:30] = 1
    ws.label[15, 20:24, 15:20] = 0  # a hole
    ws.label[28:31, 45:48, 2:5] = 1  # an island
    ws.painted()
    seg.refresh()
    painted = ws.label.copy()
    steps = EngineSteps(ws)
    dock.buttons["fill_holes"].click()
    steps.wait(qtbot, 1)
    assert (np.asarray(seg.data)[15, 20:24, 15:20] == 1).all() and "fill holes" in dock.status.text()
    dock.buttons["keep_largest"].click()
    steps.wait(qtbot, 2)
    assert not np.asarray(seg.data)[28:31, 45:48, 2:5].any()
    assert dock.buttons["fill_holes"].toolTip() == "Alt+I: fill the chosen label's holes (on each slice of the view)"
    tidied = np.asarray(seg.data).copy()
    ws.label[15, 30, 30:34] = 1  # a spike off its side
    ws.painted()
    _activate(viewer, qtbot)
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key_J, Qt.AltModifier)  # Smooth had no key
    steps.wait(qtbot, 3)
    # the spike goes (its base may stay, a bump: a box keeps its volume at its edges)
    assert not np.asarray(seg.data)[15, 30, 31:34].any() and "smooth" in dock.status.text()
    assert (np.asarray(seg.data)[8:22, 13:37, 11:27] == 1).all()  # its bulk stays
    assert dock.buttons["smooth"].toolTip().startswith("Alt+J: smooth the chosen label's surface: spikes")
    dock.buttons["undo"].click()
    np.testing.assert_array_equal(np.asarray(seg.data)[15, 30, 30:34], 1)
    ws.label[15, 30, 30:34] = tidied[15, 30, 30:34]  # painted without a stroke record: off by hand
    dock.buttons["undo"].click()
    dock.buttons["undo"].click()
    np.testing.assert_array_equal(np.asarray(seg.data), painted)


def test_grow_and_shrink_by_the_docks_margin(annotator_window, qtbot):
    """Grow (the button, or Alt+=) moves the chosen label's surface out by the margin set
    beside it, Shrink (Alt+-) in; another label's voxels stay; each undoes like a click;
    a margin under a voxel says so and leaves the label as it is."""
    viewer, ws, dock, _ = annotator_window
    seg = viewer.layers[L.SEGMENTATION]
    ws.label[10:20, 10:20, 10:20] = 1
    ws.label[10:20, 10:20, 21:23] = 2  # another structure a voxel beyond its side
    ws.painted()
    seg.refresh()
    painted = ws.label.copy()
    spacing = ws.volume.array_spacing
    assert dock.margin.value() == 3.0 and dock.margin.suffix() == " mm"
    dock.margin.setValue(2 * max(spacing))  # two voxels along every axis
    steps = EngineSteps(ws)
    dock.buttons["grow"].click()
    steps.wait(qtbot, 1)
    grown = np.asarray(seg.data).copy()
    # two voxels out across each face (the corners round off: a margin is a distance)
    assert (grown[8:22, 10:20, 10:20] == 1).all() and (grown[10:20, 8:22, 10:20] == 1).all()
    assert (grown[10:20, 10:20, 8:21] == 1).all() and (grown == 2).sum() == (painted == 2).sum()
    assert (grown[10:20, 10:20, 21:23] == 2).all() and not grown[7, 15, 15] and "grow" in dock.status.text()
    assert dock.buttons["grow"].toolTip().startswith("Alt+=: grow the chosen label by the margin")
    _activate(viewer, qtbot)
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key_Minus, Qt.AltModifier)
    steps.wait(qtbot, 2)
    shrunk = np.asarray(seg.data)
    assert (shrunk[10:20, 10:20, 10:19] == 1).all() and (shrunk == 1).sum() < (grown == 1).sum()
    dock.buttons["undo"].click()
    dock.buttons["undo"].click()
    np.testing.assert_array_equal(np.asarray(seg.data), painted)
    dock.margin.setValue(0.5 * min(spacing))
    dock.buttons["shrink"].click()
    qtbot.waitUntil(lambda: "is less than this image" in dock.status.text(), timeout=10000)
    np.testing.assert_array_equal(np.asarray(seg.data), painted)


def test_flood_and_clip_by_the_docks_range(annotator_window, qtbot):
    """The range beside Flood starts as the window the image opened with; Flood (the
    button) takes in the tissue within it connected to the chosen label, Clip (Alt+Shift+Y)
    keeps the label's voxels within a narrower one; both undo like a click; a range that
    nothing around the label lies in says so and leaves it as it is."""
    from annotator.engine.tidy import tidy
    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.workspace import workspace_for

    viewer, ws, dock, _ = annotator_window
    seg = viewer.layers[L.SEGMENTATION]
    image = ws.volume.array
    low, high = L.window_limits(ws.volume)
    assert [box.value() for box in dock.range_ends] == pytest.approx([low, high], abs=0.5)
    assert "HU on a CT" in dock.range_ends[0].toolTip()
    centre = tuple(n // 2 for n in image.shape)
    ws.label[centre] = 1
    ws.painted()
    seg.refresh()
    painted = ws.label.copy()
    value = float(image[centre])
    spread = float(np.std(image))
    dock.range_ends[1].setValue(value + 0.3 * spread)
    dock.range_ends[0].setValue(value - 0.3 * spread)
    assert ws.intensity_range == pytest.approx((value - 0.3 * spread, value + 0.3 * spread), abs=0.5)
    again = AnnotationDock(viewer)  # the dock closed and opened again: the range set stays
    assert [box.value() for box in again.range_ends] == pytest.approx([value - 0.3 * spread, value + 0.3 * spread],
                                                                      abs=0.5)
    assert ws.intensity_range == pytest.approx((value - 0.3 * spread, value + 0.3 * spread), abs=0.5)
    again.close()
    # the range chosen is shown over the image (the layer chosen in the list stays chosen) ...
    lo, hi = ws.intensity_range
    shown = viewer.layers[L.RANGE]
    np.testing.assert_array_equal(shown.data, (image >= lo) & (image <= hi))
    assert viewer.layers.index(workspace_for(viewer).image_layer()) < viewer.layers.index(shown) \
        == viewer.layers.index(L.SEGMENTATION) - 1
    assert viewer.layers.selection.active is viewer.layers[L.FOREGROUND]
    steps = EngineSteps(ws)
    dock.buttons["flood"].click()
    steps.wait(qtbot, 1)
    assert L.RANGE not in viewer.layers  # ... until it is used
    flooded = np.asarray(seg.data).copy()
    expected = tidy(painted, 1, "flood", image=image, within=ws.intensity_range).label
    np.testing.assert_array_equal(flooded, expected)
    assert (flooded == 1).sum() > 20 and ((image[flooded == 1] >= lo) & (image[flooded == 1] <= hi)).all()
    assert "flood in range" in dock.status.text()
    assert dock.buttons["flood"].toolTip().startswith("Alt+Y: flood the chosen label")
    dock.range_ends[1].setValue(value + 0.1 * spread)
    _activate(viewer, qtbot)
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key_Y, Qt.AltModifier | Qt.ShiftModifier)
    steps.wait(qtbot, 2)
    clipped = np.asarray(seg.data)
    np.testing.assert_array_equal(clipped == 1, (flooded == 1) & (image <= ws.intensity_range[1]))
    assert 0 < (clipped == 1).sum() < (flooded == 1).sum()
    dock.buttons["undo"].click()
    dock.buttons["undo"].click()
    np.testing.assert_array_equal(np.asarray(seg.data), painted)
    top = float(image.max())
    dock.range_ends[1].setValue(top + 20)  # above every voxel of the image
    dock.range_ends[0].setValue(top + 10)
    dock.buttons["flood"].click()
    qtbot.waitUntil(lambda: "nothing to flood" in dock.status.text(), timeout=10000)
    np.testing.assert_array_equal(np.asarray(seg.data), painted)


def test_a_paint_stroke_is_undone_in_the_same_history_as_the_clicks(annotator_window, qtbot):
    """A stroke painted after a click: Undo (Alt+Z, the button, or Ctrl+Z on the label
    layer) takes back the stroke, not the click before it (which took back the click's
    whole box, painted voxels in it too, and left the stroke outside it); the paint
    brush, the eraser and the fill bucket each make one step."""
    viewer, ws, dock, _ = annotator_window
    gt = truth("hippocampus_001", ws.volume)
    steps = EngineSteps(ws)
    viewer.layers[L.FOREGROUND].add(np.array(_click_points(gt, 1)[0], float))
    steps.wait(qtbot, 1)
    clicked = ws.label.copy()
    seg = viewer.layers[L.SEGMENTATION]
    seg.brush_size = 5
    inside = tuple(int(v) for v in np.argwhere(clicked == 1)[0])
    seg.paint(inside, 2, refresh=True)  # over the click's result ...
    seg.paint((inside[0], 2, 2), 2, refresh=True)  # ... and away from it: two strokes
    painted = ws.label.copy()
    assert (painted != clicked).sum() > 10 and ws.history.can_undo
    dock.buttons["undo"].click()
    dock.buttons["undo"].click()
    np.testing.assert_array_equal(ws.label, clicked)
    np.testing.assert_array_equal(np.asarray(seg.data), clicked)
    dock.buttons["redo"].click()
    dock.buttons["redo"].click()
    np.testing.assert_array_equal(ws.label, painted)
    _press(seg, "Control-Z")
    _press(seg, "Control-Z")
    np.testing.assert_array_equal(ws.label, clicked)
    _press(seg, "Control-Shift-Z")
    assert (ws.label != clicked).any()
    seg.fill(inside, 3)  # the fill bucket: the click's connected part becomes label 3
    assert (ws.label == 3).sum() > 10
    dock.buttons["undo"].click()
    assert not (ws.label == 3).any()
    dock.buttons["undo"].click()
    np.testing.assert_array_equal(ws.label, clicked)
    dock.buttons["undo"].click()
    assert not ws.label.any()  # then the click


def test_outlines_painted_on_a_few_coronal_slices_fill_the_slices_between(annotator_window, qtbot):
    """Painted in the coronal view on slices 10 and 20, Fill between slices (Alt+Shift+I)
    fills the coronal slices between (the ones viewed, not the axial ones), undoably."""
    from annotator.napari.workspace import workspace_for

    viewer, ws, dock, _ = annotator_window
    workspace_for(viewer).plane("coronal")
    seg = viewer.layers[L.SEGMENTATION]
    viewer.layers.selection.active = seg
    seg.brush_size = 7
    seg.selected_label = 1
    centre = [n // 2 for n in ws.volume.shape]
    for row in (10, 20):
        seg.paint((centre[0], row, centre[2]), 1, refresh=True)
    painted = ws.label.copy()
    assert sorted(set(np.argwhere(painted == 1)[:, 1])) == [10, 20]  # two coronal slices
    steps = EngineSteps(ws)
    assert dock.buttons["fill_between"].toolTip().startswith("Alt+Shift+I: fill the slices")
    dock.buttons["fill_between"].click()
    steps.wait(qtbot, 1)
    after = np.asarray(seg.data)
    assert sorted(set(np.argwhere(after == 1)[:, 1])) == list(range(10, 21))
    assert (after[:, 15] == 1).sum() >= 0.8 * (painted[:, 10] == 1).sum()
    dock.buttons["undo"].click()
    np.testing.assert_array_equal(np.asarray(seg.data), painted)


def test_3d_view_renders_the_layers(annotator_window, qtbot):
    viewer, ws, dock, _ = annotator_window
    viewer.window.show()  # a hidden canvas draws nothing
    viewer.dims.ndisplay = 3
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=True)
    assert shot[..., :3].std() > 5  # colour, not the alpha channel
    viewer.dims.ndisplay = 2


def test_the_docks_work_on_any_datastore(make_napari_viewer, qtbot):
    # a store written in the tests against the interface: no files, no paths
    from annotator.io.phantom import ct_phantom
    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.worklist_dock import WorklistDock
    from annotator.napari.workspace import workspace_for
    from memory_store import MemoryDatastore

    made = {f"ct{i}": ct_phantom(shape=(40, 80, 80), spacing_zyx=(2.5, 1.5, 1.5), seed=i) for i in range(3)}
    store = MemoryDatastore({k: v[0] for k, v in made.items()})
    viewer = make_napari_viewer()
    annotation, worklist = AnnotationDock(viewer), WorklistDock(viewer)
    viewer.window.add_dock_widget(annotation, area="right")
    viewer.window.add_dock_widget(worklist, area="right")
    session = workspace_for(viewer).session
    annotation.method.setCurrentIndex(annotation.method.findData("graphcut"))
    session.set_datastore(store)
    assert worklist.image_ids() == ["ct0", "ct1", "ct2"]
    worklist.open_image("ct1")
    qtbot.waitUntil(lambda: session.image_id == "ct1" and session.idle, timeout=30000)
    assert viewer.layers[L.SEGMENTATION].data is session.label  # the layer shows the session's label
    steps = EngineSteps(session)
    kidney = made["ct1"][1] == 3
    viewer.layers[L.FOREGROUND].add(np.argwhere(kidney).mean(axis=0).round())
    steps.wait(qtbot, 1)
    assert dice(np.asarray(viewer.layers[L.SEGMENTATION].data) > 0, kidney) > 0.8
    annotation.buttons["accept"].click()
    qtbot.waitUntil(lambda: session.idle and ("ct1", "final") in store.saves, timeout=30000)
    statuses = {worklist.table.item(r, 0).data(ID_ROLE): worklist.table.item(r, 1).text()
                for r in range(worklist.table.rowCount())}
    assert statuses == {"ct0": "unlabeled", "ct1": "labeled", "ct2": "unlabeled"}
    worklist.table.sortItems(0, Qt.DescendingOrder)  # the order shown is the order "Next" follows
    worklist.next.click()
    qtbot.waitUntil(lambda: session.image_id == "ct0" and session.idle, timeout=30000)
    # from the keyboard: arrows to a row, Enter opens it
    worklist.table.setFocus()
    worklist.table.setCurrentCell(0, 0)  # ct2, sorted descending
    qtbot.keyClick(worklist.table, Qt.Key_Down)
    qtbot.keyClick(worklist.table, Qt.Key_Return)
    qtbot.waitUntil(lambda: session.image_id == "ct1" and session.idle, timeout=30000)
    row = worklist.image_ids().index("ct2")  # and with the mouse: a double click
    cell = worklist.table.visualItemRect(worklist.table.item(row, 0)).center()
    qtbot.mouseClick(worklist.table.viewport(), Qt.LeftButton, pos=cell)  # a double click: press, release,
    qtbot.mouseDClick(worklist.table.viewport(), Qt.LeftButton, pos=cell)  # then the second press
    qtbot.waitUntil(lambda: session.image_id == "ct2" and session.idle, timeout=30000)
    # typed into the filter, Enter opens the first image it shows
    qtbot.keyClicks(worklist.filter, "ct0")
    assert worklist.image_ids() == ["ct0"]
    qtbot.keyClick(worklist.filter, Qt.Key_Return)
    qtbot.waitUntil(lambda: session.image_id == "ct0" and session.idle, timeout=30000)
    worklist.filter.clear()
    qtbot.keyClicks(worklist.filter, "no such image")
    qtbot.keyClick(worklist.filter, Qt.Key_Return)  # nothing shown: nothing opens
    assert session.image_id == "ct0" and worklist.image_ids() == []
    worklist.filter.clear()
    assert worklist.view_only.isHidden()
    store.read_only_reason = lambda: "the server refuses uploads (403)"  # the worklist says why, on a line of its own
    worklist.refresh()
    assert not worklist.view_only.isHidden() and "View only: the server refuses uploads (403)" in worklist.view_only.text()


def test_with_only_the_worklist_open_switching_still_asks(make_napari_viewer, qtbot, store_folder):
    from annotator.napari.worklist_dock import WorklistDock
    from annotator.napari.workspace import workspace_for

    viewer = make_napari_viewer()
    worklist = WorklistDock(viewer)
    viewer.window.add_dock_widget(worklist, area="right")
    session = workspace_for(viewer).session
    session.open(store_folder)
    qtbot.waitUntil(lambda: session.volume is not None and session.idle, timeout=30000)
    seg = viewer.layers[L.SEGMENTATION]
    seg.brush_size = 3
    seg.paint((17, 25, 17), 1)
    assert session.has_unsaved_work
    seen = []
    answer_prompt(qtbot, "Cancel", seen)
    worklist.open_image("hippocampus_003")
    assert seen and "hippocampus_001" in seen[0]
    assert session.image_id == "hippocampus_001" and session.has_unsaved_work
    answer_prompt(qtbot, "Accept", seen)
    worklist.open_image("hippocampus_003")
    qtbot.waitUntil(lambda: session.image_id == "hippocampus_003" and session.idle, timeout=30000)
    assert (store_folder / "labels" / "final" / "hippocampus_001.nii.gz").exists()


def test_answers_that_arrive_after_the_window_closed_reach_no_dock(annotator_window, qtbot):
    """Work still running when the window closes answers later (a draft being written):
    the closed docks must not hear it."""
    import shiboken6

    from annotator.napari.training_dock import TrainingDock

    viewer, session, dock, worklist = annotator_window
    training = TrainingDock(viewer)
    viewer.window.add_dock_widget(training, name="Training", area="right")
    viewer.close()
    docks = (worklist.table, dock.files, training.runs)
    qtbot.waitUntil(lambda: not any(shiboken6.isValid(w) for w in docks), timeout=10000)
    session.image_opened.emit("hippocampus_001")
    session.label_changed.emit(None, "engine")
    session.marks_changed.emit()
    session.saved.emit("hippocampus_001", "draft")
    session.files_busy.emit(False)
    session.busy_changed.emit(False)
    session.status.emit("still here")
    session.progress.emit("saving", 0.5)
    session.records_changed.emit()
    session.datastore_changed.emit()


def test_the_label_list_names_the_datasets_labels(make_napari_viewer, qtbot, tmp_path):
    """A dataset's labels.json names the Label list; Alt+B and the layer's own label
    control choose among them, and a click makes the label chosen."""
    import shutil

    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.workspace import workspace_for
    from paths import HIPPO

    dataset = tmp_path / "dataset"
    for sub in ("images", "labels"):
        (dataset / sub).mkdir(parents=True)
    shutil.copy(HIPPO / "images" / "hippocampus_001.nii.gz", dataset / "images")
    shutil.copy(HIPPO / "labels.json", dataset)
    viewer = make_napari_viewer()
    dock = AnnotationDock(viewer)
    viewer.window.add_dock_widget(dock, name="Annotation", area="right")
    ws = workspace_for(viewer).session
    dock.method.setCurrentIndex(dock.method.findData("graphcut"))
    ws.open(dataset / "images")
    qtbot.waitUntil(lambda: ws.volume is not None and ws.idle, timeout=30000)
    assert [dock.preset.itemText(i) for i in range(dock.preset.count())] == ["1: anterior", "2: posterior"]
    seg = viewer.layers[L.SEGMENTATION]

    viewer.window._qt_viewer.canvas.native.setFocus()
    workspace_for(viewer).actions()["next_label"]()  # what Alt+B calls
    assert ws.label_value == 2 and dock.preset.currentText() == "2: posterior" and seg.selected_label == 2
    seg.selected_label = 1  # napari's own label control
    assert ws.label_value == 1 and dock.preset.currentText() == "1: anterior"
    seg.selected_label = 5  # a value the list does not offer joins it
    assert ws.label_value == 5 and dock.preset.currentText() == "5: label 5"
    dock.preset.setCurrentIndex(1)
    assert ws.label_value == 2 and seg.selected_label == 2

    posterior = truth("hippocampus_001", ws.volume)  # both parts: a click inside makes label 2
    steps = EngineSteps(ws)
    viewer.layers[L.FOREGROUND].add(np.array([_click_points(posterior, 1)[0]], float))
    steps.wait(qtbot, 1)
    assert set(np.unique(ws.label)) == {0, 2}


def test_shortcuts_work_whichever_widget_has_the_focus(annotator_window, qtbot):
    """Bound on napari's canvas, a shortcut pressed after choosing a label in the Label list
    went to the combo box (Alt+1 did nothing), and in the worklist's filter or the epochs
    spin box it typed "1". Each shortcut is now the window's: real key presses in each kind
    of widget of the docks, and on the canvas, reach the action and type nothing."""
    from annotator.napari.training_dock import TrainingDock

    viewer, ws, dock, worklist = annotator_window
    training = TrainingDock(viewer)
    viewer.window.add_dock_widget(training, name="Training", area="right")
    _activate(viewer, qtbot)
    canvas = viewer.window._qt_viewer.canvas.native
    shown = {dock.preset: dock.preset.currentText, dock.method: dock.method.currentText,
             worklist.filter: worklist.filter.text, training.epochs: training.epochs.value, canvas: lambda: None}
    for widget, value in shown.items():
        before = value()
        widget.setFocus()
        qtbot.waitUntil(lambda: QApplication.focusWidget() is widget, timeout=5000)
        for key, layer in ((Qt.Key_1, L.FOREGROUND), (Qt.Key_2, L.BACKGROUND), (Qt.Key_1, L.FOREGROUND)):
            qtbot.keyClick(QApplication.focusWidget(), key, Qt.AltModifier)
            assert viewer.layers.selection.active.name == layer, type(widget).__name__
        assert value() == before, type(widget).__name__


def test_a_click_in_the_3d_view_is_not_taken(annotator_window, qtbot):
    """napari puts a click made in its 3-D view at the depth of the view's centre, whatever
    is seen there, and the engine segmented around it. In 3-D a click is taken back and the
    person told to click on a slice; back in 2-D the same click is taken."""

    viewer, ws, dock, _ = annotator_window
    _activate(viewer, qtbot)
    canvas = viewer.window._qt_viewer.canvas.native
    at = QPoint(canvas.width() // 2, canvas.height() // 2)
    steps = EngineSteps(ws)
    viewer.dims.ndisplay = 3
    dock.buttons["fg"].click()
    assert "3-D view is for looking" in dock.status.text()
    qtbot.mouseMove(canvas, at)
    qtbot.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, at)
    assert len(viewer.layers[L.FOREGROUND].data) == 0 and ws.marks == {"fg": [], "bg": []}
    assert not ws.label.any() and ws.idle
    viewer.dims.ndisplay = 2
    dock.buttons["fg"].click()
    qtbot.mouseMove(canvas, at)
    qtbot.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, at)
    assert len(viewer.layers[L.FOREGROUND].data) == 1 and len(ws.marks["fg"]) == 1
    steps.wait(qtbot, 1)
    assert ws.label.any()


def test_a_deleted_annotation_layer_comes_back(annotator_window, qtbot):
    """The segmentation layer deleted in the layer list (its Delete key, its bin) took the
    label out of sight for good: opening the same image again does nothing, as it is open.
    A layer of the annotation deleted while its image is shown comes back, with the label
    and the clicks it showed, on the slice and in the plane viewed; cleared with its
    image (the viewer emptied), nothing comes back."""
    from annotator.napari.workspace import workspace_for

    viewer, ws, dock, _ = annotator_window
    ws.autosave_s = 3600  # a draft saved meanwhile (on a busy machine) would say so in the status read below
    steps = EngineSteps(ws)
    viewer.layers[L.FOREGROUND].add([17, 25, 17])
    steps.wait(qtbot, 1)
    made = ws.label.copy()
    assert made.any()
    workspace = workspace_for(viewer)
    workspace.plane("coronal")
    viewer.dims.set_point(1, float(viewer.dims.point[1]) + 3)
    point = viewer.dims.point
    for name in (L.SEGMENTATION, L.FOREGROUND):
        viewer.layers.remove(name)
        qtbot.waitUntil(lambda: name in viewer.layers, timeout=5000)
        said = dock.status.text()
        assert name in said and "layer is part of the annotation: shown again" in said
    np.testing.assert_array_equal(viewer.layers[L.SEGMENTATION].data, made)
    np.testing.assert_array_equal(viewer.layers[L.FOREGROUND].data, [[17, 25, 17]])
    assert workspace.shown_plane == "coronal" and viewer.dims.point == point
    viewer.layers[L.FOREGROUND].add([17, 26, 18])  # the engine still answers the layers shown again
    steps.wait(qtbot, 2)
    assert ws.marks["fg"] == [(17, 25, 17), (17, 26, 18)]
    viewer.layers.clear()
    qtbot.wait(200)
    assert len(viewer.layers) == 0


def test_a_deleted_image_layer_comes_back(annotator_window, qtbot):
    """The image's own layer deleted left the annotation's layers over nothing, and with
    a clicks layer deleted a click on the other raised (a KeyError in the app: the
    workspace asked for both). The image comes back under the annotation, as do the
    clicks layers, and the engine answers clicks on it."""
    from annotator.napari.workspace import workspace_for

    viewer, ws, dock, _ = annotator_window
    workspace = workspace_for(viewer)
    steps = EngineSteps(ws)
    viewer.layers.remove(L.BACKGROUND)
    viewer.layers[L.FOREGROUND].add([17, 25, 17])  # before the other is back
    qtbot.waitUntil(lambda: L.BACKGROUND in viewer.layers, timeout=5000)
    image = workspace.image_layer()
    name = image.name
    image.contrast_limits = (image.contrast_limits[0], image.contrast_limits[1] * 0.6)  # a window of the person's
    shown = tuple(image.contrast_limits)
    viewer.layers.remove(image)
    qtbot.waitUntil(lambda: workspace.image_layer() is not None, timeout=5000)
    assert tuple(workspace.image_layer().contrast_limits) == pytest.approx(shown)  # as it was shown
    names = [layer.name for layer in viewer.layers]
    assert names[0] == name and set(L.ANNOTATION_LAYERS) <= set(names)
    assert f"the &#x27;{name}&#x27; layer is part of the annotation: shown again" in dock.status.text()
    assert workspace.image_layer().metadata[L.VOLUME_KEY] is ws.volume
    viewer.layers.remove(L.SCRIBBLES)  # with another layer before it: two deleted at once
    viewer.layers.remove(workspace.image_layer())
    qtbot.waitUntil(lambda: workspace.image_layer() is not None and L.SCRIBBLES in viewer.layers, timeout=5000)
    assert tuple(workspace.image_layer().contrast_limits) == pytest.approx(shown)
    viewer.layers[L.FOREGROUND].add([17, 25, 17])
    steps.wait(qtbot, 1)
    assert ws.label.any() and ws.marks["fg"] == [(17, 25, 17)]


def test_label_layer_chosen_in_3d_after_2d_mouse(annotator_window, qtbot):
    """The mouse over the canvas in 2-D, then the 3-D view, then the segmentation layer
    chosen (in the layer list, or added again: a deleted layer brought back) raised a
    TypeError in napari's status bar (a label layer with label names asked for its value
    along a view direction there was none of), and the brought-back layers came in part."""
    viewer, ws, dock, _ = annotator_window
    _activate(viewer, qtbot)
    canvas = viewer.window._qt_viewer.canvas.native
    for x in (0.3, 0.5):
        qtbot.mouseMove(canvas, QPoint(int(canvas.width() * x), canvas.height() // 2))
    qtbot.wait(50)
    viewer.mouse_over_canvas = True  # Xvfb's pointer is not there: napari waits for it to enter
    viewer.dims.ndisplay = 3
    print("VD", repr(viewer.cursor._view_direction), viewer.cursor.position, viewer.dims.ndisplay)
    viewer.layers.selection.active = viewer.layers[L.SEGMENTATION]
    viewer.layers.remove(L.SEGMENTATION)
    qtbot.waitUntil(lambda: L.SEGMENTATION in viewer.layers, timeout=5000)
    assert set(L.ANNOTATION_LAYERS) <= {layer.name for layer in viewer.layers}
    assert "shown again" in dock.status.text()


def test_next_image_twice_while_scribbling_does_not_crash(annotator_window, qtbot):
    """Alt+3 (scribble), then Alt+N twice crashed the whole app in the GL driver (a
    segmentation fault: this test process died): the old layers went before the new image
    came, napari reshuffled its sliders with no 3-D layer left, and the canvas, resized,
    was repainted half rebuilt (clicks, then Next, did it too, less often). Each image
    opens; the person is back in click mode."""
    viewer, ws, dock, worklist = annotator_window
    ws.ask_leave = lambda image_id: "draft"
    _activate(viewer, qtbot)
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.keyClick(canvas, Qt.Key_3, Qt.AltModifier)
    assert viewer.layers.selection.active.name == L.SCRIBBLES and viewer.layers[L.SCRIBBLES].mode == "paint"
    opened = []
    ws.image_opened.connect(opened.append)
    for _ in range(2):
        qtbot.keyClick(canvas, Qt.Key_N, Qt.AltModifier)
        qtbot.wait(30)
    qtbot.waitUntil(lambda: len(opened) == 2 and not ws.files.busy, timeout=30000)
    qtbot.wait(200)  # repaints
    assert ws.image_id == opened[-1] != "hippocampus_001"
    assert viewer.layers.selection.active.name == L.FOREGROUND and viewer.layers[L.FOREGROUND].mode == "add"


def test_the_annotation_dock_opened_after_the_image_shows_it(make_napari_viewer, qtbot, tmp_path):
    """Plugin use: an image opened from the Worklist dock, the Annotation dock opened after
    it (Plugins > Annotator) shows that image as one open before it would: the label map
    beside it offered, the method for it named, the range Flood and Clip use set."""
    import shutil

    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.worklist_dock import WorklistDock
    from annotator.napari.workspace import workspace_for
    from paths import HIPPO

    folder = tmp_path / "store"
    folder.mkdir()
    shutil.copy(HIPPO / "images" / "hippocampus_001.nii.gz", folder)
    shutil.copy(HIPPO / "labels" / "hippocampus_001.nii.gz", folder / "hippocampus_001_seg.nii.gz")
    viewer = make_napari_viewer()
    viewer.window.add_dock_widget(WorklistDock(viewer), name="Worklist", area="right")
    ws = workspace_for(viewer).session
    ws.open(folder)
    qtbot.waitUntil(lambda: ws.volume is not None and ws.idle, timeout=30000)
    assert ws.label_maps and ws.intensity_range is None
    dock = AnnotationDock(viewer)
    viewer.window.add_dock_widget(dock, name="Annotation", area="right")
    assert dock.label_map.count() == len(ws.label_maps) and not dock.map_row[1].isHidden()
    assert dock.method.shown.startswith("auto: ")
    assert ws.intensity_range == pytest.approx(L.window_limits(ws.volume), abs=0.5)
    assert [box.value() for box in dock.range_ends] == pytest.approx(list(ws.intensity_range))
    qtbot.waitUntil(lambda: "mL" in dock.volume_text.text(), timeout=5000)  # the label's volume, as on opening
