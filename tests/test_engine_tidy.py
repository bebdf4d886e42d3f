"""Tidying a structure: holes filled on each slice, only the largest part kept; other
labels untouched; the step undoes like an engine step."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, binary_erosion

from annotator.engine.history import Change, LabelHistory
from annotator.engine.region import extent
from annotator.engine.tidy import keep_seeded_components, tidy
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


def test_keep_seeded_components_keeps_the_parts_a_seed_touches_and_nothing_else():
    mask = np.zeros((5, 9, 9), bool)
    mask[1:4, 1:3, 1:3] = mask[1:4, 5:8, 5:8] = mask[0, 8, 0] = True
    seeds = np.zeros(mask.shape, bool)
    seeds[2, 6, 6] = seeds[4, 4, 4] = True  # one in the second part, one outside every part
    kept = keep_seeded_components(mask, seeds)
    expected = np.zeros(mask.shape, bool)
    expected[1:4, 5:8, 5:8] = True
    np.testing.assert_array_equal(kept, expected)
    assert not keep_seeded_components(mask, np.zeros(mask.shape, bool)).any()


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
    with pytest.raises(InputError, match="unknown tidying step 'sharpen'"):
        tidy(label, 1, "sharpen")


def _disc(shape, centre, radius, spacing=(1.0, 1.0)) -> np.ndarray:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return ((rows - centre[0]) * spacing[0]) ** 2 + ((cols - centre[1]) * spacing[1]) ** 2 <= radius ** 2


def test_fill_between_slices_grows_one_outline_into_the_next():
    """A structure outlined on every few slices (a disc of 6 mm, then 12 mm, then 6 mm
    again, on pixels 0.5 × 1 mm): the slices between get the shapes between, their area
    growing and shrinking with the slice; the drawn slices, slices beyond them and other
    labels stay as they were."""
    spacing = (3.0, 0.5, 1.0)
    label = np.zeros((14, 80, 50), np.uint8)
    for z, radius in ((2, 6.0), (8, 12.0), (12, 6.0)):
        label[z][_disc(label.shape[1:], (40, 25), radius, spacing[1:])] = 1
    label[5, 38:42, 24:26] = 2  # another structure on a slice being filled: it stays
    result = tidy(label, 1, "fill_between", spacing=spacing)
    after = result.label
    assert result.method == "fill between slices"
    for z in (2, 8, 12):
        np.testing.assert_array_equal(after[z], label[z])
    assert (after[:2] == 0).all() and (after[13:] == 0).all()
    assert (after[5, 38:42, 24:26] == 2).all()
    area = [(after[z] == 1).sum() * 0.5 for z in range(14)]  # mm²
    for z in range(3, 8):  # the radius blends linearly: 6 mm at slice 2 to 12 mm at slice 8
        expected = np.pi * (6 + (z - 2) * 1.0) ** 2
        assert abs(area[z] - expected) < 0.08 * expected, (z, area[z], expected)
    assert area[2] < area[3] < area[5] < area[7] < area[8] > area[10] > area[12]
    assert ((after == 1) & (label != 1)).sum() > 0 and ((after != 1) & (label == 1)).sum() == 0


def test_fill_between_follows_the_slices_viewed_and_says_when_there_is_nothing_to_fill():
    label = np.zeros((20, 30, 30), np.uint8)
    label[4:16, 5, 10:20] = 1  # drawn on coronal slices (array axis 1) 5 and 15
    label[4:16, 15, 10:20] = 1
    after = tidy(label, 1, "fill_between", axis=1).label
    assert (after[4:16, 5:16, 10:20] == 1).all() and (after == 1).sum() == 12 * 11 * 10
    with pytest.raises(InputError, match="no empty slice between two drawn ones"):
        tidy(label, 1, "fill_between", axis=0)  # on axial slices it is drawn on every slice it spans
    holed = np.zeros((10, 10, 10), np.uint8)
    holed[2:8, 2:8, 2:8] = 1
    holed[2:8, 4:6, 4:6] = 0  # a tube along axis 0: a hole on axial slices, open on coronal ones
    assert (tidy(holed, 1, "fill_holes", axis=0).label[2:8, 4:6, 4:6] == 1).all()
    assert (tidy(holed, 1, "fill_holes", axis=1).label[2:8, 4:6, 4:6] == 0).all()


def test_smooth_takes_off_spikes_and_strays_and_fills_notches_of_that_structure_only():
    label = np.zeros((24, 30, 30), np.uint8)
    label[_ellipsoid((1.0, 1.0, 1.0), 8.0, (24, 30, 30))] = 1  # a ball 16 voxels across, x 7 to 22
    label[12, 14, 23:26] = 1  # a spike
    label[12, 14:16, 7] = 0  # a notch
    label[12, 15, 15] = 0  # a pinhole
    label[2, 2, 2] = 1  # a stray voxel
    label[10:12, 26:29, 24:28] = 2  # another structure beside it
    after = tidy(label, 1, "smooth").label
    assert not after[12, 14, 23:26].any() and (after[12, 14:16, 7] == 1).all() and after[12, 15, 15] == 1
    assert after[2, 2, 2] == 0
    assert (after[8:16, 10:20, 10:20] == 1).all()  # the bulk stays
    np.testing.assert_array_equal(after == 2, label == 2)
    # the volume stays: the spike's and the notch's voxels, not the stray's, go elsewhere on the surface
    assert abs(int((after == 1).sum()) - int((label == 1).sum() - 1)) <= 4
    box = np.zeros((20, 30, 30), np.uint8)
    box[5:15, 8:22, 8:22] = 1
    thin = tidy(box, 1, "smooth").label  # a box keeps its volume: faces stay, its edges
    assert (thin == box).all()
    thick = tidy(box, 1, "smooth", spacing=(5.0, 1.0, 1.0)).label  # 5 mm slices: hardly blurred across them
    assert (thick == box).all()


def test_smooth_keeps_the_volume_of_a_small_round_structure():
    """A blurred ball cut at half shrinks by about sigma^2/r: a nodule 6 mm across on 0.7 mm
    pixels kept two thirds of its voxels, one 4 mm across on 0.5 mm voxels a third. Smooth
    cuts at the level that keeps the volume: a rough outline of the nodule (a third of its
    surface voxels flipped) becomes the nodule's volume, and about its shape."""
    rng = np.random.default_rng(1)
    for spacing, radius in (((1.25, 0.7, 0.7), 3.0), ((1.25, 0.7, 0.7), 4.0), ((0.5, 0.5, 0.5), 2.0),
                            ((1.0, 1.0, 1.0), 2.5), ((2.5, 0.8, 0.8), 10.0), ((1.0, 1.0, 1.0), 20.0)):
        shape = tuple(int(2 * radius / s) + 12 for s in spacing)
        ball = _ellipsoid(spacing, radius, shape)
        shell = ball & ~binary_erosion(ball) | binary_dilation(ball) & ~ball
        rough = ball ^ (shell & (rng.random(shape) < 0.3))
        after = tidy(rough.astype(np.uint8), 1, "smooth", spacing=spacing).label == 1
        assert abs(int(after.sum()) - int(rough.sum())) <= max(3, 0.02 * rough.sum()), (spacing, radius)
        assert 2 * (after & ball).sum() / (after.sum() + ball.sum()) >= 0.9, (spacing, radius)
        smooth = tidy(ball.astype(np.uint8), 1, "smooth", spacing=spacing).label == 1
        assert abs(int(smooth.sum()) - int(ball.sum())) <= max(2, 0.01 * ball.sum()), (spacing, radius)


