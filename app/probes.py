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
        if window.property("annotator_started") and not workspace_for(viewer).busy:
            QApplication.instance().quit()
        else:
            QTimer.singleShot(10, quit_when_loaded)

    QTimer.singleShot(0, shown)


def stall(viewer, clicks: int) -> None:
    """Click into the phantom's liver ``clicks`` times; print the longest event-loop stall."""
    from qtpy.QtWidgets import QApplication

    from annotator.io.phantom import ct_phantom
    from annotator.napari import layers as L
    from annotator.napari.stall_meter import StallMeter
    from annotator.napari.workspace import workspace_for

    ws = workspace_for(viewer)
    volume, organs = ct_phantom()
    ws.show(volume, "")
    liver = np.argwhere(organs == 1)
    rng = np.random.default_rng(0)
    meter = StallMeter()
    meter.start()
    engine, stalls = [], []
    done = []
    ws.label_changed.connect(lambda _m: done.append(time.perf_counter()))
    for i in range(clicks):
        for _ in range(20):
            QApplication.processEvents()
        meter.reset()
        start = time.perf_counter()
        viewer.layers[L.FOREGROUND].add(liver[rng.integers(len(liver))].astype(float))
        while len(done) <= i or ws.busy:
            QApplication.processEvents()
            time.sleep(0.001)
        engine.append(done[i] - start)
        stalls.append(meter.longest)
    meter.stop()
    print(json.dumps({"engine_s": engine, "max_stall_s": stalls}), flush=True)
