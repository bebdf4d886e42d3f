"""Network architectures, built from MONAI by name from a JSON-able spec.

Interactive methods take the image plus guidance channels (foreground and background
click maps, as DeepGrow and DeepEdit do) and output one channel per label plus
background. The defaults are CPU-sized (a plain 3-D UNet of about 2 M parameters).
"""

from __future__ import annotations

import copy

import torch
from monai.networks import nets

from annotator.errors import ModelError

#: architecture names a spec may use -> MONAI constructors
ARCHITECTURES = {"UNet": nets.UNet, "BasicUNet": nets.BasicUNet, "DynUNet": nets.DynUNet}

#: method -> default spec (CPU-sized)
DEFAULT_ARCHITECTURES = {
    "deepgrow3d": {"name": "UNet", "spatial_dims": 3, "in_channels": 3, "out_channels": 2,
                   "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 0},
    "deepgrow2d": {"name": "UNet", "spatial_dims": 2, "in_channels": 3, "out_channels": 2,
                   "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 0},
    "deepedit": {"name": "UNet", "spatial_dims": 3, "in_channels": 3, "out_channels": 3,
                 "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 0},
}


def build_network(spec: dict) -> torch.nn.Module:
    """A MONAI network from ``{"name": ..., **constructor arguments}``."""
    spec = copy.deepcopy(spec)
    name = spec.pop("name", None)
    if name not in ARCHITECTURES:
        raise ModelError(f"unknown architecture '{name}' (known: {', '.join(ARCHITECTURES)})")
    try:
        return ARCHITECTURES[name](**spec)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ModelError(f"architecture {name} cannot be built from its spec: {exc}") from exc


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
