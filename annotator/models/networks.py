"""Network architectures, built from MONAI by name from a JSON-able spec.

Interactive methods take the image plus guidance channels (foreground and background
click maps, as DeepGrow and DeepEdit do) and output one channel per label plus
background. The defaults are CPU-sized (plain 3-D UNets of 0.5–2 M parameters).
"""

from __future__ import annotations

import copy

from typing import TYPE_CHECKING

from annotator.errors import ModelError

if TYPE_CHECKING:  # torch and monai are imported when a network is built
    import torch

#: architecture names a spec may use: MONAI network classes (monai is imported when a
#: network is built, as it takes seconds to import)
ARCHITECTURES = ("UNet", "BasicUNet", "DynUNet")

_SMALL_UNET = {"name": "UNet", "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2],
               "num_res_units": 0}
#: The same plain UNet with a first level at full resolution and half the filters (0.5 M
#: parameters, about 4 times the compute), for the 3-D methods: the one above sees the
#: image first through a stride-2 convolution and draws every boundary from
#: half-resolution features, which limits it on thin structures. DeepEdit on the
#: hippocampus, trained for the same 7 CPU minutes: validation Dice 0.825 against 0.812
#: (0.813 with residual units, 0.812 with a sixth level).
_SMALL_FULL_RES_UNET = {"name": "UNet", "channels": [8, 16, 32, 64, 128], "strides": [1, 2, 2, 2],
                        "num_res_units": 0}

#: variant -> method -> spec without channel counts. "small" are the CPU defaults (0.5–2 M
#: parameters); "sample-app" are the networks of MONAI Label's radiology sample apps
#: (DeepGrow: BasicUNet, features 32..512; DeepEdit: residual DynUNet), too slow to click
#: with on a CPU but a sensible choice on a GPU.
VARIANTS = {
    "small": {"deepgrow3d": {**_SMALL_FULL_RES_UNET, "spatial_dims": 3},
              "deepgrow2d": {**_SMALL_UNET, "spatial_dims": 2},
              "deepedit": {**_SMALL_FULL_RES_UNET, "spatial_dims": 3}},
    "sample-app": {
        "deepgrow3d": {"name": "BasicUNet", "spatial_dims": 3, "features": [32, 64, 128, 256, 512, 32]},
        "deepgrow2d": {"name": "BasicUNet", "spatial_dims": 2, "features": [32, 64, 128, 256, 512, 32]},
        "deepedit": {"name": "DynUNet", "spatial_dims": 3, "kernel_size": [3, 3, 3, 3, 3, 3],
                     "strides": [1, 2, 2, 2, 2, [2, 2, 1]], "upsample_kernel_size": [2, 2, 2, 2, [2, 2, 1]],
                     "norm_name": "instance", "deep_supervision": False, "res_block": True}},
}


def architecture(method: str, labels: int = 1, variant: str = "small") -> dict:
    """The spec of ``method``'s network for ``labels`` foreground labels (DeepGrow: 1).

    Inputs: the image and the guidance channels (DeepGrow: foreground, background;
    DeepEdit: one per class); outputs: one score per class, background first.
    """
    try:
        spec = dict(VARIANTS[variant][method])
    except KeyError:
        raise ModelError(f"no {variant!r} network for method {method!r}") from None
    classes = 1 + (labels if method == "deepedit" else 1)
    guidance = classes if method == "deepedit" else 2
    return {**spec, "in_channels": 1 + guidance, "out_channels": classes}


def build_network(spec: dict) -> torch.nn.Module:
    """A MONAI network from ``{"name": ..., **constructor arguments}``."""
    spec = copy.deepcopy(spec)
    name = spec.pop("name", None)
    if name not in ARCHITECTURES:
        raise ModelError(f"unknown architecture '{name}' (known: {', '.join(ARCHITECTURES)})")
    from monai.networks import nets

    try:
        return getattr(nets, name)(**spec)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ModelError(f"architecture {name} cannot be built from its spec: {exc}") from exc


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
