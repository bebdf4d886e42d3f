"""Click sessions: the image is prepared once, clicks land where they were made, the crop is pasted back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.engine.session import ClickSession
from annotator.errors import InputError
from annotator.io.volume import Volume
from annotator.models import ModelCard, build_network


class GuidanceEcho(torch.nn.Module):
    """A network whose foreground is its foreground-guidance input: shows where clicks land."""

    def forward(self, x):
        g = x[:, 1:2]
        return torch.cat([torch.zeros_like(g), (g - 0.5) * 20], dim=1)


def _volume(shape=(20, 60, 50), spacing_zyx=(3.0, 0.7, 0.9)) -> Volume:
    rng = np.random.default_rng(0)
    return Volume(rng.normal(100, 20, shape).astype(np.float32), tuple(reversed(spacing_zyx)),
                  (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), modality="MR")


def _card(**kw) -> ModelCard:
    base = dict(name="echo", method="deepgrow3d", architecture={"name": "UNet"}, labels={"structure": 1},
                target_spacing=[1.0, 1.0, 1.0], roi_size=[32, 48, 48])
    base.update(kw)
    return ModelCard(**base)


@pytest.mark.parametrize("spacing", [(3.0, 0.7, 0.9), (1.0, 1.0, 1.0), (0.6, 2.5, 1.3)])
def test_a_click_lands_where_it_was_made(spacing):
    volume = _volume(spacing_zyx=spacing)
    session = ClickSession(volume, GuidanceEcho(), _card())
    for click in [(10, 30, 25), (7, 41, 12), (0, 0, 0), (19, 59, 49)]:
        result = session.click([click])
        assert result.label[click] == 1, click
        if min(click) > 0 and all(c < n - 1 for c, n in zip(click, volume.shape)):
            # away from the border the echoed guidance blob is centred on the click
            centre = np.argwhere(result.label == 1).mean(axis=0)
            assert np.all(np.abs(centre - click) <= 0.5), (click, centre)


def test_preprocessing_runs_once_per_session():
    session = ClickSession(_volume(), GuidanceEcho(), _card())
    for click in [(10, 30, 25), (12, 20, 20), (5, 5, 5)]:
        session.click([click])
    assert session.preprocess_count == 1
    assert session.model_shape == (58, 42, 45)  # (20-1)*3+1, (60-1)*0.7+1, (50-1)*0.9+1, rounded


def test_paste_back_keeps_other_labels_and_outside():
    volume = _volume()
    session = ClickSession(volume, GuidanceEcho(), _card(roi_size=[16, 16, 16]))
    previous = np.zeros(volume.shape, np.uint8)
    previous[0, 0, 0] = 2
    previous[19, 59, 49] = 1  # an old result of the same label, outside the new crop
    result = session.click([(10, 30, 25)], previous=previous)
    assert result.label[0, 0, 0] == 2 and result.label[19, 59, 49] == 1
    outside = np.ones(volume.shape, bool)
    outside[result.box] = False
    np.testing.assert_array_equal(result.label[outside], previous[outside])


def test_real_network_runs_on_the_crop():
    torch.manual_seed(0)
    model = build_network({"name": "UNet", "spatial_dims": 3, "in_channels": 3, "out_channels": 2,
                           "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}).eval()
    session = ClickSession(_volume(), model, _card(roi_size=[24, 24, 24]))
    result = session.click([(10, 30, 25)], [(3, 3, 3)])
    assert result.label.shape == (20, 60, 50)
    assert set(result.timings) == {"prepare_s", "network_s", "paste_s"}


def test_bad_clicks_and_images():
    session = ClickSession(_volume(), GuidanceEcho(), _card())
    with pytest.raises(InputError, match="outside the image"):
        session.click([(25, 0, 0)])
    with pytest.raises(InputError, match="at least one foreground click"):
        session.click([], [(1, 1, 1)])
    flat = Volume(np.zeros((1, 10, 10), np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0),
                  (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), name="flat")
    with pytest.raises(InputError, match="2-D image"):
        ClickSession(flat, GuidanceEcho(), _card())
    with pytest.raises(InputError, match="label to correct has shape"):
        session.click([(10, 30, 25)], previous=np.zeros((20, 60, 49), np.uint8))
    with pytest.raises(InputError, match="holds the value 70000"):
        session.edit({1: [(10, 30, 25)]}, previous=np.full((20, 60, 50), 70000, np.int32))
    with pytest.raises(InputError, match="label value 65536"):
        session.click([(10, 30, 25)], value=65536)
    volume = _volume()
    volume.array[3, 4, 5] = np.inf  # the normalised image would be NaN everywhere: an empty answer
    with pytest.raises(InputError, match=r"NaN or infinity \(at \(3, 4, 5\)"):
        ClickSession(volume, GuidanceEcho(), _card()).click([(10, 30, 25)])


def test_a_structure_numbered_beyond_255_is_drawn_in_two_bytes_a_voxel():
    """A click for structure 300 on a label of one byte a voxel (an atlas's numbering):
    the step's patch and its label take two bytes, every earlier value kept; writing such
    a patch into a label of one byte is refused, not wrapped round to 44."""
    session = ClickSession(_volume(), GuidanceEcho(), _card())
    previous = np.zeros((20, 60, 50), np.uint8)
    previous[0:2, 0:2, 0:2] = 7
    result = session.click([(10, 30, 25)], value=300, previous=previous)
    assert result.patch.dtype == np.uint16 and result.label.dtype == np.uint16
    assert result.label[10, 30, 25] == 300 and result.label[0, 0, 0] == 7
    with pytest.raises(ValueError, match="cannot hold"):
        result.apply(previous)
    assert not (previous == 300 % 256).any()
    wide = previous.astype(np.uint16)
    result.apply(wide)
    np.testing.assert_array_equal(wide, result.label)
    # a DeepEdit model whose sidecar numbers its class as an atlas does answers in that number
    cortex = _card(method="deepedit", labels={"background": 0, "cortex": 1035})
    values = ClickSession(_volume(), GuidanceEcho(), cortex).class_values()
    assert values.dtype == np.uint16 and values.tolist() == [0, 1035]


class GuidanceEcho2D(torch.nn.Module):
    """2-D echo: the foreground guidance of the slice is the foreground."""

    def forward(self, x):
        assert x.ndim == 4, "DeepGrow 2D gets (N, C, H, W)"
        g = x[:, 1:2]
        return torch.cat([torch.zeros_like(g), (g - 0.5) * 20], dim=1)


def test_deepgrow2d_answers_on_the_clicked_slice_only():
    volume = _volume(spacing_zyx=(3.0, 0.7, 0.9))
    card = _card(method="deepgrow2d", architecture={"name": "UNet", "spatial_dims": 2}, roi_size=[1, 48, 48])
    session = ClickSession(volume, GuidanceEcho2D(), card)
    assert session.model_shape[0] == volume.shape[0]  # slices are kept, rows/columns resampled
    result = session.click([(4, 30, 25), (7, 20, 20)], [(7, 5, 5)])
    assert result.label[7, 20, 20] == 1
    assert result.label[4].sum() == 0, "only the slice of the last foreground click changes"
    assert np.unique(np.argwhere(result.label)[:, 0]).tolist() == [7]


class ClassEcho(torch.nn.Module):
    """DeepEdit-style echo: class c wins where guidance channel c is strongest."""

    def forward(self, x):
        return (x[:, 1:] - 0.3) * 20


def test_deepedit_clicks_route_to_their_label_channel():
    volume = _volume(spacing_zyx=(1.0, 1.0, 1.0))
    card = _card(method="deepedit", labels={"anterior": 1, "posterior": 2},
                 architecture={"name": "UNet", "in_channels": 4, "out_channels": 3})
    session = ClickSession(volume, ClassEcho(), card)
    assert card.guidance == ["background", "anterior", "posterior"]
    one = session.click([(10, 30, 25)], value=2, previous=np.zeros(volume.shape, np.uint8))
    assert one.label[10, 30, 25] == 2 and set(np.unique(one.label)) == {0, 2}
    both = session.edit({1: [(5, 10, 10)], 2: [(10, 30, 25)], 0: [(15, 50, 40)]}, np.zeros(volume.shape, np.uint8))
    assert both.label[5, 10, 10] == 1 and both.label[10, 30, 25] == 2 and both.label[15, 50, 40] == 0


def test_prepared_image_is_the_training_input():
    """Sessions and training prepare an image the same way (one function)."""
    from annotator.engine.prepare import prepare_image

    volume = _volume()
    session = ClickSession(volume, GuidanceEcho(), _card())
    expected = prepare_image(volume.array, volume.array_spacing, session.card)
    torch.testing.assert_close(session.image(), expected)
    assert float(expected.min()) >= 0.0 and float(expected.max()) <= 1.0


@pytest.mark.parametrize("shape, out", [((24, 30, 18), (17, 55, 40)), ((1, 20, 20), (1, 37, 9))])
def test_resampling_is_trilinear(shape, out):
    """resample_linear (used to bring class scores to the image grid) matches scipy's
    order-1 interpolation, down- and upsampling, with a single-slice axis too."""
    from scipy import ndimage

    from annotator.engine.session import resample_linear

    margin = ndimage.gaussian_filter(np.random.default_rng(3).standard_normal(shape), 2).astype(np.float32)
    coords = [np.linspace(0.3, n - 1.2, m) if n > 1 else np.zeros(m) for n, m in zip(shape, out)]
    expected = ndimage.map_coordinates(margin, np.meshgrid(*coords, indexing="ij"), order=1, mode="nearest")
    sampled = resample_linear(torch.as_tensor(np.stack([margin, -margin])), coords).numpy()
    np.testing.assert_allclose(sampled[0], expected, atol=1e-5)
    np.testing.assert_allclose(sampled[1], -expected, atol=1e-5)


class Stubborn(torch.nn.Module):
    """A network that answers background everywhere, whatever the clicks."""

    def __init__(self, classes: int = 2):
        super().__init__()
        self.classes = classes

    def forward(self, x):
        scores = torch.zeros((x.shape[0], self.classes, *x.shape[2:]))
        scores[:, 0] = 1.0
        return scores


@pytest.mark.parametrize("method", ["deepgrow3d", "deepedit"])
def test_a_click_the_network_ignores_still_gets_its_label_nearby_only(method):
    from annotator.engine.refine import WINDOW_MM

    volume = _volume(spacing_zyx=(3.0, 0.7, 0.9))
    if method == "deepedit":
        card = _card(method="deepedit", labels={"anterior": 1, "posterior": 2},
                     architecture={"name": "UNet", "in_channels": 4, "out_channels": 3})
        session = ClickSession(volume, Stubborn(3), card)
        result = session.edit({2: [(10, 30, 25)]}, np.zeros(volume.shape, np.uint8))
        value = 2
    else:
        session = ClickSession(volume, Stubborn(), _card())
        result = session.click([(10, 30, 25)], previous=np.zeros(volume.shape, np.uint8))
        value = 1
    assert result.label[10, 30, 25] == value
    changed = np.argwhere(result.label != 0)
    reach = np.ceil(WINDOW_MM / np.array([3.0, 0.7, 0.9]))
    assert np.all(np.abs(changed - [10, 30, 25]) <= reach)


@pytest.mark.parametrize("shape", [(9, 30, 41), (33, 27)])
def test_centre_of_is_the_voxel_farthest_from_the_border(shape):
    """Computed on the mask's bounding box only; the same voxel as over the whole array
    (padded: the image's edge counts as a border), the first of several as far where the
    mask does not reach the image's edge."""
    from scipy import ndimage

    from annotator.engine.guidance import centre_of

    rng = np.random.default_rng(len(shape))
    for _ in range(20):
        mask = np.zeros(shape, bool)
        window = tuple(slice(int(rng.integers(0, n // 3)), int(rng.integers(n // 2, n + 1))) for n in shape)
        mask[window] = ndimage.binary_opening(rng.random(shape) < 0.6)[window]
        if not mask.any():
            continue
        whole = ndimage.distance_transform_edt(np.pad(mask, 1))[tuple(slice(1, -1) for _ in shape)]
        if all(s.start > 0 and s.stop < n for s, n in zip(window, shape)):
            assert centre_of(mask) == np.unravel_index(int(np.argmax(whole)), shape)
        assert whole[centre_of(mask)] == whole.max()


def test_a_structure_cut_by_the_field_of_view_is_clicked_in_its_middle():
    """On a slab of three slices every voxel lies a voxel or two from the slab's faces, the
    image's edge: the click goes to the middle slice, at the middle of the organ's disc
    there, not at the first voxel two voxels inside its edge."""
    from annotator.engine.guidance import centre_of

    z, y, x = np.indices((3, 64, 80))
    disc = (y - 30) ** 2 + (x - 44) ** 2 <= 20**2
    assert centre_of(disc) == (1, 30, 44)
    thick = np.broadcast_to(disc[:1], (40, 64, 80))  # as deep as wide: as before
    assert centre_of(thick) == (19, 30, 44)


def test_argmax_over_any_class_axis():
    from annotator.engine.session import argmax

    scores = torch.randn(2, 3, 4, 5, 6)
    assert torch.equal(argmax(scores, dim=1), scores.argmax(dim=1))
    assert torch.equal(argmax(scores[0]), scores[0].argmax(dim=0))


class Everywhere(torch.nn.Module):
    """A network that answers "label 1 everywhere" whatever it is shown (a click network
    that changed its mind about the whole crop)."""

    def forward(self, x):
        scores = torch.zeros((x.shape[0], 2, *x.shape[2:]))
        scores[:, 1] = 5.0
        return scores


def test_a_correction_changes_the_label_near_its_click_and_keeps_it_far_away():
    """The earlier label is blended with the network's new answer: near the click the
    network decides; far from it, where the network changed its mind, the label stays."""
    from annotator.engine.blend import RADIUS_MM

    volume = _volume(spacing_zyx=(1.0, 1.0, 1.0), shape=(30, 60, 60))
    earlier = np.zeros(volume.shape, np.uint8)
    earlier[10:20, 10:20, 10:20] = 1  # an earlier answer, right as it is
    session = ClickSession(volume, Everywhere(), _card(roi_size=[32, 64, 64]))
    click = (15, 30, 45)
    label = session.click([(15, 15, 15), click], previous=earlier).label
    assert label[click] == 1 and label[15, 30, 40] == 1  # near the new click: the network's answer
    assert (label[10:20, 10:20, 10:20] == 1).all()  # the earlier structure untouched
    far = np.linalg.norm(np.argwhere(label != earlier) - np.array(click), axis=1).min(initial=0)
    changed = np.argwhere((label != earlier))
    fg_clicks = np.array([(15, 15, 15), click])
    distance = np.min(np.linalg.norm(changed[:, None] - fg_clicks[None], axis=2), axis=1)
    assert far == 0 and distance.max() <= 3 * RADIUS_MM, "nothing changes far from every click"
    # with no earlier label of this value (a first click) the network's answer is taken whole
    first = session.click([click], previous=np.zeros(volume.shape, np.uint8)).label
    assert (first == 1).sum() > 0.9 * first.size


def test_deepedit_correction_keeps_other_labels_far_from_the_click():
    volume = _volume(spacing_zyx=(1.0, 1.0, 1.0), shape=(30, 60, 60))
    earlier = np.zeros(volume.shape, np.uint8)
    earlier[5:25, 5:30, 5:30] = 2
    card = _card(method="deepedit", labels={"anterior": 1, "posterior": 2}, roi_size=[32, 64, 64],
                 architecture={"name": "UNet", "in_channels": 4, "out_channels": 3})
    session = ClickSession(volume, Stubborn(3), card)  # says background everywhere
    label = session.edit({0: [(15, 20, 20)]}, earlier).label
    assert label[15, 20, 20] == 0  # the background click is followed there
    assert (label[5:25, 5:30, 5:30] == 2).mean() > 0.5, "the rest of label 2 is kept"
    assert (label[earlier == 0] == 0).all()


class PreviousEcho(torch.nn.Module):
    """A network whose foreground is its earlier-label input."""

    def forward(self, x):
        p = x[:, -1:]
        return torch.cat([torch.zeros_like(p), (p - 0.5) * 20], dim=1)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 0.7, 0.9)])
def test_a_network_that_sees_the_earlier_label_gets_it_on_its_grid(spacing):
    volume = _volume(spacing_zyx=spacing)
    earlier = np.zeros(volume.shape, np.uint8)
    earlier[6:14, 20:40, 15:35] = 3  # label value 3 is the one clicked
    earlier[0:3, 0:5, 0:5] = 1  # another label: not shown to a DeepGrow network clicking 3
    card = _card(previous_label=True, architecture={"name": "UNet", "in_channels": 4, "out_channels": 2})
    assert card.input_channels == 4 and card.previous_channels == 1
    session = ClickSession(volume, PreviousEcho(), card)
    crop, x = session.click_input([(10, 30, 25)], value=3, previous=earlier)
    assert x.shape[1] == 4
    assert x[0, 3].max() == 1 and x[0, 3].sum() > 0
    label = session.click([(10, 30, 25)], previous=np.where(earlier == 3, 0, earlier), value=3).label
    assert (label == 3).sum() < 0.2 * (earlier == 3).sum()  # nothing earlier of value 3: only the enforced click
    # the echo of the earlier label comes back on the image grid where it was
    session = ClickSession(volume, PreviousEcho(), card)
    label = session.click([(10, 30, 25)], previous=earlier, value=3).label
    inside = (label == 3)[earlier == 3].mean()
    assert inside > 0.9 and (label == 3)[earlier != 3].mean() < 0.02


class AwayFromBackground(torch.nn.Module):
    """Structure everywhere but where the background guidance is."""

    def forward(self, x):
        return torch.cat([torch.zeros_like(x[:, :1]), 5 - 20 * x[:, 2:3]], dim=1)


def test_background_clicks_alone_take_away_from_the_label_they_touch():
    volume = _volume(spacing_zyx=(1.0, 1.0, 1.0), shape=(30, 60, 60))
    earlier = np.zeros(volume.shape, np.uint8)
    earlier[10:20, 10:30, 10:30] = 1
    session = ClickSession(volume, AwayFromBackground(), _card(roi_size=[32, 64, 64]))
    click = (15, 20, 28)
    label = session.click([], [click], previous=earlier).label
    assert label[click] == 0 and label[15, 12, 12] == 1
    assert not ((label == 1) & (earlier != 1)).any()  # nothing added
    # away from the structure: nothing of it to take away
    np.testing.assert_array_equal(session.click([], [(25, 50, 50)], previous=earlier).label, earlier)
    with pytest.raises(InputError, match="only take away from a label that has voxels"):
        session.click([], [click], previous=np.zeros(volume.shape, np.uint8))


class Bright(torch.nn.Module):
    """A network that answers "the structure" wherever the image is bright, clicked or not
    (a click network that also finds a look-alike elsewhere in its crop)."""

    def forward(self, x):
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, :1] * 10], dim=1)


