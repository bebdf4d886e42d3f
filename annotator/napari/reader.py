"""npe2 reader: NIfTI, NRRD, MHA files, DICOM folders and files (a multi-frame image, or a
slice: its series), with spacing and orientation."""

from __future__ import annotations

from pathlib import Path

from annotator.datastore.places import Kind, classify, find_images
from annotator.io import read_volume
from annotator.napari.layers import image_layer_data


def get_reader(path):
    """The reader for ``path``, or None when it is not ours."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    kind = classify(path)
    if kind in (Kind.IMAGE_FILE, Kind.DICOM_SERIES):
        return read_layers
    if kind == Kind.FOLDER and any(p.is_dir() for p in find_images(path).values()):
        return read_layers  # a study folder: its series below (the largest opens)
    return None


def read_layers(path) -> list[tuple]:
    """Layer data for one image (errors carry the core's message naming the problem)."""
    if isinstance(path, list):
        path = path[0]
    return [image_layer_data(read_volume(path))]
