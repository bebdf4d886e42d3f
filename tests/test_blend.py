"""The blend of a network's new answer with the label it corrects."""

from __future__ import annotations

import numpy as np

from annotator.engine.blend import blend, click_weight


def test_weight_is_one_at_a_click_and_falls_with_distance_in_mm():
    w = click_weight((11, 11, 11), [(5, 5, 5)], (1.0, 2.0, 1.0), radius_mm=3.0)
    assert w[5, 5, 5] == 1.0
    assert w[5, 6, 5] < w[5, 5, 6] < 1  # one voxel along y is 2 mm, along x 1 mm
    assert np.isclose(w[5, 5, 8], np.exp(-0.5), atol=1e-6)  # one sigma away


def test_far_from_the_clicks_the_earlier_label_stays_even_when_the_network_disagrees():
    shape = (1, 1, 60)
    earlier = np.zeros(shape, np.int64)
    earlier[..., 40:] = 1
    probs = np.zeros((2, *shape), np.float32)
    probs[0] = 0.1
    probs[1] = 0.9  # the network: class 1 everywhere
    out = blend(probs, earlier, [(1, (0, 0, 10))], (1.0, 1.0, 1.0), radius_mm=4.0)
    classes = out.argmax(axis=0)[0, 0]
    assert classes[10] == 1 and classes[12] == 1  # near the click: the network
    assert (classes[25:40] == 0).all()  # far away: the earlier label
    assert (classes[40:] == 1).all()
    assert np.allclose(out.sum(axis=0), 1)


def test_a_click_moves_voxels_only_into_its_own_class():
    """A click on class 2 does not let the network move voxels to class 1 nearby."""
    shape = (1, 1, 20)
    earlier = np.zeros(shape, np.int64)
    probs = np.zeros((3, *shape), np.float32)
    probs[1, ..., :10] = 0.8  # the network also wants class 1 near the click
    probs[2, ..., 10:] = 0.8
    probs[0] = 1 - probs[1] - probs[2]
    out = blend(probs, earlier, [(2, (0, 0, 10))], (1.0, 1.0, 1.0), radius_mm=5.0)
    classes = out.argmax(axis=0)[0, 0]
    assert classes[10] == 2 and not (classes == 1).any()
