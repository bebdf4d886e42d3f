"""Models trained elsewhere: a MONAI Label sample-app checkpoint (a state dict in a ``.pt``
file) or a MONAI bundle folder, converted to this app's format (safetensors + sidecar).

A ``.pt`` file is read with ``torch.load(weights_only=True)`` only: a file that needs full
unpickling (it could run code) is refused. The model is fed as MONAI fed it
(:mod:`annotator.engine.axes`): DeepEdit and bundles the image turned to (x, y, z) in RAS,
MONAI Label's DeepGrow (z, x, y) as stored; DeepEdit's click channels in its label list's
order (MONAI Label's: background last) with Gaussians of 3 voxels (DeepGrow: 2); the
intensities as it was trained: ``--window`` or a bundle's ``ScaleIntensityRanged`` or
``NormalizeIntensityd``, else MONAI Label's (DeepEdit: -175..250 to 0..1; DeepGrow:
(image - 208) / 388); the whole image resized to a fixed size where MONAI's DeepEdit did
that (``--input-size``, a bundle's ``Resized``), else resampled to a spacing (MONAI Label's
DeepGrow: 1 mm) and cropped around the clicks. The network is the sample-app one of the
method (``annotator.models.networks.VARIANTS["sample-app"]``), or, for a bundle, the one its
``configs`` declare (plain arguments only); a checkpoint of MONAI Label's DeepEdit with its
UNETR (weights under ``vit.``) gets that UNETR, which sees whole images at 128³. The
weights must fit the network exactly;
DeepGrow's one-channel (sigmoid) output becomes the two class scores the engine reads,
with the same probabilities (background 0, structure the old score).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from annotator.errors import ModelError, detail
from annotator.models.card import PERCENTILES, ModelCard, check_name
from annotator.models.checkpoint import save_checkpoint
from annotator.models.networks import ARCHITECTURES, architecture, build_network


#: MONAI Label's DeepGrow apps feed (image - 208) / 388 (``NormalizeIntensityd``)
MONAI_LABEL_DEEPGROW_INTENSITY = {"kind": "scale", "subtract": 208.0, "divide": 388.0}
#: MONAI Label's DeepEdit app maps -175..250 to 0..1 (``ScaleIntensityRanged``), whatever
#: the modality, and resizes each whole image to 128³ (``Resized``; x, y, z)
MONAI_LABEL_DEEPEDIT_WINDOW = {"kind": "window", "low": -175.0, "high": 250.0}
MONAI_LABEL_DEEPEDIT_SIZE = [128, 128, 128]
#: MONAI Label's DeepGrow apps resample to 1 mm (``Spacingd``) and crop around the clicks
MONAI_LABEL_DEEPGROW_SPACING = [1.0, 1.0, 1.0]
#: MONAI Label's DeepEdit app with ``--conf network unetr``: a UNETR that takes whole
#: images at 128³ (a checkpoint whose weights start with ``vit.`` is one)
MONAI_LABEL_UNETR = {"name": "UNETR", "spatial_dims": 3, "img_size": [128, 128, 128], "feature_size": 64,
                     "hidden_size": 1536, "mlp_dim": 3072, "num_heads": 48, "proj_type": "conv",
                     "norm_name": "instance", "res_block": True}
#: network arguments that MONAI renamed since bundles were written (old -> new)
RENAMED = {"pos_embed": "proj_type"}


def parse_labels(text: str) -> dict[str, int]:
    """``liver=1,spleen=2`` or ``liver,spleen`` (values 1, 2, ... in that order;
    ``background`` is 0), in the order given."""
    labels: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        try:
            labels[name] = int(value) if value else 0 if name == "background" else 1 + sum(
                1 for n in labels if n != "background")
        except ValueError:
            raise ModelError(f"'{part}' is not name=value") from None
    if not labels:
        raise ModelError("no labels given")
    return labels


def parse_window(text: str) -> tuple[float, float]:
    """``LOW,HIGH``: the intensities a model's training mapped to 0 and 1."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise ModelError(f"'{text}' is not LOW,HIGH") from None
    if not low < high:
        raise ModelError(f"'{text}': LOW must be below HIGH")
    return low, high


