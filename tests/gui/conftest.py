"""GUI fixtures: a real napari viewer (under Xvfb) with the Annotator docks on a small datastore."""

from __future__ import annotations

import shutil

import pytest

from paths import HIPPO

CASES = ["hippocampus_001", "hippocampus_003", "hippocampus_004"]


@pytest.fixture
def store_folder(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    for case in CASES:
        shutil.copy(HIPPO / "images" / f"{case}.nii.gz", folder)
    return folder


@pytest.fixture
def annotator_window(make_napari_viewer, qtbot, store_folder):
    """(viewer, session, annotation dock, worklist dock) with the first image open."""
    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.worklist_dock import WorklistDock
    from annotator.napari.workspace import workspace_for

    viewer = make_napari_viewer()
    annotation, worklist = AnnotationDock(viewer), WorklistDock(viewer)
    viewer.window.add_dock_widget(annotation, name="Annotation", area="right")
    viewer.window.add_dock_widget(worklist, name="Worklist", area="right")
    ws = workspace_for(viewer).session
    annotation.method.setCurrentIndex(annotation.method.findData("graphcut"))  # networks: test_networks.py
    ws.open(store_folder)
    qtbot.waitUntil(lambda: ws.volume is not None and ws.idle, timeout=30000)
    return viewer, ws, annotation, worklist




@pytest.fixture(autouse=True)
def no_prompt_at_teardown(make_napari_viewer):
    """Closing a test's viewer must not stop at the unsaved-work prompt (this fixture is
    torn down before the viewers are closed, as it depends on their factory)."""
    yield
    from annotator.napari.workspace import _WORKSPACES

    for ws in list(_WORKSPACES.values()):
        ws.session.discard()
