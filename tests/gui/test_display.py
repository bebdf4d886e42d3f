"""What a radiologist sees: CT windows (header, soft tissue, presets on keys and in the
dock), MR percentiles, label maps beside their image, and a click that redraws only what
changed (the same picture as a full redraw)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from qtpy.QtCore import Qt

from annotator.napari import layers as L
from annotator.napari.worklist_dock import ID_ROLE
from paths import DATA, HIPPO

TOTALSEG = DATA / "totalsegmentator_example"


@pytest.fixture
def window(make_napari_viewer, qtbot):
    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.worklist_dock import WorklistDock
    from annotator.napari.workspace import workspace_for

    viewer = make_napari_viewer(show=True)  # shown: screenshots render what a person sees
    annotation, worklist = AnnotationDock(viewer), WorklistDock(viewer)
    viewer.window.add_dock_widget(annotation, name="Annotation", area="right")
    viewer.window.add_dock_widget(worklist, name="Worklist", area="right")
    ws = workspace_for(viewer)
    return viewer, ws, annotation, worklist


def _open(ws, qtbot, place):
    ws.session.open(place)
    qtbot.waitUntil(lambda: ws.session.volume is not None and ws.session.idle and not ws.session.files.busy,
                    timeout=60000)
    return ws.image_layer()


def test_ct_windows_header_default_presets_and_keys(window, qtbot, tmp_path):
    viewer, ws, annotation, worklist = window
    series = tmp_path / "ct"
    shutil.copytree(TOTALSEG / "example_ct_dicom", series)
    layer = _open(ws, qtbot, series)
    assert ws.session.volume.window == (40.0, 300.0)  # the header's first window
    assert layer.contrast_limits == pytest.approx([-110.0, 190.0])
    assert annotation.display_window.currentData() == "header"
    viewer.screenshot(str(tmp_path / "ct_header_window.png"), canvas_only=True)
    ws.actions()["window_lung"]()  # Alt+6
    assert layer.contrast_limits == pytest.approx([-1350.0, 150.0]) and annotation.display_window.currentData() == "lung"
    annotation.display_window.setCurrentIndex(annotation.display_window.findData("bone"))
    annotation.display_window.activated.emit(annotation.display_window.currentIndex())
    assert layer.contrast_limits == pytest.approx([-500.0, 1300.0])
    ws.actions()["window_full range"]()
    low, high = layer.contrast_limits
    assert low <= ws.session.volume.array.min() + 1 and high >= ws.session.volume.array.max() - 1
    # a NIfTI CT has no header window: soft tissue; an MR: its percentiles
    layer = _open(ws, qtbot, TOTALSEG / "example_ct_sm.nii.gz")
    assert ws.session.volume.modality == "CT" and layer.contrast_limits == pytest.approx([-160.0, 240.0])
    assert annotation.display_window.currentData() == "soft tissue"
    assert not annotation.display_window.model().item(annotation.display_window.findData("header")).isEnabled()
    layer = _open(ws, qtbot, HIPPO / "images" / "hippocampus_001.nii.gz")
    array = ws.session.volume.array  # small: every voxel is in the sample
    assert layer.contrast_limits == pytest.approx(list(np.percentile(array, [0.5, 99.5])), rel=1e-4)
    assert annotation.display_window.currentData() == "percentiles"
    # a header window kept from before the image was cropped (470 +- 475 for values of 2..194):
    # the image opens in its percentiles, and the header's window stays a choice
    layer = _open(ws, qtbot, DATA / "udacity_study3_mr_dicom" / "11_HCropVolume")
    assert ws.session.volume.window == (470.0, 950.0)
    array = ws.session.volume.array  # small: every voxel is in the sample
    assert layer.contrast_limits == pytest.approx(list(np.percentile(array, [0.5, 99.5])), rel=1e-4)
    assert annotation.display_window.currentData() == "percentiles"
    assert annotation.display_window.model().item(annotation.display_window.findData("header")).isEnabled()


def test_the_engine_does_not_see_the_window(window, qtbot):
    viewer, ws, annotation, worklist = window
    _open(ws, qtbot, TOTALSEG / "example_ct_sm.nii.gz")
    session = ws.session
    session.method = "graphcut"
    results = []
    for name in ("soft tissue", "lung"):
        ws.window(name)
        session.clear()
        session.set_marks([(15, 50, 40)], [])
        qtbot.waitUntil(lambda: session.idle and session.label.any(), timeout=60000)
        results.append(session.label.copy())
    np.testing.assert_array_equal(results[0], results[1])


def test_the_folder_lists_images_only_and_a_label_map_opens_beside_its_image(window, qtbot, tmp_path):
    viewer, ws, annotation, worklist = window
    folder = tmp_path / "totalseg"
    shutil.copytree(TOTALSEG, folder)
    ws.session.open(folder)
    qtbot.waitUntil(lambda: ws.session.volume is not None and not ws.session.files.busy, timeout=60000)
    rows = {worklist.table.item(r, 0).data(ID_ROLE): worklist.table.item(r, 2).text()
            for r in range(worklist.table.rowCount())}
    assert set(rows) == {"example_ct", "example_ct_dicom", "example_ct_sm", "example_mr_sm"}
    assert "label map" in rows["example_ct_sm"]
    worklist.open_image("example_ct_sm")
    qtbot.waitUntil(lambda: ws.session.image_id == "example_ct_sm" and not ws.session.files.busy, timeout=60000)
    maps = [lay for lay in viewer.layers if lay.metadata.get(L.LABEL_MAP_KEY)]
    assert [lay.name for lay in maps] == ["example_seg (label map)"] and maps[0].visible
    assert annotation.use_map.isVisibleTo(annotation) and annotation.label_map.currentData() == "example_seg"
    annotation.use_map.click()
    np.testing.assert_array_equal(ws.session.label, maps[0].data)
    # every structure of the map shows, and the Label list offers each, to correct it
    values = np.unique(ws.session.label)[1:]
    assert len(values) > 4 and set(values) <= {p.value for p in ws.session.labels}
    assert annotation.preset.count() == len(ws.session.labels)
    colours = viewer.layers[L.SEGMENTATION].colormap.map(values)
    assert (colours[:, 3] == 1).all()
    # named by TotalSegmentator's label table: in the Label list, and under the pointer in both layers
    liver = next(p for p in ws.session.labels if p.name == "liver")
    where = tuple(int(c) for c in np.argwhere(ws.session.label == liver.value)[0])
    for layer in (viewer.layers[L.SEGMENTATION], maps[0]):
        point = layer.data_to_world(where)
        assert "name: liver" in layer.get_status(point, world=True)["coordinates"], layer.name
    qtbot.waitUntil(lambda: annotation.volume_text.text().startswith("Volume of spleen: "), timeout=10000)
    assert "all labels" in annotation.volume_text.text()
    annotation.grab().save(str(tmp_path / "annotation_dock.png"))


def test_the_label_map_offered_is_the_one_shown(window, qtbot, tmp_path):
    """The DICOM CT of three slices has seven label maps beside it: all were hidden while
    the dock offered the first to "Use as label", so the map about to be used was not
    seen. The one offered is shown, the others hidden; choosing another shows it."""
    viewer, ws, annotation, _ = window
    folder = tmp_path / "ct3"
    shutil.copytree(DATA / "dcmqi_ct3slice_seg", folder)
    ws.session.open(folder)
    qtbot.waitUntil(lambda: ws.session.volume is not None and not ws.session.files.busy, timeout=60000)

    def shown() -> list[str]:
        return [lay.metadata[L.LABEL_MAP_KEY] for lay in viewer.layers
                if lay.metadata.get(L.LABEL_MAP_KEY) and lay.visible]

    assert annotation.label_map.count() == len(ws.session.label_maps) > 2
    assert shown() == [annotation.label_map.currentData()]
    qtbot.keyClick(annotation.label_map, Qt.Key_Down)  # as a person picks another
    second = annotation.label_map.itemData(1)
    assert annotation.label_map.currentData() == second and shown() == [second]
    viewer.layers.remove(L.SCRIBBLES)  # a layer of the annotation deleted comes back; the map shown stays
    qtbot.waitUntil(lambda: L.SCRIBBLES in viewer.layers, timeout=5000)
    assert shown() == [second]
    annotation.use_map.click()
    np.testing.assert_array_equal(ws.session.label > 0, ws.session.label_maps[second] > 0)


def test_a_click_redraws_only_what_changed_and_shows_what_a_full_redraw_shows(window, qtbot):
    viewer, ws, annotation, worklist = window
    _open(ws, qtbot, TOTALSEG / "example_ct_sm.nii.gz")
    session = ws.session
    shown = ws.layer(L.SEGMENTATION)._get_pt_not_disp()[0]
    before = viewer.screenshot(canvas_only=True, flash=False)
    box = (slice(shown - 2, shown + 3), slice(30, 60), slice(40, 80))
    session.label[box] = 1
    session.label_changed.emit(box, "graphcut")
    partial = viewer.screenshot(canvas_only=True, flash=False)
    assert np.any(partial != before)
    ws.layer(L.SEGMENTATION).refresh()
    full = viewer.screenshot(canvas_only=True, flash=False)
    np.testing.assert_array_equal(partial, full)
    # a change on another slice draws nothing now, and shows when that slice is shown
    other = (slice(0, 2), slice(0, 10), slice(0, 10))
    session.label[other] = 1
    session.label_changed.emit(other, "graphcut")
    np.testing.assert_array_equal(viewer.screenshot(canvas_only=True, flash=False), full)


#: ITK directions (row-major, LPS rows, index columns) of slices acquired in each plane,
#: as scanners write them, and an axial one stored the other way round (RAS, as NIfTI is)
ACQUISITIONS = {
    "axial": (1, 0, 0, 0, 1, 0, 0, 0, 1),
    "axial, RAS": (-1, 0, 0, 0, -1, 0, 0, 0, 1),
    "coronal": (1, 0, 0, 0, 0, 1, 0, -1, 0),  # rows down (inferior), slices posterior
    "sagittal": (0, 0, 1, 1, 0, 0, 0, -1, 0),  # columns posterior, rows down, slices left
    "sagittal, tilted 10°": tuple(np.ravel(np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], float) @ np.array(
        [[1, 0, 0], [0, np.cos(0.17), -np.sin(0.17)], [0, np.sin(0.17), np.cos(0.17)]]))),
}
#: patient directions (z, y, x in array order: superior, posterior, left) each plane shows
#: down and across the screen, as radiologists read them
READ_AS = {"axial": ((0, 1, 0), (0, 0, 1)), "coronal": ((-1, 0, 0), (0, 0, 1)), "sagittal": ((-1, 0, 0), (0, 1, 0))}


def _acquired_in(direction, shape=(12, 20, 16)):
    from annotator.io.volume import Volume

    array = np.random.default_rng(0).integers(0, 100, shape).astype(np.int16)
    return Volume(array, (0.8, 0.9, 3.0), (10.0, -20.0, 30.0), tuple(float(v) for v in direction), modality="MR")


@pytest.mark.parametrize("acquisition", list(ACQUISITIONS))
def test_every_plane_is_shown_as_radiologists_read_it(acquisition):
    """Whatever plane the slices were acquired in, the image opens in that plane as napari
    shows a layer by default (anterior or superior up, the patient's left or posterior to
    the right), each of the three planes is shown that way, and the layers' world is the
    patient's millimetres, reordered and signed only."""
    from annotator.napari import planes

    volume = _acquired_in(ACQUISITIONS[acquisition])
    assert planes.acquired(volume) == acquisition.split(",")[0]
    assert planes.view(volume, planes.acquired(volume)) == ((0, 1, 2), ("down", "right"))
    turn = planes.frame(volume)
    np.testing.assert_array_equal(np.abs(turn).sum(axis=0), 1)  # a signed permutation
    affine = L.affine(volume)
    # each array axis along one world axis at its spacing (an oblique image on its own grid)
    np.testing.assert_allclose(np.abs(affine[:3, :3]), np.diag(volume.array_spacing), atol=1e-9)
    centre = tuple((n - 1) / 2 for n in volume.shape)
    # the world is the patient position, turned (a tilted image's: at its centre)
    for index in [centre] + ([] if "tilted" in acquisition else [(0, 0, 0), (5, 7, 3)]):
        patient = volume.to_sitk().TransformContinuousIndexToPhysicalPoint(tuple(reversed(index)))[::-1]
        np.testing.assert_allclose(affine @ [*index, 1], [*(turn @ patient), 1], atol=1e-6)
    for plane, (down, across) in READ_AS.items():
        order, (vertical, horizontal) = planes.view(volume, plane)
        screen_down = np.eye(3)[order[1]] * (1 if vertical == "down" else -1)  # in world axes
        screen_right = np.eye(3)[order[2]] * (1 if horizontal == "right" else -1)
        np.testing.assert_array_equal(turn.T @ screen_down, down, err_msg=plane)
        np.testing.assert_array_equal(turn.T @ screen_right, across, err_msg=plane)
        assert np.argmax(np.abs(turn.T @ np.eye(3)[order[0]])) == {"axial": 0, "coronal": 1, "sagittal": 2}[plane]


