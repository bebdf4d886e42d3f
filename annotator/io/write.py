"""Write label maps as NIfTI on their image's grid, atomically; or, where a person asks
for it, as a segmentation NRRD (3D Slicer's ``.seg.nrrd``, its segments named) or a DICOM
SEG of the series the image was read from. Images as NIfTI (an export)."""

from __future__ import annotations

import errno
import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from annotator.errors import InputError
from annotator.io.atomic import atomic_path
from annotator.io.read import as_label_array
from annotator.io.volume import Volume


def write_label(path: str | os.PathLike, label: np.ndarray, image: Volume,
                names: dict[int, str] | None = None) -> Path:
    """Write ``label`` (array shaped like ``image.array``) with ``image``'s geometry, its
    values named by ``names`` (value -> name) in a label table in the header, as
    TotalSegmentator writes one (:func:`annotator.io.label_names.add_nifti_label_table`).

    The file appears complete or not at all (temp file, fsync, rename). Returns the path.
    """
    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"{path}: labels are written as NIfTI (.nii.gz or .nii)")
    return _write_nifti(path, np.asarray(as_label_array(np.asarray(label), image, str(path), file=False)), image, names)


def write_volume(path: str | os.PathLike, volume: Volume) -> Path:
    """Write the image ``volume`` as NIfTI with its geometry, atomically (as :func:`write_label`)."""
    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"{path}: images are written as NIfTI (.nii.gz or .nii)")
    return _write_nifti(path, volume.array, volume)


def _write_nifti(path: Path, array: np.ndarray, geometry: Volume, names: dict[int, str] | None = None) -> Path:
    def finish(tmp: Path) -> None:
        if names:
            from annotator.io.label_names import add_nifti_label_table

            add_nifti_label_table(tmp, names)
        verify_written(tmp, array)

    return _write_sitk(path, geometry.to_sitk(array), finish)


def _write_sitk(path: Path, written: sitk.Image, check) -> Path:
    """``written`` to ``path`` atomically, compressed; ``check(tmp)`` raises ``OSError``
    unless the file written holds it all (SimpleITK reports no full disk)."""
    with atomic_path(path) as tmp:
        try:
            sitk.WriteImage(written, str(tmp), useCompression=True)
            check(tmp)
        except RuntimeError as exc:  # SimpleITK's word for any write or read failure
            raise OSError(errno.EIO, str(exc).strip().splitlines()[-1]) from None
    return path


#: how the name of a file to be written as an RT Structure Set ends
STRUCTURE_SET_ENDING = "rtstruct.dcm"


def save_label(path: str | os.PathLike, label: np.ndarray, image: Volume, names: dict[int, str] | None = None,
               algorithm: str | None = None) -> Path:
    """Write ``label`` as its file name says: NIfTI (``.nii.gz``, ``.nii``), a DICOM RT
    Structure Set (a name ending in ``rtstruct.dcm``: ``case.rtstruct.dcm``,
    ``case_rtstruct.dcm``), or a DICOM SEG (any other ``.dcm``) of the DICOM images
    ``image`` was read from, its segments or structures named by ``names`` (value -> name;
    "label N" otherwise) and made with ``algorithm`` (None: a person's work)."""
    path = Path(path)
    if path.name.lower().endswith(".dcm"):
        from annotator.io.atomic import atomic_write_bytes
        from annotator.io.rtstruct import series_rtstruct
        from annotator.io.seg import series_seg

        kind = series_rtstruct if path.name.lower().endswith(STRUCTURE_SET_ENDING) else series_seg
        _, data = kind(np.asarray(label), image, names or {}, algorithm=algorithm)
        atomic_write_bytes(path, data)
        return path
    if path.name.lower().endswith(".nrrd"):
        return _write_segmentation_nrrd(path, np.asarray(as_label_array(np.asarray(label), image, str(path), file=False)),
                                        image, names or {})
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"{path}: a label is saved as NIfTI (.nii.gz, .nii), as a segmentation NRRD (.seg.nrrd, "
                         ".nrrd), as a DICOM SEG (.dcm) or as an RT Structure Set (.rtstruct.dcm)")
    return write_label(path, label, image, names)


def _write_segmentation_nrrd(path: Path, label: np.ndarray, image: Volume, names: dict[int, str]) -> Path:
    """A label map in NRRD with 3D Slicer's segmentation fields: each value a segment of
    layer 0, named (``names``, else "label N"), coloured and with its extent, so that
    Slicer opens it as a segmentation and this app reads its names back."""
    from scipy.ndimage import find_objects

    from annotator.annotation.labels import palette_rgb  # here: the annotation package imports this one

    written = image.to_sitk(label)
    boxes = find_objects(label)  # each value's box, in one pass over the label
    for i, value in enumerate(v for v, box in enumerate(boxes, start=1) if box is not None):
        box = boxes[value - 1]
        extent = " ".join(f"{box[axis].start} {box[axis].stop - 1}" for axis in (2, 1, 0))  # x, y, z
        for key, text in (("ID", f"Segment_{value}"), ("Name", str(names.get(value, f"label {value}"))),
                          ("LabelValue", str(value)), ("Layer", "0"), ("Extent", extent),
                          ("Color", " ".join(f"{c:.4f}" for c in palette_rgb(value)))):  # as the app shows it
            written.SetMetaData(f"Segment{i}_{key}", text)
    written.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    written.SetMetaData("Segmentation_ContainedRepresentationNames", "Binary labelmap|")
    written.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")

    def check(tmp: Path) -> None:  # the voxels read back
        if sitk.ReadImage(str(tmp)).GetSize() != written.GetSize():
            raise OSError(errno.EIO, "the written file is incomplete")

    return _write_sitk(path, written, check)


def verify_written(path: Path, array: np.ndarray) -> None:
    """Raise ``OSError`` unless ``path`` holds all of ``array``'s voxels.

    SimpleITK does not report a full disk: a short file would otherwise be renamed over
    the previous version. Reading the file back costs a decompression of the label.
    """
    try:
        with gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb") as f:
            total = 0
            while chunk := f.read(1 << 22):
                total += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise OSError(errno.EIO, f"the written file is incomplete ({exc})") from None
    if total < array.nbytes + 348:  # the NIfTI header, then the voxels
        raise OSError(errno.ENOSPC, f"only {total} bytes were written for {array.nbytes} bytes of voxels")
