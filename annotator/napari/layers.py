"""Volumes as napari layers: geometry, names, colours.

All Annotator layers of one image share the image's affine, so a layer's data
coordinates are voxel indices ``(z, y, x)`` of the volume, and what napari shows is in
patient millimetres (LPS) with the right spacing and orientation.
"""

from __future__ import annotations

import numpy as np
from napari.utils.colormaps import DirectLabelColormap

from annotator.io.volume import Volume
from annotator.settings import LabelPreset

IMAGE, SEGMENTATION, FOREGROUND, BACKGROUND, SCRIBBLES = (
    "image", "segmentation", "foreground clicks", "background clicks", "scribbles")
#: Metadata key under which an image layer carries its Volume.
VOLUME_KEY = "annotator_volume"


def affine(volume: Volume) -> np.ndarray:
    """4x4 affine from array index ``(z, y, x)`` to patient coordinates in the same order."""
    direction = np.reshape(volume.direction, (3, 3))[::-1, ::-1]  # ITK (x,y,z) -> array order
    matrix = np.eye(4)
    matrix[:3, :3] = direction @ np.diag(volume.array_spacing)
    matrix[:3, 3] = volume.origin[::-1]
    return matrix


def image_layer_data(volume: Volume) -> tuple:
    """A napari LayerData tuple for the image, carrying the Volume in its metadata."""
    finite = volume.array[::4, ::4, ::4]
    lo, hi = np.percentile(finite, [0.5, 99.5]) if finite.size else (0, 1)
    if hi <= lo:
        hi = lo + 1
    return (volume.array, {"name": volume.name or IMAGE, "affine": affine(volume),
                           "contrast_limits": (float(lo), float(hi)),
                           "metadata": {VOLUME_KEY: volume}}, "image")


def label_colormap(presets: list[LabelPreset]) -> DirectLabelColormap:
    colors = {None: "transparent", 0: "transparent"}
    colors.update({p.value: p.color for p in presets})
    return DirectLabelColormap(color_dict=colors)


def scribble_colormap() -> DirectLabelColormap:
    return DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", 1: "#00e000",
                                           2: "#ff00ff"})