def test_a_sagittal_image_opens_in_its_plane_and_alt_p_turns_the_view(window, qtbot):
    """A sagittal series (the layers' world in patient coordinates broke napari's slicing:
    'Singular matrix', then a crash) opens in its own plane; Alt+E and the dock's View
    show the others, and the slider still walks through the image."""
    viewer, ws, annotation, _ = window
    volume = _acquired_in(ACQUISITIONS["sagittal"])
    ws.session.show(volume)
    qtbot.waitUntil(lambda: ws.shown_plane == "sagittal", timeout=10000)
    shot = viewer.screenshot(canvas_only=True)
    assert shot[..., :3].std() > 10  # the slice is drawn
    assert annotation.view_plane.currentText() == "sagittal"
    assert viewer.dims.axis_labels[viewer.dims.order[0]] == "sagittal"  # beside the slider, not "-3"
    for slider in viewer.window._qt_viewer.dims.slider_widgets:  # ... and wide enough to read
        label = slider.axis_label
        assert label.width() >= label.fontMetrics().horizontalAdvance(label.text()), label.text()
    layer = ws.image_layer()
    assert layer._slice_input.displayed == [1, 2]  # the image's rows and columns
    ws.actions()["next_plane"]()  # Alt+E
    assert ws.shown_plane == "axial" and annotation.view_plane.currentText() == "axial"
    assert viewer.dims.axis_labels[viewer.dims.order[0]] == "axial"
    assert sorted(layer._slice_input.displayed) == [0, 2]  # slices across, columns down the screen
    assert not np.array_equal(viewer.screenshot(canvas_only=True), shot)
    annotation.view_plane.setCurrentIndex(annotation.view_plane.findData("coronal"))
    annotation.view_plane.activated.emit(annotation.view_plane.currentIndex())
    assert ws.shown_plane == "coronal" and sorted(layer._slice_input.displayed) == [0, 1]
    before = viewer.screenshot(canvas_only=True)
    viewer.dims.set_current_step(viewer.dims.order[0], viewer.dims.current_step[viewer.dims.order[0]] + 2)
    assert not np.array_equal(viewer.screenshot(canvas_only=True), before)  # another slice
    scribbles = viewer.layers[L.SCRIBBLES]  # a stroke painted here lies on the coronal slice shown
    scribbles.brush_size = 5
    scribbles.paint((6, 10, 8), 1, refresh=True)
    painted = np.argwhere(np.asarray(scribbles.data) == 1)
    assert len(painted) > 5 and [len(set(painted[:, a])) == 1 for a in range(3)] == [False, False, True]


