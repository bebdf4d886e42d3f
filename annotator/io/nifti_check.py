"""Detect truncated NIfTI files, which SimpleITK reads without complaint.

SimpleITK 2.5 returns a mostly-zero volume for a ``.nii.gz`` cut short, so the
reader checks the file against what its own header promises before trusting it.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from annotator.errors import InputError

_HEADER_BYTES = 540  # large enough for NIfTI-1 (348) and NIfTI-2 (540)


def _expected_bytes(header: bytes, path: Path) -> int:
    """Header size + voxel data size, as the header declares them."""
    for endian in "<>":
        size = struct.unpack(endian + "i", header[:4])[0]
        if size == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if size == 540:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = struct.unpack(endian + "q", header[168:176])[0]
            break
    else:
        raise InputError(f"{path}: not a NIfTI file (unknown header size)")
    ndim = dims[0]
    if not 1 <= ndim <= 7:
        raise InputError(f"{path}: corrupt NIfTI header (dimension count {ndim})")
    voxels = 1
    for d in dims[1 : ndim + 1]:
        voxels *= max(int(d), 1)
    return max(offset, size) + voxels * bitpix // 8


def check_nifti_complete(path: Path) -> None:
    """Raise :class:`InputError` when a NIfTI file holds fewer bytes than its header declares."""
    path = Path(path)
    if path.name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as f:
                header = f.read(_HEADER_BYTES)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{path}: not a readable gzip file ({exc})") from exc
        expected = _expected_bytes(header, path)
        # The gzip trailer stores the uncompressed size modulo 2**32: a cheap check first,
        # and a full decompression only when it disagrees (multi-member files, damage).
        with open(path, "rb") as f:
            f.seek(-4, 2)
            trailer = struct.unpack("<I", f.read(4))[0]
        if trailer == expected % 2**32:
            return
        try:
            with gzip.open(path, "rb") as f:
                actual = 0
                while chunk := f.read(1 << 22):
                    actual += len(chunk)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError(f"{path}: file is truncated or damaged ({exc})") from exc
    else:
        with open(path, "rb") as f:
            header = f.read(_HEADER_BYTES)
        expected = _expected_bytes(header, path)
        actual = path.stat().st_size
    if actual < expected:
        raise InputError(
            f"{path}: file is truncated: {actual} bytes of voxel data and header, "
            f"the header declares {expected}"
        )
