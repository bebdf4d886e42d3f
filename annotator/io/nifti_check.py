"""Check a NIfTI file against its own header before any image library reads it.

SimpleITK reads a ``.nii.gz`` cut short as a volume of mostly zeros, replaces a voxel
size of 0 or NaN by 1 mm, turns NaN voxels into 0 and allocates whatever a header
declares. So the header is parsed here (NIfTI-1 and NIfTI-2, either byte order),
every field the reader relies on is checked, the declared volume is compared with the
memory it may use *before* anything is allocated, and the voxel bytes actually present
are counted (for a ``.gz`` by streaming it through zlib, never trusting its trailer).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.errors import InputError

#: NIfTI datatype code -> (name, bits per voxel, numpy dtype or None)
DATATYPES = {
    2: ("uint8", 8, "u1"), 4: ("int16", 16, "i2"), 8: ("int32", 32, "i4"), 16: ("float32", 32, "f4"),
    32: ("complex64", 64, None), 64: ("float64", 64, "f8"), 128: ("RGB24", 24, None), 256: ("int8", 8, "i1"),
    512: ("uint16", 16, "u2"), 768: ("uint32", 32, "u4"), 1024: ("int64", 64, "i8"), 1280: ("uint64", 64, "u8"),
    1536: ("float128", 128, None), 1792: ("complex128", 128, None), 2048: ("complex256", 256, None),
    2304: ("RGBA32", 32, None),
}


@dataclass(frozen=True)
class NiftiHeader:
    version: int
    endian: str
    shape: tuple[int, ...]  # (x, y, z, ...) as declared
    datatype: int
    bitpix: int
    vox_offset: int
    pixdim: tuple[float, ...]
    scale: tuple[float, float]  # scl_slope, scl_inter (a slope of 0: none)

    @property
    def scaled(self) -> bool:
        """Whether a reader scales the stored values (a slope other than 0 or 1, or an offset)."""
        slope, inter = self.scale
        return not (slope in (0.0, 1.0) and inter == 0.0)

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.bitpix // 8

    @property
    def dtype(self) -> np.dtype | None:
        code = DATATYPES[self.datatype][2]
        return None if code is None else np.dtype(self.endian + code)


def memory_limit() -> int:
    """Bytes a single volume may take: half of this machine's memory, or
    ``ANNOTATOR_MAX_VOLUME_GB`` when set."""
    override = os.environ.get("ANNOTATOR_MAX_VOLUME_GB")
    if override:
        return int(float(override) * 2**30)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def parse_header(raw: bytes, path: Path) -> NiftiHeader:
    """The header's fields, each checked; :class:`InputError` names the first bad one."""
    if len(raw) < 348:
        raise InputError(f"{path}: too short to be a NIfTI file ({len(raw)} bytes; a header alone is 348)")
    for endian in "<>":
        size = struct.unpack(endian + "i", raw[:4])[0]
        if size in (348, 540):
            break
    else:
        raise InputError(f"{path}: not a NIfTI file (its header size field is neither 348 nor 540)")
    if size == 348:
        magic = raw[344:348]
        if magic not in (b"n+1\0", b"ni1\0"):
            raise InputError(f"{path}: not a NIfTI-1 file (magic {magic!r})")
        dims = struct.unpack(endian + "8h", raw[40:56])
        datatype, bitpix = struct.unpack(endian + "2h", raw[70:74])
        pixdim = struct.unpack(endian + "8f", raw[76:108])
        offset = struct.unpack(endian + "f", raw[108:112])[0]
        scale = struct.unpack(endian + "2f", raw[112:120])
        qform, sform = struct.unpack(endian + "2h", raw[252:256])
        quatern = struct.unpack(endian + "6f", raw[256:280])
        srow = struct.unpack(endian + "12f", raw[280:328])
    else:
        if len(raw) < 540:
            raise InputError(f"{path}: too short to be a NIfTI-2 file ({len(raw)} bytes; a header alone is 540)")
        if raw[4:8] not in (b"n+2\0", b"ni2\0"):
            raise InputError(f"{path}: not a NIfTI-2 file (magic {raw[4:12]!r})")
        datatype, bitpix = struct.unpack(endian + "2h", raw[12:16])
        dims = struct.unpack(endian + "8q", raw[16:80])
        pixdim = struct.unpack(endian + "8d", raw[104:168])
        offset = struct.unpack(endian + "q", raw[168:176])[0]
        scale = struct.unpack(endian + "2d", raw[176:192])
        qform, sform = struct.unpack(endian + "2i", raw[344:352])
        quatern = struct.unpack(endian + "6d", raw[352:400])
        srow = struct.unpack(endian + "12d", raw[400:496])
    ndim = dims[0]
    if not 1 <= ndim <= 7:
        raise InputError(f"{path}: corrupt NIfTI header: {ndim} dimensions (1 to 7 allowed)")
    shape = tuple(int(d) for d in dims[1:ndim + 1])
    bad = [(i + 1, d) for i, d in enumerate(shape) if d < 1]
    if bad:
        raise InputError(f"{path}: corrupt NIfTI header: dimension {bad[0][0]} has size {bad[0][1]}")
    if datatype not in DATATYPES:
        raise InputError(f"{path}: corrupt NIfTI header: unknown datatype code {datatype}")
    name, bits, _ = DATATYPES[datatype]
    if bitpix != bits:
        raise InputError(f"{path}: corrupt NIfTI header: datatype {name} has {bits} bits per voxel, "
                         f"the header says {bitpix}")
    if not math.isfinite(offset):
        raise InputError(f"{path}: corrupt NIfTI header: the voxel data offset (vox_offset) is {offset}")
    if offset < size or offset != int(offset):
        raise InputError(f"{path}: corrupt NIfTI header: voxel data would start at byte {offset:g}, "
                         f"inside or before the {size}-byte header")
    for axis in range(min(ndim, 3)):
        spacing = pixdim[axis + 1]
        if not math.isfinite(spacing) or spacing == 0:
            raise InputError(f"{path}: voxel size along axis {axis + 1} (pixdim) is {spacing:g}; "
                             "it must be a finite, non-zero number of mm")
    if qform > 0 and not all(math.isfinite(v) for v in quatern):
        raise InputError(f"{path}: corrupt NIfTI header: the orientation (qform) holds NaN or infinity")
    if sform > 0 and not all(math.isfinite(v) for v in srow):
        raise InputError(f"{path}: corrupt NIfTI header: the orientation (sform) holds NaN or infinity")
    if qform <= 0 and sform > 0 and abs(np.linalg.det(np.reshape(srow, (3, 4))[:, :3])) < 1e-12:
        raise InputError(f"{path}: corrupt NIfTI header: the orientation (sform) is degenerate")
    return NiftiHeader(1 if size == 348 else 2, endian, shape, datatype, bitpix, int(offset),
                       tuple(float(p) for p in pixdim), (float(scale[0]), float(scale[1])))