def test_smooth_keeps_a_structure_drawn_on_one_slice_on_it():
    """A lesion outlined on the one slice where it is largest, on voxels finer than the
    blur: blurred across the slices too, it thickened to three of them (five cut at half).
    It stays on its slice, smoothed there, with its area."""
    rng = np.random.default_rng(2)
    for spacing in ((0.5, 0.5, 0.5), (1.0, 0.7, 0.7), (5.0, 1.0, 1.0)):
        disc = _ellipsoid((1.0, spacing[1], spacing[2]), 6.0, (1, 40, 40))[0]
        rim = disc & ~binary_erosion(disc) | binary_dilation(disc) & ~disc
        label = np.zeros((9, 40, 40), np.uint8)
        label[4] = disc ^ (rim & (rng.random(disc.shape) < 0.3))
        after = tidy(label, 1, "smooth", spacing=spacing).label
        assert not np.delete(after, 4, axis=0).any(), spacing
        assert abs(int(after.sum()) - int(label.sum())) <= 2, spacing
        assert (after[4] != label[4]).any() and 2 * (after[4] & disc).sum() / (after[4].sum() + disc.sum()) >= 0.93


def test_smooth_keeps_a_line_one_voxel_wide():
    """A vessel drawn a voxel wide blurs to less than half everywhere: it is cut against
    its own peak, so it stays where it was drawn (a cut at half took all of it away);
    a bend in it and spikes off a bulk beside it are told apart by their peaks."""
    label = np.zeros((16, 24, 40), np.uint8)
    label[8, 6, 3:30] = 1  # along x ...
    label[8, 6:18, 29] = 1  # ... and a bend
    label[4:12, 16:22, 4:14] = 1  # a bulk beside it
    label[8, 14:16, 8] = 1  # a spike off the bulk's side
    label[8, 19, 14:18] = 1  # a longer one: its tip must not stay behind, cut off
    after = tidy(label, 1, "smooth").label
    assert (after[8, 6, 5:28] == 1).all() and (after[8, 8:16, 29] == 1).all()
    added = np.argwhere((after == 1) & (label == 0))  # the line does not widen; its bend rounds
    assert len(added) and np.abs(added - (8, 6, 29)).max() <= 2
    # the spikes' tips go (a box keeps its volume at its edges: the longer spike's base may stay, a bump)
    assert not after[8, 14, 8] and not after[8, 19, 15:18].any()


