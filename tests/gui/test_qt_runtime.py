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
