"""DICOM series in a folder: find them, check their geometry, read one as a Volume.

pydicom reads the tags (fast, no pixel decoding); SimpleITK reads the voxels of the
chosen series in the order checked here. A series is refused with a message naming
the files concerned when its slices do not form a regular 3-D grid: mixed image
sizes or orientations, a gantry tilt (slices sheared along the table), missing or
unevenly spaced slices, duplicate positions, a single slice, or a truncated file.

Several acquisitions in one series (echoes, time points, b-values: the same slice
positions again) are told apart by the first header tag that splits the series into
parts of distinct positions (:data:`ACQUISITION_TAGS`); each part is read as a series of
its own, as is each multi-frame image of a series that holds several, and each volume
of a multi-frame image that holds several (:mod:`annotator.io.multiframe`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from annotator.errors import GeometryError, InputError, detail
from annotator.io.sniff import starts_with_dataset
from annotator.io.volume import Source, Volume, plane_across, volume_from_sitk

#: Tags read from every file while scanning.
_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
    "FrameOfReferenceUID", "Modality", "SeriesDescription", "SeriesNumber", "Rows",
    "Columns", "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient",
    "NumberOfFrames", "BitsAllocated", "SamplesPerPixel", "InstanceNumber", "WindowCenter", "WindowWidth",
    "TemporalPositionIdentifier", "EchoNumbers", "DiffusionBValue", "TriggerTime", "EchoTime", "InversionTime",
    "AcquisitionNumber", "SequenceName", "RescaleSlope", "RescaleIntercept",
]
#: header tags that tell apart the acquisitions of one series at the same slice positions
#: (the first that does is used), with what people call them
ACQUISITION_TAGS = {
    "TemporalPositionIdentifier": "time point", "EchoNumbers": "echo", "DiffusionBValue": "b",
    "TriggerTime": "trigger time", "EchoTime": "TE", "InversionTime": "TI", "AcquisitionNumber": "acquisition",
    "SequenceName": "sequence",
}
_NON_IMAGE_MODALITIES = {"SEG", "SR", "RTSTRUCT", "RTPLAN", "RTDOSE", "PR", "KO", "REG"}
#: the DICOM objects that hold labels of a series: segmentations, and radiotherapy's
#: structure sets (:mod:`annotator.io.rtstruct`)
LABEL_MODALITIES = {"SEG", "RTSTRUCT"}
#: Largest accepted in-plane shift per slice, as a fraction of the slice step (≈ 0.3°).
_MAX_SHEAR = 0.005
#: Largest accepted deviation of one slice step from the median step.
_SPACING_TOLERANCE = 0.01

sitk.ProcessObject.SetGlobalWarningDisplay(False)


@dataclass
class DicomFile:
    path: Path
    dataset: pydicom.Dataset

    @property
    def position(self) -> np.ndarray:
        return np.asarray(self.dataset.ImagePositionPatient, dtype=float)


@dataclass
class SeriesInfo:
    """One series found in a folder (files in acquisition order are sorted on read)."""

    series_uid: str
    study_uid: str
    modality: str
    description: str
    rows: int
    columns: int
    number: str = ""  # SeriesNumber, as written
    files: list[DicomFile] = field(default_factory=list)
    part: str = ""  # one acquisition of several in the series ("echo 2"), else empty
    frames: tuple[int, ...] = ()  # the frames (from 1) of its one multi-frame file it takes, else all

    @property
    def key(self) -> str:
        """What names this series (or this part of it) in :func:`read_series`."""
        return f"{self.series_uid}/{self.part}" if self.part else self.series_uid

    @property
    def title(self) -> str:
        """Its description (and part) for people."""
        return (self.description or self.folder.name) + (f" ({self.part})" if self.part else "")

    @property
    def slices(self) -> int:
        if self.frames:
            return len(self.frames)
        return sum(frame_count(f.dataset) for f in self.files)

    @property
    def voxels(self) -> int:
        return self.rows * self.columns * self.slices

    @property
    def multiframe(self) -> list[DicomFile]:
        return [f for f in self.files if frame_count(f.dataset) > 1]

    @property
    def folder(self) -> Path:
        return Path(os.path.commonpath([str(f.path.parent) for f in self.files]))

    def describe(self) -> str:
        uid = self.key if self.series_uid else "(no SeriesInstanceUID)"
        return (f"{self.modality or '?':<3} {self.columns}x{self.rows}x{self.slices} "
                f"'{self.description}' {uid} in {self.folder}")


@dataclass
class FolderScan:
    """Series found in a folder, and the files that were not usable DICOM images (among
    them its DICOM SEG and RT Structure Set files, labels of its series, also listed in
    ``label_files``)."""

    series: list[SeriesInfo]
    skipped: list[tuple[Path, str]]
    label_files: list[Path] = field(default_factory=list)
    #: DICOM objects that are no image to annotate (reports, radiographs, colour pictures),
    #: among ``skipped``, and whether a header could not be read
    not_images: int = 0
    damaged: bool = False

    @property
    def nothing_to_annotate(self) -> bool:
        """A folder of DICOM objects none of which is a slice or a label (a report, an
        X-ray), and none damaged: no image of the folder's listing."""
        return not self.series and not self.label_files and self.not_images > 0 and not self.damaged


