"""Tidying a structure: holes filled on each slice, only the largest part kept; other
labels untouched; the step undoes like an engine step."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.engine.history import Change, LabelHistory
from annotator.engine.tidy import tidy
from annotator.errors import InputError


def _organ() -> np.ndarray:
    label = np.zeros((20, 40, 40), np.uint8)
    label[2:18, 5:30, 5:30] = 1
    label[5:15, 12:18, 12:18] = 0  # a vessel through the organ: open at neither end in-plane
    label[8, 20:23, 20:23] = 0  # a small cavity on one slice
    label[10, 24:26, 24:26] = 2  # another label inside the organ
    label[10, 8, 8] = 0  # ... and a hole around nothing else
    label[3:5, 35:38, 35:38] = 1  # a stray island of the organ
    label[12:14, 34:37, 2:4] = 3  # another structure altogether
    return label


def test_fill_holes_fills_background_enclosed_on_each_slice_only():
    label = _organ()
    result = tidy(label, 1, "fill_holes")
    after = result.label
    assert result.method == "fill holes" and result.previous is label
    assert (after[5:15, 12:18, 12:18] == 1).all() and after[8, 21, 21] == 1 and after[10, 8, 8] == 1
    assert (after[10, 24:26, 24:26] == 2).all() and (after[12:14, 34:37, 2:4] == 3).all()  # others stay
    changed = after != label
    assert changed.sum() == 10 * 6 * 6 + 9 + 1 and (after[changed] == 1).all()
    assert (after[0:2] == 0).all() and (after[18:] == 0).all()  # nothing beyond the organ's slices


def test_keep_largest_drops_the_other_parts_of_that_structure_only():
    label = _organ()
    expected = label.copy()
    expected[3:5, 35:38, 35:38] = 0  # the island goes; the holes, label 2 and label 3 stay
    np.testing.assert_array_equal(tidy(label, 1, "keep_largest").label, expected)
    diagonal = np.zeros((6, 6, 6), np.uint8)
    diagonal[1, 1, 1] = diagonal[2, 2, 2] = 1  # touching at a corner: one part
    assert (tidy(diagonal, 1, "keep_largest").label == diagonal).all()


def test_a_tidy_step_undoes_and_says_what_is_wrong():
    label = _organ()
    original = label.copy()
    history = LabelHistory()
    result = tidy(label, 1, "fill_holes")
    history.push(Change(result.box, result.apply(label), result.patch, {}, result.method))
    assert not np.array_equal(label, original)
    history.undo(label)
    np.testing.assert_array_equal(label, original)
    with pytest.raises(InputError, match="label 4 is empty"):
        tidy(label, 4, "fill_holes")
    with pytest.raises(InputError, match="unknown tidying step 'smooth'"):
        tidy(label, 1, "smooth")
