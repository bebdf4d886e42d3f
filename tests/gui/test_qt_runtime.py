"""The Qt binding must not corrupt Python's reference counts (PySide6 6.12.0 did, on Python 3.11)."""

import sys
import time


def test_timer_slots_keep_none_alive(qapp):
    from qtpy.QtCore import QTimer

    calls = []
    timer = QTimer()
    timer.timeout.connect(lambda: calls.append(1))
    before = sys.getrefcount(None)
    timer.start(0)
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        qapp.processEvents()
    timer.stop()
    assert len(calls) > 100
    # each slot call of the broken binding dropped one reference to None
    assert sys.getrefcount(None) - before > -len(calls) // 2


_EXIT_WHILE_WORKING = """
import time
import napari
from qtpy.QtWidgets import QApplication
from annotator.annotation import Job
from annotator.napari.workspace import QtRunner, workspace_for

viewer = napari.Viewer(show=False)
workspace_for(viewer)._warm.start()  # torch starts loading in the background ...
end = time.monotonic() + 0.5
while time.monotonic() < end:
    QApplication.processEvents()
QtRunner().start(lambda job: time.sleep(0.5) or 1, print, print, Job("slow"))  # ... and a job runs
print("exiting", flush=True)
"""


def test_quitting_while_background_work_runs_is_clean():
    """Quitting while torch still loads in the background or a worker job runs: Python
    waits for them instead of cutting them off (a crash, or tracebacks as torch or the
    job's signals are torn down under them)."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", _EXIT_WHILE_WORKING], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and "exiting" in proc.stdout, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "deleted" not in proc.stderr, proc.stderr[-2000:]


_CLOSE_WHILE_LOADING = """
import threading
import time
import napari
from qtpy.QtWidgets import QApplication
from annotator.napari.workspace import workspace_for

def pump(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()

early = napari.Viewer(show=False)
workspace_for(early)._warm.start()
early.close()  # before the warm-up was due
pump(0.6)
print("after an early close:", [t.name for t in threading.enumerate() if t.name == "annotator-warm-up"], flush=True)
viewer = napari.Viewer(show=False)
workspace_for(viewer)._warm.start()
pump(0.6)  # torch is loading in the background now
loading = [t for t in threading.enumerate() if t.name == "annotator-warm-up"]
print("loading:", bool(loading) and loading[0].is_alive(), flush=True)
viewer.close()
print("after close, still loading:", loading[0].is_alive(), flush=True)
"""


def test_a_window_closing_while_torch_loads_waits_for_it():
    """An import of torch still running while Qt tears a window down could crash the
    interpreter at exit (about one exit in ten): a window that closes before the warm-up
    is due never starts it, and one that closes during it waits for it to end."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", _CLOSE_WHILE_LOADING], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines == ["after an early close: []", "loading: True", "after close, still loading: False"], proc.stdout


_WINDOW_GONE_WHILE_WORKING = """
import gc
import time
from qtpy.QtWidgets import QApplication
from annotator.annotation import Job
from annotator.annotation.jobs import Cancelled
from annotator.napari.workspace import QtRunner

app = QApplication([])
heard = []

def search(job):  # a long folder search: it reports as it goes
    try:
        for step in range(3000):
            job.report(f"step {step}", step / 3000)
            time.sleep(0.01)
    except Cancelled:
        print(f"cancelled at step {step}", flush=True)
        raise
    print("ran to the end", flush=True)

runner = QtRunner()
runner.start(search, print, lambda error: None, Job("search", on_progress=lambda text, f: heard.append(text)))
time.sleep(0.3)
del runner  # the window that started it closed: its workspace is gone
gc.collect()
before = len(heard)
end = time.monotonic() + 0.5
while time.monotonic() < end:
    app.processEvents()
print(f"heard {len(heard) - before} after the window went", flush=True)
print("exiting", flush=True)
"""


def test_work_outliving_its_window_keeps_reporting_and_stops_at_exit():
    """A folder search still running when its window closes: its progress still has
    somewhere to go (no "Signal source has been deleted"), and quitting cancels it."""
    import re
    import subprocess

    proc = subprocess.run([sys.executable, "-c", _WINDOW_GONE_WHILE_WORKING], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0 and "exiting" in proc.stdout, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "deleted" not in proc.stderr, proc.stderr[-2000:]
    assert int(re.search(r"heard (\d+) after", proc.stdout).group(1)) > 0
    assert "cancelled at step" in proc.stdout and "ran to the end" not in proc.stdout