#: bytes read, and at most decompressed, at a time
PIECE = 1 << 22


def _pieces(path: Path, compressed: bool, start: int):
    """The file's bytes from ``start`` on, in pieces of at most a few MB: of a ``.gz`` its
    decompressed bytes, every gzip member of it (each checked against its CRC and length
    by zlib; zero padding after one skipped, as gzip does). EOFError: a member cut short;
    zlib.error: a damaged one. zlib in large pieces: Python's gzip reader, in small ones,
    took a third more time."""
    with open(path, "rb") as f:
        if not compressed:
            f.seek(start)
            while piece := f.read(PIECE):
                yield piece
            return
        inflater, fresh = zlib.decompressobj(31), True
        while block := f.read(PIECE):
            while block:
                if fresh:
                    block = block.lstrip(b"\0")
                    if not block:
                        break
                    fresh = False
                out = inflater.decompress(block, PIECE)
                block = inflater.unconsumed_tail
                if start:
                    cut = min(start, len(out))
                    out, start = out[cut:], start - cut
                if out:
                    yield out
                if inflater.eof:
                    block = inflater.unused_data
                    inflater, fresh = zlib.decompressobj(31), True
        if not fresh:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")


def check_nifti(path: str | os.PathLike, keep: bool = False) -> tuple[NiftiHeader, bool, np.ndarray | None]:
    """Check ``path`` against its header; returns the header, whether the voxels hold
    NaN or infinity (which SimpleITK would silently turn into 0), and with ``keep`` the
    voxel bytes of a ``.gz`` (decompressed here to count them: read from them, the file is
    not decompressed twice) of at most an eighth of the machine's memory, else None.

    Raises :class:`InputError` for a header that is broken, a declared volume larger
    than :func:`memory_limit`, or fewer voxel bytes than declared.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            header = parse_header(f.read(540), path)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: not a readable NIfTI file ({exc})") from None
    if header.data_bytes > memory_limit():
        raise InputError(
            f"{path}: declares {'x'.join(map(str, header.shape))} voxels of {DATATYPES[header.datatype][0]} "
            f"({header.data_bytes / 2**30:.1f} GB), more than the {memory_limit() / 2**30:.1f} GB one image "
            "may take here")
    expected = header.vox_offset + header.data_bytes
    dtype = header.dtype
    scan_nan = dtype is not None and dtype.kind == "f"
    compressed = path.name.lower().endswith(".gz")
    # kept and then copied into the image: twice the voxels in memory for a moment, so not
    # for a volume that takes more than an eighth of this machine's memory
    kept = None
    if keep and compressed and header.data_bytes <= memory_limit() // 4:
        kept = np.empty(header.data_bytes, np.uint8)
    non_finite = False
    try:
        present = header.vox_offset if compressed else path.stat().st_size
        carry = b""
        for piece in (_pieces(path, compressed, header.vox_offset) if compressed or scan_nan else ()):
            if kept is not None and present - header.vox_offset < header.data_bytes:
                at = present - header.vox_offset
                usable = piece[: header.data_bytes - at]
                kept[at: at + len(usable)] = np.frombuffer(usable, np.uint8)
            if compressed:
                present += len(piece)
            if scan_nan and not non_finite:
                data = carry + piece
                usable = len(data) - len(data) % dtype.itemsize
                non_finite = not np.isfinite(np.frombuffer(data[:usable], dtype)).all()
                carry = data[usable:]
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: file is truncated or damaged ({exc})") from None
    if present < expected:
        raise InputError(f"{path}: file is truncated: {present} bytes of header and voxel data, "
                         f"the header declares {expected}")
    return header, non_finite, kept


def read_raw(path: str | os.PathLike, header: NiftiHeader) -> np.ndarray:
    """The stored voxels as an array in (z, y, x) order (for NaN positions)."""
    with _open(Path(path)) as f:
        f.read(header.vox_offset)
        data = f.read(header.data_bytes)
    return np.frombuffer(data, header.dtype).reshape(tuple(reversed(header.shape)))
