"""Network clicks and automatic segmentation in the GUI, with the bundled starter model."""

from __future__ import annotations

import shutil

import numpy as np

from annotator.engine.metrics import dice
from annotator.napari import layers as L
from helpers import EngineSteps
from paths import HIPPO

CASE = "hippocampus_007"  # a test-split case: the starter model never saw it


def _open(make_napari_viewer, qtbot, tmp_path):
    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.workspace import workspace_for

    folder = tmp_path / "store"
    folder.mkdir()
    shutil.copy(HIPPO / "images" / f"{CASE}.nii.gz", folder)
    viewer = make_napari_viewer()
    dock = AnnotationDock(viewer)
    viewer.window.add_dock_widget(dock, name="Annotation", area="right")
    ws = workspace_for(viewer).session
    ws.open(folder)
    qtbot.waitUntil(lambda: ws.volume is not None and ws.idle, timeout=30000)
    return viewer, ws, dock


def _truth(volume) -> np.ndarray:
    from annotator.io import read_label

    return read_label(HIPPO / "labels" / f"{CASE}.nii.gz", volume)


def test_first_network_click_says_it_prepares_the_image(make_napari_viewer, qtbot, tmp_path):
    viewer, ws, dock = _open(make_napari_viewer, qtbot, tmp_path)
    assert ws.method == "auto"  # a NIfTI not in Hounsfield units: auto takes the bundled MR DeepEdit
    assert dock.method.shown == "auto: deepedit"  # the closed box says what auto takes
    dock.method.setCurrentIndex(dock.method.findData("deepedit"))
    assert ws.method == "deepedit" and dock.method.shown == "deepedit"
    dock.method.showPopup()  # the list is as wide as its longest description
    texts = [dock.method.itemText(i) for i in range(dock.method.count())]
    longest = max(dock.method.fontMetrics().horizontalAdvance(text) for text in texts)
    assert dock.method.view().width() >= longest, (dock.method.view().width(), longest)
    dock.method.hidePopup()
    truth = _truth(ws.volume)
    seen = []
    ws.status.connect(seen.append)
    steps = EngineSteps(ws)
    anterior = np.argwhere(truth == 1)
    viewer.layers[L.FOREGROUND].add(anterior[len(anterior) // 2].astype(float))
    steps.wait(qtbot, 1)
    assert any("first click on this image: preparing it for deepedit" in s for s in seen), seen
    assert "deepedit" in dock.status.text()
    seg = np.asarray(viewer.layers[L.SEGMENTATION].data)
    score = dice(seg == 1, truth == 1)
    print(f"\nGUI: one DeepEdit click on the anterior hippocampus of {CASE}: Dice {score:.3f}")
    assert score > 0.6
    # the second click reuses the prepared image: no preparing message again
    seen.clear()
    viewer.layers[L.FOREGROUND].add(anterior[len(anterior) // 3].astype(float))
    steps.wait(qtbot, 2)
    assert not any("preparing" in s for s in seen), seen
    ws.undo()
    assert len(viewer.layers[L.FOREGROUND].data) == 1  # undo brings back the marks of that step


def test_automatic_segmentation_button(make_napari_viewer, qtbot, tmp_path):
    viewer, ws, dock = _open(make_napari_viewer, qtbot, tmp_path)
    truth = _truth(ws.volume)
    steps = EngineSteps(ws)
    dock.buttons["automatic"].click()
    steps.wait(qtbot, 1)
    seg = np.asarray(viewer.layers[L.SEGMENTATION].data)
    scores = [dice(seg == v, truth == v) for v in (1, 2)]
    print(f"\nGUI automatic DeepEdit on {CASE}: Dice anterior {scores[0]:.3f}, posterior {scores[1]:.3f}")
    assert min(scores) > 0.7
    assert "deepedit-auto" in dock.status.text() and "labels 1 anterior, 2 posterior" in dock.status.text()
    # the folder names no labels: the list takes the names of what the model drew
    assert [dock.preset.itemText(i) for i in range(dock.preset.count())] == ["1: anterior", "2: posterior"]

    # strokes then correct the network's answer (its probability joins the cut), and the
    # other label stays as it was
    from scipy.ndimage import binary_erosion

    from annotator.bench.simulate import sparse_scribbles_from_mask

    posterior = seg == 2
    layer = viewer.layers[L.SCRIBBLES]
    strokes = sparse_scribbles_from_mask(truth == 1)
    layer.data = strokes
    inside = np.argwhere(binary_erosion(truth == 1, iterations=2) & (strokes == 0))
    layer.brush_size = 1
    layer.paint(tuple(int(v) for v in inside[len(inside) // 2]), 1)  # the last dab of the brush
    steps.wait(qtbot, 2)
    assert "graphcut-scribbles on deepedit's answer" in dock.status.text()
    seg = np.asarray(viewer.layers[L.SEGMENTATION].data)
    corrected = dice(seg == 1, truth == 1)
    print(f"strokes on three slices of the anterior part, on that answer: Dice {corrected:.3f}")
    assert corrected > max(scores[0], 0.85)
    assert ((seg == 2) == posterior).mean() > 0.99

    # a background click alone, on a wrong part of the posterior label, takes it away
    dock.method.setCurrentIndex(dock.method.findData("deepedit"))
    dock.preset.setCurrentIndex(1)
    assert ws.label_value == 2
    wrong = np.argwhere((seg == 2) & (truth != 2))
    click = tuple(int(v) for v in wrong[len(wrong) // 2])
    viewer.layers[L.BACKGROUND].add(np.array(click, float))
    steps.wait(qtbot, 3)
    after = np.asarray(viewer.layers[L.SEGMENTATION].data)
    assert after[click] != 2 and "deepedit" in dock.status.text()
    assert not ((after == 2) & (seg != 2)).any()  # it only took away


def test_a_model_for_another_modality_warns_but_answers(make_napari_viewer, qtbot, tmp_path):
    from annotator.io.phantom import ct_phantom
    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.workspace import workspace_for

    volume, label = ct_phantom((24, 64, 64))
    viewer = make_napari_viewer()
    dock = AnnotationDock(viewer)
    viewer.window.add_dock_widget(dock, name="Annotation", area="right")
    ws = workspace_for(viewer).session
    ws.show(volume, image_id="phantom")
    ws.method = "deepedit"  # asked for explicitly: the only installed DeepEdit model is for MR
    steps = EngineSteps(ws)
    viewer.layers[L.FOREGROUND].add(np.argwhere(label == 2).mean(axis=0).round())
    steps.wait(qtbot, 1)
    said = dock.status.text()  # the note stays under the result
    assert "deepedit" in said and "trained on MR images; this image is CT" in said, said