def frame_count(ds) -> int:
    """How many frames (slices) a DICOM image holds: 1 unless it is a multi-frame image."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def read_dataset(path: str | os.PathLike, **options) -> pydicom.Dataset:
    """pydicom's ``dcmread(path, **options)`` that also reads a file holding a bare data
    set (no preamble, "DICM" or file meta: as older scanners and archives wrote them); the
    transfer syntax pydicom found in it is recorded in its file meta, where the pixel
    decoders and highdicom look for it."""
    try:
        return pydicom.dcmread(path, **options)
    except InvalidDicomError:
        with open(path, "rb") as f:
            if not starts_with_dataset(f.read(256)):
                raise
    ds = pydicom.dcmread(path, force=True, **options)
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (pydicom.uid.ImplicitVRLittleEndian if implicit
                                          else pydicom.uid.ExplicitVRLittleEndian if little
                                          else pydicom.uid.ExplicitVRBigEndian)
    return ds


def _has_slices(ds: pydicom.Dataset) -> bool:
    return str(ds.get("Modality", "")) not in _NON_IMAGE_MODALITIES and "Rows" in ds


def holds_slices(path: Path) -> bool:
    """Whether the DICOM file ``path`` is an image (a slice or a multi-frame volume), not
    a SEG, a report or another object. A header that cannot be read counts as an image's:
    reading the series then says what is wrong with it."""
    try:
        return _has_slices(read_dataset(path, stop_before_pixels=True, specific_tags=["Modality", "Rows"]))
    except Exception:  # noqa: BLE001 - pydicom raises many types on damaged headers
        return True


def _read_header(path: Path) -> pydicom.Dataset:
    return read_dataset(path, stop_before_pixels=True, specific_tags=_TAGS)


def scan_folder(folder: str | os.PathLike, below: bool = True) -> FolderScan:
    """Find every DICOM image series in ``folder`` (and below it unless ``below`` is
    false); list other files as skipped. Largest series first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    series: dict[str, SeriesInfo] = {}
    skipped: list[tuple[Path, str]] = []
    label_files: list[Path] = []
    not_images, damaged = 0, False
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if below else []
        for name in sorted(names):
            path = Path(root) / name
            if name.startswith("."):
                continue
            try:
                ds = _read_header(path)
            except InvalidDicomError:
                skipped.append((path, "not a DICOM file"))
                continue
            except Exception as exc:  # pydicom raises many types on damaged headers
                skipped.append((path, f"unreadable DICOM header ({exc})"))
                damaged = True
                continue
            modality = str(ds.get("Modality", ""))
            picture = _a_picture(ds)
            if not _has_slices(ds) or picture:
                skipped.append((path, picture or f"DICOM {modality or 'object'} without image slices"))
                if modality in LABEL_MODALITIES:
                    label_files.append(path)
                if modality in _NON_IMAGE_MODALITIES or picture:  # a report, an X-ray
                    not_images += modality not in LABEL_MODALITIES
                else:  # an image's header without its rows: cut short
                    damaged = True
                continue
            if frame_count(ds) > 1:  # its volumes are told apart by its per-frame headers
                ds = read_dataset(path, stop_before_pixels=True)
            uid = str(ds.get("SeriesInstanceUID", ""))
            info = series.get(uid)
            if info is None:
                info = series[uid] = SeriesInfo(
                    series_uid=uid,
                    study_uid=str(ds.get("StudyInstanceUID", "")),
                    modality=modality,
                    description=str(ds.get("SeriesDescription", "")),
                    rows=int(ds.Rows),
                    columns=int(ds.Columns),
                    number=str(ds.get("SeriesNumber", "") or "").strip(),
                )
            info.files.append(DicomFile(path, ds))
    parts = [part for info in series.values() for part in split_acquisitions(info)]
    ordered = sorted(parts, key=lambda s: s.voxels, reverse=True)
    return FolderScan(ordered, skipped, label_files, not_images, damaged)


