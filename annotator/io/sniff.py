"""What a file is, from its name or first bytes (cheap: no image library is imported)."""

from __future__ import annotations

from pathlib import Path

#: File name endings read through SimpleITK.
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".mgz", ".mgh")


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
    """Whether ``path`` starts like a DICOM file (cheap: reads 256 bytes): a Part 10 file
    (128-byte preamble, then "DICM"), or a bare data set as older scanners and archives
    wrote them (:func:`starts_with_dataset`)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return False
    return head[128:132] == b"DICM" or starts_with_dataset(head)


#: the value representations of explicit-VR encoding, and those whose length takes 4 bytes
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split())
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())


def starts_with_dataset(head: bytes) -> bool:
    """Whether ``head``, a file's first bytes (256 of them), is the start of a DICOM data
    set with no preamble: two little-endian elements of the file meta (group 0002) or
    identifying (group 0008) group in ascending order, in explicit VR (two known letters)
    or implicit VR. Two elements, not one: the voxels of a raw image file can start like one."""
    def element(at: int) -> tuple[int, int, int] | None:
        """(group, element, where the next one starts) of the element at ``at``."""
        if at + 8 > len(head):
            return None
        group, number = int.from_bytes(head[at:at + 2], "little"), int.from_bytes(head[at + 2:at + 4], "little")
        vr = head[at + 4:at + 6]
        if vr in _LONG_VRS:
            length, start = int.from_bytes(head[at + 8:at + 12], "little"), at + 12
        elif vr in _VRS:
            length, start = int.from_bytes(head[at + 6:at + 8], "little"), at + 8
        else:
            length, start = int.from_bytes(head[at + 4:at + 8], "little"), at + 8
        return group, number, start + length

    first = element(0)
    if first is None or first[0] not in (0x0002, 0x0008) or first[1] > 0x0100:
        return False
    second = element(first[2])
    return second is not None and second[0] == first[0] and first[1] < second[1] <= 0x1000