def _ellipsoid(spacing, radius_mm=8.0, shape=(24, 48, 48)) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    centre = [(n - 1) / 2 for n in shape]
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)) <= radius_mm ** 2


def test_grow_and_shrink_move_the_surface_by_millimetres_and_spare_other_labels():
    """A margin in mm on anisotropic voxels (2 mm slices, 1 mm pixels): a ball of 8 mm
    grown by 3 mm is the ball of 11 mm, shrunk by 3 mm the ball of 5 mm (give or take the
    voxels on the surface: a voxel moves when its centre is within the margin), other
    labels keep their voxels, and grow then shrink gives the ball back."""
    spacing = (2.0, 1.0, 1.0)
    label = _ellipsoid(spacing).astype(np.uint8)
    label[:, :, 33:] = 2  # another structure a voxel beyond the ball's side (x 16 to 31)
    grown = tidy(label, 1, "grow", spacing=spacing, mm=3.0)
    assert grown.method == "grow" and grown.previous is label
    after = grown.label
    assert ((after == 2) == (label == 2)).all()  # the other label stays whole
    wanted = _ellipsoid(spacing, 11.0) & (label != 2)
    assert ((after == 1) ^ wanted).sum() <= 0.04 * wanted.sum()
    row = np.flatnonzero(after[12, 24] == 1)
    assert row[0] == 16 - 3 and row[-1] == 32  # 3 mm out along x, and up to the other label on that side
    column = np.flatnonzero(after[:, 24, 24] == 1)  # 2 mm slices: one slice out (two would be 4 mm)
    assert column[0] == 8 - 1 and column[-1] == 15 + 1
    shrunk = tidy(label, 1, "shrink", spacing=spacing, mm=3.0).label
    assert ((shrunk == 2) == (label == 2)).all() and not ((shrunk == 1) & (label != 1)).any()
    alone = tidy(_ellipsoid(spacing).astype(np.uint8), 1, "shrink", spacing=spacing, mm=3.0).label
    # the ball of 5 mm, and no more than that of 6 (on 2 mm slices the surface moves a whole slice)
    assert (alone[_ellipsoid(spacing, 5.0)] == 1).all() and not (alone[~_ellipsoid(spacing, 6.0)] == 1).any()
    assert np.flatnonzero(alone[12, 24])[[0, -1]].tolist() == [16 + 3, 31 - 3]  # 3 mm in along x
    ball = _ellipsoid(spacing).astype(np.uint8)
    back = tidy(tidy(ball, 1, "grow", spacing=spacing, mm=3.0).label, 1, "shrink", spacing=spacing, mm=3.0).label
    assert ((back == 1) ^ (ball == 1)).sum() <= 0.01 * ball.sum()


