"""Write label maps as NIfTI on their image's grid, atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from annotator.errors import InputError
from annotator.io.atomic import atomic_path
from annotator.io.read import as_label_array
from annotator.io.volume import Volume


def write_label(path: str | os.PathLike, label: np.ndarray, image: Volume) -> Path:
    """Write ``label`` (array shaped like ``image.array``) with ``image``'s geometry.

    The file appears complete or not at all (temp file, fsync, rename). Returns the path.
    """
    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"{path}: labels are written as NIfTI (.nii.gz or .nii)")
    array = as_label_array(np.asarray(label), image, str(path))
    with atomic_path(path) as tmp:
        sitk.WriteImage(image.to_sitk(array), str(tmp), useCompression=True)
    return path
