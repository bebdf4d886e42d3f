"""A reference click pipeline in the manner of MONAI Label's radiology sample apps.

Rebuilt from MONAI transforms and networks for ``annotator bench click``: on every click
it loads the image from disk, re-runs all pre-transforms (orientation, spacing or
resize, guidance signals), runs the sample app's network at its input size, restores
the prediction to the image grid and writes it to disk — the work a server does per
request when it keeps nothing between clicks.

DeepGrow 3D: RAS orientation, 1 mm spacing, a crop around the clicks resized to
128×192×192, CT intensities normalised (−208 HU mean, 388 spread), Gaussian guidance,
BasicUNet (features 32…512), sigmoid. DeepEdit: RAS, the whole volume resized to 128³,
CT window −175…250 HU, one guidance channel per label, residual DynUNet, softmax.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai import transforms as mt
from monai.data import MetaTensor, NibabelWriter
from monai.apps.deepedit.transforms import AddGuidanceSignalDeepEditd
from monai.apps.deepgrow.transforms import AddGuidanceSignald, SpatialCropGuidanced

from annotator.models.networks import architecture, build_network

DEEPGROW_SIZE = (128, 192, 192)
DEEPEDIT_SIZE = (128, 128, 128)
LABELS = {"background": 0, "liver": 1, "spleen": 2}


def network(method: str) -> torch.nn.Module:
    """The sample app's network (DeepGrow: one sigmoid output, as the sample app has)."""
    spec = architecture(method, len(LABELS) - 1, variant="sample-app")
    if method == "deepgrow3d":
        spec["out_channels"] = 1
    return build_network(spec).eval()


def _points_in(points_xyz: list, before, after) -> list[list[int]]:
    """ITK voxel indices (x, y, z) on the file's grid -> voxel indices of the transformed image."""
    src = np.asarray(before.affine, float)
    dst = np.linalg.inv(np.asarray(after.affine, float))
    out = []
    for p in points_xyz:
        world = src @ np.array([*p, 1.0])
        out.append([int(round(v)) for v in (dst @ world)[:3]])
    return out


def _load(path: Path):
    return mt.Compose([mt.LoadImaged("image", reader="NibabelReader"), mt.EnsureChannelFirstd("image")])(
        {"image": str(path)})


def _restore(pred: np.ndarray, grid, original, out: Path) -> None:
    """A label on ``grid`` (a MetaTensor's geometry) back onto the original image grid, written."""
    on_grid = mt.SpatialResample(mode="nearest")(
        MetaTensor(torch.as_tensor(pred[None], dtype=torch.float32), affine=grid.affine),
        dst_affine=original.affine, spatial_size=original.shape[1:])
    writer = NibabelWriter(output_dtype=np.uint8)
    writer.set_data_array(on_grid[0].to(torch.uint8), channel_dim=None)
    writer.set_metadata({"affine": original.affine, "original_affine": original.affine}, resample=False)
    writer.write(str(out))


def deepgrow3d_click(path: Path, fg_xyz: list, bg_xyz: list, net: torch.nn.Module, out: Path,
                     size=DEEPGROW_SIZE) -> None:
    data = _load(path)
    original = data["image"]
    data = mt.Compose([mt.Orientationd("image", axcodes="RAS"),
                       mt.Spacingd("image", pixdim=(1.0, 1.0, 1.0), mode="bilinear")])(data)
    oriented = data["image"]
    data["guidance"] = [_points_in(fg_xyz, original, oriented), _points_in(bg_xyz, original, oriented)]
    data["image_meta_dict"] = {}
    data = SpatialCropGuidanced(keys="image", guidance="guidance", spatial_size=list(size))(data)
    cropped = data["image"].shape[1:]
    start = data["image_meta_dict"]["foreground_start_coord"]
    data = mt.Resized("image", spatial_size=list(size), mode="area")(data)
    factor = np.array(size) / np.array(cropped)
    data["guidance"] = [[list(np.array(p) * factor) for p in g] for g in data["guidance"]]
    data = mt.NormalizeIntensityd("image", subtrahend=208.0, divisor=388.0)(data)
    data["image"] = torch.as_tensor(np.asarray(data["image"]), dtype=torch.float32)
    data = AddGuidanceSignald(image="image", guidance="guidance")(data)
    with torch.inference_mode():
        prob = torch.sigmoid(net(torch.as_tensor(np.asarray(data["image"]))[None].float()))
    back = torch.nn.functional.interpolate((prob > 0.5).float(), size=tuple(cropped), mode="nearest")[0, 0]
    full = np.zeros(oriented.shape[1:], np.uint8)
    full[tuple(slice(int(a), int(a) + n) for a, n in zip(start, cropped))] = back.numpy().astype(np.uint8)
    _restore(full, oriented, original, out)


def deepedit_click(path: Path, clicks_xyz: dict[str, list], net: torch.nn.Module, out: Path,
                   size=DEEPEDIT_SIZE) -> None:
    data = _load(path)
    original = data["image"]
    data = mt.Compose([mt.Orientationd("image", axcodes="RAS"),
                       mt.ScaleIntensityRanged("image", a_min=-175, a_max=250, b_min=0.0, b_max=1.0, clip=True)])(data)
    oriented = data["image"]
    factor = np.array(size) / np.array(oriented.shape[1:])
    data = mt.Resized("image", spatial_size=list(size), mode="area")(data)
    data["guidance"] = {name: [list(np.array(p) * factor) for p in _points_in(clicks_xyz.get(name, []), original, oriented)]
                        or [[-1, -1, -1]] for name in LABELS}
    data["image"] = np.asarray(data["image"], dtype=np.float32)
    data = AddGuidanceSignalDeepEditd(keys="image", guidance="guidance")(data)
    with torch.inference_mode():
        classes = net(torch.as_tensor(data["image"])[None]).argmax(dim=1, keepdim=True).float()
    back = torch.nn.functional.interpolate(classes, size=tuple(oriented.shape[1:]), mode="nearest")[0, 0]
    _restore(back.numpy().astype(np.uint8), oriented, original, out)
