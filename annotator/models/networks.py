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
ARCHITECTURES = ("UNet", "BasicUNet", "DynUNet", "UNETR")

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

#: The full-resolution UNet with wider levels (1.1 M parameters): what a GPU makes
#: worth training (the DeepEdit starter). Its forward on 2 CPU cores: 0.13 s on a
#: 48x64x48 crop (0.12 s for the 0.5 M network), 0.75 s on a 96^3 one (0.35 s): fine for
#: small structures; the default stays "small" (:data:`DEFAULT_VARIANT`).
_MEDIUM_FULL_RES_UNET = {**_SMALL_FULL_RES_UNET, "channels": [16, 32, 64, 96, 128]}

#: variant -> method -> spec without channel counts. "small" are the CPU defaults (0.5–2 M
#: parameters); "medium" the 3-D methods' wider network above; "sample-app" are the
#: networks of MONAI Label's radiology sample apps (DeepGrow: BasicUNet, features
#: 32..512; DeepEdit: residual DynUNet), too slow to click with on a CPU but a sensible
#: choice on a GPU.
VARIANTS = {
    "small": {"deepgrow3d": {**_SMALL_FULL_RES_UNET, "spatial_dims": 3},
              "deepgrow2d": {**_SMALL_UNET, "spatial_dims": 2},
              "deepedit": {**_SMALL_FULL_RES_UNET, "spatial_dims": 3}},
    "medium": {"deepgrow3d": {**_MEDIUM_FULL_RES_UNET, "spatial_dims": 3},
               "deepedit": {**_MEDIUM_FULL_RES_UNET, "spatial_dims": 3}},
    "sample-app": {
        "deepgrow3d": {"name": "BasicUNet", "spatial_dims": 3, "features": [32, 64, 128, 256, 512, 32]},
        "deepgrow2d": {"name": "BasicUNet", "spatial_dims": 2, "features": [32, 64, 128, 256, 512, 32]},
        "deepedit": {"name": "DynUNet", "spatial_dims": 3, "kernel_size": [3, 3, 3, 3, 3, 3],
                     "strides": [1, 2, 2, 2, 2, [2, 2, 1]], "upsample_kernel_size": [2, 2, 2, 2, [2, 2, 1]],
                     "norm_name": "instance", "deep_supervision": False, "res_block": True}},
}


#: the network size a run trains when neither it nor the model it fine-tunes names one
DEFAULT_VARIANT = "small"


def architecture(method: str, labels: int = 1, variant: str = DEFAULT_VARIANT, previous_label: bool = False) -> dict:
    """The spec of ``method``'s network for ``labels`` foreground labels (DeepGrow: 1).

    Inputs: the image and the guidance channels (DeepGrow: foreground, background;
    DeepEdit: one per class), with ``previous_label`` also the earlier label (one channel
    per foreground class); outputs: one score per class, background first.
    """
    try:
        spec = dict(VARIANTS[variant][method])
    except KeyError:
        raise ModelError(f"no {variant!r} network for method {method!r}") from None
    classes = 1 + (labels if method == "deepedit" else 1)
    guidance = classes if method == "deepedit" else 2
    return {**spec, "in_channels": 1 + guidance + (classes - 1 if previous_label else 0), "out_channels": classes}


#: Bounds on a spec, checked before anything is built (a sidecar from elsewhere could
#: declare a network that takes all memory)
MAX_CHANNELS, MAX_LEVELS, MAX_PARAMETERS = 2048, 10, 400_000_000
#: a UNETR's vision transformer: MONAI's defaults, and its fixed depth and patch size
_UNETR_DEFAULTS, _UNETR_LAYERS, _UNETR_PATCH = {"hidden_size": 768, "mlp_dim": 3072, "num_heads": 12,
                                                "feature_size": 16}, 12, 16


