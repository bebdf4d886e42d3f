"""npe2 writer: File > Save Selected Layers on Annotator's label layer (or a label map
shown beside the image) writes it with its image's geometry: NIfTI (``.nii.gz``,
``.nii``), a DICOM SEG (``.dcm``) of the DICOM images the image was read from, each
segment named as the layer names its value, or an RT Structure Set (a name ending in
``rtstruct.dcm``). napari's own writers would save the voxels without spacing or
orientation."""

from __future__ import annotations

import numpy as np

from annotator.errors import InputError
from annotator.io import save_label
from annotator.napari.layers import LABEL_OF_KEY


def write_label(path: str, data, meta: dict) -> list[str]:
    volume = (meta.get("metadata") or {}).get(LABEL_OF_KEY)
    if volume is None:
        raise InputError(f"{meta.get('name', 'this layer')}: not a label of an image Annotator opened (it has no "
                         "image geometry to save it with); save it with napari's own writer")
    names = {}
    features = meta.get("features")
    if features is not None and {"index", "name"} <= set(getattr(features, "columns", ())):
        names = {int(v): str(n) for v, n in zip(features["index"], features["name"]) if int(v) > 0}
    save_label(path, np.asarray(data), volume, names)
    return [path]