#: modalities whose single images are projections or photographs, not slices of a volume
PICTURE_MODALITIES = {"CR", "DX", "MG", "IO", "PX", "RF", "XA", "OP", "XC", "ES", "GM", "SM", "DOC", "OT"}


def _a_picture(ds) -> str:
    """Why the DICOM image ``ds`` is no slice of a volume to annotate (a colour image; a
    radiograph, a mammogram or a photograph: one 2-D image placed nowhere), else empty."""
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1:
        return f"a colour {ds.get('Modality', '') or 'DICOM'} image (colour is not supported)"
    modality = str(ds.get("Modality", ""))
    if modality in PICTURE_MODALITIES and "ImagePositionPatient" not in ds and frame_count(ds) == 1:
        return f"a single 2-D {modality} image, not a slice of a volume"
    return ""


def _positions_repeat(files: list[DicomFile]) -> bool:
    try:
        places = [tuple(np.round(f.position, 2)) for f in files]
    except (AttributeError, TypeError, ValueError):  # check_series names what is wrong
        return False
    return len(set(places)) < len(places)


def _tag_value(ds, tag: str) -> str:
    value = ds.get(tag)
    if value is None:
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def _in_order(value: str) -> tuple:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def plane_name(orientation) -> str:
    """What people call the slice plane of an ImageOrientationPatient: by the axis its
    normal runs along most."""
    orientation = np.asarray([float(v) for v in orientation], float)
    return plane_across(np.cross(orientation[:3], orientation[3:]))


def _planes(files: list[DicomFile]) -> dict[str, list[DicomFile]]:
    """The files by the plane of their slices, when they lie in planes of several
    orientations, one of each plane (a three-plane localizer); else empty."""
    by_orientation: dict[tuple, list[DicomFile]] = {}
    for f in files:
        if "ImageOrientationPatient" not in f.dataset or _geometry_problem(f.dataset):
            return {}  # check_series names what is wrong
        key = tuple(np.round([float(v) for v in f.dataset.ImageOrientationPatient], 4))
        by_orientation.setdefault(key, []).append(f)
    named = {plane_name(key): found for key, found in by_orientation.items()}
    return named if len(by_orientation) > 1 and len(named) == len(by_orientation) else {}


def split_acquisitions(info: SeriesInfo) -> list[SeriesInfo]:
    """The acquisitions of a series whose slices repeat their positions, as parts told
    apart by the first of :data:`ACQUISITION_TAGS` whose values give parts of two or more
    slices at distinct positions (in the order of its values). Slices in planes of
    several orientations (a three-plane localizer) are a part each plane ("axial"), each
    split again as above. Several multi-frame images in one series are a part each (by
    InstanceNumber), and so is each volume of a multi-frame image that holds several.
    Else the series as it is."""
    def part(files: list[DicomFile], name: str, frames: tuple[int, ...] = ()) -> SeriesInfo:
        return SeriesInfo(info.series_uid, info.study_uid, info.modality, info.description, info.rows,
                          info.columns, info.number, files, name, frames)

    if info.multiframe and len(info.multiframe) == len(info.files):
        return _multiframe_parts(info, part)
    planes = {} if info.multiframe else _planes(info.files)
    if planes:
        return [part(found.files, ", ".join(t for t in (plane, found.part) if t))
                for plane in sorted(planes) for found in split_acquisitions(part(planes[plane], ""))]
    if info.multiframe or not _positions_repeat(info.files):
        return [info]
    for tag, word in ACQUISITION_TAGS.items():
        groups: dict[str, list[DicomFile]] = {}
        for f in info.files:
            groups.setdefault(_tag_value(f.dataset, tag), []).append(f)
        # a tag that changes from slice to slice (some scanners number each slice's
        # acquisition) is no split: each part holds two slices at least
        if len(groups) > 1 and all(len(g) > 1 and not _positions_repeat(g) for g in groups.values()):
            return [part(groups[value], f"{word} {value or '(none)'}") for value in sorted(groups, key=_in_order)]
    return [info]