@pytest.mark.parametrize("method", ["deepgrow3d", "deepgrow2d"])
def test_a_first_click_gets_the_structure_it_touches_not_its_look_alikes(method):
    """The first answer keeps what is connected to the click: a second bright blob in the
    crop is another structure, left out; a later click on it adds it."""
    image = np.full((20, 60, 60), -1.0, np.float32)
    image[5:15, 10:25, 10:25] = 1.0  # the clicked structure
    image[5:15, 35:50, 35:50] = 1.0  # its look-alike, apart from it
    volume = Volume(image, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), modality="MR")
    card = _card(method=method, roi_size=[1 if method == "deepgrow2d" else 32, 64, 64],
                 intensity={"kind": "window", "low": -1.0, "high": 1.0})
    label = ClickSession(volume, Bright(), card).click([(10, 17, 17)]).label
    plane = slice(10, 11) if method == "deepgrow2d" else slice(5, 15)
    assert (label[plane, 10:25, 10:25] == 1).all() and not label[:, 30:, 30:].any()
    both = ClickSession(volume, Bright(), card).click([(10, 42, 42)], previous=label).label
    assert (both[plane, 35:50, 35:50] == 1).all() and (both[plane, 10:25, 10:25] == 1).all()


class BrightWithGridHoles(Bright):
    """:class:`Bright`, but blind at every fifth voxel of its input grid along each axis: an
    answer tied to where the crop lies rather than to the image."""

    def forward(self, x):
        scores = super().forward(x)
        grid = torch.zeros(x.shape[2:], dtype=torch.bool)
        grid[tuple(slice(0, None, 5) for _ in x.shape[2:])] = True
        scores[:, 1][:, grid] = -10.0
        return scores


