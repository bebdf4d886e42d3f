"""A per-image inference session for click networks (DeepGrow 2D/3D, DeepEdit).

The image is brought to the model's grid once (:mod:`annotator.engine.prepare`) and
kept. Each click then only builds guidance maps in a crop around the clicks — DeepGrow
2D: the clicked slice; a network with a fixed ``input_size``: the whole resized image —
runs the network on that crop, and resamples the crop's class
scores back onto the image's own grid, where the clicked label is pasted. A correction
is blended with the label it corrects, so that far from the clicks the label stays
(:mod:`annotator.engine.blend`); clicks the network's answer ignores are enforced
(:mod:`annotator.engine.refine`).
"""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np
import torch
import torch.nn.functional as F

from annotator.engine.axes import Turned, network_view, turn_sizes
from annotator.engine.blend import blend, shifted, zone
from annotator.engine.device import use_half
from annotator.engine.guidance import click_channels, guidance
from annotator.engine.prepare import model_shape, prepare_image
from annotator.engine.refine import honour_clicks
from annotator.engine.region import Box, Result, check_clicks, check_finite, check_step, paste
from annotator.engine.tidy import keep_seeded_components
from annotator.errors import InputError
from annotator.io.volume import Volume, label_dtype
from annotator.models.card import ModelCard

#: The network's input size must be a multiple of this (4 stride-2 levels).
MULTIPLE = 16
#: a structure's first answer is the mean of the network's answers to its input, and to the
#: input shifted by this many voxels along each of :data:`FIRST_DIRECTIONS`, either way
FIRST_SHIFT = 2
#: the two diagonals (z, y, x) of the grid a first answer's passes are shifted along (a
#: 2-D network: the last two components, the slice's two diagonals)
FIRST_DIRECTIONS = ((1, 1, 1), (1, -1, 1))


def forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class scores of (N, C, *spatial) ``x`` at its own size.

    The input is zero-padded on both sides to multiples of :data:`MULTIPLE`, or of more
    where the network needs it (its ``input_multiple``: DynUNet's strides), centred as
    MONAI's ``SpatialPad`` does in training, and the scores cropped back.
    """
    size = x.shape[2:]
    multiple = [max(MULTIPLE, m) for m in getattr(model, "input_multiple", (MULTIPLE,) * len(size))]
    extra = [int(np.ceil(s / m) * m) - s for s, m in zip(size, multiple)]
    before = [e // 2 for e in extra]
    padded = F.pad(x, [p for e, b in zip(reversed(extra), reversed(before)) for p in (b, e - b)]) if any(extra) else x
    with torch.autocast("cuda", dtype=torch.float16, enabled=use_half(x.device) and not torch.is_grad_enabled()):
        logits = model(padded)
    return logits[(slice(None), slice(None), *(slice(b, b + s) for b, s in zip(before, size)))]


def _lerp_axis(maps: torch.Tensor, coords: np.ndarray, dim: int) -> torch.Tensor:
    """``maps`` linearly interpolated at ``coords`` (voxel units, clamped) along ``dim``:
    whole rows are gathered, two per output row, and blended."""
    n = maps.shape[dim]
    c = torch.as_tensor(np.clip(coords, 0, n - 1), dtype=torch.float32, device=maps.device)
    lo = c.floor().long().clamp(max=max(n - 2, 0))
    shape = [1] * maps.dim()
    shape[dim] = -1
    return torch.lerp(maps.index_select(dim, lo), maps.index_select(dim, (lo + 1).clamp(max=n - 1)),
                      (c - lo).view(shape))


def _linear_weights(coords: np.ndarray, n: int, device) -> torch.Tensor:
    """(len(coords), n) matrix of linear interpolation at ``coords`` (voxel units, clamped)."""
    c = torch.as_tensor(np.clip(coords, 0, n - 1), dtype=torch.float32, device=device)
    lo = c.floor().long().clamp(max=max(n - 2, 0))
    frac = c - lo
    rows = torch.arange(len(c), device=device)
    weights = torch.zeros((len(c), n), device=device)
    weights[rows, lo] = 1 - frac
    if n > 1:
        weights[rows, lo + 1] += frac
    return weights


def resample_linear(maps: torch.Tensor, coords: list[np.ndarray]) -> torch.Tensor:
    """(C, a, b, c) maps sampled (trilinear) at the grid ``coords[0] × coords[1] × coords[2]``.

    The grids are axis-aligned, so the interpolation separates by axis: along z and y
    whole rows are gathered and blended; along x, where gathering would stride through
    memory, a small matrix product does it. Several times faster than ``grid_sample`` on
    CPUs, same values.
    """
    out = _lerp_axis(_lerp_axis(maps, coords[0], 1), coords[1], 2)
    return torch.einsum("xc,kzyc->kzyx", _linear_weights(coords[2], maps.shape[3], maps.device), out)


def click_crop(shape, card: ModelCard, points: np.ndarray) -> tuple[slice, ...]:
    """The crop of a model grid of ``shape`` (z, y, x) that a network answers clicks at
    ``points`` (model grid, one per row) on: the network's input size (the whole grid for
    a network of fixed input size), centred on the points' box, inside the grid; one
    slice for DeepGrow 2D."""
    shape = np.asarray(shape)
    size = shape.copy() if card.input_size else np.minimum(np.asarray(card.roi_size), shape)
    if card.spatial_dims == 2:
        size[0] = 1
    points = np.asarray(points, float).reshape(-1, len(shape))
    centre = np.round((points.min(axis=0) + points.max(axis=0)) / 2).astype(int)
    start = np.clip(centre - size // 2, 0, shape - size)
    return tuple(slice(int(a), int(a + s)) for a, s in zip(start, size))


def argmax(scores: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Index of the largest score along ``dim`` (the classes) per voxel; elementwise, as
    ``Tensor.argmax`` over the class axis is about ten times slower on CPUs for large maps."""
    scores = scores.movedim(dim, 0)
    best, index = scores[0], torch.zeros(scores.shape[1:], dtype=torch.long, device=scores.device)
    for c in range(1, scores.shape[0]):
        index = torch.where(scores[c] > best, c, index)
        best = torch.maximum(best, scores[c])
    return index


