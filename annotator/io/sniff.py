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
    """Whether ``path`` starts like a DICOM file (cheap: reads 132 bytes): a Part 10 file
    (128-byte preamble, then "DICM"), or a bare data set as older scanners and archives
    wrote them (:func:`starts_with_dataset`)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or starts_with_dataset(head)


#: the value representations of explicit-VR encoding
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split())


def starts_with_dataset(head: bytes) -> bool:
    """Whether ``head``, a file's first bytes, is the start of a DICOM data set with no
    preamble: a little-endian element of the file meta (group 0002) or identifying
    (group 0008) group, in explicit VR (two known letters) or implicit VR (a length that
    fits in the file's first megabytes)."""
    if len(head) < 8:
        return False
    group = int.from_bytes(head[0:2], "little")
    element = int.from_bytes(head[2:4], "little")
    if group not in (0x0002, 0x0008) or element > 0x0100:
        return False
    return head[4:6] in _VRS or int.from_bytes(head[4:8], "little") < (1 << 22)
