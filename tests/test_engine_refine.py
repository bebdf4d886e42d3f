"""Clicks a network did not follow are enforced locally (annotator.engine.refine)."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.engine.refine import honour_clicks


def _scene():
    """A bright block (x < 14) on a dark background; the 'network' puts class 1 only at x < 10."""
    image = np.zeros((12, 30, 40), np.float32)
    image[:, 5:25, :14] = 100.0
    image += np.random.default_rng(0).normal(0, 2, image.shape).astype(np.float32)
    p1 = np.full(image.shape, 0.02, np.float32)
    p1[:, 5:25, :10] = 0.97
    p1[:, 5:25, 10:14] = 0.2  # the network hesitated on the bright voxels it left out
    probs = np.stack([1 - p1, p1])
    return image, probs, (probs.argmax(axis=0)).astype(np.uint8)


def _window(probs):
    return lambda window: probs[(slice(None), *window)]


def test_a_foreground_click_the_network_ignored_takes_its_region():
    image, probs, classes = _scene()
    assert classes[6, 15, 12] == 0
    before = classes.copy()
    out = honour_clicks(classes, [(1, (6, 15, 12))], _window(probs), image, (1.0, 1.0, 1.0))
    assert np.array_equal(classes, before)  # the caller's array is left alone
    assert out[6, 15, 12] == 1
    grown = (out == 1) & (classes == 0)
    assert grown[:, 5:25, 10:14].mean() > 0.5  # the bright voxels it hesitated on
    assert not grown[:, :, 16:].any() and not grown[:, :4].any()  # not the dark background
    assert not (classes == 1)[out == 0].any()  # nothing else removed


def test_a_background_click_removes_only_its_connected_part():
    image, probs, classes = _scene()
    out = honour_clicks(classes, [(0, (6, 15, 3))], _window(probs), image, (1.0, 1.0, 1.0))
    assert out[6, 15, 3] == 0
    assert ((classes == 1) & (out == 0)).any()
    assert not ((classes == 0) & (out == 1)).any()  # a background click never adds foreground


def test_followed_clicks_change_nothing_and_cost_nothing():
    image, probs, classes = _scene()

    def never(window):
        raise AssertionError("probabilities asked for although every click was followed")

    clicks = [(1, (6, 15, 5)), (0, (6, 2, 30))]
    out = honour_clicks(classes, clicks, never, image, (1.0, 1.0, 1.0))
    assert out is classes


@pytest.mark.parametrize("spacing", [(3.0, 0.7, 0.7), (1.0, 1.0, 1.0)])
def test_the_change_stays_within_the_window(spacing):
    from annotator.engine import refine

    image = np.zeros((20, 80, 80), np.float32)  # flat image, the network says background everywhere
    probs = np.stack([np.full(image.shape, 0.6, np.float32), np.full(image.shape, 0.4, np.float32)])
    classes = np.zeros(image.shape, np.uint8)
    out = honour_clicks(classes, [(1, (10, 40, 40))], _window(probs), image, spacing)
    changed = np.argwhere(out != classes)
    assert out[10, 40, 40] == 1
    reach = np.ceil(refine.WINDOW_MM / np.asarray(spacing))
    assert np.all(np.abs(changed - [10, 40, 40]) <= reach)
