"""Multi-frame DICOM images (Enhanced CT/MR, Legacy Converted Enhanced): one file holding
every slice of a series, its geometry in per-frame functional groups.

highdicom reads one as a volume and checks that its frames form one regular grid. Its
slices are ordered along the slice normal as a series' are, and the volume's source
records the frame number of each, so that a SEG written on it refers to the right frames.

One file may hold several volumes: the echoes, time points or b-values of an acquisition,
at the same slice positions again (scanners that write enhanced images store them so),
or stacks in several planes (a three-plane localizer). :func:`stacks` tells them apart
by the first per-frame value that splits the frames into volumes of distinct positions
in one plane each (:data:`FRAME_TAGS`), else by their planes, else by the file's
dimension indices other than the slice position; each is then read as an image of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom.multival import MultiValue

from annotator.errors import GeometryError, InputError, detail
from annotator.io.dicom import (_in_order, _window, frame_count, header_window, plane_name, read_dataset,
                                smallest_type)
from annotator.io.volume import Source, Volume

#: per-frame values that tell apart the volumes of one multi-frame image (the first that
#: does is used): (functional group sequence, attribute, what people call it)
FRAME_TAGS = (
    ("FrameContentSequence", "TemporalPositionIndex", "time point"),
    ("MREchoSequence", "EffectiveEchoTime", "TE"),
    ("MRDiffusionSequence", "DiffusionBValue", "b"),
    ("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime", "trigger time"),
    ("MRModifierSequence", "InversionTimes", "TI"),
    ("FrameContentSequence", "StackID", "stack"),
    ("FrameContentSequence", "FrameAcquisitionNumber", "acquisition"),
)
#: dimensions that say where a frame lies in its volume, not which volume it is
_PLACE_POINTERS = {0x00209057, 0x00200032}  # InStackPositionNumber, ImagePositionPatient


def _functional(ds, frame_group, sequence: str, keyword: str):
    """``keyword`` of ``sequence`` in a frame's functional group, else in the shared group."""
    for group in (frame_group, *ds.get("SharedFunctionalGroupsSequence", [])):
        if group is not None and sequence in group and len(group[sequence].value) and keyword in group[sequence].value[0]:
            return group[sequence].value[0].get(keyword)
    return None


def frame_order(ds, where: str = "") -> tuple[np.ndarray, list[int]]:
    """(positions of the frames in patient space (frames, 3), the frame numbers (from 1) in
    the order of a volume's slices: along the slice normal) of a multi-frame image."""
    count = frame_count(ds)
    groups = list(ds.get("PerFrameFunctionalGroupsSequence", []))
    if len(groups) != count:
        raise GeometryError(f"{where}: {count} frames but {len(groups)} per-frame functional groups")
    positions, orientation = [], None
    for number, group in enumerate(groups, start=1):
        position = _functional(ds, group, "PlanePositionSequence", "ImagePositionPatient")
        iop = _functional(ds, group, "PlaneOrientationSequence", "ImageOrientationPatient")
        if position is None or iop is None:
            raise GeometryError(f"{where}: frame {number} has no position or orientation in patient space "
                                "(a multi-frame image that is not a volume)")
        positions.append([float(v) for v in position])
        orientation = np.asarray([float(v) for v in iop], float) if orientation is None else orientation
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.asarray(positions, float)
    return positions, [int(i) + 1 for i in np.argsort(positions @ normal, kind="stable")]