def _multiframe_parts(info: SeriesInfo, part) -> list[SeriesInfo]:
    """The images of a series of multi-frame files: one a file (by InstanceNumber, when
    there are several), and one a volume of a file that holds several."""
    from annotator.io.multiframe import stacks

    files = [("", info.files[0])]
    if len(info.files) > 1:
        numbers = [_tag_value(f.dataset, "InstanceNumber") for f in info.files]
        unique = len(set(numbers)) == len(numbers)
        files = [(f"image {n}" if unique else f"image {f.path.name}", f)
                 for n, f in sorted(zip(numbers, info.files), key=lambda nf: (_in_order(nf[0]), nf[1].path.name))]
    parts = []
    for name, f in files:
        volumes = stacks(f.dataset)
        if not volumes:
            parts.append(part([f], name))
        parts.extend(part([f], ", ".join(t for t in (name, volume) if t), frames) for volume, frames in volumes)
    return parts if len(parts) > 1 else [info]


def _names(files: list[DicomFile], limit: int = 3) -> str:
    shown = ", ".join(f.path.name for f in files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def check_series(info: SeriesInfo) -> list[DicomFile]:
    """Validate one series' geometry; return its files sorted along the slice normal."""
    where = str(info.folder)
    files = info.files
    sizes: dict[tuple[int, int], list[DicomFile]] = {}
    for f in files:
        sizes.setdefault((int(f.dataset.Rows), int(f.dataset.Columns)), []).append(f)
    if len(sizes) > 1:
        parts = "; ".join(f"{c}x{r} in {len(fs)} files ({_names(fs)})" for (r, c), fs in sizes.items())
        raise GeometryError(f"{where}: series mixes image sizes: {parts}")
    if len(files) < 2:  # a radiograph, a mammogram, a screenshot: said as such, not as tags it lacks
        kind = f", a {info.modality} image" if info.modality else ""
        raise GeometryError(f"{where}: series {info.series_uid or ''} has a single slice ({files[0].path.name}"
                            f"{kind}); Annotator needs a 3-D volume")
    missing = [f for f in files if "ImagePositionPatient" not in f.dataset
               or "ImageOrientationPatient" not in f.dataset]
    if missing:
        raise GeometryError(f"{where}: {_names(missing)} lack slice position/orientation tags")
    for f in files:
        problem = _geometry_problem(f.dataset)
        if problem:
            raise GeometryError(f"{f.path}: {problem}")
    orientations = {tuple(np.round(np.asarray(f.dataset.ImageOrientationPatient, float), 4)) for f in files}
    if len(orientations) > 1:
        raise GeometryError(f"{where}: series mixes {len(orientations)} slice orientations")
    spacings: dict[tuple, list[DicomFile]] = {}
    for f in files:  # each is two positive numbers, or none (checked above)
        spacing = _numbers(f.dataset, "PixelSpacing", 2)
        spacings.setdefault(tuple(np.round(spacing, 4)) if spacing is not None else (1.0, 1.0), []).append(f)
    if len(spacings) > 1:
        parts = "; ".join(f"{r:g} x {c:g} mm in {len(fs)} files ({_names(fs)})" for (r, c), fs in spacings.items())
        raise GeometryError(f"{where}: series mixes pixel spacings: {parts}")
    iop = np.asarray(files[0].dataset.ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    files = sorted(files, key=lambda f: float(f.position @ normal))
    positions = np.array([f.position for f in files])
    steps = np.diff(positions, axis=0)
    along = steps @ normal
    duplicates = [i for i, d in enumerate(along) if abs(d) < 1e-3]
    if duplicates:
        i = duplicates[0]
        raise GeometryError(
            f"{where}: {files[i].path.name} and {files[i + 1].path.name} lie at the same position "
            f"({len(duplicates)} duplicate positions, and no header tag tells them apart as acquisitions: "
            f"{', '.join(ACQUISITION_TAGS)})"
        )
    shear = np.linalg.norm(steps - np.outer(along, normal), axis=1) / np.abs(along)
    if shear.max() > _MAX_SHEAR:
        angle = float(np.degrees(np.arctan(np.median(shear))))
        raise GeometryError(
            f"{where}: gantry tilt of {angle:.1f} degrees (slice positions are sheared against the "
            "slice orientation); reconstruct the series without tilt or resample it first"
        )
    median = float(np.median(along))
    deviation = np.abs(along - median) / median
    if deviation.max() > _SPACING_TOLERANCE:
        i = int(np.argmax(deviation))
        ratio = along[i] / median
        gap = f"{files[i].path.name} and {files[i + 1].path.name} are {along[i]:.3g} mm apart"
        if ratio > 1.5 and abs(ratio - round(ratio)) < 0.1:
            raise GeometryError(
                f"{where}: missing slices: {gap} where slices are {median:.3g} mm apart "
                f"(about {round(ratio) - 1} slice(s) missing)"
            )
        raise GeometryError(
            f"{where}: uneven slice spacing: {gap}, the median step is {median:.3g} mm "
            f"(steps range {along.min():.3g}..{along.max():.3g} mm)"
        )
    _check_complete(files, where)
    return files


def _numbers(ds, tag: str, count: int) -> np.ndarray | None:
    try:
        values = np.asarray([float(v) for v in ds.get(tag)], float)
    except (TypeError, ValueError):
        return None
    return values if values.size == count else None


def _geometry_problem(ds) -> str | None:
    """What is wrong with a slice's position, orientation or pixel spacing (None: nothing)."""
    position = _numbers(ds, "ImagePositionPatient", 3)
    if position is None or not np.all(np.isfinite(position)):
        return f"ImagePositionPatient {ds.get('ImagePositionPatient')} is not three finite numbers"
    orientation = _numbers(ds, "ImageOrientationPatient", 6)
    if orientation is None or not np.all(np.isfinite(orientation)):
        return f"ImageOrientationPatient {ds.get('ImageOrientationPatient')} is not six finite numbers"
    row, col = orientation[:3], orientation[3:]
    if abs(np.linalg.norm(row) - 1) > 0.01 or abs(np.linalg.norm(col) - 1) > 0.01 or abs(row @ col) > 0.01:
        return f"ImageOrientationPatient {list(orientation)} are not two perpendicular unit vectors"
    if "PixelSpacing" in ds:
        spacing = _numbers(ds, "PixelSpacing", 2)
        if spacing is None or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
            return f"PixelSpacing {ds.get('PixelSpacing')} is not two finite positive numbers"
    return None


def _check_complete(files: list[DicomFile], where: str) -> None:
    """Refuse files too short to hold their uncompressed pixel data."""
    for f in files:
        ds = f.dataset
        need = int(ds.Rows) * int(ds.Columns) * int(ds.get("BitsAllocated", 16)) // 8 * int(
            ds.get("SamplesPerPixel", 1) or 1)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and not syntax.is_compressed and f.path.stat().st_size < need:
            raise InputError(
                f"{f.path}: file is truncated: {f.path.stat().st_size} bytes, its "
                f"{ds.Columns}x{ds.Rows} pixels alone need {need}"
            )


def _raise_if_short(f: DicomFile) -> None:
    """Refuse a file whose uncompressed pixel data ends before its pixels do."""
    try:
        ds = read_dataset(f.path)
        syntax = ds.file_meta.get("TransferSyntaxUID")
        have = len(ds.PixelData)
        need = int(ds.Rows) * int(ds.Columns) * int(ds.get("BitsAllocated", 16)) // 8 * int(
            ds.get("SamplesPerPixel", 1) or 1)
    except Exception:  # noqa: BLE001 - pydicom raises many types on damaged files: no more to say
        return
    if syntax is not None and not syntax.is_compressed and have < need:
        raise InputError(f"{f.path}: file is truncated: its pixel data holds {have} bytes, its "
                         f"{ds.Columns}x{ds.Rows} pixels need {need}")