def check_architecture(spec) -> None:
    """Refuse a spec that is not one of ours or that would be larger than the bounds."""
    if not isinstance(spec, dict):
        raise ModelError("the architecture is not a JSON object")
    name = spec.get("name")
    if name not in ARCHITECTURES:
        raise ModelError(f"unknown architecture '{name}' (known: {', '.join(ARCHITECTURES)})")
    if spec.get("spatial_dims") not in (2, 3):
        raise ModelError(f"architecture {name}: spatial_dims must be 2 or 3, not {spec.get('spatial_dims')!r}")
    for key in ("in_channels", "out_channels"):
        value = spec.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 64:
            raise ModelError(f"architecture {name}: {key} must be a whole number from 1 to 64, not {value!r}")
    widths = spec.get("channels", spec.get("features", spec.get("filters")))
    if widths is not None:
        if (not isinstance(widths, list) or not 1 <= len(widths) <= MAX_LEVELS
                or not all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_CHANNELS for w in widths)):
            raise ModelError(f"architecture {name}: channels must be 1 to {MAX_LEVELS} whole numbers from 1 to "
                             f"{MAX_CHANNELS}, not {str(widths)[:80]}")
        kernel = 3 ** spec["spatial_dims"]
        estimate = sum(a * b * kernel * 4 for a, b in zip([spec["in_channels"], *widths], widths))
        if estimate > MAX_PARAMETERS:
            raise ModelError(f"architecture {name}: about {estimate / 1e6:.0f} M parameters, more than the "
                             f"{MAX_PARAMETERS / 1e6:.0f} M allowed")
    if name == "UNETR":
        _check_unetr(spec)
    for key in ("kernel_size", "strides", "upsample_kernel_size"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, list) or len(value) > MAX_LEVELS):
            raise ModelError(f"architecture {name}: {key} must be a list of at most {MAX_LEVELS} entries")


def _check_unetr(spec: dict) -> None:
    """A UNETR's fixed input size (multiples of its 16-voxel patches) and transformer, and
    about how many parameters they make."""
    dims = spec["spatial_dims"]
    size = spec.get("img_size")
    if (not isinstance(size, list) or len(size) != dims or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 512 and v % _UNETR_PATCH == 0 for v in size)):
        raise ModelError(f"architecture UNETR: img_size must be {dims} multiples of {_UNETR_PATCH} up to 512, "
                         f"not {str(size)[:60]}")
    found = {key: spec.get(key, default) for key, default in _UNETR_DEFAULTS.items()}
    for key, value in found.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 8192:
            raise ModelError(f"architecture UNETR: {key} must be a whole number from 1 to 8192, not {value!r}")
    hidden, mlp = found["hidden_size"], found["mlp_dim"]
    if hidden % found["num_heads"]:
        raise ModelError(f"architecture UNETR: hidden_size {hidden} is not a multiple of num_heads {found['num_heads']}")
    estimate = _UNETR_LAYERS * (4 * hidden * hidden + 2 * hidden * mlp)
    if estimate > MAX_PARAMETERS:
        raise ModelError(f"architecture UNETR: about {estimate / 1e6:.0f} M parameters, more than the "
                         f"{MAX_PARAMETERS / 1e6:.0f} M allowed")


def input_multiple(spec: dict) -> tuple[int, ...]:
    """What each input size must be a multiple of (the product of the strides per axis)."""
    dims = int(spec.get("spatial_dims", 3))
    if spec.get("name") in ("BasicUNet", "UNETR"):
        return (16,) * dims  # four poolings by 2; 16-voxel patches
    factors = [1] * dims
    for stride in spec.get("strides", [2, 2, 2, 2]):
        per_axis = stride if isinstance(stride, list) else [stride] * dims
        factors = [f * int(s) for f, s in zip(factors, per_axis)]
    return tuple(factors)


def build_network(spec: dict) -> torch.nn.Module:
    """A MONAI network from ``{"name": ..., **constructor arguments}`` (checked first); its
    ``input_multiple`` says what sizes it takes."""
    check_architecture(spec)
    spec = copy.deepcopy(spec)
    name = spec.pop("name", None)
    from annotator.engine.loading import import_network_stack

    import_network_stack()  # one thread at a time imports MONAI (the app may be loading it in the background)
    from monai.networks import nets

    try:
        network = getattr(nets, name)(**spec)
        network.input_multiple = input_multiple({"name": name, **spec})
        return network
    except (TypeError, ValueError, AssertionError, IndexError, KeyError, AttributeError, RecursionError) as exc:
        raise ModelError(f"architecture {name} cannot be built from its spec: {exc}") from exc


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
