"""Helpers of the GUI tests."""

from __future__ import annotations

import numpy as np

from paths import HIPPO


def answer_prompt(qtbot, button_text: str, seen: list) -> None:
    """Click ``button_text`` in the next message box shown, as a person would (``seen``
    gets its text)."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QMessageBox

    def answer():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, answer)
            return
        seen.append(box.text())
        for b in box.buttons():
            if b.text().replace("&", "") == button_text:
                b.click()
                return

    QTimer.singleShot(50, answer)


def truth(case: str, volume) -> np.ndarray:
    from annotator.io import read_label

    return read_label(HIPPO / "labels" / f"{case}.nii.gz", volume) > 0


class EngineSteps:
    """Counts finished engine steps of a session, to wait for the next one."""

    def __init__(self, ws):
        self.ws, self.count = ws, 0
        ws.label_changed.connect(self._done)

    def _done(self, _box, method):
        if method not in ("paint", "history", "widened"):
            self.count += 1

    def wait(self, qtbot, steps: int, timeout: int = 60000) -> None:
        qtbot.waitUntil(lambda: self.count >= steps and self.ws.idle, timeout=timeout)