def _first_answer_in_a_box(method: str, network: torch.nn.Module, click: tuple,
                           first_answer: dict | None = None) -> tuple[np.ndarray, tuple]:
    """The first answer of ``network`` to one click in a bright box (one slice of it for
    DeepGrow 2D; the sidecar's ``first_answer`` as given), and the box's inner part, which
    the answer should fill."""
    image = np.full((20, 40, 40), -1.0, np.float32)
    image[4:16, 8:32, 8:32] = 1.0
    volume = Volume(image, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), modality="MR")
    card = _card(method=method, roi_size=[1 if method == "deepgrow2d" else 32, 64, 64],
                 architecture={"name": "UNet", "spatial_dims": 2 if method == "deepgrow2d" else 3},
                 intensity={"kind": "window", "low": -1.0, "high": 1.0}, first_answer=first_answer or {})
    inside = (slice(10, 11) if method == "deepgrow2d" else slice(5, 15), slice(9, 31), slice(9, 31))
    return ClickSession(volume, network, card).click([click]).label, inside


@pytest.mark.parametrize("method", ["deepgrow3d", "deepgrow2d"])
def test_a_first_answer_is_the_mean_of_shifted_inputs(method, monkeypatch):
    """A structure's first answer averages the network over its input and the input shifted
    along two diagonals, either way: what the network says only at some places of its grid
    is outvoted; one pass keeps it."""
    import annotator.engine.session as session_module

    label, inside = _first_answer_in_a_box(method, BrightWithGridHoles(), (10, 20, 20))
    assert (label[inside] == 1).all()
    monkeypatch.setattr(session_module, "FIRST_SHIFT", 0)
    one_pass, _ = _first_answer_in_a_box(method, BrightWithGridHoles(), (10, 20, 20))
    assert (one_pass[inside] == 0).sum() > 10