def _shown(value) -> str:
    """A header value as a part's name shows it: numbers without trailing zeros."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(_shown(v) for v in value)
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value).strip()


def stacks(ds) -> list[tuple[str, tuple[int, ...]]]:
    """The volumes of a multi-frame image whose frames repeat their positions or lie in
    planes of several orientations, as (name, frame numbers from 1) in the order of the
    value that tells them apart ("TE 20", "time point 3", "axial", else "volume 2");
    empty when its frames are one volume, or when nothing tells its volumes apart
    (reading it then says what is wrong)."""
    groups = list(ds.get("PerFrameFunctionalGroupsSequence", []))
    places, planes = [], []
    for group in groups:
        position = _functional(ds, group, "PlanePositionSequence", "ImagePositionPatient")
        orientation = _functional(ds, group, "PlaneOrientationSequence", "ImageOrientationPatient")
        try:
            places.append(tuple(np.round([float(v) for v in position], 2)))
            planes.append(tuple(np.round([float(v) for v in orientation], 4)))
        except (TypeError, ValueError):
            return []
    if len(groups) < 2 or len(groups) != frame_count(ds) or (len(set(places)) == len(places) and len(set(planes)) == 1):
        return []

    def split(key, word: str, numbered: bool = False) -> list[tuple[str, tuple[int, ...]]]:
        """The frames by ``key``, when each part is two or more frames at distinct places
        in one orientation."""
        parts: dict = {}
        for number, group in enumerate(groups, start=1):
            parts.setdefault(key(number, group), []).append(number)
        if len(parts) < 2 or not all(len(f) > 1 and len({places[i - 1] for i in f}) == len(f)
                                     and len({planes[i - 1] for i in f}) == 1 for f in parts.values()):
            return []
        order = sorted(parts, key=(lambda v: v) if numbered else _in_order)
        return [(f"{word} {i if numbered else value}".strip(), tuple(parts[value]))
                for i, value in enumerate(order, start=1)]

    for sequence, keyword, word in FRAME_TAGS:
        found = split(lambda _, g, s=sequence, k=keyword: _shown(_functional(ds, g, s, k)), word)
        if found:
            return found
    named = {plane_name(p) for p in set(planes)}
    if len(named) == len(set(planes)):  # one plane each: by its name
        found = split(lambda number, _: plane_name(planes[number - 1]), "")
        if found:
            return found
    pointers = [int(item.get("DimensionIndexPointer", 0)) for item in ds.get("DimensionIndexSequence", [])]
    which = [i for i, pointer in enumerate(pointers) if pointer not in _PLACE_POINTERS]

    def dimensions(_, group) -> tuple:
        values = _functional(ds, group, "FrameContentSequence", "DimensionIndexValues")
        values = list(values) if isinstance(values, (list, tuple, MultiValue)) else [values]
        return tuple(int(values[i]) for i in which) if len(values) == len(pointers) else ()

    return split(dimensions, "volume", numbered=True) if which else []


def _frame_window(ds) -> tuple[float, float] | None:
    """The display window of a multi-frame image: its first frame's, else its shared
    functional group's, else the one at the top level."""
    first = next(iter(ds.get("PerFrameFunctionalGroupsSequence", [])), None)
    return _window(_functional(ds, first, "FrameVOILUTSequence", "WindowCenter"),
                   _functional(ds, first, "FrameVOILUTSequence", "WindowWidth")) or header_window(ds)


def keep_frames(ds, frames: list[int] | tuple[int, ...]) -> None:
    """Make the header ``ds`` that of its ``frames`` alone (numbers from 1, in that order):
    their functional groups, and of its dimensions only those of a frame's place (the
    others have one value now, and may be more than highdicom reads)."""
    groups = list(ds.PerFrameFunctionalGroupsSequence)
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence([groups[f - 1] for f in frames])
    ds.NumberOfFrames = len(frames)
    dimensions = list(ds.get("DimensionIndexSequence", []))
    place = [i for i, item in enumerate(dimensions) if int(item.get("DimensionIndexPointer", 0)) in _PLACE_POINTERS]
    if place and len(place) < len(dimensions):
        ds.DimensionIndexSequence = pydicom.Sequence([dimensions[i] for i in place])
        for group in ds.PerFrameFunctionalGroupsSequence:
            content = group.get("FrameContentSequence")
            values = content[0].get("DimensionIndexValues") if content else None
            if isinstance(values, (list, tuple, MultiValue)) and len(values) == len(dimensions):
                content[0].DimensionIndexValues = [values[i] for i in place] if len(place) > 1 else values[place[0]]


def _decoded(ds, where: Path) -> np.ndarray:
    """The stored values of every frame of ``ds`` (read from the file ``where``), (frames,
    rows, columns): by pydicom, else by GDCM for the compressions pydicom has no decoder
    for here (:func:`_decoded_by_gdcm`)."""
    shape = (frame_count(ds), int(ds.Rows), int(ds.Columns))
    if not _decodable(ds):
        return _decoded_by_gdcm(ds, where, shape)
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged pixel data
        raise InputError(f"{where}: pixel data cannot be decoded ({detail(exc)})") from None
    return pixels.reshape(shape)


def _decodable(ds) -> bool:
    """Whether pydicom decodes ``ds``'s pixel data here."""
    from pydicom.pixels import get_decoder

    syntax = getattr(ds, "file_meta", pydicom.Dataset()).get("TransferSyntaxUID")
    if syntax is None or not syntax.is_compressed:
        return True
    try:
        return get_decoder(syntax).is_available
    except NotImplementedError:  # a compression pydicom does not know at all
        return False


