"""Measurements of the running app, for `annotator bench app` (each runs in its own process)."""

from __future__ import annotations

import json
import time

import numpy as np


def startup(start: float, viewer) -> None:
    """Print the seconds from process start to the first event-loop turn with the window up."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from annotator.napari.workspace import workspace_for

    window = viewer.window._qt_window

    def shown():
        print(json.dumps({"shown_s": time.perf_counter() - start, "visible": window.isVisible()}), flush=True)
        QTimer.singleShot(10, quit_when_loaded)

    def quit_when_loaded():
        if window.property("annotator_started") and workspace_for(viewer).session.idle:
            QApplication.instance().quit()
        else:
            QTimer.singleShot(10, quit_when_loaded)

    QTimer.singleShot(0, shown)


def stall(viewer, clicks: int, shape=(120, 512, 512)) -> None:
    """Click into the liver of a CT phantom of ``shape`` ``clicks`` times; print the longest
    event-loop stall of each click and the label layer's redraw after it."""
    from qtpy.QtWidgets import QApplication

    from annotator.io.phantom import ct_phantom
    from annotator.napari import layers as L
    from annotator.napari.stall_meter import StallMeter
    from annotator.napari.workspace import workspace_for

    workspace = workspace_for(viewer)
    ws = workspace.session
    volume, organs = ct_phantom(shape=shape, spacing_zyx=(2.0, 0.8, 0.8), seed=0)
    ws.show(volume)
    liver = np.argwhere(organs == 1)
    rng = np.random.default_rng(0)
    meter = StallMeter()
    meter.start()
    engine, stalls, redraws = [], [], []
    done = []
    ws.label_changed.connect(lambda _box, _m: done.append(time.perf_counter()))
    for i in range(clicks):
        for _ in range(20):
            QApplication.processEvents()
        meter.reset()
        start = time.perf_counter()
        viewer.layers[L.FOREGROUND].add(liver[rng.integers(len(liver))].astype(float))
        while len(done) <= i or ws.busy:
            QApplication.processEvents()
            time.sleep(0.001)
        for _ in range(5):  # the redraw and anything queued after the answer
            QApplication.processEvents()
            time.sleep(0.005)
        engine.append(done[i] - start)
        stalls.append(meter.longest)
        redraws.append(workspace.last_redraw_s)
    meter.stop()
    print(json.dumps({"engine_s": engine, "max_stall_s": stalls, "redraw_s": redraws, **accept_stall(ws)}),
          flush=True)


def accept_stall(session, shape=(300, 512, 512)) -> dict:
    """Accept a label of ``shape`` into a datastore in a temporary folder; the longest
    event-loop stall while it is saved, and the seconds until it is on disk."""
    import tempfile
    from pathlib import Path

    import SimpleITK as sitk
    from qtpy.QtWidgets import QApplication

    from annotator.datastore import LocalDatastore
    from annotator.io.volume import Volume
    from annotator.napari.stall_meter import StallMeter

    with tempfile.TemporaryDirectory() as folder:
        volume = Volume(np.zeros(shape, np.int16), (0.8, 0.8, 2.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0),
                        modality="CT", name="big")
        sitk.WriteImage(volume.to_sitk(), str(Path(folder) / "big.nii"))  # uncompressed: quick to set up
        store = LocalDatastore(folder)
        session.set_datastore(store)
        label = np.zeros(shape, np.uint8)
        label[50:250, 100:400, 100:400] = 1
        label[120:180, 200:300, 150:350] = 2
        session.show(volume, label, image_id="big")
        session.painted()
        from annotator.engine.loading import import_network_stack

        import_network_stack()  # the background warm-up is done: its imports are not the accept's
        for _ in range(20):
            QApplication.processEvents()
        meter = StallMeter()
        meter.start()
        meter.reset()
        start = time.perf_counter()
        session.accept()
        while not session.idle:
            QApplication.processEvents()
            time.sleep(0.001)
        saved_s = time.perf_counter() - start
        for _ in range(5):
            QApplication.processEvents()
            time.sleep(0.005)
        meter.stop()
        assert (Path(folder) / "labels" / "final" / "big.nii.gz").exists()
        return {"accept_stall_s": meter.longest, "accept_saved_s": saved_s}