def header_window(ds) -> tuple[float, float] | None:
    """The display window a DICOM header recommends, (center, width) in stored-value units
    after rescale (the first of several); None when it gives none or a useless one."""
    return _window(ds.get("WindowCenter"), ds.get("WindowWidth"))


def _window(center, width) -> tuple[float, float] | None:
    def first(value):
        if value is None:
            return None
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = value[0] if len(value) else None
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    center, width = first(center), first(width)
    if center is None or width is None or not width > 0:
        return None
    return center, width


def pick_series(scan: FolderScan, folder: Path, series: str | int | None) -> SeriesInfo:
    """The series asked for (UID, or index in the listing), else the largest."""
    if not scan.series:
        reasons = "; ".join(f"{p.name}: {r}" for p, r in scan.skipped[:3])
        raise InputError(f"{folder}: no DICOM image series found" + (f" ({reasons})" if reasons else ""))
    if series is None:
        return scan.series[0]
    for i, info in enumerate(scan.series):
        if str(series) in (info.key, info.series_uid, str(i)):
            return info
    listing = "; ".join(f"[{i}] {s.key}" for i, s in enumerate(scan.series))
    raise InputError(f"{folder}: no series '{series}' (found: {listing})")


def read_series(folder: str | os.PathLike, series: str | int | None = None, scan: FolderScan | None = None) -> Volume:
    """Read one series of ``folder`` (largest by default; ``series``: its
    :attr:`SeriesInfo.key`, SeriesInstanceUID or place in the listing) as a :class:`Volume`;
    ``scan``: the folder's listing, when it was made already (its headers are not read again)."""
    folder = Path(folder)
    return read_info(pick_series(scan_folder(folder) if scan is None else scan, folder, series), folder)


