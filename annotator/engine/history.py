"""Undo/redo of engine steps and paint strokes, kept as the boxes they changed, not as
whole labels.

A step that changed a 100³ box of a 512×512×300 CT keeps 2 MB, not 79 MB; the label
itself lives elsewhere (the viewer's layer) and is changed in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from annotator.engine.region import Box

#: the most memory the kept changes take (the last change is kept whatever its size)
MAX_BYTES = 1 << 30


@dataclass
class Change:
    """One step: the label inside ``box`` before and after it, the marks (points) after
    it, what made it (``method``: an engine step's, "paint", "clear", ...) and the label
    value it drew (None: any or every value)."""

    box: Box
    before: np.ndarray
    after: np.ndarray
    marks: dict = field(default_factory=dict)
    method: str = ""
    value: int | None = None


class LabelHistory:
    """A bounded undo/redo list of :class:`Change`.

    ``push`` records a change already written into the label and drops the redo branch;
    ``undo``/``redo`` write a change's box back into the label and return the marks now
    current. Only the last ``limit`` changes can be undone, and only as many as fit in
    ``max_bytes`` (the last one always can): twenty automatic segmentations of a
    512×512×600 CT would otherwise keep 6 GB.
    """

    def __init__(self, marks: dict | None = None, method: str = "", limit: int = 20,
                 max_bytes: int = MAX_BYTES):
        self._first = Change((), np.zeros(0, np.uint8), np.zeros(0, np.uint8), dict(marks or {}), method)
        self._changes: list[Change] = []
        self._applied = 0
        self.limit = limit
        self.max_bytes = max_bytes

    @property
    def current(self) -> Change:
        """The change that made the label as it is (or the starting state)."""
        return self._changes[self._applied - 1] if self._applied else self._first

    @property
    def marks(self) -> dict:
        return self.current.marks

    @property
    def can_undo(self) -> bool:
        return self._applied > 0

    @property
    def can_redo(self) -> bool:
        return self._applied < len(self._changes)

    def applied(self) -> list[Change]:
        """The changes that made the label as it is, the last one first (those dropped
        from the list are not among them)."""
        return self._changes[self._applied - 1::-1] if self._applied else []

    def push(self, change: Change) -> None:
        del self._changes[self._applied:]
        self._changes.append(change)
        while len(self._changes) > self.limit or (len(self._changes) > 1 and self.nbytes() > self.max_bytes):
            self._first = self._changes.pop(0)  # its marks are where undo now stops
        self._applied = len(self._changes)

    def undo(self, label: np.ndarray) -> dict:
        if self.can_undo:
            change = self._changes[self._applied - 1]
            label[change.box] = change.before
            self._applied -= 1
        return self.marks

    def redo(self, label: np.ndarray) -> dict:
        if self.can_redo:
            change = self._changes[self._applied]
            label[change.box] = change.after
            self._applied += 1
        return self.marks

    def nbytes(self) -> int:
        """Memory the kept changes take (a patch of one value broadcast over its box, as a
        clear keeps, takes none)."""
        held = lambda a: 0 if a.ndim and 0 in a.strides else a.nbytes  # noqa: E731
        return sum(held(c.before) + held(c.after) for c in self._changes)