class ClickSession:
    """Clicks on one image answered by one network; the preprocessed image is cached."""

    def __init__(self, volume: Volume, model: torch.nn.Module, card: ModelCard,
                 device: torch.device | str = "cpu"):
        if min(volume.shape) < 2 and card.spatial_dims == 3:
            raise InputError(f"{volume.name}: a 2-D image; {card.method} needs a 3-D volume")
        view = network_view(card.axes, volume.direction, card.spatial_dims, card.orientation)
        if view is not None:  # a network from MONAI, or trained on images stored otherwise: turned to its layout
            model = Turned(model, *view)
            if card.axes == "array":  # its crop size and spacing are its training images' axes'
                card = dataclasses.replace(card, roi_size=turn_sizes(card.roi_size, view[0]),
                                           target_spacing=turn_sizes(card.target_spacing, view[0]))
        self.volume, self.model, self.card = volume, model, card
        self.device = torch.device(device)
        self.preprocess_count = 0
        self._image: torch.Tensor | None = None
        self._probability: tuple[tuple, np.ndarray] | None = None  # (label values, P on the image grid)
        self._automatic: torch.Tensor | None = None  # the automatic answer's class scores (half precision)

    # ---- grids -------------------------------------------------------------------------

    @property
    def model_shape(self) -> tuple[int, int, int]:
        return model_shape(self.volume.shape, self.volume.array_spacing, self.card, self.volume.direction)

    def _scale(self) -> np.ndarray:
        return (np.asarray(self.model_shape) - 1) / np.maximum(np.asarray(self.volume.shape) - 1, 1)

    @property
    def model_spacing(self) -> np.ndarray:
        """Voxel spacing (mm, z-y-x) of the model grid."""
        shape, grid = np.asarray(self.volume.shape, float), np.asarray(self.model_shape, float)
        return np.asarray(self.volume.array_spacing, float) * np.maximum(shape - 1, 1) / np.maximum(grid - 1, 1)

    def to_model(self, point_zyx) -> np.ndarray:
        return np.asarray(point_zyx, float) * self._scale()

    def to_image(self, point_zyx) -> np.ndarray:
        return np.asarray(point_zyx, float) / self._scale()

    @property
    def prepared(self) -> bool:
        return self._image is not None

    def image(self) -> torch.Tensor:
        """The image on the model grid, normalised; computed on first use only."""
        if self._image is None:
            check_finite(self.volume.array, "the image")
            self._image = prepare_image(self.volume.array, self.volume.array_spacing, self.card, self.device,
                                        self.volume.direction)
            self.preprocess_count += 1
        return self._image

    # ---- clicks ------------------------------------------------------------------------

    def _network_input(self, clicks: dict[int, list], anchor: list, previous: np.ndarray | None = None,
                       value: int = 1) -> tuple[tuple[slice, ...], torch.Tensor]:
        """A crop of the model grid around the ``anchor`` clicks and the network's input there
        (1, input channels, *crop); ``clicks`` maps guidance channels to points in image
        coordinates; ``previous``: the label being corrected, for a network that sees it
        (DeepGrow: its label ``value``)."""
        crop = click_crop(self.model_shape, self.card, self.to_model(np.asarray(anchor, float)))
        offset = np.array([s.start for s in crop], float)
        in_crop = {c: [self.to_model(p) - offset for p in points] for c, points in clicks.items()}
        shape = tuple(s.stop - s.start for s in crop)
        x = torch.zeros((1, self.card.input_channels, *shape), device=self.device)
        x[0, 0] = self.image()[crop]
        channels = len(self.card.guidance)
        guidance(shape, in_crop, channels, self.device, out=x[0, 1:1 + channels], sigma=self.card.guidance_sigma)
        if self.card.previous_label and previous is not None:
            x[0, 1 + channels:] = self._previous_on_crop(previous, crop, value)
        return crop, x

    def _previous_on_crop(self, previous: np.ndarray, crop: tuple[slice, ...], value: int) -> torch.Tensor:
        """The earlier label on a crop of the model grid (nearest voxel): one channel per
        foreground class, 1 where it has that class."""
        index = [np.clip(np.round(np.arange(c.start, c.stop) / k), 0, n - 1).astype(np.intp)
                 for c, k, n in zip(crop, self._scale(), self.volume.shape)]
        sub = previous[np.ix_(*index)]
        values = self.class_values()[1:] if self.card.method == "deepedit" else [value]
        return torch.as_tensor(np.stack([sub == v for v in values]), dtype=torch.float32, device=self.device)

    def _scores(self, x: torch.Tensor, shift: int = 0) -> torch.Tensor:
        """Class scores (C, *crop) of the network input ``x``: its logits, or with
        ``shift``, the log of the mean probabilities of ``x`` and of ``x`` shifted by that
        many voxels along each of :data:`FIRST_DIRECTIONS`, either way (the answers shifted
        back; a shift wraps round the crop's border)."""
        x = x[:, :, 0] if self.card.spatial_dims == 2 else x
        with torch.inference_mode():
            if shift:
                axes = tuple(range(2, x.dim()))
                offsets = [(0,) * len(axes)] + [tuple(sign * shift * d for d in direction[-len(axes):])
                                                for direction in FIRST_DIRECTIONS for sign in (1, -1)]
                total = sum(torch.roll(torch.softmax(forward(self.model, torch.roll(x, o, axes)).float(), 1),
                                       tuple(-v for v in o), axes) for o in offsets)
                logits = torch.log(total / len(offsets) + 1e-6)
            else:
                logits = forward(self.model, x)
        if self.card.spatial_dims == 2:
            logits = logits[:, :, None]
        return logits[0].float()

    def click_input(self, fg: list, bg: list = (), value: int = 1,
                    previous: np.ndarray | None = None) -> tuple[tuple[slice, ...], torch.Tensor]:
        """The crop and the network input a click with these marks on label ``value`` runs on."""
        fg, bg = self._on_slice(fg, bg)
        fg_channel, bg_channel = click_channels(self.card, value)
        return self._network_input({fg_channel: fg, bg_channel: bg}, fg or bg, previous, value)

    def _on_slice(self, fg: list, bg: list) -> tuple[list, list]:
        """DeepGrow 2D answers on the slice of the last foreground click (of the last click
        when there is none), with the clicks there."""
        fg, bg = [tuple(p) for p in fg], [tuple(p) for p in bg]
        if self.card.spatial_dims == 2:
            z = (fg or bg)[-1][0]
            fg, bg = [p for p in fg if p[0] == z], [p for p in bg if p[0] == z]
        return fg, bg

    def click(self, fg: list, bg: list = (), previous: np.ndarray | None = None, value: int = 1) -> Result:
        """Label ``value`` after these clicks (array indices ``(z, y, x)`` of the image).
        Background clicks alone correct a label that has voxels: they only take away."""
        start = time.perf_counter()
        check_step(self.volume.shape, previous, value)
        correcting = not fg and previous is not None and bool((previous == value).any())
        check_clicks(self.volume.shape, fg, bg, correcting=correcting)
        fg, bg = self._on_slice(fg, bg)
        self.image()
        t_pre = time.perf_counter()
        crop, x = self.click_input(fg, bg, value, previous)
        box = self._image_box(crop)
        existing = previous is not None and bool((previous[box] == value).any())  # then a correction
        first = bool(fg) and not existing
        scores = self._scores(x, FIRST_SHIFT if first else 0)
        fg_class = self.card.class_of(value)
        t_net = time.perf_counter()
        # the clicked class wins where its score beats every other class (a first answer: by
        # the model's threshold): one map to resample
        others = functools.reduce(torch.maximum, [c for i, c in enumerate(scores) if i != fg_class])
        margin = scores[fg_class] - others - (self.card.first_threshold if first else 0.0)
        marks = [(1, p) for p in fg] + [(0, p) for p in bg]
        in_box = self._in_box(marks, box)

        def probabilities(window: Box) -> np.ndarray:
            inner = tuple(slice(b.start + w.start, b.start + w.stop) for b, w in zip(box, window))
            p = torch.sigmoid(resample_linear(margin[None], self._coords(inner, crop))[0]).cpu().numpy()
            return np.stack([1 - p, p])

        if existing:  # a correction: blended with the label
            region = previous[box] == value
            near = zone(region.shape, in_box, self.volume.array_spacing)
            if near is not None:
                merged = blend(probabilities(near), region[near], shifted(in_box, near), self.volume.array_spacing)
                region[near] = merged[1] > merged[0]
        elif fg:  # the first answer: only the part around the positive voxels is resampled
            region, box = self._region_on_image(margin, crop)
        else:  # background clicks away from the structure: nothing of it here to take away
            region = np.zeros([b.stop - b.start for b in box], bool)

        region = honour_clicks(region, in_box, probabilities, self.volume.array[box], self.volume.array_spacing)
        clicked = [p for c, p in in_box if c == 1]
        if first and clicked:  # the structure clicked: what the network finds apart from it is another one
            seeds = np.zeros(region.shape, bool)
            seeds[tuple(np.array(clicked).T)] = True
            region = keep_seeded_components(region, seeds)
        patch = paste(region, box, previous, value)
        end = time.perf_counter()
        return Result(patch, box, self.volume.shape, self.card.method, end - start, previous,
                      {"prepare_s": t_pre - start, "network_s": t_net - t_pre, "paste_s": end - t_net},
                      model=self.card.name)

    def edit(self, clicks: dict[int, list], previous: np.ndarray | None = None) -> Result:
        """DeepEdit with clicks on several labels at once: ``clicks`` maps label values (0:
        background) to points; every label is redrawn in the region around the clicks."""
        start = time.perf_counter()
        points = [p for pts in clicks.values() for p in pts]
        check_clicks(self.volume.shape, points, [])
        check_step(self.volume.shape, previous, None)
        by_value = {v: i for i, v in enumerate(self.class_values())}
        marks = [(by_value.get(int(value), 1), tuple(p)) for value, pts in clicks.items() for p in pts]
        channels: dict[int, list] = {}
        for cls, point in marks:
            channels.setdefault(cls, []).append(point)
        crop, x = self._network_input(channels, points, previous)
        scores = self._scores(x)
        box, scores = self._sample_on_image(scores, crop)
        probs = torch.softmax(scores, dim=0).cpu().numpy()
        in_box = self._in_box(marks, box)
        classes = probs.argmax(axis=0)
        if previous is not None and previous[box].any():  # a correction: blended with the label
            earlier = np.zeros(probs.shape[1:], np.int64)  # labels the network does not know: background
            for cls, v in enumerate(self.class_values()[1:], start=1):
                earlier[previous[box] == v] = cls
            near = zone(earlier.shape, in_box, self.volume.array_spacing)
            classes = earlier
            if near is not None:
                classes[near] = blend(probs[(slice(None), *near)], earlier[near], shifted(in_box, near),
                                  self.volume.array_spacing).argmax(axis=0)
        classes = honour_clicks(classes, in_box, lambda w: probs[(slice(None), *w)],
                                self.volume.array[box], self.volume.array_spacing)
        return Result(self.class_values()[classes], box, self.volume.shape, self.card.method,
                      time.perf_counter() - start, previous, model=self.card.name)

    def probability(self, values: tuple[int, ...]) -> np.ndarray:
        """P(any of the label ``values``) with no clicks (the automatic answer), on the image
        grid: what scribbles refine. Kept for the last values asked (an image-sized map)."""
        values = tuple(sorted(int(v) for v in values))
        if self._probability is None or self._probability[0] != values:
            classes = sorted({self.card.class_of(v) for v in values})
            with torch.inference_mode():
                if self._automatic is None:
                    self._automatic = self.automatic_scores().half()
                p = torch.softmax(self._automatic.float(), dim=0)[classes].sum(dim=0)
                box, p = self._sample_on_image(p[None], tuple(slice(0, n) for n in self.model_shape))
            out = np.zeros(self.volume.shape, np.float32)
            out[box] = p[0].clamp(0, 1).cpu().numpy()
            self._probability = (values, out)
        return self._probability[1]

    def class_values(self) -> np.ndarray:
        """Label value of each output class (class 0: background)."""
        values = np.zeros(self.card.classes, label_dtype(max(self.card.labels.values(), default=1)))
        if self.card.method == "deepedit":
            for i, name in enumerate(self.card.class_names[1:], start=1):
                values[i] = self.card.labels[name]
        else:
            values[1] = 1
        return values

    def automatic_scores(self, image: torch.Tensor | None = None) -> torch.Tensor:
        """Class scores (logits, C, *model grid) with no clicks: a sliding window over the
        whole prepared image (or ``image``, a changed copy of it) with empty guidance."""
        from monai.inferers import sliding_window_inference  # monai takes seconds to import: not at startup

        image = self.image() if image is None else image
        x = torch.cat([image[None], torch.zeros((self.card.input_channels - 1, *image.shape), device=image.device)])[None]
        roi = [int(np.ceil(min(r, s) / MULTIPLE) * MULTIPLE) for r, s in zip(self.card.roi_size, image.shape)]
        if self.card.input_size:  # the whole image at once, as the network was trained
            roi = list(image.shape)
        with torch.inference_mode():
            logits = sliding_window_inference(x, roi, 1, lambda t: forward(self.model, t), overlap=0.25,
                                              mode="gaussian", padding_mode="constant")
        return logits[0].float()

    def automatic(self) -> Result:
        """Segment every label with no clicks (DeepEdit's automatic mode), classes argmaxed
        on the image grid."""
        start = time.perf_counter()
        self.image()
        t_pre = time.perf_counter()
        logits = self.automatic_scores()
        self._automatic = logits.half()  # the strokes that correct this answer need no network (probability)
        t_net = time.perf_counter()
        full = tuple(slice(0, n) for n in self.model_shape)
        box, scores = self._sample_on_image(logits, full)
        label = self.class_values()[argmax(scores).cpu().numpy()]
        end = time.perf_counter()
        return Result(label, box, self.volume.shape, f"{self.card.method}-auto", end - start, None,
                      {"prepare_s": t_pre - start, "network_s": t_net - t_pre, "paste_s": end - t_net},
                      names=self.card.foreground, model=self.card.name)

    def _region_on_image(self, margin: torch.Tensor, crop: tuple[slice, ...]) -> tuple[np.ndarray, Box]:
        """Where ``margin`` (on the crop) is positive, on the image voxels the crop covers.

        Only the part around the positive voxels is resampled: elsewhere a linear
        interpolation of non-positive values stays non-positive.
        """
        full_box = self._image_box(crop)
        region = np.zeros([b.stop - b.start for b in full_box], bool)
        zy, x = margin.amax(dim=2), margin.reshape(-1, margin.shape[2]).amax(dim=0)  # maxima reduce fast
        spans = [torch.nonzero(a > 0)[:, 0] for a in (zy.amax(dim=1), zy.amax(dim=0), x)]
        if len(spans[0]) == 0:
            return region, full_box
        lo = np.array([max(int(v[0]) - 1, 0) for v in spans])
        hi = np.array([int(v[-1]) + 2 for v in spans])
        sub = tuple(slice(int(c.start + a), int(min(c.start + b, c.stop))) for c, a, b in zip(crop, lo, hi))
        inner = tuple(slice(int(a), int(min(b, n))) for a, b, n in zip(lo, hi, margin.shape))
        box, sampled = self._sample_on_image(margin[inner][None], sub)
        region[tuple(slice(b.start - f.start, b.stop - f.start) for b, f in zip(box, full_box))] = \
            (sampled[0] > 0).cpu().numpy()
        return region, full_box

    def _image_box(self, crop: tuple[slice, ...]) -> Box:
        """The image voxels inside a crop of the model grid."""
        lo = np.ceil(self.to_image([s.start for s in crop]) - 1e-6).astype(int)
        hi = np.floor(self.to_image([s.stop - 1 for s in crop]) + 1e-6).astype(int)
        return tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi))

    def _coords(self, box: Box, crop: tuple[slice, ...]) -> list[np.ndarray]:
        """Where the image voxels of ``box`` lie on a crop of the model grid, per axis."""
        return [np.arange(b.start, b.stop) * k - s.start for b, k, s in zip(box, self._scale(), crop)]

    @staticmethod
    def _in_box(marks: list[tuple[int, tuple]], box: Box) -> list[tuple[int, tuple[int, ...]]]:
        """(class, point) clicks inside ``box``, points relative to it."""
        inside = []
        for cls, point in marks:
            q = tuple(int(p) - b.start for p, b in zip(point, box))
            if all(0 <= v < b.stop - b.start for v, b in zip(q, box)):
                inside.append((cls, q))
        return inside

    def _sample_on_image(self, maps: torch.Tensor, crop: tuple[slice, ...]) -> tuple[Box, torch.Tensor]:
        """Channel maps (C, *crop) sampled at the image voxels the crop covers."""
        box = self._image_box(crop)
        if maps.shape[1:] == tuple(b.stop - b.start for b in box) and np.allclose(self._scale(), 1):
            return box, maps  # same grid: nothing to resample
        return box, resample_linear(maps.float(), self._coords(box, crop))