def read_info(info: SeriesInfo, folder: Path) -> Volume:
    """Read one series of a :func:`scan_folder` listing of ``folder``."""
    if info.multiframe:
        if len(info.files) > 1:
            raise GeometryError(
                f"{info.folder}: series {info.series_uid or ''} mixes {len(info.multiframe)} multi-frame images "
                f"with {len(info.files) - len(info.multiframe)} other files ({_names(info.files)}); "
                "open one multi-frame file on its own")
        from annotator.io.multiframe import read_multiframe

        return read_multiframe(info.files[0].path, place=info.folder, frames=info.frames, part=info.part)
    files = check_series(info)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f.path) for f in files])
    rescales = {_rescale(f.dataset) for f in files}
    if len(rescales) > 1 or not all(float(v).is_integer() for r in rescales for v in r):
        reader.SetOutputPixelType(sitk.sitkFloat32)  # not SimpleITK's float64, nor every slice cast to the first's type
    try:
        image = reader.Execute()
    except RuntimeError:  # SimpleITK (GDCM) cannot read every file pydicom can: a bare data set, say
        image = _read_by_pydicom(files, folder)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{info.folder}: colour (multi-component) DICOM images are not supported")
    first = files[0].dataset
    volume = volume_from_sitk(
        image,
        modality=info.modality or "unknown",
        name=info.title,
        window=header_window(first),
        source=Source(
            path=str(info.folder),
            study_uid=info.study_uid,
            series_uid=info.series_uid,
            sop_uids=tuple(str(f.dataset.get("SOPInstanceUID", "")) for f in files),
            frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
        ),
    )
    volume.array = smallest_type(volume.array)  # SimpleITK gives int32 for a CT of unsigned values and an intercept
    return volume


def smallest_type(array: np.ndarray) -> np.ndarray:
    """``array`` in the smallest of int16, uint16 and int32 that holds its values where
    they are whole numbers (as it is where it is already that small), else as float32."""
    if not array.size:
        return array
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        return array if array.dtype == np.float32 else array.astype(np.float32)
    if array.dtype.kind in "iu" and array.dtype.itemsize <= 2:
        return array
    low, high = array.min(), array.max()
    fits = [t for t in (np.int16, np.uint16, np.int32) if np.iinfo(t).min <= low and high <= np.iinfo(t).max]
    return array.astype(fits[0]) if fits else array.astype(np.float32)


