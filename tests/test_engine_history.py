import numpy as np

from annotator.engine.history import LabelHistory, Step


def _step(v):
    return Step(np.full((2, 2, 2), v, np.uint8), {"fg": [(v, 0, 0)]})


def test_undo_redo_and_new_branch():
    h = LabelHistory(_step(0), limit=3)
    assert not h.can_undo and not h.can_redo
    for v in (1, 2, 3):
        h.push(_step(v))
    assert h.undo().label[0, 0, 0] == 2
    assert h.undo().label[0, 0, 0] == 1
    assert h.redo().label[0, 0, 0] == 2
    h.push(_step(9))  # a new step drops the redo branch
    assert not h.can_redo and h.current.marks == {"fg": [(9, 0, 0)]}
    h.push(_step(10))
    for _ in range(5):
        h.undo()
    assert h.current.label[0, 0, 0] == 1  # bounded: the oldest states were dropped