def _decoded_by_gdcm(ds, where: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """``ds``'s frames decoded by GDCM (in SimpleITK): JPEG Lossless, as many archives
    store their images, has no decoder in pydicom without a GPL or a 40 MB library. GDCM
    would apply the rescale; it reads a copy of the file without it, so that the values
    are the stored ones, each frame's own rescale applied later as for any other file."""
    import tempfile

    import SimpleITK as sitk

    groups_of = ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
    bare = pydicom.Dataset()  # shares the elements of ds that it keeps, never changes them
    for element in ds:
        if element.keyword not in ("RescaleSlope", "RescaleIntercept", "RescaleType", *groups_of):
            bare.add(element)
    for groups in groups_of:
        if groups in ds:
            items = []
            for item in ds[groups].value:
                copy = pydicom.Dataset()
                for element in item:
                    if element.keyword != "PixelValueTransformationSequence":
                        copy.add(element)
                items.append(copy)
            setattr(bare, groups, pydicom.Sequence(items))
    bare.file_meta = pydicom.dataset.FileMetaDataset(ds.file_meta)
    syntax = ds.file_meta.TransferSyntaxUID.name
    with tempfile.TemporaryDirectory() as folder:
        copy_path = Path(folder) / "frames.dcm"
        try:
            bare.save_as(copy_path, enforce_file_format=True)
            pixels = sitk.GetArrayFromImage(sitk.ReadImage(str(copy_path)))
        except (RuntimeError, ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"{where}: pixel data cannot be decoded ({syntax}: {detail(exc)})") from None
    if pixels.size != np.prod(shape) or pixels.dtype.kind not in "iu":
        raise InputError(f"{where}: pixel data cannot be decoded ({syntax}: GDCM gave {pixels.shape} "
                         f"{pixels.dtype} values for {shape[0]} frames of {shape[1]} x {shape[2]})")
    return pixels.reshape(shape)


#: what a volume of a multi-frame image has of its own (:func:`_part_of`); the rest it shares
_OWN = ("PerFrameFunctionalGroupsSequence", "NumberOfFrames", "DimensionIndexSequence", "PixelData")


def _part_of(ds, pixels: np.ndarray, frames: tuple[int, ...]) -> pydicom.Dataset:
    """The multi-frame image of ``ds``'s ``frames`` alone (numbers from 1, in that order):
    their pixels (of ``pixels``, :func:`_decoded`), uncompressed, and their headers
    (:func:`keep_frames`). ``ds`` itself is left as it is: its other volumes come from it."""
    own = {pydicom.datadict.tag_for_keyword(k) for k in _OWN}
    part = pydicom.Dataset()
    for element in ds:
        if element.tag not in own:
            part.add(element)  # shared, never changed
    part.file_meta = pydicom.dataset.FileMetaDataset(ds.file_meta)
    part.PerFrameFunctionalGroupsSequence = pydicom.Sequence(list(ds.PerFrameFunctionalGroupsSequence))
    if "DimensionIndexSequence" in ds:
        part.DimensionIndexSequence = pydicom.Sequence(list(ds.DimensionIndexSequence))
    keep_frames(part, frames)
    return _with_pixels(part, pixels[np.asarray(frames) - 1])


def _with_pixels(ds: pydicom.Dataset, pixels: np.ndarray) -> pydicom.Dataset:
    """``ds`` holding ``pixels`` (stored values, one per frame), uncompressed."""
    ds.PixelData = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) <= 8 else "OW"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    return ds


def _plain(header: pydicom.Dataset, path: Path) -> pydicom.Dataset:
    """``header`` with its pixels uncompressed where pydicom (and so highdicom) has no
    decoder for them."""
    if _decodable(header):
        return header
    pixels = _decoded(header, path)
    return _with_pixels(header, pixels)


def _refuse_repeats(positions: np.ndarray, numbers: tuple[int, ...], path: Path, part: str) -> None:
    """Refuse frames (``numbers``, from 1) that repeat their ``positions``: several volumes
    nothing tells apart, or a frame twice."""
    seen: dict[tuple, int] = {}
    for number, place in zip(numbers, (tuple(p) for p in np.round(positions, 2))):
        if place in seen:
            places, frames = len(set(map(tuple, np.round(positions, 2)))), len(numbers)
            what = f"its {frames} frames{f' of {part}' if part else ''} lie at {places} places"
            if frames % places == 0:
                raise GeometryError(
                    f"{path}: {what}: {frames // places} volumes in one file, and no per-frame header tells them "
                    "apart (temporal position, echo time, b-value, trigger time, inversion time, stack, dimension index)")
            raise GeometryError(f"{path}: frames {seen[place]} and {number} lie at the same place ({what})")
        seen[place] = number


def read_multiframe(path: str | os.PathLike, place: Path | None = None, frames: tuple[int, ...] = (),
                    part: str = "") -> Volume:
    """A multi-frame DICOM image as a :class:`Volume`, slices along the slice normal
    (``place``: what the volume's source names, default the file; ``frames``: the frame
    numbers of one of its :func:`stacks`, named ``part``, default all of them)."""
    path = Path(path)
    header = _read(path)
    if frames:
        header = _part_of(header, _decoded(header, path), tuple(frames))
    return _volume(_plain(header, path), path, place, tuple(frames), part)


