"""A per-image inference session for click networks (DeepGrow 3D style).

The image is brought to the model's grid once — resampled to the model spacing and
intensity-normalised — and kept. Each click then only builds guidance maps in a crop
around the clicks, runs the network on that crop, and resamples the crop's
foreground probability back onto the image's own grid, where it is pasted into the label.

Grids are mapped corner-to-corner (``align_corners``): image voxel ``v`` sits at model
coordinate ``v * (M - 1) / (N - 1)`` along an axis of N image and M model voxels.
"""

from __future__ import annotations

import time
import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference

from annotator.engine.region import Box, Result, check_clicks, paste
from annotator.errors import InputError
from annotator.io.volume import Volume
from annotator.models.card import ModelCard

#: The network's input size must be a multiple of this (4 stride-2 levels).
_MULTIPLE = 16


class ClickSession:
    """Clicks on one image answered by one network; the preprocessed image is cached."""

    def __init__(self, volume: Volume, model: torch.nn.Module, card: ModelCard,
                 device: torch.device | str = "cpu"):
        if min(volume.shape) < 2:
            raise InputError(f"{volume.name}: a 2-D image; {card.method} needs a 3-D volume")
        self.volume, self.model, self.card = volume, model, card
        self.device = torch.device(device)
        self.preprocess_count = 0
        self._image: torch.Tensor | None = None

    # ---- grids -------------------------------------------------------------------------

    @property
    def model_shape(self) -> tuple[int, int, int]:
        spacing = np.asarray(self.volume.array_spacing, float)
        target = np.asarray(self.card.target_spacing, float)
        shape = np.asarray(self.volume.shape)
        return tuple(int(max(2, round((n - 1) * s / t) + 1)) for n, s, t in zip(shape, spacing, target))

    def _scale(self) -> np.ndarray:
        return (np.asarray(self.model_shape) - 1) / (np.asarray(self.volume.shape) - 1)

    def to_model(self, point_zyx) -> np.ndarray:
        return np.asarray(point_zyx, float) * self._scale()

    def to_image(self, point_zyx) -> np.ndarray:
        return np.asarray(point_zyx, float) / self._scale()

    # ---- preprocessing (once) ----------------------------------------------------------

    def image(self) -> torch.Tensor:
        """The image on the model grid, normalised; computed on first use only."""
        if self._image is None:
            array = torch.as_tensor(np.ascontiguousarray(self.volume.array), dtype=torch.float32)
            resampled = F.interpolate(array[None, None].to(self.device), size=self.model_shape,
                                      mode="trilinear", align_corners=True)[0, 0]
            self._image = self._normalise(resampled)
            self.preprocess_count += 1
        return self._image

    def _normalise(self, image: torch.Tensor) -> torch.Tensor:
        spec = self.card.intensity
        if spec.get("kind") == "window":
            lo, hi = float(spec["low"]), float(spec["high"])
        else:
            sample = image.flatten()[:: max(1, image.numel() // 1_000_000)].float()
            lo, hi = (float(v) for v in torch.quantile(sample, torch.tensor(
                [spec.get("low", 0.5) / 100, spec.get("high", 99.5) / 100], device=sample.device)))
        return ((image - lo) / max(hi - lo, 1e-6)).clamp(0, 1)

    # ---- clicks ------------------------------------------------------------------------

    def _crop(self, points: np.ndarray) -> tuple[slice, ...]:
        shape = np.asarray(self.model_shape)
        size = np.minimum(np.asarray(self.card.roi_size), shape)
        centre = np.round((points.min(axis=0) + points.max(axis=0)) / 2).astype(int)
        start = np.clip(centre - size // 2, 0, shape - size)
        return tuple(slice(int(a), int(a + s)) for a, s in zip(start, size))

    def guidance(self, points: list, crop: tuple[slice, ...], sigma: float = 2.0) -> torch.Tensor:
        """Click map on the crop: a Gaussian (``sigma`` model voxels, peak 1) per click.

        Centred on each click's exact model coordinate, not on the nearest model voxel,
        so the click comes back where it was made on any grid.
        """
        shape = tuple(s.stop - s.start for s in crop)
        signal = torch.zeros(shape, device=self.device)
        for p in points:
            centre = self.to_model(p) - [s.start for s in crop]
            axes = [torch.exp(-((torch.arange(n, device=self.device) - c) ** 2) / (2 * sigma**2))
                    for n, c in zip(shape, centre)]
            signal = torch.maximum(signal, axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :])
        return signal

    def click(self, fg: list, bg: list = (), previous: np.ndarray | None = None, value: int = 1) -> Result:
        """Label after these clicks (array indices ``(z, y, x)`` of the image)."""
        start = time.perf_counter()
        check_clicks(self.volume.shape, fg, bg)
        image = self.image()
        t_pre = time.perf_counter()
        crop = self._crop(self.to_model(np.asarray(fg, float)))
        x = torch.stack([image[crop], self.guidance(fg, crop), self.guidance(bg, crop)])[None]
        size = x.shape[2:]
        padded = [int(np.ceil(s / _MULTIPLE) * _MULTIPLE) for s in size]
        x = F.pad(x, [p for s, t in zip(reversed(size), reversed(padded)) for p in (0, t - s)])
        with torch.inference_mode():
            logits = self.model(x)
        prob = torch.softmax(logits[:, :, : size[0], : size[1], : size[2]], dim=1)[0, 1]
        t_net = time.perf_counter()
        box, region = self._back_to_image(prob, crop)
        label = paste(region, box, previous, self.volume.shape, value)
        end = time.perf_counter()
        return Result(label, self.card.method, end - start, box,
                           {"prepare_s": t_pre - start, "network_s": t_net - t_pre, "paste_s": end - t_net})

    def automatic(self) -> Result:
        """Segment every label with no clicks (DeepEdit's automatic mode): a sliding window
        over the whole prepared image with empty guidance, classes argmaxed on the image grid."""
        start = time.perf_counter()
        image = self.image()
        t_pre = time.perf_counter()
        x = torch.stack([image, torch.zeros_like(image), torch.zeros_like(image)])[None]
        roi = [int(np.ceil(min(r, s) / _MULTIPLE) * _MULTIPLE) for r, s in zip(self.card.roi_size, image.shape)]
        with torch.inference_mode():
            logits = sliding_window_inference(x, roi, 1, self.model, overlap=0.25, mode="gaussian",
                                              padding_mode="constant")
        t_net = time.perf_counter()
        full = tuple(slice(0, n) for n in self.model_shape)
        box, scores = self._sample_on_image(logits[0], full)
        classes = scores.argmax(dim=0).cpu().numpy().astype(np.uint8)
        values = np.zeros(logits.shape[1], np.uint8)
        for name, value in self.card.labels.items():
            if 0 < int(value) < len(values):
                values[int(value)] = int(value)
        label = values[classes]
        end = time.perf_counter()
        return Result(label, f"{self.card.method}-auto", end - start, box,
                           {"prepare_s": t_pre - start, "network_s": t_net - t_pre, "paste_s": end - t_net})

    def _back_to_image(self, prob: torch.Tensor, crop: tuple[slice, ...]) -> tuple[Box, np.ndarray]:
        """The crop's foreground probability on the image grid: the image box, and a mask."""
        box, sampled = self._sample_on_image(prob[None], crop)
        return box, (sampled[0] > 0.5).cpu().numpy()

    def _sample_on_image(self, maps: torch.Tensor, crop: tuple[slice, ...]) -> tuple[Box, torch.Tensor]:
        """Channel maps (C, *crop) sampled at the image voxels the crop covers."""
        lo = np.ceil(self.to_image([s.start for s in crop]) - 1e-6).astype(int)
        hi = np.floor(self.to_image([s.stop - 1 for s in crop]) + 1e-6).astype(int)
        box = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi))
        # sample the crop at the model coordinates of the box's image voxels
        coords = [torch.as_tensor(np.arange(b.start, b.stop) * k - s.start, dtype=torch.float32, device=maps.device)
                  for b, k, s in zip(box, self._scale(), crop)]
        grid_axes = [2 * c / max(n - 1, 1) - 1 for c, n in zip(coords, maps.shape[1:])]
        zz, yy, xx = torch.meshgrid(*grid_axes, indexing="ij")
        grid = torch.stack([xx, yy, zz], dim=-1)[None]
        sampled = F.grid_sample(maps[None].float(), grid, mode="bilinear", align_corners=True)[0]
        return box, sampled
