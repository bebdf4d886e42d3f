"""The standalone app, the plugin contributions, and bad input from the GUI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtGui import QImage

from annotator.errors import InputError
from annotator.io import read_label, read_volume
from annotator.napari import layers as L
from paths import DATA, HIPPO


def test_screenshot_of_the_app_is_not_blank(tmp_path):
    out = tmp_path / "app.png"
    env_path = HIPPO / "images" / "hippocampus_001.nii.gz"
    proc = subprocess.run([sys.executable, "-m", "annotator_app", str(env_path), "--screenshot", str(out)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    image = QImage(str(out))
    assert image.width() >= 1000 and image.height() >= 600
    ptr = image.convertToFormat(QImage.Format_RGB888)
    pixels = np.frombuffer(ptr.constBits(), np.uint8)[: ptr.sizeInBytes()].reshape(ptr.height(), -1)
    assert pixels.std() > 20  # not a blank window
    # the canvas (middle) shows the image: many grey levels, not a flat colour
    middle = pixels[ptr.height() // 3 : 2 * ptr.height() // 3, ptr.width() : 2 * ptr.width()]
    assert len(np.unique(middle)) > 50


def test_the_window_fits_a_laptop_screen(make_napari_viewer, qtbot, tmp_path):
    """With an image open whose file, label map and label have long names, the window
    fits a 1366×768 screen (under a title bar and a panel): the Annotation and Training
    docks scroll instead of growing, and no combo box widens its dock to its text."""

    from qtpy.QtWidgets import QScrollArea

    from annotator.napari.workspace import workspace_for
    from annotator_app.main import add_docks, open_start

    folder = tmp_path / "study"
    folder.mkdir()
    name = "hippocampus_001_exported_from_the_scanner_with_a_rather_long_series_name"
    shutil.copy(HIPPO / "images" / "hippocampus_001.nii.gz", folder / f"{name}.nii.gz")
    shutil.copy(HIPPO / "labels" / "hippocampus_001.nii.gz", folder / f"{name}_seg.nii.gz")
    for case in ("hippocampus_003", "hippocampus_004", "hippocampus_006"):
        shutil.copy(HIPPO / "images" / f"{case}.nii.gz", folder / f"{name}_{case[-3:]}.nii.gz")
    (folder / "labels.json").write_text(json.dumps({"labels": {
        "1": "anterior hippocampus, head and body (manual outline, second reader)",
        "2": "posterior hippocampus, tail (manual outline, second reader)"}}))
    viewer = make_napari_viewer()
    add_docks(viewer)
    session = workspace_for(viewer).session
    open_start(viewer, str(folder), None)
    qtbot.waitUntil(lambda: session.volume is not None and session.idle, timeout=30000)
    window = viewer.window._qt_window
    assert viewer.title == f"Annotator — {session.volume.name} — {folder}"  # which image, from where
    window.show()
    qtbot.waitUntil(lambda: window.isVisible())
    least = window.minimumSizeHint()
    assert least.width() <= 1200 and least.height() <= 680, least
    window.resize(1366, 700)
    qtbot.wait(50)
    annotation = viewer.window.dock_widgets["Annotation"]
    assert annotation.label_map.isVisible() and "second reader" in annotation.preset.currentText()
    for combo in (annotation.preset, annotation.method, annotation.label_map):
        assert combo.width() <= annotation.width(), combo.currentText()
    for name in ("Annotation", "Training"):  # their pages are never cut off at the right
        viewer.window.dock_widgets[name].parent().raise_()  # the Training tab in front
        qtbot.wait(50)
        area = viewer.window.dock_widgets[name].findChild(QScrollArea)
        assert area.isVisible()
        assert area.widget().width() <= area.viewport().width(), name
    # the worklist shows its folder on one line and a few images, each on one line
    worklist = viewer.window.dock_widgets["Worklist"]
    worklist.parent().raise_()
    qtbot.wait(50)
    line = worklist.fontMetrics().lineSpacing()
    assert worklist.folder.height() < 2 * line and worklist.folder.toolTip() == str(folder)
    # rows shared for more of the list in view: the filter with the ranking, the window with the view
    for a, b in ((worklist.filter, worklist.strategy), (annotation.display_window, annotation.view_plane)):
        assert abs(a.mapTo(window, a.rect().center()).y() - b.mapTo(window, b.rect().center()).y()) < line
    table = worklist.table
    shown = [r for r in range(table.rowCount())
             if table.rowViewportPosition(r) + table.rowHeight(r) <= table.viewport().height()]
    assert len(shown) >= 4 and all(table.rowHeight(r) < 2 * line for r in shown), (shown, table.viewport().height())


def test_app_opens_what_it_is_given_and_survives_bad_input(make_napari_viewer, qtbot, tmp_path):
    from napari.utils.notifications import notification_manager

    from annotator.napari.workspace import workspace_for
    from annotator_app.main import open_start

    viewer = make_napari_viewer()
    ws = workspace_for(viewer).session
    errors = []
    ws.error.connect(errors.append)
    bad = tmp_path / "notes.nii.gz"
    bad.write_text("this is not an image")
    open_start(viewer, str(bad), None)
    qtbot.waitUntil(lambda: bool(errors), timeout=30000)
    assert "notes.nii.gz" in errors[-1]
    assert any("notes.nii.gz" in str(n.message) for n in notification_manager.records)
    broken = tmp_path / "broken_series"
    broken.mkdir()
    source = sorted((DATA / "udacity_study3_mr_dicom" / "11_HCropVolume").iterdir())
    for path in source[:10] + source[12:]:  # two slices missing
        (broken / path.name).write_bytes(path.read_bytes())
    open_start(viewer, str(broken), None)
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=30000)
    assert "missing slices" in errors[-1]
    # still working: a good image opens afterwards
    open_start(viewer, str(DATA / "udacity_study3_mr_dicom" / "11_HCropVolume"), None)
    qtbot.waitUntil(lambda: ws.volume is not None and ws.idle, timeout=30000)
    assert ws.volume.size == (34, 50, 40)


def test_what_is_dropped_on_the_window_opens_for_annotation(qtbot):
    """A DICOM folder dropped on the window opens in the session, read as DICOM (napari's
    own drop asks which reader to use, and its built-in one reads no geometry); the files of
    one series open the series; of several images the first opens, and the person is told.
    napari's File > Open reads the app's formats and folders with its reader, unasked,
    where the person has not chosen another."""
    from napari.plugins.utils import get_preferred_reader
    from napari.settings import get_settings
    from napari.utils.notifications import notification_manager
    from qtpy.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from qtpy.QtGui import QDragEnterEvent, QDropEvent
    from qtpy.QtWidgets import QApplication

    from annotator.napari.workspace import workspace_for
    from annotator.napari.worklist_dock import WorklistDock
    from annotator_app.opening import DRAG_STATUS, dropped_paths, ours
    from annotator_app.main import build_window

    preferences = get_settings().plugins
    before = dict(preferences.extension2reader)  # napari's settings live as long as the process
    preferences.extension2reader = {**before, "*.nrrd": "napari"}  # the person's own choice
    viewer = build_window(sample="hippocampus")  # the app's window: the drop is its own
    series = DATA / "udacity_study3_mr_dicom" / "11_HCropVolume"
    images = [HIPPO / "images" / f"{case}.nii.gz" for case in ("hippocampus_003", "hippocampus_004")]
    assert get_preferred_reader(series) == get_preferred_reader(images[0]) == "annotator3d"
    assert get_preferred_reader(series / "x.nrrd") == "napari"
    preferences.extension2reader = before
    ws = workspace_for(viewer).session
    qtbot.waitUntil(lambda: ws.volume is not None and ws.idle, timeout=30000)
    opened = []
    ws.image_opened.connect(opened.append)

    def drop(*paths, target=viewer.window._qt_viewer) -> None:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
        mime.setText("\n".join(QUrl.fromLocalFile(str(p)).toString() for p in paths))  # as file managers do
        enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(target, enter)
        assert enter.isAccepted() and viewer.status == DRAG_STATUS
        done = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                          Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(target, done)
        assert done.isAccepted()

    drop(series)
    qtbot.waitUntil(lambda: len(opened) == 1 and ws.idle, timeout=30000)
    assert ws.volume.size == (34, 50, 40) and Path(ws.volume.source.path).resolve() == series.resolve()
    assert ws.volume.modality == "MR"  # read as DICOM, with its header
    assert [lay.source.reader_plugin for lay in viewer.layers if lay.source.reader_plugin] == []
    drop(*sorted(series.iterdir())[:5])  # files of one series: the series, no note
    qtbot.waitUntil(lambda: len(opened) == 2 and ws.idle, timeout=30000)
    assert ws.volume.size == (34, 50, 40)
    assert not any("dropped" in str(n.message) for n in notification_manager.records)
    drop(*images, target=viewer.window._qt_window)  # on a dock: it reaches the window
    qtbot.waitUntil(lambda: len(opened) == 3 and ws.idle, timeout=30000)
    assert Path(ws.volume.source.path).resolve() == images[0].resolve()
    assert any("2 items were dropped" in str(n.message) and "hippocampus_003.nii.gz" in str(n.message)
               for n in notification_manager.records)
    box = viewer.window._qt_window.findChild(WorklistDock).filter  # a line edit takes text drops
    drop(series, target=box)
    qtbot.waitUntil(lambda: len(opened) == 4 and ws.idle, timeout=30000)
    assert box.text() == "" and Path(ws.volume.source.path).resolve() == series.resolve()
    # napari's drop stays on its keys; web addresses are napari's too
    assert ours(Qt.KeyboardModifier.NoModifier) and not ours(Qt.KeyboardModifier.AltModifier)
    assert not ours(Qt.KeyboardModifier.ShiftModifier)
    web = QMimeData()
    web.setUrls([QUrl("https://example.org/ct.nii.gz"), QUrl.fromLocalFile(str(images[0]))])
    assert dropped_paths(web) == []
    viewer.close()


def test_what_was_changed_on_opening_is_said(make_napari_viewer, qtbot, tmp_path):
    """An image opens with a warning (NaN voxels replaced): the person sees it, in a
    notification and on the dock's status line, written as it is."""
    import SimpleITK as sitk
    from napari.utils.notifications import notification_manager

    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.workspace import workspace_for
    from annotator_app.main import open_start

    image = sitk.ReadImage(str(HIPPO / "images" / "hippocampus_001.nii.gz"), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(image)
    array[3, 4:6, 5] = np.nan
    holed = sitk.GetImageFromArray(array)
    holed.CopyInformation(image)
    sitk.WriteImage(holed, str(tmp_path / "case<3>.nii.gz"))
    viewer = make_napari_viewer()
    dock = AnnotationDock(viewer)
    viewer.window.add_dock_widget(dock)
    ws = workspace_for(viewer).session
    open_start(viewer, str(tmp_path / "case<3>.nii.gz"), None)
    qtbot.waitUntil(lambda: ws.volume is not None and ws.idle and not ws.files.busy, timeout=30000)
    said = [str(n.message) for n in notification_manager.records]
    assert any("case<3>: 2 NaN/infinite voxels replaced" in m for m in said), said
    assert "case<3>: 2 NaN/infinite voxels replaced" in _shown_text(dock.status)


def _three_channels():
    """(a hippocampus image, its array, three channels of it as images: itself, inverted, and
    halved plus 100), for 4-D files."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(HIPPO / "images" / "hippocampus_001.nii.gz"), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(image)
    channels = []
    for values in (array, array.max() - array, array * 0.5 + 100):
        one = sitk.GetImageFromArray(values)
        one.CopyInformation(image)
        channels.append(one)
    return image, array, channels


def test_a_4d_image_opens_with_its_other_channels_beneath_it(make_napari_viewer, qtbot, tmp_path):
    """A Decathlon-style 4-D image: the first channel is annotated, the others lie hidden
    beneath it in the layer list, named as dataset.json names them, on the same grid;
    the next image (3-D) takes them away."""
    import json

    import SimpleITK as sitk

    from annotator.napari.workspace import workspace_for
    from annotator_app.main import open_start

    task = tmp_path / "Task99_Test"
    (task / "imagesTr").mkdir(parents=True)
    image, array, channels = _three_channels()
    sitk.WriteImage(sitk.JoinSeries(channels), str(task / "imagesTr" / "case_001.nii.gz"))
    sitk.WriteImage(image, str(task / "imagesTr" / "case_002.nii.gz"))
    (task / "dataset.json").write_text(json.dumps({"modality": {"0": "T1w", "1": "inverted", "2": "T2w"}}))
    viewer = make_napari_viewer()
    ws = workspace_for(viewer)
    open_start(viewer, str(task / "imagesTr" / "case_001.nii.gz"), None)
    qtbot.waitUntil(lambda: ws.session.volume is not None and ws.session.idle and not ws.session.files.busy,
                    timeout=30000)
    images = [layer for layer in viewer.layers if layer._type_string == "image"]
    assert [layer.name for layer in reversed(images)] == ["case_001 (T1w)", "case_001 (inverted)", "case_001 (T2w)"]
    assert [layer.visible for layer in reversed(images)] == [True, False, False]
    assert ws.image_layer() is images[-1] and ws.session.volume.name == "case_001 (T1w)"
    np.testing.assert_allclose(images[1].data, array.max() - array)
    for shown in ("case_001 (inverted)", "case_001 (T2w)", "case_001 (T1w)"):  # Alt+M: the next, in turn
        ws.actions()["next_volume"]()
        assert [layer.name for layer in images if layer.visible] == [shown]
    for layer in images:
        np.testing.assert_allclose(layer.affine.affine_matrix, images[-1].affine.affine_matrix)
    ws.session.open_image("case_002")
    qtbot.waitUntil(lambda: ws.session.image_id == "case_002" and not ws.session.files.busy, timeout=30000)
    assert [layer.name for layer in viewer.layers if layer._type_string == "image"] == ["case_002"]


def test_a_4d_image_opened_in_napari_is_annotated_with_its_other_channels(make_napari_viewer, qtbot, tmp_path):
    """Plugin use: File > Open on a 4-D image gives a layer per channel; the channel
    annotated takes the others as its companions (Alt+M shows each in turn, no second copy
    is read or added); a channel file of an nnU-Net case, opened alone, gets the case's
    other channel files beneath it, hidden."""
    import SimpleITK as sitk

    from annotator.napari.workspace import workspace_for

    _, array, channels = _three_channels()
    sitk.WriteImage(sitk.JoinSeries(channels), str(tmp_path / "case_001.nii.gz"))
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "case_001.nii.gz"), plugin="annotator3d")
    images = list(viewer.layers)
    assert len(images) == 3 and [layer.visible for layer in images] == [False, False, True]
    _, session = _annotate_layer(viewer, qtbot, images[-1])
    qtbot.waitUntil(lambda: session.image_id == "case_001" and not session.files.busy, timeout=30000)
    ws = workspace_for(viewer)
    assert session.companions == [layer.metadata[L.VOLUME_KEY] for layer in reversed(images[:-1])]
    assert [layer for layer in viewer.layers if layer._type_string == "image"] == images  # none added
    for shown in images[1::-1]:  # Alt+M: the next channel, in turn
        ws.actions()["next_volume"]()
        assert [layer for layer in images if layer.visible] == [shown]

    case = tmp_path / "nnunet"
    case.mkdir()
    for number, channel in enumerate(channels[:2]):
        sitk.WriteImage(channel, str(case / f"brain_{number:04d}.nii.gz"))
    (case / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T1", "1": "inverted"}}))
    viewer = make_napari_viewer()
    viewer.open(str(case / "brain_0000.nii.gz"), plugin="annotator3d")
    _, session = _annotate_layer(viewer, qtbot, viewer.layers[0])
    qtbot.waitUntil(lambda: session.volume is not None and not session.files.busy, timeout=30000)
    assert len(session.companions) == 1
    images = [layer for layer in viewer.layers if layer._type_string == "image"]
    assert len(images) == 2 and images[0].metadata[L.VOLUME_KEY] is session.companions[0] and not images[0].visible
    np.testing.assert_allclose(images[0].data, array.max() - array)


def test_a_time_series_opens_in_napari_as_one_4d_layer(make_napari_viewer, qtbot, tmp_path):
    """A 4-D file of more volumes than are worth a layer each: one layer with a slider for
    time, each time point where the file puts it; it is not taken for a 3-D image to
    annotate."""
    import SimpleITK as sitk

    from annotator.io.read import MAX_COMPANIONS
    from annotator.napari.annotation_dock import AnnotationDock

    image = sitk.ReadImage(str(HIPPO / "images" / "hippocampus_001.nii.gz"), sitk.sitkFloat32)
    count = MAX_COMPANIONS + 4
    path = tmp_path / "perfusion.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([image * (1 + t) for t in range(count)]), str(path))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="annotator3d")
    assert layer.name == "perfusion" and layer.data.shape == (count, 35, 51, 35) and viewer.dims.ndim == 4
    plain = read_volume(HIPPO / "images" / "hippocampus_001.nii.gz")
    np.testing.assert_allclose(layer.data[3], plain.array.astype(np.float32) * 4)
    idx = (2, 5, 10, 20)  # time point 2, voxel (z, y, x)
    itk = plain.to_sitk().TransformIndexToPhysicalPoint((20, 10, 5))
    np.testing.assert_allclose(layer.data_to_world(idx)[1:], tuple(reversed(itk)), atol=1e-4)
    dock = AnnotationDock(viewer)
    errors = []
    dock.session.error.connect(errors.append)
    viewer.layers.selection.active = layer
    dock._use_selected_layer()
    assert errors and "is 4-D; Annotator needs a 3-D image" in errors[-1]


def _shown_text(label) -> str:
    """What a QLabel shows, as a person reads it (rich text rendered to plain)."""
    from qtpy.QtGui import QTextDocument

    document = QTextDocument()
    document.setHtml(label.text())
    return document.toPlainText()


def test_layers_carry_spacing_and_orientation(make_napari_viewer):
    from annotator.napari.reader import get_reader

    ct = DATA / "totalsegmentator_example" / "example_ct_dicom"
    reader = get_reader(str(ct))
    assert reader is not None
    (data, kwargs, kind), = reader(str(ct))
    assert kind == "image" and data.shape == (20, 512, 512)
    affine = kwargs["affine"]
    np.testing.assert_allclose(np.abs(np.diag(affine)[:3]), [2.0, 0.9765625, 0.9765625])
    viewer = make_napari_viewer()
    layer = viewer.add_image(data, **kwargs)
    volume = kwargs["metadata"]["annotator_volume"]
    # the world position of voxel (z, y, x) is the patient position ITK gives (LPS, z-y-x order)
    idx = (5, 100, 300)
    world = layer.data_to_world(idx)
    itk = volume.to_sitk().TransformIndexToPhysicalPoint(tuple(reversed(idx)))
    np.testing.assert_allclose(world, tuple(reversed(itk)), atol=1e-4)
    mirrored = get_reader(str(HIPPO / "images" / "hippocampus_001.nii.gz"))(
        str(HIPPO / "images" / "hippocampus_001.nii.gz"))[0][1]["affine"]
    assert mirrored[1, 1] < 0 and mirrored[2, 2] < 0  # RAS file: flipped in LPS, as stored
    assert get_reader(str(DATA / "README.md")) is None
    assert get_reader(str(DATA / "LICENSES")) is None
    # a folder of images, or a data set, is not a stack of layers: the reader says where it opens
    for folder in (HIPPO / "images", HIPPO):
        with pytest.raises(InputError, match=f"'{folder.name}' is a folder of images.*Worklist"):
            get_reader(str(folder))(str(folder))
    # File > Open on one DICOM slice: the manifest offers this reader, and the slice's series opens
    from fnmatch import fnmatch

    import npe2

    [ours] = npe2.PluginManifest.from_distribution("annotator3d").contributions.readers
    one = DATA / "udacity_study3_mr_dicom" / "11_HCropVolume" / "3.dcm"
    assert any(fnmatch(one.name, pattern) for pattern in ours.filename_patterns)
    (data, _, _), = get_reader(str(one))(str(one))
    assert data.shape == (40, 50, 34)


def test_a_folder_opens_every_series_as_a_layer(make_napari_viewer, tmp_path):
    """File > Open on a study folder: each series a layer, the largest shown on top, the
    others hidden beneath; a series that cannot be read is named and the rest still open."""

    study = tmp_path / "study"
    shutil.copytree(DATA / "udacity_study3_mr_dicom", study)
    crop = sorted((study / "11_HCropVolume").iterdir())
    for path in crop[10:12]:  # the crop loses two slices: it cannot be read
        path.unlink()
    viewer = make_napari_viewer()
    with pytest.warns(UserWarning, match="HippoCrop.*missing slices"):
        viewer.open(str(study), plugin="annotator3d")
    names = [layer.name for layer in viewer.layers]
    assert sorted(names) == ["FLAIR_reg", "T1post"]
    top = viewer.layers[-1]
    assert top.visible and not viewer.layers[0].visible
    assert top.data.size >= viewer.layers[0].data.size
    assert viewer.layers.selection.active is top
    for layer in viewer.layers:  # each its own series, with its geometry
        volume = layer.metadata["annotator_volume"]
        assert volume.name == layer.name and volume.array is layer.data
        np.testing.assert_allclose(layer.affine.affine_matrix, L.affine(volume))
    shutil.rmtree(study / "11_HCropVolume")
    shutil.rmtree(study / "11-T1post-18670")
    shutil.rmtree(study / "36468-FLAIRreg-58706")
    (study / "notes.txt").write_text("no images here")
    from annotator.napari.reader import read_layers

    with pytest.raises(InputError, match="no DICOM image series"):
        read_layers(str(study))


def test_a_label_map_opens_as_a_labels_layer_on_its_image(make_napari_viewer, tmp_path, monkeypatch):
    """File > Open on a segmentation (plugin use) gives a Labels layer that falls on its
    image, its values named as the file names them (it opened as a grey image; a DICOM SEG
    was refused)."""
    viewer = make_napari_viewer()
    import napari

    ct, seg = (DATA / "totalsegmentator_example" / name for name in ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz"))
    [image] = viewer.open(str(ct), plugin="annotator3d")
    [label] = viewer.open(str(seg), plugin="annotator3d")
    assert isinstance(image, napari.layers.Image) and isinstance(label, napari.layers.Labels)
    np.testing.assert_allclose(label.affine.affine_matrix, image.affine.affine_matrix)
    assert label.data.dtype == np.uint8 and label.data.shape == image.data.shape
    names = dict(zip(label.features["index"], label.features["name"]))
    assert names[5] == "liver" and names[0] == "background"
    liver = np.argwhere(label.data == 5)[0]
    np.testing.assert_allclose(label.world_to_data(image.data_to_world(liver)), liver, atol=1e-4)
    # an image of whole numbers is still an image
    [hippo] = viewer.open(str(HIPPO / "images" / "hippocampus_001.nii.gz"), plugin="annotator3d")
    assert isinstance(hippo, napari.layers.Image)
    # a DICOM SEG opens over its series once that is open; with it, when the series lies
    # in its folder or below; and says what to open when it is neither
    seg = DATA / "dcmqi_ct3slice_seg" / "liver.dcm"
    alone = tmp_path / "liver.dcm"
    shutil.copy(seg, alone)
    with pytest.raises(Exception, match="liver.dcm is a DICOM segmentation of a series that is not open, and it is "
                                        "not in the file's folder"):
        viewer.open(str(alone), plugin="annotator3d")
    from annotator.napari import reader

    monkeypatch.setattr(reader, "MAX_FILES_BESIDE", 4)  # its folder holds 15: not searched
    with pytest.raises(Exception, match="its folder holds too many files"):
        viewer.open(str(seg), plugin="annotator3d")
    monkeypatch.undo()
    series, beside = viewer.open(str(seg), plugin="annotator3d")
    assert isinstance(series, napari.layers.Image) and isinstance(beside, napari.layers.Labels)
    assert series.data.shape == beside.data.shape == (3, 512, 512)
    assert np.count_nonzero(beside.data == 1) == 107098
    np.testing.assert_allclose(beside.affine.affine_matrix, series.affine.affine_matrix)
    viewer.layers.clear()
    [ct] = viewer.open(str(DATA / "dcmqi_ct3slice_seg" / "ct-3slice"), plugin="annotator3d")
    [liver] = viewer.open(str(seg), plugin="annotator3d")
    assert isinstance(liver, napari.layers.Labels) and liver.data.shape == ct.data.shape
    assert np.count_nonzero(liver.data == 1) == 107098
    assert dict(zip(liver.features["index"], liver.features["name"]))[1] == "liver"
    np.testing.assert_allclose(liver.affine.affine_matrix, ct.affine.affine_matrix)


def test_sample_data_contributions():
    from annotator.napari import sample_data

    (data, kwargs, kind), = sample_data.hippocampus()
    assert kind == "image" and data.shape == (35, 51, 35)
    assert kwargs["metadata"]["annotator_volume"].modality == "MR"


def test_annotating_a_layer_opened_by_napari(make_napari_viewer, qtbot, tmp_path):
    """Plugin use: the image comes from File > Open (our reader), then the dock annotates it."""

    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.workspace import workspace_for

    image = tmp_path / "case.nii.gz"
    shutil.copy(HIPPO / "images" / "hippocampus_004.nii.gz", image)
    viewer = make_napari_viewer()
    dock = AnnotationDock(viewer)
    viewer.window.add_dock_widget(dock)
    viewer.open(str(image), plugin="annotator3d")
    assert viewer.layers[0].metadata["annotator_volume"].source.path == str(image)
    viewer.layers.selection.active = viewer.layers[0]
    dock.use_layer.click()
    ws = workspace_for(viewer).session
    assert ws.image_id == ""  # its folder is searched in the file worker, never where the person waits
    qtbot.waitUntil(lambda: ws.image_id == "case" and not ws.files.busy, timeout=30000)
    assert L.FOREGROUND in viewer.layers and len([lay for lay in viewer.layers if lay.name == "case"]) == 1
    viewer.layers[L.FOREGROUND].add(np.array([15, 25, 15], float))
    qtbot.waitUntil(lambda: ws.history.can_undo and ws.idle, timeout=30000)
    dock.buttons["accept"].click()
    qtbot.waitUntil(lambda: ws.idle, timeout=30000)  # saved in the file worker
    assert (tmp_path / "labels" / "final" / "case.nii.gz").exists()
    # a label file from elsewhere opened by File > Open joins the image's label maps (it was a layer apart)
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(HIPPO / "labels" / "hippocampus_004.nii.gz", tmp_path / "elsewhere" / "case_reviewed.nii.gz")
    viewer.open(str(tmp_path / "elsewhere" / "case_reviewed.nii.gz"), plugin="annotator3d")
    qtbot.waitUntil(lambda: "case_reviewed" in ws.label_maps, timeout=30000)
    assert "case_reviewed" not in viewer.layers and "case_reviewed (label map)" in viewer.layers
    assert not dock.use_map.isHidden() and dock.label_map.currentData() == "case_reviewed"
    dock.use_map.click()
    truth = read_label(tmp_path / "elsewhere" / "case_reviewed.nii.gz", ws.volume)
    np.testing.assert_array_equal(ws.label, truth)
    # so does a 3D Slicer segmentation saved cropped to its segments (its layer on its own, smaller grid)
    import SimpleITK as sitk

    cropped = sitk.ReadImage(str(tmp_path / "elsewhere" / "case_reviewed.nii.gz"))[5:30, 10:45, 3:30]
    cropped.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    sitk.WriteImage(cropped, str(tmp_path / "elsewhere" / "Segmentation.seg.nrrd"))
    viewer.open(str(tmp_path / "elsewhere" / "Segmentation.seg.nrrd"), plugin="annotator3d")
    qtbot.waitUntil(lambda: "Segmentation.seg" in ws.label_maps, timeout=30000)
    assert "Segmentation.seg" not in viewer.layers and "Segmentation.seg (label map)" in viewer.layers
    inside = np.zeros_like(truth)
    inside[3:30, 10:45, 5:30] = truth[3:30, 10:45, 5:30]
    np.testing.assert_array_equal(ws.label_maps["Segmentation.seg"], inside)
    # napari's own new labels layer stays the person's
    viewer.add_labels(np.zeros(ws.volume.shape, np.uint8), name="mine", affine=L.affine(ws.volume))
    qtbot.wait(200)
    assert "mine" in viewer.layers and "mine" not in ws.label_maps


def test_a_layer_whose_saved_label_is_numbered_beyond_255_is_annotated_with_it(make_napari_viewer, qtbot,
                                                                                 tmp_path):
    """Plugin use, the image's saved label numbered 1002 (a file from another tool): the
    layer is annotated with it, numbers kept (two bytes a voxel), not with 1002 cast to
    234, nor unlabelled as until 2026-12-06."""

    from annotator.datastore import LocalDatastore
    from annotator.io import read_volume
    from annotator.napari.workspace import workspace_for

    image = tmp_path / "case.nii.gz"
    shutil.copy(HIPPO / "images" / "hippocampus_004.nii.gz", image)
    volume = read_volume(image)
    atlas = np.zeros(volume.shape, np.uint16)
    atlas[5:10, 5:10, 5:10] = 1002
    LocalDatastore(tmp_path).accept("case", atlas, volume)
    viewer = make_napari_viewer()
    viewer.open(str(image), plugin="annotator3d")
    ws = workspace_for(viewer).session
    warnings = []
    ws.warning.connect(warnings.append)
    _annotate_layer(viewer, qtbot, viewer.layers[0])
    qtbot.waitUntil(lambda: ws.image_id == "case" and not ws.files.busy, timeout=30000)
    np.testing.assert_array_equal(ws.label, atlas)
    assert ws.label.dtype == np.uint16 and viewer.layers[L.SEGMENTATION].data is ws.label
    assert not any("1002" in w for w in warnings), warnings


def test_a_layer_opened_from_a_folder_comes_with_its_label_maps_and_earlier_labels(make_napari_viewer, qtbot,
                                                                                    tmp_path):
    """Plugin use (File > Open, then Annotate layer): the image comes with what the
    worklist would have opened it with: the label map beside it, ready to use, and the
    labels saved before the current one (the final accepted before it, the first one
    proposed), to restore."""

    from annotator.datastore import LocalDatastore
    from annotator.io import read_volume

    image = tmp_path / "case.nii.gz"
    shutil.copy(HIPPO / "images" / "hippocampus_004.nii.gz", image)
    shutil.copy(HIPPO / "labels" / "hippocampus_004.nii.gz", tmp_path / "case_seg.nii.gz")
    volume = read_volume(image)
    store = LocalDatastore(tmp_path)
    first, second = np.zeros(volume.shape, np.uint8), np.zeros(volume.shape, np.uint8)
    first[5:10, 5:10, 5:10], second[10:15, 10:15, 10:15] = 1, 2
    store.accept("case", first, volume)
    store.accept("case", second, volume)
    viewer = make_napari_viewer()
    viewer.open(str(image), plugin="annotator3d")
    _, ws = _annotate_layer(viewer, qtbot, viewer.layers[0])
    qtbot.waitUntil(lambda: ws.image_id == "case" and not ws.files.busy, timeout=30000)
    np.testing.assert_array_equal(ws.label, second)
    assert list(ws.label_maps) == ["case_seg"] and ws.label_maps["case_seg"].max() == 2
    assert [key for key, _ in ws.saved_labels] == ["earlier-1", "original"]


def _annotate_layer(viewer, qtbot, layer):
    """Select ``layer`` and press Annotate layer; the session."""
    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.workspace import workspace_for

    dock = next(iter(viewer.window._qt_window.findChildren(AnnotationDock)), None)
    if dock is None:
        dock = AnnotationDock(viewer)
        viewer.window.add_dock_widget(dock)
    session = workspace_for(viewer).session
    session.ask_leave = lambda _name: "discard"  # the work on the layer before is not asked about
    viewer.layers.selection.active = layer
    dock.use_layer.click()
    qtbot.waitUntil(lambda: session.idle, timeout=30000)
    return dock, session


def test_a_layer_napari_read_without_geometry_is_read_again(make_napari_viewer, qtbot):
    """Plugin use: napari's own reader takes a DICOM folder too, and keeps no spacing; Annotate
    layer opens the series again with the Annotator reader (its 2 mm slices), hides the
    layer, and says why."""
    from annotator.napari.workspace import workspace_for

    series = DATA / "totalsegmentator_example" / "example_ct_dicom"
    viewer = make_napari_viewer()
    layer, = viewer.open(str(series), plugin="napari")
    assert layer.data.shape == (20, 512, 512) and tuple(layer.scale) == (1, 1, 1)
    warnings = []
    workspace_for(viewer).session.warning.connect(warnings.append)
    _, session = _annotate_layer(viewer, qtbot, layer)
    qtbot.waitUntil(lambda: session.volume is not None and session.idle, timeout=30000)
    assert session.volume.spacing == (0.9765625, 0.9765625, 2.0) and session.volume.modality == "CT"
    assert not layer.visible
    assert any("napari reader" in w and "spacing" in w for w in warnings), warnings
    # an array with no file behind it is annotated as it is
    array = viewer.add_image(np.zeros((8, 16, 16), np.float32), name="array")
    _annotate_layer(viewer, qtbot, array)
    qtbot.waitUntil(lambda: session.volume.name == "array" and session.idle, timeout=30000)


def test_annotating_an_array_layer_with_nans_or_of_booleans(make_napari_viewer, qtbot):
    """Plugin use: an array made elsewhere, with NaN voxels (a float image masked with NaN,
    as registered or skull-stripped MR often is), or of booleans: clicks failed ("cannot
    convert float NaN to integer", "numpy boolean subtract ... not supported"). The
    NaNs are filled in the annotation's copy (said), the layer keeps its own."""
    volume = read_volume(HIPPO / "images" / "hippocampus_001.nii.gz")
    image = volume.array.astype(np.float32)
    image[image < np.percentile(image, 20)] = np.nan
    viewer = make_napari_viewer()
    said = []
    masked = viewer.add_image(image, name="masked")
    _dock, session = _annotate_layer(viewer, qtbot, masked)
    session.warning.connect(said.append)
    session.error.connect(said.append)
    assert session.volume.name == "masked" and np.isfinite(session.volume.array).all()
    assert np.isnan(masked.data).sum() == np.isnan(image).sum()  # the layer's own data untouched
    for layer in (masked, viewer.add_image(volume.array > np.percentile(volume.array, 70), name="mask")):
        _dock, session = _annotate_layer(viewer, qtbot, layer)
        session.set_marks([tuple(n // 2 for n in session.volume.shape)], [])
        qtbot.waitUntil(lambda: session.idle, timeout=60000)
        assert session.label.any(), (layer.name, said)
    assert not [m for m in said if "Error" in m]


def test_an_array_layer_has_nowhere_to_keep_its_label_and_is_not_autosaved(make_napari_viewer, qtbot, tmp_path):
    """Plugin use, a folder opened before: a label drawn on an array layer (no file behind
    it) was autosaved at every tick into the folder's store, which refused it each time: an
    error a second ("no datastore to save into"). Leaving it offers what can be done: discard,
    or cancel and save the layer."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QMessageBox

    from annotator.napari.workspace import workspace_for

    shutil.copy(HIPPO / "images" / "hippocampus_001.nii.gz", tmp_path)
    viewer = make_napari_viewer()
    workspace = workspace_for(viewer)
    session = workspace.session
    session.open(tmp_path)
    qtbot.waitUntil(lambda: session.image_id == "hippocampus_001" and session.idle, timeout=30000)
    volume = read_volume(HIPPO / "images" / "hippocampus_001.nii.gz")
    _annotate_layer(viewer, qtbot, viewer.add_image(volume.array.astype(np.float32), name="array"))
    assert session.volume.name == "array" and session.store is not None and not session.can_keep
    said = []
    session.error.connect(said.append)
    session.autosave_s = 0.0
    session.set_marks([tuple(n // 2 for n in session.volume.shape)], [])
    qtbot.waitUntil(lambda: session.idle and session.label.any(), timeout=60000)
    for _ in range(3):
        session.tick()
        qtbot.wait(50)
    assert said == [] and session.has_unsaved_work
    offered = []

    def answer():
        box = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "unsaved-prompt")
        offered.extend([button.text() for button in box.buttons()] + [box.text()])
        box.button(QMessageBox.Cancel).click()

    session.ask_leave = workspace._ask_leave
    QTimer.singleShot(200, answer)
    assert not session.leave()  # cancelled: the work stays
    assert "Accept" not in offered and "Keep as draft" not in offered and "Discard" in offered
    assert "File > Save Selected Layers" in offered[-1] and session.has_unsaved_work


def test_layers_that_are_no_3d_grey_image_are_refused_by_name(make_napari_viewer, qtbot):
    """An RGB layer went in as a 3-slice volume and failed inside a signal (EmitLoopError,
    a matmul message); a multiscale layer was annotated at its coarsest level, a grid other
    than the one shown."""
    viewer = make_napari_viewer()
    said = []
    rng = np.random.default_rng(0)
    dock, session = _annotate_layer(viewer, qtbot, viewer.add_image(rng.random((32, 32))))
    session.error.connect(said.append)
    for layer, words in ((viewer.add_image(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), rgb=True,
                                           name="photo"), "'photo' is a colour (RGB) image"),
                         (viewer.add_image(rng.random((2, 8, 16, 16)), name="series"), "'series' is 4-D"),
                         (viewer.add_image(np.full((4, 8, 8), np.nan), name="empty"), "every voxel is NaN")):
        _annotate_layer(viewer, qtbot, layer)
        assert words in said[-1] and words in dock.status.text().replace("&#x27;", "'")
        assert session.volume is None
    pyramid = viewer.add_image([rng.random((16, 64, 64)), rng.random((8, 32, 32))], multiscale=True, name="pyramid")
    _annotate_layer(viewer, qtbot, pyramid)
    assert session.volume.shape == (16, 64, 64)
    assert viewer.layers[L.SEGMENTATION].data.shape == (16, 64, 64)


def test_a_turned_layer_is_shown_where_its_annotation_falls(make_napari_viewer, qtbot):
    """A layer rotated or flipped by its transform: the annotation's layers were placed by
    its scale and translation alone, beside the image shown. The layer is now shown on
    its own grid, as an image the app opens is (said), and both fall on each other."""
    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    turned = viewer.add_image(rng.random((12, 24, 20)), scale=(3, 1, 1), translate=(5, -7, 2), rotate=30)
    said = []
    from annotator.napari.workspace import workspace_for

    workspace_for(viewer).session.warning.connect(said.append)
    _dock, session = _annotate_layer(viewer, qtbot, turned)
    assert session.volume.spacing == pytest.approx((1, 1, 3))
    segmentation = viewer.layers[L.SEGMENTATION]
    corner = np.array([11.0, 23.0, 19.0])
    assert np.allclose(turned.data_to_world(corner), segmentation.data_to_world(corner))
    assert any("shown on its own grid" in m for m in said)
    plain = viewer.add_image(rng.random((12, 24, 20)), scale=(3, 1, 1), translate=(5, -7, 2), name="plain")
    _annotate_layer(viewer, qtbot, plain)  # a layer placed by scale and translation alone stays where it is
    assert tuple(plain.scale) == (3, 1, 1) and tuple(plain.translate) == (5, -7, 2)
    assert np.allclose(plain.data_to_world(corner), viewer.layers[L.SEGMENTATION].data_to_world(corner))


def test_layers_are_the_persons_once_the_docks_are_closed(make_napari_viewer, qtbot, tmp_path):
    """Plugin use: a deleted layer of the annotation comes back while the Annotation dock
    is open; with it closed (the person is done), deleting the layers took them away for
    a moment only: they came back, and the viewer could not be cleaned up short of
    deleting the image too."""

    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.workspace import workspace_for

    image = tmp_path / "case.nii.gz"
    shutil.copy(HIPPO / "images" / "hippocampus_004.nii.gz", image)
    viewer = make_napari_viewer()
    dock = AnnotationDock(viewer)
    viewer.window.add_dock_widget(dock, name="Annotation")
    ws = workspace_for(viewer).session
    ws.open(str(image))
    qtbot.waitUntil(lambda: ws.volume is not None and ws.idle and not ws.files.busy, timeout=30000)
    viewer.layers.remove(L.SCRIBBLES)
    qtbot.waitUntil(lambda: L.SCRIBBLES in viewer.layers, timeout=5000)
    viewer.window.remove_dock_widget(dock)
    for name in L.ANNOTATION_LAYERS:
        viewer.layers.remove(name)
    qtbot.wait(300)
    assert [layer.name for layer in viewer.layers] == ["case"]


def test_file_save_writes_the_label_with_its_geometry_or_as_dicom_seg(make_napari_viewer, qtbot, tmp_path):
    """File > Save Selected Layers on the label: NIfTI on the image's grid, a DICOM SEG of
    the series or a segmentation NRRD (3D Slicer's), its segments named as the Label list
    names them."""
    import pydicom

    from annotator.io import read_label, read_volume
    from annotator.io.label_names import label_names_in
    from annotator.io.seg import seg_to_label
    from annotator.napari.workspace import workspace_for
    from annotator.settings import LabelPreset
    from annotator_app.main import open_start

    viewer = make_napari_viewer()
    ws = workspace_for(viewer).session
    series = DATA / "udacity_study3_mr_dicom" / "11_HCropVolume"
    open_start(viewer, str(series), None)
    qtbot.waitUntil(lambda: ws.volume is not None and ws.idle and not ws.files.busy, timeout=30000)
    ws.set_presets([LabelPreset(1, "hippocampus", "#00aaff"), LabelPreset(2, "amygdala", "#ffaa00")])
    label = np.zeros(ws.volume.shape, np.uint8)
    label[10:20, 10:30, 10:20] = 1
    label[22:26, 10:20, 10:20] = 2
    segmentation = viewer.layers[L.SEGMENTATION]
    segmentation.data = label
    viewer.layers.selection.active = segmentation
    [nifti] = viewer.layers.save(str(tmp_path / "label.nii.gz"), selected=True, plugin="annotator3d")
    volume = read_volume(series)
    np.testing.assert_array_equal(read_label(nifti, volume), label)
    [seg] = viewer.layers.save(str(tmp_path / "label.dcm"), selected=True, plugin="annotator3d")
    back, names = seg_to_label(pydicom.dcmread(seg), volume)
    np.testing.assert_array_equal(back, label)
    assert names == {1: "hippocampus", 2: "amygdala"}
    [nrrd] = viewer.layers.save(str(tmp_path / "label.seg.nrrd"), selected=True, plugin="annotator3d")
    np.testing.assert_array_equal(read_label(nrrd, volume), label)  # 3D Slicer's segmentation, named
    assert label_names_in(nrrd) == {"hippocampus": 1, "amygdala": 2}
    plain = viewer.add_labels(label, name="drawn elsewhere")
    viewer.layers.selection.active = plain
    with pytest.raises(Exception, match="not a label of an image Annotator opened"):
        viewer.layers.save(str(tmp_path / "plain.nii.gz"), selected=True, plugin="annotator3d")


def test_a_segmentation_replaced_with_values_beyond_a_label_is_put_back(make_napari_viewer, qtbot):
    """A script that sets the segmentation layer's data to a label numbered 70000 (or -1):
    cast, it became 4464 (65535), drawn and saved as that. The label stays what it was, in
    the layer too, and a warning names the value; one numbered 1002 (an atlas's) is taken
    as it is, the layer showing the session's label; one of another grid is put back, and
    the warning names both sizes."""
    from annotator.napari.workspace import workspace_for
    from annotator.samples import sample_file
    from annotator_app.main import open_start

    viewer = make_napari_viewer()
    ws = workspace_for(viewer).session
    open_start(viewer, str(sample_file("hippocampus")), None)
    qtbot.waitUntil(lambda: ws.volume is not None and ws.idle and not ws.files.busy, timeout=30000)
    warnings = []
    ws.warning.connect(warnings.append)
    before = ws.label.copy()
    atlas = np.zeros(ws.volume.shape, np.int32)
    atlas[5:10, 5:10, 5:10] = 70000
    segmentation = viewer.layers[L.SEGMENTATION]
    segmentation.data = atlas
    np.testing.assert_array_equal(ws.label, before)
    np.testing.assert_array_equal(np.asarray(segmentation.data), before)
    assert warnings and "holds the value 70000" in warnings[-1] and "file" not in warnings[-1]
    atlas[5:10, 5:10, 5:10] = -1  # would be 65535
    segmentation.data = atlas
    np.testing.assert_array_equal(ws.label, before)
    assert "holds the value -1" in warnings[-1]
    atlas[5:10, 5:10, 5:10] = 1002
    segmentation.data = atlas
    np.testing.assert_array_equal(ws.label, atlas)
    assert ws.label.dtype == np.uint16 and segmentation.data is ws.label
    assert 1002 in [p.value for p in ws.labels]  # offered, and so coloured: seen
    assert segmentation.colormap.map(np.array([1002]))[0][3] > 0
    fine = before.copy()
    fine[5:10, 5:10, 5:10] = 3
    segmentation.data = fine  # a label that fits is taken as before
    np.testing.assert_array_equal(ws.label, fine)
    ws.undo()  # each replacement is undone as a step
    np.testing.assert_array_equal(ws.label, atlas)
    assert segmentation.data is ws.label
    segmentation.data = np.ones((3, 4, 5), np.uint8)  # another grid: put back, and said (it was passed over)
    np.testing.assert_array_equal(ws.label, atlas)
    assert segmentation.data is ws.label
    assert "given 5x4x3 voxels (x,y,z)" in warnings[-1] and "hippocampus_001 has 35x51x35" in warnings[-1], warnings[-1]


def test_npe2_manifest_validates():
    npe2 = Path(sys.executable).with_name("npe2")
    proc = subprocess.run([str(npe2), "validate", "annotator3d"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in (proc.stdout + proc.stderr).lower()


def test_settings_persist_in_the_user_config_dir(make_napari_viewer, qtbot, store_folder, tmp_path):
    from annotator.napari.workspace import workspace_for
    from annotator.settings import Settings

    viewer = make_napari_viewer()
    ws = workspace_for(viewer).session
    ws.open(store_folder)
    qtbot.waitUntil(lambda: ws.volume is not None and ws.idle, timeout=30000)
    saved = json.loads(Settings.path().read_text())
    assert Settings.path().is_relative_to(tmp_path)
    assert saved["last_datastore"] == str(store_folder.resolve())
    assert [p["name"] for p in saved["presets"]][:1] == ["structure"]


def test_plugins_menu_offers_the_docks(make_napari_viewer):
    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.training_dock import TrainingDock
    from annotator.napari.worklist_dock import WorklistDock
    from annotator.napari.workspace import workspace_for

    viewer = make_napari_viewer()
    for name, kind in (("Annotation", AnnotationDock), ("Worklist", WorklistDock), ("Training", TrainingDock)):
        _dock, widget = viewer.window.add_plugin_dock_widget("annotator3d", name)
        assert isinstance(widget, kind)
        assert widget.ws is workspace_for(viewer)  # each is handed its own proxy of the viewer: one session
    samples = viewer.open_sample("annotator3d", "hippocampus")
    assert samples[0].data.shape == (35, 51, 35)


def test_the_app_imports_without_torch_or_monai():
    """torch and MONAI take seconds to import: the window opens without them (the
    workspace loads them in the background before the first click needs them)."""
    code = ("import sys, annotator_app.main, annotator.napari.annotation_dock, annotator.napari.training_dock; "
            "print(sorted(m for m in ('torch', 'monai') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_no_shortcut_is_taken_by_napari_first(make_napari_viewer):
    """Every Annotator shortcut reaches its action: none is the mnemonic of a menu of the
    window (Alt+L opened napari's Layers menu, Alt+V View, Alt+H Help) or the shortcut of
    one of napari's own actions (Alt+S opened its Save Screenshot dialog)."""
    from qtpy.QtGui import QKeySequence

    from annotator.napari.key_bindings import SHORTCUTS
    from annotator.napari.workspace import workspace_for

    viewer = make_napari_viewer()
    workspace_for(viewer)
    window = viewer.window._qt_window
    taken = {}
    for menu in window.menuBar().actions():
        text = menu.text()
        if "&" in text:
            taken[QKeySequence(f"Alt+{text[text.index('&') + 1].upper()}").toString()] = f"the {text} menu"
    from napari._app_model import get_app_model

    for binding in get_app_model().keybindings:  # napari's actions (File > Save Screenshot: Alt+S)
        taken[QKeySequence(str(binding.keybinding)).toString()] = binding.command_id
    assert "Alt+F" in taken and "Alt+S" in taken  # what is looked at: the menus and napari's actions
    clashes = {keys: taken[QKeySequence(keys).toString()] for keys, _what in SHORTCUTS.values()
               if QKeySequence(keys).toString() in taken}
    assert clashes == {}


def test_a_shortcut_with_no_image_open_says_to_open_one(make_napari_viewer):
    """Every action of an image (clicks, tidying, Accept, the CT windows ...) pressed before
    an image is open says what to do; each did nothing, and said nothing (the plane's said
    " view"). Undo, Next and the next volume say their own words; none raises."""
    from annotator.napari.workspace import workspace_for

    viewer = make_napari_viewer()
    workspace = workspace_for(viewer)
    said = []
    workspace.session.status.connect(said.append)
    workspace.session.error.connect(lambda message: said.append(f"error: {message}"))
    for name, action in workspace.actions().items():
        said.clear()
        action()
        assert said, name
        if name not in ("undo", "redo", "next", "next_volume", "reload"):
            assert said == ["Open an image first: File > Open, the worklist, or a sample."], (name, said)


def test_the_wheel_scrolls_the_dock_and_leaves_its_boxes_alone(qtbot, make_napari_viewer):
    """On a laptop screen the Annotation dock scrolls; a wheel turned over its Method box
    on the way down changed the method (Qt's default). A box changes with the wheel only
    once clicked into; over one without the focus the wheel is left to the dock's page
    (Qt hands a wheel event its receiver leaves unaccepted to the parent: the page
    scrolls), as over a button."""
    from qtpy.QtCore import QPoint, QPointF, Qt
    from qtpy.QtGui import QWheelEvent
    from qtpy.QtWidgets import QApplication

    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.training_dock import TrainingDock

    viewer = make_napari_viewer()
    dock, training = AnnotationDock(viewer), TrainingDock(viewer)
    viewer.window.add_dock_widget(dock, name="Annotation", area="right")
    viewer.window.add_dock_widget(training, name="Training", area="right")
    window = viewer.window._qt_window
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)

    def wheel(widget) -> bool:
        """A wheel turned one step down over ``widget``; whether it took the event."""
        centre = QPointF(widget.rect().center())
        event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                            QPoint(0, -120), Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
        QApplication.sendEvent(widget, event)
        return event.isAccepted()

    assert not wheel(dock.buttons["fg"])  # a button leaves it to the page
    boxes = {dock.method: dock.method.currentIndex, dock.preset: dock.preset.currentIndex,
             training.epochs: training.epochs.value}
    for box, value in boxes.items():
        before = value()
        assert not wheel(box) and value() == before, type(box).__name__
    dock.method.setFocus()  # clicked into: the wheel changes it, as a person expects then
    qtbot.waitUntil(dock.method.hasFocus, timeout=5000)
    before = dock.method.currentIndex()
    assert wheel(dock.method) and dock.method.currentIndex() != before


def test_a_label_file_handed_over_joins_the_open_images_label_maps(make_napari_viewer, qtbot, tmp_path):
    """A label file dropped while an image is open (kept elsewhere: not found beside it) is
    that image's label map, shown as a layer and offered by Use as label (it was opened as
    an image to annotate, the image left); a DICOM SEG of the open series too; an image
    file still opens for annotation."""

    import SimpleITK as sitk

    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.workspace import workspace_for

    (tmp_path / "images").mkdir()
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(HIPPO / "images" / "hippocampus_004.nii.gz", tmp_path / "images" / "case.nii.gz")
    label_file = tmp_path / "elsewhere" / "case_reviewed_seg.nii.gz"
    shutil.copy(HIPPO / "labels" / "hippocampus_004.nii.gz", label_file)
    viewer = make_napari_viewer()
    dock = AnnotationDock(viewer)
    viewer.window.add_dock_widget(dock)
    ws = workspace_for(viewer).session
    ws.ask_leave = lambda _name: "discard"
    ws.open(tmp_path / "images" / "case.nii.gz")
    qtbot.waitUntil(lambda: ws.volume is not None and ws.idle and not ws.files.busy, timeout=30000)
    volume = ws.volume
    assert ws.label_maps == {} and dock.use_map.isHidden()
    ws.open(label_file)
    qtbot.waitUntil(lambda: "case_reviewed_seg" in ws.label_maps and not ws.files.busy, timeout=30000)
    assert ws.volume is volume  # still the image annotated
    layer = next(lay for lay in viewer.layers if lay.name == "case_reviewed_seg (label map)")
    assert layer.visible and viewer.layers.index(layer) < viewer.layers.index("scribbles")
    assert not dock.use_map.isHidden() and dock.label_map.currentData() == "case_reviewed_seg"
    dock.use_map.click()
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(label_file)))
    np.testing.assert_array_equal(ws.label, truth)
    viewer.window._qt_window.grab().save(str(tmp_path / "label_file_handed_over.png"))
    # 3D Slicer's segmentation of overlapping segments: one label map, the overlap said
    said = []
    ws.warning.connect(said.append)
    layers = np.zeros((*truth.shape, 2), np.uint8)
    layers[..., 0], layers[..., 1] = truth == 1, truth > 0
    layered = sitk.GetImageFromArray(layers, isVector=True)
    layered.CopyInformation(sitk.ReadImage(str(label_file)))
    for i, name in enumerate(("anterior", "hippocampus")):
        for key, text in (("Name", name), ("LabelValue", "1"), ("Layer", str(i))):
            layered.SetMetaData(f"Segment{i}_{key}", text)
    sitk.WriteImage(layered, str(tmp_path / "elsewhere" / "case_layers.seg.nrrd"))
    ws.open(tmp_path / "elsewhere" / "case_layers.seg.nrrd")
    qtbot.waitUntil(lambda: "case_layers.seg" in ws.label_maps and not ws.files.busy, timeout=30000)
    assert ws.label_map_names["case_layers.seg"] == {"anterior": 1, "hippocampus": 2}
    np.testing.assert_array_equal(ws.label_maps["case_layers.seg"], np.where(truth == 1, 1, np.where(truth > 0, 2, 0)))
    assert any("segments overlap (anterior over hippocampus" in w for w in said), said
    # a DICOM SEG of the open series
    ws.open(DATA / "dcmqi_ct3slice_seg" / "ct-3slice")
    qtbot.waitUntil(lambda: ws.volume is not None and ws.volume is not volume and ws.idle
                    and not ws.files.busy, timeout=30000)
    series = ws.volume
    ws.open(DATA / "dcmqi_ct3slice_seg" / "liver.dcm")
    qtbot.waitUntil(lambda: "liver" in ws.label_maps and not ws.files.busy, timeout=30000)
    assert ws.volume is series and ws.label_map_names["liver"] == {"liver": 1}
    # an image file is no label of it: it opens
    ws.open(tmp_path / "images" / "case.nii.gz")
    qtbot.waitUntil(lambda: ws.volume is not series and ws.volume is not None and ws.idle
                    and not ws.files.busy, timeout=30000)
    assert ws.volume.size == volume.size