def read_volumes(path: str | os.PathLike, first: bool = False, place: Path | None = None) -> list[Volume]:
    """Each volume of the multi-frame image ``path`` (:func:`stacks`: its echoes, time
    points ...), or the one it is; with ``first``, the first of them alone. The file is
    read, and its pixels decoded, once."""
    path = Path(path)
    header = _read(path)
    parts = stacks(header)
    if not parts:
        return [_volume(_plain(header, path), path, place)]
    pixels = _decoded(header, path)
    return [_volume(_part_of(header, pixels, frames), path, place, frames, part)
            for part, frames in parts[:1 if first else None]]


def _read(path: Path) -> pydicom.Dataset:
    try:
        header = read_dataset(path)  # parsed once: highdicom reads this dataset
    except Exception as exc:  # pydicom raises many types on damaged files
        raise InputError(f"{path}: cannot be read as a multi-frame image ({detail(exc)})") from None
    if int(header.get("SamplesPerPixel", 1) or 1) != 1:
        raise InputError(f"{path}: colour (multi-component) DICOM images are not supported")
    return header


def _volume(header: pydicom.Dataset, path: Path, place: Path | None = None, frames: tuple[int, ...] = (),
            part: str = "") -> Volume:
    """The volume of the multi-frame image ``header`` (of the file ``path``; of its
    ``frames`` alone, named ``part``, where :func:`_part_of` made it of them)."""
    import highdicom as hd

    failures = (ValueError, RuntimeError, NotImplementedError, KeyError, AttributeError, EOFError)
    numbers = tuple(frames) or tuple(range(1, frame_count(header) + 1))
    positions, order = frame_order(header, str(path))
    _refuse_repeats(positions, numbers, path, part)
    try:
        image = hd.Image.from_dataset(header, copy=False)
        regular = image.get_volume_geometry() is not None
    except failures as exc:
        raise InputError(f"{path}: cannot be read as a multi-frame image ({detail(exc)})") from None
    if not regular:  # highdicom says why when asked for the volume anyway
        reason = "frame positions that are not one regular grid"
        try:
            image.get_volume(dtype=np.float32)
        except failures as exc:
            reason = detail(exc)
        raise GeometryError(f"{path}: its {len(order)} frames{f' of {part}' if part else ''} do not form one "
                            f"regular 3-D volume ({reason})")
    try:
        geometry = image.get_volume(dtype=np.float32)
    except failures as exc:
        raise InputError(f"{path}: pixel data cannot be decoded ({detail(exc)})") from None
    affine = np.asarray(geometry.affine, float)
    array = geometry.array
    if array.ndim != 3 or array.shape[0] != len(order):
        raise GeometryError(f"{path}: {len(order)} frames give a volume of shape {array.shape}, not one frame a slice")
    axes = [affine[:3, 2], affine[:3, 1], affine[:3, 0]]  # x: along a row, y: down a column, z: across slices
    spacing = [float(np.linalg.norm(a)) for a in axes]
    unit = [a / s for a, s in zip(axes, spacing)]
    origin = affine[:3, 3]
    if unit[2] @ np.cross(unit[0], unit[1]) < 0:  # slices along the normal, as a series' are
        array = array[::-1]
        origin = origin + (array.shape[0] - 1) * axes[2]
        unit[2] = -unit[2]
    expected = origin + np.outer(np.arange(array.shape[0]) * spacing[2], unit[2])
    if not np.allclose(expected, positions[np.asarray(order) - 1], atol=max(1e-3, 0.01 * spacing[2])):
        raise GeometryError(f"{path}: the frames' positions do not match the volume they form")
    array = smallest_type(array)
    uid = str(header.get("SOPInstanceUID", ""))
    name = str(header.get("SeriesDescription", "")) or path.stem
    return Volume(
        array=np.ascontiguousarray(array),
        spacing=tuple(spacing),
        origin=tuple(float(v) for v in origin),
        direction=tuple(float(v) for v in np.stack(unit, axis=1).ravel()),
        modality=str(header.get("Modality", "")) or "unknown",
        name=f"{name} ({part})" if part else name,
        window=_frame_window(header),
        source=Source(
            path=str(place or path),
            study_uid=str(header.get("StudyInstanceUID", "")),
            series_uid=str(header.get("SeriesInstanceUID", "")),
            sop_uids=(uid,) * len(order),
            frames=tuple(numbers[i - 1] for i in order),
            frame_of_reference_uid=str(header.get("FrameOfReferenceUID", "")),
        ),
    )

