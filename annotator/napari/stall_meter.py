"""Measure how long the Qt event loop goes without turning (the UI's worst freeze)."""

from __future__ import annotations

import time

from qtpy.QtCore import QTimer


class StallMeter:
    """A fast timer that records the gaps between its ticks.

    A tick every ``interval_ms``: any gap much longer than that is time the event loop
    spent on something else (work on the Qt thread, a redraw, a held GIL).
    """

    def __init__(self, interval_ms: int = 5):
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self.reset()
        self._timer.start()

    def reset(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()

    def stop(self) -> None:
        self._timer.stop()

    @property
    def longest(self) -> float:
        return max(self.gaps, default=0.0)