def test_alt_o_shows_the_label_as_outlines_and_back(window, qtbot):
    """Alt+O: the label one voxel wide around its edge, the image inside it in view; an
    engine step still redraws it; again: filled."""
    viewer, ws, _annotation, _ = window
    volume = _acquired_in(ACQUISITIONS["axial"], shape=(12, 60, 60))
    label = np.zeros(volume.shape, np.uint8)
    label[:, 10:50, 10:50] = 1
    ws.session.show(volume, label)
    seg = viewer.layers[L.SEGMENTATION]
    said = []
    ws.session.status.connect(said.append)
    filled = viewer.screenshot(canvas_only=True)
    ws.actions()["outline"]()
    assert seg.contour == 1 and said[-1] == "labels as outlines"
    outlined = viewer.screenshot(canvas_only=True)
    coloured = lambda shot: int((np.ptp(shot[..., :3].astype(int), axis=-1) > 60).sum())  # label over a grey image
    assert 0 < coloured(outlined) < coloured(filled) / 3
    ws.session.label[:, 20:30, 20:30] = 2  # a change the engine would make: redrawn as outlines too
    ws.session.label_changed.emit((slice(0, 12), slice(20, 30), slice(20, 30)), "graphcut-clicks")
    assert coloured(viewer.screenshot(canvas_only=True)) > coloured(outlined)
    ws.actions()["outline"]()
    assert seg.contour == 0 and said[-1] == "labels filled"
    assert coloured(viewer.screenshot(canvas_only=True)) > coloured(outlined) * 3


