"""A label of an image read from a file of any kind the app takes labels from: a DICOM
SEG or RT Structure Set made for the image's series, or a label map (NIfTI, NRRD, MHA,
MGZ) on its grid (:func:`annotator.io.read.read_label`); with the names the file, or a
table beside it, gives its values (:func:`annotator.io.label_names.label_names_in`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from annotator.errors import AnnotatorError, InputError, detail
from annotator.io.label_names import label_names_in
from annotator.io.read import read_label
from annotator.io.sniff import looks_like_dicom
from annotator.io.volume import Volume


def read_label_file(path: str | os.PathLike, image: Volume,
                    known: dict[str, int] | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """(label on ``image``'s grid, lower-case name -> value of what the file names).

    A SEG's segments, or an RT Structure Set's structures (its closed outlines filled on
    the slices they lie on; what cannot be placed goes to ``image.warnings``), take the
    values ``known`` (name -> value) gives their names, else their own numbers."""
    path = Path(path)
    if not looks_like_dicom(path):
        return read_label(path, image), label_names_in(path)
    from annotator.io.dicom import read_dataset
    from annotator.io.rtstruct import rtstruct_to_label
    from annotator.io.seg import seg_to_label

    try:
        ds = read_dataset(path)
        if ds.get("Modality") == "RTSTRUCT":
            label, names, left_out = rtstruct_to_label(ds, image, known=known)
            image.warnings.extend(f"{path.name}: {why}" for why in left_out)
        elif ds.get("Modality") == "SEG":
            label, names = seg_to_label(ds, image, known=known)
        else:
            raise InputError(f"{path}: a DICOM {ds.get('Modality') or 'file'}, not a label (a DICOM SEG or "
                             "RT Structure Set is)")
    except AnnotatorError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom and highdicom raise many types on damaged files
        raise InputError(f"{path}: cannot be read as a label of {image.name} ({detail(exc, 200)})") from None
    return label, {str(name).lower(): int(value) for value, name in names.items()}
