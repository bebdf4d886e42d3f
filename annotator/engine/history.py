"""Undo/redo of engine steps: each step stores the label and the marks that produced it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Step:
    """A state of the annotation: the label and whatever marks (points) led to it."""

    label: np.ndarray
    marks: dict = field(default_factory=dict)
    method: str = ""


class LabelHistory:
    """A bounded undo/redo stack of :class:`Step`.

    ``push`` records a new state and drops the redo branch; ``undo``/``redo`` move
    through the states and return the one now current.
    """

    def __init__(self, initial: Step, limit: int = 20):
        self._states = [initial]
        self._index = 0
        self.limit = limit

    @property
    def current(self) -> Step:
        return self._states[self._index]

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._states) - 1

    def push(self, step: Step) -> None:
        del self._states[self._index + 1 :]
        self._states.append(step)
        if len(self._states) > self.limit + 1:
            del self._states[0]
        self._index = len(self._states) - 1

    def undo(self) -> Step:
        if self.can_undo:
            self._index -= 1
        return self.current

    def redo(self) -> Step:
        if self.can_redo:
            self._index += 1
        return self.current