class BrightWithStripes(Bright):
    """:class:`Bright`, but unsure (foreground probability about 0.38) on stripes of its
    input grid two voxels wide, where y - x is 0 or 1 modulo 8: along the diagonal (1, 1, 1)
    the stripes stay where they are, along (1, -1, 1) they move."""

    def forward(self, x):
        scores = super().forward(x)
        y, x_ = torch.meshgrid(*(torch.arange(n) for n in x.shape[-2:]), indexing="ij")
        stripes = ((y - x_) % 8 < 2).expand(x.shape[2:])
        scores[:, 1][:, stripes] = -0.5
        return scores


@pytest.mark.parametrize("method", ["deepgrow3d", "deepgrow2d"])
def test_a_first_answer_is_shifted_along_two_diagonals(method):
    """Passes shifted along one diagonal all see a stripe along it; the passes along the
    other diagonal outvote it (the click is off the stripes: a click the network does not
    follow is enforced by a GraphCut, which would fill them)."""
    label, inside = _first_answer_in_a_box(method, BrightWithStripes(), (10, 20, 23))
    assert (label[inside] == 1).all()


@pytest.mark.parametrize("method", ["deepgrow3d", "deepgrow2d"])
def test_a_first_answer_is_cut_at_the_models_threshold(method, monkeypatch):
    """A model whose sidecar says its first answers are cut at a log-odds of -0.75 takes the
    stripes its network is unsure of (log-odds -0.5); at the usual cut (0) they stay out."""
    import annotator.engine.session as session_module

    monkeypatch.setattr(session_module, "FIRST_SHIFT", 0)  # one pass: the stripes are not outvoted
    label, inside = _first_answer_in_a_box(method, BrightWithStripes(), (10, 20, 23))
    assert (label[inside] == 0).sum() > 10
    label, inside = _first_answer_in_a_box(method, BrightWithStripes(), (10, 20, 23), {"threshold": -0.75})
    assert (label[inside] == 1).all()