def _state_dict(path: Path) -> dict:
    import pickle

    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needs = next((line.strip() for line in str(exc).splitlines() if "Unsupported global" in line), "")
        if not needs:  # not a pickle at all (a text file, another format)
            raise ModelError(f"{path}: not a PyTorch checkpoint (its content is not a saved state dict)") from None
        raise ModelError(f"{path}: refused: the file needs full unpickling, which could run code from it "
                         f"({needs[:160]}); export the network's state_dict instead") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:  # a damaged archive, a cut file
        said = detail(exc, 160).split(". ")[0].split(" (Could this")[0]
        raise ModelError(f"{path}: not a readable PyTorch checkpoint (damaged, or another format: {said})") from None
    except Exception:  # noqa: BLE001 - other bytes make the unpickler fail in any way (a KeyError ...)
        raise ModelError(f"{path}: not a PyTorch checkpoint (its content is not a saved state dict)") from None
    for key in ("model", "state_dict", "model_state_dict", "net"):  # how trainers wrap it
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(hasattr(v, "shape") for v in loaded.values()):
        raise ModelError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in loaded.items()}


def _steps(config) -> dict[str, dict]:
    """The first transform of each kind anywhere in a bundle config (``Spacingd`` ...)."""
    found: dict[str, dict] = {}
    stack = [config]
    while stack:
        item = stack.pop(0)
        if isinstance(item, dict):
            target = item.get("_target_")
            if isinstance(target, str):
                found.setdefault(target.rsplit(".", 1)[-1], item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


CONFIG_SUFFIXES = (".json", ".yaml", ".yml")  # a bundle's configs are JSON or YAML


def _config_file(configs: Path, stems: tuple[str, ...]) -> Path | None:
    return next((configs / f"{stem}{suffix}" for stem in stems for suffix in CONFIG_SUFFIXES
                 if (configs / f"{stem}{suffix}").is_file()), None)


def _read_config(path: Path) -> dict:
    """A bundle config (JSON or YAML, read as data only), or :class:`ModelError` naming what
    is wrong with it."""
    import yaml

    try:
        text = path.read_text("utf-8")
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise ModelError(f"{path}: not a readable bundle config ({detail(exc, 160)})") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: not a bundle config (it holds no mapping of names to values)")
    return raw


def _bundle(folder: Path) -> dict:
    """What a MONAI bundle declares: its network (``spec``), ``weights``, ``labels`` (in its
    order), ``spacing`` (z, y, x), the ``input_size`` it resizes whole images to (a
    ``Resized``) and ``intensity`` normalisation, where it says them."""
    configs = folder / "configs"
    config = _config_file(configs, ("inference", "train"))
    if config is None:
        raise ModelError(f"{folder}: not a MONAI bundle (no configs/inference.json or .yaml)")
    raw = _read_config(config)
    network = raw.get("network_def")
    if not isinstance(network, dict) or "_target_" not in network:
        raise ModelError(f"{config}: no network_def with a _target_")
    name = str(network["_target_"]).rsplit(".", 1)[-1]
    if name not in ARCHITECTURES:
        raise ModelError(f"{config}: network {name} is not one this app builds ({', '.join(ARCHITECTURES)})")
    # the channels are the method's (often written as expressions of the label list)
    args = {RENAMED.get(k, k): v for k, v in network.items() if k not in ("_target_", "in_channels", "out_channels")}
    if any(isinstance(v, str) and v[:1] in "@$%" for v in args.values()):
        raise ModelError(f"{config}: the network's arguments are expressions; give them as plain values")
    labels: dict[str, int] = {}
    if isinstance(raw.get("label_names"), dict):  # DeepEdit bundles: names and values, in channel order
        labels = {str(n).lower(): int(v) for n, v in raw["label_names"].items()}
    metadata = _config_file(configs, ("metadata",))
    if not labels and metadata is not None:
        channels = (_read_config(metadata).get("network_data_format", {}).get("outputs", {})
                    .get("pred", {}).get("channel_def", {}))
        labels = {str(n).lower(): int(i) for i, n in channels.items() if int(i) > 0}
    steps = _steps(raw)
    pixdim = steps.get("Spacingd", {}).get("pixdim")
    spacing = [float(v) for v in reversed(pixdim)] if isinstance(pixdim, list) and len(pixdim) == 3 else None
    size = steps.get("Resized", {}).get("spatial_size")
    if isinstance(size, str) and size.startswith("@"):  # a reference to a value of the config
        size = raw.get(size[1:])
    input_size = [int(v) for v in size] if isinstance(size, list) and all(
        isinstance(v, int) and v > 0 for v in size) else None
    intensity = None
    shift = steps.get("NormalizeIntensityd", {})
    if isinstance(shift.get("subtrahend"), (int, float)) and isinstance(shift.get("divisor"), (int, float)):
        intensity = {"kind": "scale", "subtract": float(shift["subtrahend"]), "divide": float(shift["divisor"])}
    scale = steps.get("ScaleIntensityRanged")
    if scale is not None:
        try:
            intensity = {"kind": "window", "low": float(scale["a_min"]), "high": float(scale["a_max"])}
            out = (float(scale.get("b_min", 0.0)), float(scale.get("b_max", 1.0)))
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{config}: its ScaleIntensityRanged has no plain a_min, a_max") from None
        if out != (0.0, 1.0):
            raise ModelError(f"{config}: its ScaleIntensityRanged maps to {out[0]}..{out[1]}; this app feeds 0..1")
    weights = folder / "models" / "model.pt"
    if not weights.is_file():
        raise ModelError(f"{folder}: the bundle has no models/model.pt")
    return {"spec": {"name": name, **args}, "weights": weights, "labels": labels, "spacing": spacing,
            "intensity": intensity, "input_size": input_size}


def _guidance_order(method: str, labels: dict[str, int], classes: list[str]) -> list[str]:
    """DeepEdit's click channels as MONAI orders them: the label list's order, background
    where it stands in it, else last (MONAI Label's apps); empty when that is ours."""
    if method != "deepedit":
        return []
    order = [n for n in labels if int(labels[n]) > 0 or n == "background"]
    order = order if "background" in order else [*order, "background"]
    return [] if order == classes else order


def import_model(path: str | os.PathLike, method: str, labels: dict[str, int] | None = None,
                 spacing_zyx: list[float] | None = None, name: str = "", modality: str = "unknown",
                 roi_size: list[int] | None = None, target: str | os.PathLike | None = None,
                 window: tuple[float, float] | None = None, input_size: list[int] | None = None) -> Path:
    """Convert a checkpoint or bundle to a model of this app; returns its sidecar (in the
    user models folder unless ``target`` names another). ``labels`` in the order of the
    model's label list (DeepEdit's click channels follow it); ``window``: the intensities
    it mapped to 0..1 (MONAI's ``ScaleIntensityRanged`` a_min, a_max), else what a bundle
    says, else MONAI Label's for a checkpoint (DeepEdit's window -175..250, DeepGrow's
    scaling), each image's percentiles for a bundle that says none. Where the model sees
    images: resampled to ``spacing_zyx`` (or a bundle's ``Spacingd``), or whole and
    resized to ``input_size`` (x, y, z; a bundle's ``Resized``; MONAI Label's DeepEdit
    checkpoint given no spacing: 128³, its app's)."""
    from annotator.models.registry import user_dir

    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such checkpoint or bundle")
    bundle = path.is_dir()
    declared: dict = _bundle(path) if bundle else {"spec": None, "labels": {}, "spacing": None, "intensity": None,
                                                   "input_size": None}
    state = _state_dict(declared["weights"] if bundle else path)
    spec, declared_spacing = declared["spec"], declared["spacing"]
    if window:
        intensity = {"kind": "window", "low": float(window[0]), "high": float(window[1])}
    elif bundle:
        intensity = declared["intensity"] or dict(PERCENTILES)
    else:  # a MONAI Label checkpoint: as its app feeds it
        intensity = MONAI_LABEL_DEEPEDIT_WINDOW if method == "deepedit" else MONAI_LABEL_DEEPGROW_INTENSITY
    labels = dict(labels or declared["labels"])
    if method == "deepedit" and not labels:
        raise ModelError("give the labels the model segments (--labels name=value,...)")
    foreground = {k: v for k, v in labels.items() if int(v) > 0} if method == "deepedit" else {"structure": 1}
    spacing = list(spacing_zyx or [])
    if spec is None and any(k.startswith("vit.") for k in state):  # MONAI Label's DeepEdit, network unetr
        if method != "deepedit":
            raise ModelError(f"{path}: a UNETR (a vision transformer) is one of MONAI Label's DeepEdit networks, "
                             f"not a {method} one")
        spec = dict(MONAI_LABEL_UNETR)
    if (spec or {}).get("name") == "UNETR":  # it takes whole images at exactly its img_size
        fixed = [int(v) for v in spec.get("img_size", [])]
        if spacing or (input_size and list(input_size) != fixed):
            raise ModelError(f"a UNETR sees whole images resized to its img_size {fixed}: "
                             "give neither a spacing nor another input size")
        input_size = fixed
    if spacing and input_size:
        raise ModelError("give the spacing it answers at on crops, or the size whole images are resized to; not both")
    if method == "deepedit" and not spacing and not input_size:
        input_size = declared["input_size"] or (None if bundle else MONAI_LABEL_DEEPEDIT_SIZE)
    if not spacing and not input_size:
        spacing = list(declared_spacing or ([] if bundle else MONAI_LABEL_DEEPGROW_SPACING))
    if input_size and (method != "deepedit" or len(input_size) != 3):
        raise ModelError("an input size (x, y, z) is for a DeepEdit model that sees whole images resized")
    if not input_size and len(spacing) != 3:
        raise ModelError("give the spacing the model was trained at (--spacing X,Y,Z in mm)")
    wanted = architecture(method, len(foreground), "sample-app")
    # the bundle's network (or the sample app's), with the channels the method feeds and reads
    spec = {**(spec or wanted), "in_channels": wanted["in_channels"], "out_channels": wanted["out_channels"]}
    state = _scores_for_classes(state, wanted["out_channels"])
    _check_fit(spec, state, f"{path}: the weights do not fit the {spec['name']} network of {method}")
    model = build_network(spec)
    model.load_state_dict(state)
    name = check_name(name or f"{method}-{path.stem}")
    ordered = {n: i for i, n in enumerate(sorted(foreground, key=foreground.get), start=1)}
    card = ModelCard(name=name, method=method, architecture=spec,
                     labels=ordered if method == "deepedit" else {"structure": 1}, modality=modality,
                     axes="ras" if method == "deepedit" or bundle else "zxy",
                     guidance_sigma=3.0 if method == "deepedit" else 2.0,
                     guidance_order=_guidance_order(method, labels, ["background", *ordered]), intensity=intensity,
                     input_size=[int(v) for v in input_size or []],
                     target_spacing=[float(s) for s in spacing] if spacing else [1.0, 1.0, 1.0],
                     roi_size=list(roi_size or _default_crop(method, bundle)),
                     training={"source": f"imported from {path.name}", "label_values": labels})
    folder = Path(target) if target else user_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(model, card, folder / f"{name}.json")


def _check_fit(spec: dict, state: dict, problem: str) -> None:
    """The weights' names and shapes against the network's, built without memory (on
    PyTorch's meta device: a large network that does not fit is refused at once)."""
    import torch

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_network(spec).state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ModelError(f"{problem} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    wrong = [f"{k}: {tuple(state[k].shape)} for {shape}" for k, shape in expected.items()
             if tuple(state[k].shape) != shape]
    if wrong:
        raise ModelError(f"{problem}: {'; '.join(wrong[:2])}")


def _default_crop(method: str, bundle: bool) -> list[int]:
    """The click crop (z, y, x) on the model grid: MONAI Label's DeepGrow apps' (3-D:
    128 × 192 × 192 of (z, x, y); 2-D: 256 × 256), else 128³."""
    if method == "deepgrow2d":
        return [1, 256, 256]
    return [128, 192, 192] if method == "deepgrow3d" and not bundle else [128, 128, 128]


def _scores_for_classes(state: dict, classes: int) -> dict:
    """A one-channel (sigmoid) output layer as two class scores: background 0, structure
    the old score, so that softmax gives the same probability as the sigmoid did."""
    import torch

    last = [k for k, v in state.items() if v.dim() >= 1 and k.endswith(("weight", "bias"))]
    if not last or classes != 2:
        return state
    weight_key = max((k for k in last if k.endswith("weight")), key=list(state).index)
    bias_key = weight_key[: -len("weight")] + "bias"
    if state[weight_key].shape[0] != 1:
        return state
    state = dict(state)
    weight = state[weight_key]
    state[weight_key] = torch.cat([torch.zeros_like(weight), weight])
    if bias_key in state:
        state[bias_key] = torch.cat([torch.zeros_like(state[bias_key]), state[bias_key]])
    return state
