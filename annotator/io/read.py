"""Open any supported image (NIfTI, NRRD, MHA/MHD, DICOM series folder) as a Volume."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from annotator.errors import GeometryError, InputError
from annotator.io import dicom
from annotator.io.nifti_check import check_nifti_complete
from annotator.io.volume import Source, Volume, volume_from_sitk

#: File name endings read through SimpleITK.
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def is_image_file(path: Path) -> bool:
    """Whether ``path`` has a file-name ending this module reads."""
    return path.name.lower().endswith(IMAGE_SUFFIXES)


def image_stem(path: Path) -> str:
    """File name without its image ending (``case.nii.gz`` -> ``case``)."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _read_sitk(path: Path) -> sitk.Image:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if not is_image_file(path):
        if path.suffix.lower() in (".dcm", ".ima") or path.name.startswith(("CT.", "MR.")):
            raise InputError(f"{path}: a single DICOM file; open the folder that holds its series")
        raise InputError(
            f"{path}: not an image file Annotator reads (supported: {', '.join(IMAGE_SUFFIXES)} "
            "or a folder with a DICOM series)"
        )
    if path.name.lower().endswith((".nii", ".nii.gz")):
        check_nifti_complete(path)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        detail = [line for line in str(exc).splitlines() if line.strip()][-1][:200]
        raise InputError(f"{path}: cannot be read as an image ({detail})") from exc


def check_scalar_3d(image: sitk.Image, where: str) -> None:
    """Refuse 2-D, 4-D and multi-component images with a message saying which they are."""
    dim = image.GetDimension()
    size = "x".join(str(s) for s in image.GetSize())
    if dim == 2 or (dim == 3 and 1 in image.GetSize()[2:]):
        raise GeometryError(f"{where}: a 2-D image ({size}); Annotator needs a 3-D volume")
    if dim != 3:
        raise GeometryError(
            f"{where}: a {dim}-D image ({size}); Annotator needs a single 3-D volume "
            "(split time points or channels into separate files)"
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise GeometryError(
            f"{where}: {image.GetNumberOfComponentsPerPixel()} values per voxel (colour or vector "
            "image); Annotator needs one intensity per voxel"
        )


def _replace_non_finite(volume: Volume, where: str) -> None:
    """NaN/inf voxels become the lowest finite value, with a warning on the volume."""
    array = volume.array
    if array.dtype.kind != "f":
        return
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    if not count:
        return
    if count == array.size:
        raise InputError(f"{where}: every voxel is NaN or infinite")
    fill = float(array[~bad].min())
    array[bad] = fill
    volume.warnings.append(f"{count} NaN/infinite voxels replaced by the lowest value ({fill:.6g})")


def read_volume(path: str | os.PathLike, series: str | int | None = None) -> Volume:
    """Read an image file or a DICOM folder.

    Parameters
    ----------
    path
        A NIfTI/NRRD/MHA file, or a folder holding DICOM series.
    series
        For a folder: SeriesInstanceUID or index in :func:`annotator.io.dicom.scan_folder`'s
        listing; the largest series by default.

    Raises
    ------
    InputError
        With a message naming the file and the problem.
    """
    path = Path(path)
    if path.is_dir():
        volume = dicom.read_series(path, series)
    else:
        image = _read_sitk(path)
        check_scalar_3d(image, str(path))
        volume = volume_from_sitk(image, name=image_stem(path), source=Source(path=str(path)))
    _replace_non_finite(volume, str(path))
    return volume


def read_label(path: str | os.PathLike, image: Volume) -> np.ndarray:
    """Read a label map that must lie on ``image``'s grid; return its integer array.

    The label's geometry must equal the image's within float32 precision (what a NIfTI
    header can hold); values must be non-negative integers.
    """
    path = Path(path)
    label = _read_sitk(path)
    check_scalar_3d(label, str(path))
    other = volume_from_sitk(label)
    return as_label_array(other.array, image, str(path), other)


def as_label_array(array: np.ndarray, image: Volume, where: str, geometry: Volume | None = None) -> np.ndarray:
    """Check a label array against its image and return it as uint8/uint16."""
    if tuple(array.shape) != image.shape:
        raise GeometryError(
            f"{where}: label has {_xyz(array.shape)} voxels but the image has {_xyz(image.shape)}"
        )
    if geometry is not None and not geometry.same_geometry(image, rtol=1e-5):
        raise GeometryError(
            f"{where}: label geometry differs from the image (spacing {geometry.spacing} vs "
            f"{image.spacing}, origin {geometry.origin} vs {image.origin})"
        )
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise InputError(f"{where}: label values must be whole numbers (found fractions or NaN)")
    elif array.dtype.kind not in "uib":
        raise InputError(f"{where}: label values must be integers, not {array.dtype}")
    if array.size and array.min() < 0:
        raise InputError(f"{where}: label values must not be negative (found {array.min()})")
    top = int(array.max()) if array.size else 0
    if top > np.iinfo(np.uint16).max:
        raise InputError(f"{where}: label value {top} is too large (at most 65535)")
    return array.astype(np.uint8 if top <= 255 else np.uint16, copy=False)


def _xyz(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in reversed(shape)) + " (x,y,z)"
