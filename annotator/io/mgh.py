"""FreeSurfer's MGH format (``.mgz``, gzipped; ``.mgh``), which SimpleITK does not read:
read with nibabel and handed on as SimpleITK images, so that every reader of image files
here takes it (a brain's ``T1.mgz`` as an image, its ``aseg.mgz`` as a label map).

nibabel gives voxel indices (i, j, k) and a voxel-to-RAS matrix; SimpleITK holds the same
grid in LPS (x and y negated). A file of several frames is 4-D, as a NIfTI of several
volumes is."""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

#: the endings of MGH files
MGH_SUFFIXES = (".mgz", ".mgh")

_LPS = np.diag([-1.0, -1.0, 1.0])


def is_mgh(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(MGH_SUFFIXES)


def _file_bytes(path: Path, count: int = -1) -> bytes:
    """The first ``count`` bytes of the file (all with -1), decompressed where it is gzipped
    (an ``.mgz``; gzip's magic bytes decide, not the name)."""
    with open(path, "rb") as file:
        gzipped = file.read(2) == b"\x1f\x8b"
    with (gzip.open if gzipped else open)(path, "rb") as file:
        return file.read(count)


def _header(block: bytes):
    """nibabel's header of an MGH file from its first bytes (its scan parameters, which
    follow the voxels, left out); RuntimeError naming what is wrong."""
    from nibabel.freesurfer.mghformat import MGHHeader, header_dtype

    if len(block) < header_dtype.itemsize:
        raise RuntimeError("not a readable MGH file (shorter than its header)")
    try:
        header = MGHHeader(block[: header_dtype.itemsize])
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on foreign files
        raise RuntimeError(f"not a readable MGH file ({str(exc).strip()[:160] or type(exc).__name__})") from None
    try:
        header.get_data_dtype()
    except KeyError:
        raise RuntimeError(f"not a readable MGH file (unknown voxel type {int(header['type'])})") from None
    size = [int(n) for n in header.get_data_shape()]
    if not all(n > 0 for n in size):
        raise RuntimeError(f"not a readable MGH file (size {' x '.join(map(str, size))})")
    return header


def load_mgh(path: Path):
    """nibabel's image of an MGH file, its voxels in memory (a gzipped file decompressed
    once: nibabel's own loading reads it twice, for the scan parameters after the voxels
    and again for the voxels); RuntimeError naming what is wrong."""
    from nibabel.freesurfer.mghformat import MGHImage

    try:
        data = _file_bytes(Path(path))
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or damaged gzip stream
        raise RuntimeError(f"not a readable MGH file ({str(exc).strip()[:160] or type(exc).__name__})") from None
    _header(data)
    try:
        return MGHImage.from_bytes(data)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on damaged files
        raise RuntimeError(f"not a readable MGH file ({str(exc).strip()[:160] or type(exc).__name__})") from None


def _geometry(affine: np.ndarray) -> tuple[tuple, tuple, tuple]:
    """(spacing, origin, direction) in LPS of a voxel-to-RAS matrix."""
    linear = _LPS @ affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    direction = linear / np.where(spacing > 0, spacing, 1)
    return (tuple(float(s) for s in spacing), tuple(float(v) for v in _LPS @ affine[:3, 3]),
            tuple(float(v) for v in direction.ravel()))


@dataclass
class Information:
    """What a SimpleITK ``ImageFileReader`` tells after ``ReadImageInformation``, for an MGH
    file (the getters the readers here ask)."""
    size: tuple
    spacing: tuple
    origin: tuple
    direction: tuple
    pixel_id: int

    def GetSize(self):  # noqa: N802 - SimpleITK's names
        return self.size

    def GetDimension(self):  # noqa: N802
        return len(self.size)

    def GetSpacing(self):  # noqa: N802
        return self.spacing + (1.0,) * (len(self.size) - 3)

    def GetOrigin(self):  # noqa: N802
        return self.origin + (0.0,) * (len(self.size) - 3)

    def GetDirection(self):  # noqa: N802
        if len(self.size) == 3:
            return self.direction
        matrix = np.eye(len(self.size))
        matrix[:3, :3] = np.reshape(self.direction, (3, 3))
        return tuple(float(v) for v in matrix.ravel())

    def GetPixelID(self):  # noqa: N802
        return self.pixel_id

    def GetNumberOfComponents(self):  # noqa: N802
        return 1

    def GetMetaDataKeys(self):  # noqa: N802
        return ()


def _frames(shape: tuple) -> tuple:
    """The shape of the grid: a single frame's last axis dropped."""
    return shape[:3] if len(shape) == 4 and shape[3] == 1 else shape


def information(path: str | os.PathLike) -> Information:
    """The grid and pixel type of an MGH file from its header, reading only that
    (RuntimeError: unreadable)."""
    try:
        block = _file_bytes(Path(path), 512)
    except (OSError, EOFError, zlib.error) as exc:
        raise RuntimeError(f"not a readable MGH file ({str(exc).strip()[:160] or type(exc).__name__})") from None
    header = _header(block)
    spacing, origin, direction = _geometry(header.get_affine())
    pixel = sitk.GetImageFromArray(np.zeros((1, 1, 1), header.get_data_dtype().newbyteorder("="))).GetPixelID()
    return Information(tuple(int(n) for n in _frames(header.get_data_shape())), spacing, origin, direction, pixel)


def read_mgh(path: str | os.PathLike) -> sitk.Image:
    """The MGH file as a SimpleITK image (RuntimeError: unreadable)."""
    image = load_mgh(Path(path))
    try:
        voxels = np.asanyarray(image.dataobj)
    except Exception as exc:  # noqa: BLE001 - a truncated file fails here
        raise RuntimeError(f"its voxels cannot be read ({str(exc).strip()[:160] or type(exc).__name__})") from None
    voxels = voxels.reshape(_frames(voxels.shape))
    voxels = voxels.astype(voxels.dtype.newbyteorder("="), copy=False)  # MGH is big-endian
    spacing, origin, direction = _geometry(image.affine)
    if voxels.ndim == 4:  # frames: a 4-D image, as a NIfTI of several volumes
        frames = [_placed(np.ascontiguousarray(voxels[..., t].transpose(2, 1, 0)), spacing, origin, direction)
                  for t in range(voxels.shape[3])]
        return sitk.JoinSeries(frames)
    return _placed(np.ascontiguousarray(voxels.transpose(2, 1, 0)), spacing, origin, direction)


def _placed(array: np.ndarray, spacing, origin, direction) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image
