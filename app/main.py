"""`annotator-app [PATH]`: the standalone Annotator window (napari with the Annotator docks).

PATH may be an image file, a DICOM series folder or file, or a folder of images (a datastore);
without one, the last datastore is reopened, else the hippocampus sample. Files and folders
dropped on the window open the same way (:mod:`annotator_app.opening`).
``--screenshot OUT.png`` renders the window with its docks, writes the PNG and exits.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib.resources import files
from pathlib import Path

_START = time.perf_counter()


def build_window(path: str | None = None, sample: str | None = None):
    """Create the viewer with both docks and open ``path`` (or a sample). Returns the viewer."""
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtGui import QIcon
    from qtpy.QtWidgets import QApplication

    from annotator_app.opening import DropOpens, prefer_our_reader

    viewer = napari.Viewer(title="Annotator")
    icon = QIcon(str(files("annotator.resources").joinpath("icon.svg")))
    QApplication.instance().setWindowIcon(icon)
    window = viewer.window._qt_window
    window.setWindowIcon(icon)
    add_docks(viewer)
    DropOpens(viewer, lambda shown, dropped: open_start(shown, dropped, None))
    prefer_our_reader()
    room = QApplication.primaryScreen().availableGeometry()
    window.resize(min(1400, room.width()), min(900, room.height()))
    # the window shows first; the image opens on the first turn of the event loop
    QTimer.singleShot(0, lambda: open_start(viewer, path, sample))
    return viewer


def add_docks(viewer) -> None:
    """The Annotation dock above the Worklist and Training docks (tabs), on the right."""
    from qtpy.QtCore import QTimer

    from annotator.napari.annotation_dock import AnnotationDock
    from annotator.napari.training_dock import TrainingDock
    from annotator.napari.worklist_dock import WorklistDock
    from annotator.napari.workspace import follow, workspace_for

    window = viewer.window._qt_window
    annotation = AnnotationDock(viewer)
    docks = [viewer.window.add_dock_widget(annotation, name="Annotation", area="right"),
             viewer.window.add_dock_widget(WorklistDock(viewer), name="Worklist", area="right")]
    training = viewer.window.add_dock_widget(TrainingDock(viewer), name="Training", area="right")
    window.tabifyDockWidget(docks[1], training)
    QTimer.singleShot(0, docks[1].raise_)  # the worklist is the tab in front
    session = workspace_for(viewer).session
    follow(window, (session.image_opened, lambda _id: _title(viewer, session)),
           (session.datastore_changed, lambda: _title(viewer, session)))
    # dock sizes only stick once the window is laid out
    QTimer.singleShot(0, lambda: _share_height(window, docks, annotation))


def _title(viewer, session) -> None:
    """The window says which image is open, and from where."""
    shown = [name for name in (session.volume is not None and (session.volume.name or session.image_id),
                               session.store is not None and session.store.place) if name]
    viewer.title = " — ".join(["Annotator", *shown])


def _share_height(window, docks, annotation) -> None:
    """The Annotation dock as tall as its contents where the screen has room for them and
    for a worklist of a few rows (:data:`WORKLIST_MIN` pixels), the worklist the rest."""
    from qtpy.QtCore import Qt

    total = sum(dock.height() for dock in docks)
    title = docks[0].height() - annotation.height()
    wanted = annotation.sizeHint().height() + title + 2 * window.fontMetrics().lineSpacing()  # a status that wraps
    first = max(min(wanted, total - WORKLIST_MIN), total // 3)
    window.resizeDocks(docks, [first, total - first], Qt.Vertical)
    window.resizeDocks(docks[:1], [400], Qt.Horizontal)


#: the least height the worklist keeps beside the Annotation dock (a few rows)
WORKLIST_MIN = 260


def open_start(viewer, path: str | None, sample: str | None) -> None:
    """Open what the person asked for; errors become a notification, never a crash."""
    import napari

    from annotator.napari.workspace import workspace_for
    from annotator.samples import sample_file

    session = workspace_for(viewer).session
    last = session.settings.last_datastore  # loaded once, with the session
    session.status.emit("opening ...")
    try:
        if path:
            session.open(path)
        elif sample:
            session.open(sample_file(sample))
        elif last and (last.startswith(("http://", "https://")) or Path(last).is_dir()):
            session.open(last)
        else:
            session.open(sample_file("hippocampus"))
    except Exception as exc:  # the app stays open and says what is wrong
        napari.utils.notifications.show_error(str(exc))
        session.error.emit(str(exc))
    finally:
        viewer.window._qt_window.setProperty("annotator_started", True)


def _wait_until_idle(viewer, timeout: float = 60.0) -> None:
    from qtpy.QtWidgets import QApplication

    from annotator.napari.workspace import workspace_for

    session = workspace_for(viewer).session
    window = viewer.window._qt_window
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents()
        if window.property("annotator_started") and session.idle:
            break
        time.sleep(0.02)
    for _ in range(10):
        QApplication.processEvents()
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--train-child"]:  # the frozen app runs its own training child this way
        from annotator.training.__main__ import main as train_main

        return train_main(argv[1:])
    parser = argparse.ArgumentParser(prog="annotator-app", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="image file, DICOM folder or file, or folder of images")
    parser.add_argument("--sample", help="open a sample (see `annotator samples`)")
    parser.add_argument("--screenshot", metavar="OUT.png", help="render the window to a PNG and exit")
    parser.add_argument("--startup-probe", action="store_true",
                        help="print seconds from start to a visible window, then exit (benchmark)")
    parser.add_argument("--stall-probe", type=int, metavar="CLICKS",
                        help="click CLICKS times into a CT phantom, print event-loop stalls, exit (benchmark)")
    parser.add_argument("--self-test", action="store_true",
                        help="check headless that everything works here (sample, click, scribbles, training, labels)")
    args = parser.parse_args(argv)
    if args.self_test:
        from annotator_app.self_test import run

        return run()

    import napari

    from annotator.napari.workspace import workspace_for
    from annotator_app import probes

    viewer = build_window(args.path, args.sample)
    if args.startup_probe:
        probes.startup(_START, viewer)
        napari.run()
        return 0
    if args.stall_probe:
        _wait_until_idle(viewer)
        probes.stall(viewer, args.stall_probe)
        workspace_for(viewer).session.discard()  # measurement clicks: nothing to keep
        viewer.close()
        return 0
    if args.screenshot:
        _wait_until_idle(viewer)
        viewer.window.screenshot(args.screenshot, canvas_only=False)
        print(f"screenshot written to {args.screenshot}")
        viewer.close()
        return 0
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
