import numpy as np

from annotator.engine.history import Change, LabelHistory
from annotator.engine.region import Result, extent, voxels


def _write(label: np.ndarray, history: LabelHistory, v: int) -> None:
    """A step that sets voxel row ``v`` to ``v``, written into the label and recorded."""
    result = Result(np.full((1, 4, 4), v, np.uint8), (slice(v, v + 1), slice(0, 4), slice(0, 4)),
                    label.shape, "test", 0.0, label)
    before = result.apply(label)
    history.push(Change(result.box, before, result.patch, {"fg": [(v, 0, 0)]}, f"step {v}", v))


def test_undo_redo_write_boxes_back_and_new_branch():
    label = np.zeros((12, 4, 4), np.uint8)
    h = LabelHistory({"fg": []}, limit=3)
    assert not h.can_undo and not h.can_redo
    for v in (1, 2, 3):
        _write(label, h, v)
    assert h.undo(label) == {"fg": [(2, 0, 0)]} and not label[3].any() and label[2].all()
    assert h.undo(label) == {"fg": [(1, 0, 0)]} and not label[2].any()
    assert h.redo(label) == {"fg": [(2, 0, 0)]} and (label[2] == 2).all()
    # what made the label as it is, the last step first (what drew each value: the session asks)
    assert [(c.method, c.value) for c in h.applied()] == [("step 2", 2), ("step 1", 1)]
    _write(label, h, 9)  # a new step drops the redo branch
    assert not h.can_redo and h.marks == {"fg": [(9, 0, 0)]}
    _write(label, h, 10)
    for _ in range(5):
        h.undo(label)
    # bounded: only the last 3 changes can be undone; the label is as it was after step 1
    assert h.marks == {"fg": [(1, 0, 0)]} and not h.can_undo and h.applied() == []
    assert (label[1] == 1).all() and not label[2:].any()
    for _ in range(5):
        h.redo(label)
    assert (label[10] == 10).all() and h.marks == {"fg": [(10, 0, 0)]}


def test_history_keeps_boxes_not_volumes():
    label = np.zeros((200, 200, 200), np.uint8)
    h = LabelHistory()
    for v in range(1, 21):
        _write(label, h, v)
    assert h.nbytes() == 20 * 2 * 16 < label.nbytes / 1000


def test_result_label_is_previous_with_the_patch_whether_or_not_written():
    previous = np.zeros((5, 5, 5), np.uint8)
    previous[0, 0, 0] = 4
    result = Result(np.ones((2, 2, 2), np.uint8), (slice(1, 3),) * 3, previous.shape, "test", 0.0, previous)
    expected = previous.copy()
    expected[1:3, 1:3, 1:3] = 1
    result.apply(previous)
    np.testing.assert_array_equal(result.label, expected)
    np.testing.assert_array_equal(previous, expected)


def test_replacing_clears_the_structure_outside_the_box_only():
    label = np.zeros((10, 10, 10), np.uint8)
    label[0, 0, 0] = 2  # the same structure, far from the new result
    label[9, 9, 9] = 3  # another structure
    result = Result(np.full((2, 2, 2), 2, np.uint8), (slice(4, 6),) * 3, label.shape, "test", 0.0, label)
    grown = result.replacing(label, 2)
    assert grown.box == (slice(0, 6),) * 3
    out = grown.label
    assert out[0, 0, 0] == 0 and out[9, 9, 9] == 3 and (out[4:6, 4:6, 4:6] == 2).all()
    assert result.replacing(label, 5) is result  # nothing of 5 elsewhere: the same step
    # a known bound: searched alone, or, inside the step's own box, not searched at all
    assert result.replacing(label, 2, within=(slice(0, 1),) * 3).box == (slice(0, 6),) * 3
    assert result.replacing(label, 2, within=(slice(4, 6),) * 3) is result


def test_extent():
    mask = np.zeros((6, 7, 8), bool)
    assert extent(mask) is None
    mask[1, 2, 3] = mask[4, 5, 6] = True
    assert extent(mask) == (slice(1, 5), slice(2, 6), slice(3, 7))


def test_voxels_lists_a_mask_as_argwhere_does():
    rng = np.random.default_rng(0)
    for shape, share in (((6, 7, 8), 0.0), ((6, 7, 8), 0.02), ((9, 5, 11), 0.5)):
        mask = rng.random(shape) < share
        np.testing.assert_array_equal(voxels(mask), np.argwhere(mask))
    assert voxels(np.zeros((3, 4, 5), bool)).shape == (0, 3)


def test_minus_covers_box_less_hole():
    from annotator.engine.region import _minus

    rng = np.random.default_rng(0)
    for _ in range(50):
        box = tuple(slice(int(a), int(a + n)) for a, n in zip(rng.integers(0, 5, 3), rng.integers(1, 6, 3)))
        hole = tuple(slice(int(a), int(a + n)) for a, n in zip(rng.integers(0, 8, 3), rng.integers(1, 6, 3)))
        want = np.zeros((12, 12, 12), int)
        want[box] = 1
        want[hole] = 0
        got = np.zeros_like(want)
        for part in _minus(box, hole):
            got[part] += 1
        np.testing.assert_array_equal(got, want)  # every voxel once, none of the hole


def test_history_keeps_no_more_than_its_memory_budget_and_always_the_last_step():
    label = np.zeros((12, 4, 4), np.uint8)
    h = LabelHistory({"fg": []}, max_bytes=3 * 2 * 16)  # three steps of 2 × 16 bytes
    for v in range(1, 6):
        _write(label, h, v)
    assert h.nbytes() == 3 * 2 * 16
    for _ in range(5):
        h.undo(label)
    assert (label[2] == 2).all() and not label[3:].any() and h.marks == {"fg": [(2, 0, 0)]}
    tiny = LabelHistory(max_bytes=1)
    _write(label, tiny, 7)
    assert tiny.can_undo  # the last step, however large
    tiny.undo(label)
    assert not label[7].any()


def test_a_clear_of_a_large_label_does_not_push_the_earlier_steps_out():
    label = np.zeros((12, 4, 4), np.uint8)
    h = LabelHistory({"fg": []}, max_bytes=2 * 2 * 16 + label.nbytes)  # two steps and one whole label
    for v in (1, 2):
        _write(label, h, v)
    before = label.copy()
    label[...] = 0  # what a clear keeps: the label before, and zeros broadcast over it
    h.push(Change((slice(0, 12), slice(0, 4), slice(0, 4)), before, np.broadcast_to(np.uint8(0), label.shape)))
    assert h.nbytes() == 2 * 2 * 16 + before.nbytes
    h.undo(label)
    h.undo(label)
    assert (label[1] == 1).all() and not label[2].any()  # the step before the clear is still there
