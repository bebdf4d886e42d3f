"""What a file is, from its name or first bytes (cheap: no image library is imported)."""

from __future__ import annotations

from pathlib import Path

#: File name endings read through SimpleITK.
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def is_image_file(path: Path) -> bool:
    """Whether ``path`` has a file-name ending this module reads."""
    return path.name.lower().endswith(IMAGE_SUFFIXES)


def is_dicomdir(path: Path) -> bool:
    """Whether ``path`` is the DICOMDIR of a CD or USB export: an index, no image; the
    series it lists lie in the folders below it."""
    return path.name.upper() == "DICOMDIR"


def image_stem(path: Path) -> str:
    """File name without its image ending (``case.nii.gz`` -> ``case``)."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def looks_like_dicom(path: Path) -> bool:
    """Whether ``path`` starts like a DICOM Part 10 file (cheap: reads 4 bytes)."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False