def test_shrink_keeps_the_face_the_image_edge_cuts_and_refuses_what_would_move_nothing():
    label = np.zeros((10, 20, 20), np.uint8)
    label[:, 5:15, 5:15] = 1  # a column through every slice: cut by the image's first and last
    shrunk = tidy(label, 1, "shrink", spacing=(1.0, 1.0, 1.0), mm=2.0).label
    assert (shrunk[:, 7:13, 7:13] == 1).all() and (shrunk == 1).sum() == 10 * 6 * 6  # not from the ends
    before = label.copy()
    with pytest.raises(InputError, match="less than this image's voxels"):
        tidy(label, 1, "grow", spacing=(3.0, 3.0, 3.0), mm=2.0)
    with pytest.raises(InputError, match="would leave nothing"):
        tidy(label, 1, "shrink", spacing=(1.0, 1.0, 1.0), mm=5.0)
    with pytest.raises(InputError, match="more than 0 mm"):
        tidy(label, 1, "grow", mm=-1.0)
    boxed = np.full((4, 4, 4), 2, np.uint8)
    boxed[1:3, 1:3, 1:3] = 1  # wrapped in another label: no background to grow into
    with pytest.raises(InputError, match="no background within"):
        tidy(boxed, 1, "grow", mm=1.0)
    with pytest.raises(InputError, match="fills the image"):
        tidy(np.ones((3, 3, 3), np.uint8), 1, "shrink", mm=1.0)
    assert (label == before).all()


def _airways() -> tuple[np.ndarray, np.ndarray]:
    """A CT-like image: soft tissue (40 HU) holding two air-filled sacs (-850 HU) joined by
    a tube one voxel wide, a third sac apart from them, and a sac behind a wall one voxel
    thick; a bright bone (700 HU) beside them."""
    image = np.full((16, 40, 60), 40.0, np.float32)
    image[4:12, 5:20, 5:20] = -850.0  # the first sac
    image[4:12, 5:20, 30:45] = -850.0  # the second ...
    image[8, 12, 20:30] = -900.0  # ... joined to it by a thin tube
    image[4:12, 25:35, 5:20] = -850.0  # a sac apart (tissue between)
    image[4:12, 5:20, 46:58] = -850.0  # a sac behind a wall one voxel thick (column 45)
    image[2:14, 36:39, 30:50] = 700.0  # bone
    image[7, 10, 10] = 40.0  # a speck of tissue inside the first sac
    return image, np.zeros(image.shape, np.uint8)