def _file_header(path: Path) -> pydicom.Dataset:
    try:
        return read_dataset(path, stop_before_pixels=True,
                            specific_tags=["NumberOfFrames", "SeriesInstanceUID", "Modality"])
    except Exception as exc:  # pydicom raises many types on damaged headers
        raise InputError(f"{path}: unreadable DICOM header ({detail(exc)})") from None


def series_of(path: str | os.PathLike) -> SeriesInfo:
    """The series (or acquisition of one) in its folder that a DICOM file belongs to."""
    path = Path(path)
    scan = scan_folder(path.parent, below=False)
    for info in scan.series:
        if any(f.path.name == path.name for f in info.files):
            return info
    reason = next((r for p, r in scan.skipped if p.name == path.name), "not found")
    raise InputError(f"{path}: not an image slice of a series ({reason})")


def read_file(path: str | os.PathLike) -> Volume:
    """The volume a DICOM file belongs to: a multi-frame image is one (the first, of one
    that holds several); a slice opens the series (or the acquisition of one) in its
    folder that holds it."""
    return file_volumes(path, first=True)[0]


def file_volumes(path: str | os.PathLike, first: bool = False) -> list[Volume]:
    """The volumes of a DICOM file: each that a multi-frame image holds (its echoes, time
    points ...), or the one series (or acquisition of one) a slice belongs to; with
    ``first``, the first alone."""
    path = Path(path)
    header = _file_header(path)
    modality = str(header.get("Modality", ""))
    if modality in _NON_IMAGE_MODALITIES:
        what = {"SEG": "a segmentation", "RTSTRUCT": "a structure set: outlines"}.get(modality, "not an image")
        raise InputError(f"{path}: a DICOM {modality} object ({what}); open the series it refers to"
                         + (f": a folder offers its {modality} files as label maps of that series"
                            if modality in LABEL_MODALITIES else ""))
    if frame_count(header) > 1:
        from annotator.io.multiframe import read_volumes

        return read_volumes(path, first)
    return [read_info(series_of(path), path.parent)]


def _rescale(ds) -> tuple[float, float]:
    """(slope, intercept) of a slice's stored values, as its header gives them."""
    try:
        return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        return 1.0, 0.0


def _read_by_pydicom(files: list[DicomFile], folder: Path) -> sitk.Image:
    """The series ``files`` (checked, in order along the slice normal) decoded by pydicom,
    with the geometry their headers give, as SimpleITK would read it: for the files
    SimpleITK cannot read. A file neither can decode is named (:func:`_raise_unreadable_file`)."""
    slices = []
    for f in files:
        try:
            ds = read_dataset(f.path)
            slope, intercept = _rescale(ds)
            slices.append(ds.pixel_array.astype(np.float64) * slope + intercept)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
            try:
                sitk.ReadImage(str(f.path))
            except RuntimeError:  # neither reads this file: it is the one to name
                _raise_if_short(f)
                raise InputError(f"{f.path}: pixel data cannot be decoded ({detail(exc)})") from None
            _raise_unreadable_file(files, folder)  # SimpleITK reads it (pydicom lacks a decoder): its search
            raise
    array = smallest_type(np.stack(slices))
    first = files[0].dataset
    iop = np.asarray(first.ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    row_step, column_step = (float(v) for v in first.get("PixelSpacing", [1.0, 1.0]))
    step = float(np.median(np.diff([f.position @ normal for f in files])))
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((column_step, row_step, step))
    image.SetOrigin(tuple(float(v) for v in files[0].position))
    image.SetDirection(tuple(np.stack([iop[:3], iop[3:], normal], axis=1).ravel()))
    return image


def _raise_unreadable_file(files: list[DicomFile], folder: Path) -> None:
    """Find the one file SimpleITK cannot decode and name it (cut short, when its pixel
    data is shorter than its pixels need)."""
    for f in files:
        try:
            sitk.ReadImage(str(f.path))
        except RuntimeError as exc:
            _raise_if_short(f)
            said = str(exc).strip().splitlines()[-1][:200]
            raise InputError(f"{f.path}: pixel data cannot be decoded ({said})") from exc
    raise InputError(f"{folder}: the series cannot be read as one volume")