def _install_deepgrow2d(modality: str = "MR") -> None:
    """A small DeepGrow 2D model (untrained weights) among the person's models."""
    import torch

    from annotator.models import ModelCard, build_network, save_checkpoint
    from annotator.models.registry import user_dir

    arch = {"name": "UNet", "spatial_dims": 2, "in_channels": 3, "out_channels": 2,
            "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}
    torch.manual_seed(0)
    card = ModelCard(name="tiny-2d", method="deepgrow2d", architecture=arch, modality=modality,
                     labels={"background": 0, "structure": 1}, roi_size=[1, 48, 48])
    save_checkpoint(build_network(arch), card, user_dir() / "tiny-2d.json")


def test_a_method_with_no_model_for_the_image_is_greyed_with_the_reason(window, qtbot, monkeypatch, tmp_path):
    """The method list offered networks that had no model for the image; choosing one
    only said afterwards that clicks would not be answered. Such a method is greyed, its
    tooltip says why, and a model installed since counts when the list next opens."""
    from annotator.models import registry

    _viewer, ws, annotation, _ = window
    monkeypatch.setattr(registry, "bundled_dir", lambda: tmp_path)  # the package's models (a 2-D one) left out
    ws.session.show(_acquired_in(ACQUISITIONS["axial"], shape=(12, 40, 40)))
    item = lambda name: annotation.method.model().item(annotation.method.findData(name))  # noqa: E731
    assert not item("deepgrow2d").isEnabled()
    assert item("deepgrow2d").toolTip().startswith("no deepgrow2d model installed")
    assert item("auto").isEnabled() and item("graphcut").isEnabled() and not item("graphcut").toolTip()
    _install_deepgrow2d()  # trained or imported while the image is open
    annotation.method.showPopup()
    try:
        assert item("deepgrow2d").isEnabled() and not item("deepgrow2d").toolTip()
    finally:
        annotation.method.hidePopup()


@pytest.mark.parametrize("method", ["deepgrow2d", "graphcut"])
def test_a_click_in_another_plane_shows_the_plane_deepgrow_2d_answers_in(window, qtbot, method):
    """DeepGrow 2D answers on the image's own slices: a click in a coronal view changed an
    axial slice, seen as a line. The view turns to the axial slice through the click;
    a 3-D method answers in the view it was clicked in."""
    from helpers import EngineSteps

    viewer, ws, annotation, _ = window
    _install_deepgrow2d()
    volume = _acquired_in(ACQUISITIONS["axial"], shape=(12, 40, 40))
    ws.session.show(volume)
    annotation.method.setCurrentIndex(annotation.method.findData(method))
    assert ws.session.method == method
    ws.plane("coronal")
    said, steps = [], EngineSteps(ws.session)
    ws.session.status.connect(said.append)
    click = (7, 20, 22)
    viewer.layers[L.FOREGROUND].add(np.array(click, float))
    steps.wait(qtbot, 1)
    if method == "graphcut":
        assert ws.shown_plane == "coronal"
        return
    assert ws.shown_plane == "axial" and annotation.view_plane.currentText() == "axial"
    assert "axial view: DeepGrow 2D answers on the axial slices" in " | ".join(said)
    affine = L.affine(volume)
    shown = np.linalg.solve(affine, [*viewer.dims.point, 1.0])[:3]
    assert round(shown[0]) == click[0]  # the clicked slice is the one shown
    assert set(np.argwhere(np.asarray(viewer.layers[L.SEGMENTATION].data))[:, 0]) <= {click[0]}


def test_a_labelled_image_opens_on_its_structure(window, qtbot):
    """A label (or else a label map beside the image) that lies away from the middle: the
    image opens on the slice where it has the most voxels, not on the middle slice where
    there is nothing to review."""
    viewer, ws, _annotation, _ = window
    volume = _acquired_in(ACQUISITIONS["axial"], shape=(30, 40, 40))
    shown = lambda: np.rint(np.linalg.solve(L.affine(volume), [*viewer.dims.point, 1.0])[:3]).astype(int).tolist()
    ws.session.show(volume)
    assert shown() == [15, 20, 20]  # nothing labelled: the middle
    label = np.zeros(volume.shape, np.uint8)
    label[3:7, 5:12, 28:36] = 2
    label[5, 5:14, 28:36] = 2  # the slice with the most
    ws.session.show(volume, label)
    assert shown()[0] == 5 and label[tuple(shown())] == 2
    ws.session.show(volume, None, {"organs": (np.roll(label, 20, axis=0), {})})
    assert shown()[0] == 25


def test_a_click_on_an_oblique_image_lands_on_the_slice_seen(window, qtbot):
    """The brain MR's T1 is tilted 11 degrees from axial. napari shows a layer's slice
    without its tilt but mapped clicks through it: a click at the top of slice 14 landed
    on slice 11, one at its bottom on slice 17. The image is now shown on its own grid:
    a click anywhere on the slice seen lands on it, and on the voxel under it."""
    viewer, ws, annotation, _ = window
    _open(ws, qtbot, DATA / "udacity_study3_mr_dicom" / "11-T1post-18670")
    volume = ws.session.volume
    tilt = np.degrees(np.arccos(np.min(np.max(np.abs(np.reshape(volume.direction, (3, 3))), axis=0))))
    assert tilt > 10
    image = ws.image_layer()
    fg = viewer.layers[L.FOREGROUND]
    shown_at = lambda layer: np.rint(layer.world_to_data(viewer.dims.point)[0])
    viewer.dims.set_point(0, float((L.affine(volume) @ [14, 0, 0, 1])[0]))
    assert shown_at(image) == 14
    for row, column in [(0, 140), (160, 140), (319, 140), (319, 0), (0, 279)]:
        world = np.array(viewer.dims.point, float)
        world[1:] = (L.affine(volume) @ [14, row, column, 1])[1:3]  # where that voxel is seen on the screen
        np.testing.assert_allclose(fg.world_to_data(world), [14, row, column], atol=1e-6)


@pytest.mark.parametrize("image", ["totalsegmentator_example/example_ct_dicom",
                                   "msd_task04_hippocampus/images/hippocampus_001.nii.gz"])
def test_a_click_is_seen_on_a_ct_as_on_a_small_crop(window, qtbot, image):
    """A click's marker was sized from the image's smallest axis: on the 20-slice CT it
    was one screen pixel wide, unseen. It is now about a fortieth of the image's width,
    and never less than 9 pixels or more than 40 on the screen."""
    viewer, ws, annotation, _ = window
    _open(ws, qtbot, DATA / image)
    volume = ws.session.volume
    fg = viewer.layers[L.FOREGROUND]
    fg.add([volume.shape[0] // 2, volume.shape[1] // 2, volume.shape[2] // 2])
    viewer.reset_view()
    lowest, highest = fg.canvas_size_limits
    pixels = float(np.clip(fg.size[-1] * min(volume.array_spacing[1:]) * viewer.scene.camera.zoom, lowest, highest))
    canvas = viewer.window._qt_viewer.canvas.native.width()
    assert 9 <= pixels <= 40 and pixels <= canvas / 15, (pixels, canvas)