def test_flood_takes_the_tissue_within_the_range_connected_to_the_structure():
    image, label = _airways()
    label[7, 10, 10] = label[8, 10, 10] = 1  # a click on the speck of tissue and one beside it in the air
    label[10, 30, 10] = 2  # another label in the sac apart
    label[6, 15, 35] = 3  # another label inside the second sac: it stays its own
    result = tidy(label, 1, "flood", image=image, within=(-1024, -400), name="lung")
    after = result.label
    assert result.method == "flood in range" and result.previous is label
    # both sacs and the tube (face to face), less the other label's voxel; the structure's
    # own voxel outside the range (the speck) stays; no tissue joins
    joined = image <= -400
    joined[:, 21:, :] = joined[:, :, 46:] = False
    joined[6, 15, 35] = False
    joined[7, 10, 10] = True
    np.testing.assert_array_equal(after == 1, joined)
    assert after[6, 15, 35] == 3 and after[10, 30, 10] == 2
    assert (after[4:12, 5:20, 46:58] == 0).all()  # behind a wall one voxel thick: not reached
    assert result.box == extent(after == 1)  # its box holds all of the structure, as every step's does
    # the image scaled and shifted, with the range scaled and shifted alike: the same label
    again = tidy(label, 1, "flood", image=image * 10 + 1000, within=(-10240 + 1000, -4000 + 1000)).label
    np.testing.assert_array_equal(again, after)


def test_flood_starts_from_a_voxel_outside_the_range_and_crosses_the_structures_own_voxels():
    image, label = _airways()
    label[7, 10, 10] = 1  # a click on the speck of tissue alone: the air around it floods
    first = tidy(label, 1, "flood", image=image, within=(-1024, -400)).label == 1
    assert first[4:12, 5:20, 5:20].all() and first[4:12, 5:20, 30:45].all() and not first[4:12, 5:20, 46:].any()
    label[8, 10, 45] = 1  # the structure painted across the wall: the sac behind it joins too
    both = tidy(label, 1, "flood", image=image, within=(-1024, -400)).label == 1
    assert both[4:12, 5:20, 46:58].all() and both[8, 10, 45] and not both[7, 10, 45]


def test_clip_keeps_the_structures_voxels_within_the_range_only():
    image, label = _airways()
    label[3:13, 3:22, 3:22] = 1  # painted roughly over the first sac: tissue around it and the speck too
    label[3:13, 3:22, 22] = 2  # another label beside it, in the tube
    result = tidy(label, 1, "clip", image=image, within=(-1000, -500))
    after = result.label
    assert result.method == "clip to range"
    np.testing.assert_array_equal(after == 1, (label == 1) & (image >= -1000) & (image <= -500))
    assert after[7, 10, 10] == 0 and after[8, 12, 21] == 1 and (after[3:13, 3:22, 22] == 2).all()
    assert (after[label != 1] == label[label != 1]).all()


def test_clip_and_flood_say_what_is_wrong_and_change_nothing():
    image, label = _airways()
    label[9, 14, 14] = 1  # in the air, away from the speck of tissue
    cases = [("flood", (-300, 300), "no background within -300 to 300 touches lung (label 1): nothing to flood"),
             ("clip", (-300, 300), "none of lung (label 1) lies within -300 to 300: clipping would leave nothing"),
             ("clip", (-1024, -400), "all of lung (label 1) lies within -1024 to -400: nothing to clip"),
             ("flood", (-400, -1024), "low end (-400) is above its high end (-1024)"),
             ("flood", (float("nan"), 0), "not a range of numbers")]
    for step, within, said in cases:
        with pytest.raises(InputError, match=re.escape(said)):
            tidy(label, 1, step, image=image, within=within, name="lung")
    flooded = tidy(label, 1, "flood", image=image, within=(-1024, -400)).label
    with pytest.raises(InputError, match="no background within -1024 to -400 touches label 1: nothing to flood"):
        tidy(flooded, 1, "flood", image=image, within=(-1024, -400))
    with pytest.raises(InputError, match="label 4 is empty: paint or click inside the structure first"):
        tidy(label, 4, "flood", image=image, within=(-1024, -400))
    with pytest.raises(InputError, match="needs the image and a range"):
        tidy(label, 1, "clip")
    with pytest.raises(InputError, match="different grids"):
        tidy(label, 1, "clip", image=image[:-1], within=(-1024, -400))
