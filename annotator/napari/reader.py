"""npe2 reader: NIfTI, NRRD, MHA files and DICOM folders, with spacing and orientation."""

from __future__ import annotations

from pathlib import Path

from annotator.io import read_volume
from annotator.io.dicom import holds_dicom
from annotator.io.read import is_image_file
from annotator.napari.layers import image_layer_data


def get_reader(path):
    """The reader for ``path``, or None when it is not ours."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if (path.is_file() and is_image_file(path)) or (path.is_dir() and holds_dicom(path, recursive=True, limit=200)):
        return read_layers
    return None


def read_layers(path) -> list[tuple]:
    """Layer data for one image (errors carry the core's message naming the problem)."""
    if isinstance(path, list):
        path = path[0]
    return [image_layer_data(read_volume(path))]
