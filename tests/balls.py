"""Balls with a bright core and a dimmer rim, both of their label: validation cases made
here for choosing how a click model is used (annotator.training.calibrate), and a tiny
DeepGrow 3D model to choose for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from annotator.io.volume import Volume

CORE, RIM = 1.0, 0.4  # image intensities of a ball's core and its rim (background: -1)


def ball(i: int) -> tuple[str, Volume, np.ndarray]:
    """Case ``i``: its id, image and label (sizes vary with ``i``)."""
    z, y, x = np.ogrid[:16, :28, :28]
    distance = np.sqrt((z - 8) ** 2 + (y - 14) ** 2 + (x - 14) ** 2)
    radius = 4 + i % 4
    image = np.where(distance <= radius - 2, CORE, np.where(distance <= radius, RIM, -1.0)).astype(np.float32)
    volume = Volume(image, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), modality="MR")
    return f"ball{i:02d}", volume, (distance <= radius).astype(np.uint8)


def ball_folder(folder: Path, count: int) -> Path:
    """A dataset folder (images/, labels/, labels.json) of the first ``count`` balls."""
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True)
    for i in range(count):
        case_id, volume, label = ball(i)
        for sub, array in (("images", volume.array), ("labels", label)):
            sitk.WriteImage(sitk.GetImageFromArray(array), str(folder / sub / f"{case_id}.nii.gz"))
    (folder / "labels.json").write_text(json.dumps({"structure": 1}))
    return folder


def install_tiny_deepgrow(name: str, folder: Path | None = None, **card) -> Path:
    """An installed DeepGrow 3D model of random weights (seed 0) in ``folder`` (default:
    the user models folder); ``card``: more of its sidecar. Returns the sidecar."""
    import torch

    from annotator.models import ModelCard, build_network, save_checkpoint
    from annotator.models.registry import user_dir

    arch = {"name": "UNet", "spatial_dims": 3, "in_channels": 3, "out_channels": 2, "channels": [4, 8, 16],
            "strides": [2, 2], "num_res_units": 0}
    torch.manual_seed(0)
    sidecar = ModelCard(**{"name": name, "method": "deepgrow3d", "architecture": arch, "labels": {"structure": 1},
                           "roi_size": [16, 32, 32], **card})
    return save_checkpoint(build_network(arch), sidecar, (folder or user_dir()) / f"{name}.json")
