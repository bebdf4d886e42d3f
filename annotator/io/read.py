"""Open any supported image (NIfTI, NRRD, MHA/MHD, FreeSurfer MGZ/MGH, DICOM series folder,
DICOM file) as a Volume."""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from annotator.errors import GeometryError, InputError
from annotator.io import mgh
from annotator.io.nifti_check import check_nifti, memory_limit, read_raw
from annotator.io.sniff import IMAGE_SUFFIXES, image_stem, is_dicomdir, is_image_file, looks_like_dicom
from annotator.io.volume import Source, Volume, as_label, intensity_sample, volume_from_sitk

if TYPE_CHECKING:
    from annotator.io.dicom import FolderScan

#: held while stderr is swapped (:func:`quiet_c_stderr`)
_STDERR = threading.RLock()


@contextmanager
def quiet_c_stderr() -> Iterator[list[str]]:
    """Keep what C libraries print on the process's stderr (ITK's NIfTI and MetaImage
    readers do) off the person's terminal; the lines are handed back for messages. One
    thread at a time: the process has one stderr, and two threads swapping it at once
    could leave it pointing at a deleted file."""
    lines: list[str] = []
    with _STDERR:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to protect
            yield lines
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                lines.extend(line.strip() for line in sink.read().decode(errors="replace").splitlines() if line.strip())


def _header_text(path: Path) -> str:
    """The start of a text header (NRRD, MetaImage): at most 64 KB."""
    try:
        with open(path, "rb") as f:
            return f.read(65536).decode("latin-1")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _check_detached_data(path: Path) -> None:
    """A ``.nhdr``/``.mhd`` header names its data file: it must be a plain file name beside
    the header (never another folder, a list or a pattern), or the header could make the
    reader take any file on the machine as voxels."""
    keys = ("data file:", "datafile:") if path.suffix.lower() == ".nhdr" else ("elementdatafile",)
    for line in _header_text(path).splitlines():
        low = line.strip().lower()
        if not low.startswith(keys):
            continue
        value = line.split("=", 1)[1] if "=" in line and low.startswith("elementdatafile") else line.split(":", 1)[1]
        value = value.strip()
        if value.upper() == "LOCAL":
            return
        target = path.parent / value
        if (not value or "/" in value or "\\" in value or value.startswith(".") or " " in value or "%" in value
                or value.upper().startswith("LIST") or target.resolve().parent != path.parent.resolve()):
            raise InputError(f"{path}: its data file '{value}' must be a plain file name in the same folder")
        if not target.is_file():
            raise InputError(f"{path}: its data file '{value}' is missing")
        return


#: how ITK's NRRD reader says a file's voxel data is cut short (gzip or raw encoding):
#: (bytes there, bytes declared), or (values there, bytes each, values declared)
_NRRD_CUT = (re.compile(r"_nrrdEncodingGzip_read: expected (\d+) bytes but received (\d+)"),
             re.compile(r"_nrrdEncodingRaw_read: fread got only (\d+) (\d+)-sized things, not (\d+)"))


def _unreadable(path: Path, exc: RuntimeError, noise: list[str]) -> InputError:
    """SimpleITK's failure as one line naming the file (its last line, or the C library's);
    a NRRD cut short, in words."""
    text = "\n".join([str(exc), *noise])
    if found := _NRRD_CUT[0].search(text):
        expected, present = int(found.group(1)), int(found.group(2))
    elif found := _NRRD_CUT[1].search(text):
        present, size, expected = (int(g) for g in found.groups())
        present, expected = present * size, expected * size
    if found:
        return InputError(f"{path}: file is truncated: {present:,} of its {expected:,} bytes of voxel data are there")
    detail = ([line for line in str(exc).splitlines() if line.strip()] or noise or ["unknown"])[-1][:200]
    return InputError(f"{path}: cannot be read as an image ({detail})")


def read_information(path: str | os.PathLike):
    """The header of an image file, as SimpleITK's ``ImageFileReader`` tells it after
    ``ReadImageInformation`` (an MGH file's through :mod:`annotator.io.mgh`); RuntimeError
    when it cannot be read."""
    if mgh.is_mgh(path):
        return mgh.information(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with quiet_c_stderr():  # what ITK's readers print about odd files stays off the terminal
        reader.ReadImageInformation()
    return reader


def _check_size(path: Path) -> None:
    """Refuse an image that declares more voxels than one image may take, before reading it."""
    with quiet_c_stderr() as noise:
        try:
            reader = read_information(path)
        except RuntimeError as exc:
            raise _unreadable(path, exc, noise) from None
    size = reader.GetSize()
    bits = np.dtype(sitk.GetArrayViewFromImage(sitk.Image([1] * len(size), reader.GetPixelID())).dtype).itemsize
    total = math.prod(size) * bits * reader.GetNumberOfComponents()
    if total > memory_limit():
        raise InputError(f"{path}: declares {'x'.join(map(str, size))} voxels ({total / 2**30:.1f} GB), more "
                         f"than the {memory_limit() / 2**30:.1f} GB one image may take here")
    if path.suffix.lower() in (".mha", ".mhd"):
        _check_meta_data(path, total)


def _check_meta_data(path: Path, total: int) -> None:
    """A MetaImage cut short: its voxel bytes (of a compressed one, the compressed size its
    header gives) counted against what its header declares. ITK's reader fails on it with
    errno's reason ("No such file or directory") and prints the cause on stdout."""
    fields, length = {}, 0
    for line in _header_text(path).splitlines(keepends=True):  # latin-1: a character a byte
        length += len(line)
        key, _, value = line.partition("=")
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            break
    data = fields.get("elementdatafile", "")
    try:
        present = path.stat().st_size - length if data.upper() == "LOCAL" else (path.parent / data).stat().st_size
    except OSError:
        return  # a data file list or pattern, or one missing: its reader tells
    compressed = fields.get("compresseddata", "false").lower() == "true"
    try:
        expected = int(fields["compresseddatasize"]) if compressed else total
    except (KeyError, ValueError):
        return  # a compressed file that does not say its size: its reader tells
    if present < expected:
        raise InputError(f"{path}: file is truncated: {present:,} of its {expected:,} bytes of voxel data are there")


#: Header fields of NRRD and MetaImage files that give the voxel grid (spacing: must not be 0)
_GRID_FIELDS = {"spacings": True, "space directions": False, "space origin": False, "elementspacing": True,
                "offset": False, "position": False, "origin": False, "transformmatrix": False}


def _check_text_header(path: Path) -> None:
    """NRRD and MetaImage headers: every number of the grid fields finite, no zero spacing
    (ITK would read NaN or 0 as 1 mm)."""
    for line in _header_text(path).splitlines():
        if not line.strip() or line.lower().startswith("elementdatafile"):
            break
        key, sep, value = line.partition("=" if "=" in line and ":" not in line.split("=")[0] else ":")
        key = key.strip().lower()
        if not sep or key not in _GRID_FIELDS:
            continue
        numbers = [t for t in value.replace("(", " ").replace(")", " ").replace(",", " ").split() if t != "none"]
        try:
            values = [float(t) for t in numbers]
        except ValueError:
            raise InputError(f"{path}: its '{key}' field is not numbers: {value.strip()[:80]}") from None
        if not all(math.isfinite(v) for v in values):
            raise InputError(f"{path}: its '{key}' field holds NaN or infinity: {value.strip()[:80]}")
        if _GRID_FIELDS[key] and any(v == 0 for v in values):
            raise InputError(f"{path}: its '{key}' field has a voxel size of 0: {value.strip()[:80]}")


def _read_sitk(path: Path) -> tuple[sitk.Image, np.ndarray | None]:
    """The image, and for a NIfTI whose voxels hold NaN/inf, where they are (z, y, x)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such file or folder") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: not a regular file (a pipe, device or socket); give an image file")
    if not is_image_file(path):
        if path.suffix.lower() in (".dcm", ".ima") or path.name.startswith(("CT.", "MR.")):
            raise InputError(f"{path}: named like a DICOM file, but not one (no DICOM file preamble)")
        raise InputError(
            f"{path}: not an image file Annotator reads (supported: {', '.join(IMAGE_SUFFIXES)} "
            "or a folder with a DICOM series)"
        )
    non_finite = None
    if path.name.lower().endswith((".nii", ".nii.gz")):
        header, has_nan, voxels = check_nifti(path, keep=True)
        if has_nan:
            stored = read_raw(path, header) if voxels is None else voxels.view(header.dtype)
            non_finite = ~np.isfinite(stored.reshape(tuple(reversed(header.shape))))
        elif voxels is not None:
            image = _nifti_image(path, header, voxels)
            if image is not None:
                return image, None
    else:
        if path.suffix.lower() in (".nhdr", ".mhd"):
            _check_detached_data(path)
        if not mgh.is_mgh(path):
            _check_text_header(path)
        _check_size(path)
    with quiet_c_stderr() as noise:
        try:
            image = read_image_file(path)
        except RuntimeError as exc:
            raise _unreadable(path, exc, noise) from None
    return image, non_finite


def _nifti_image(path: Path, header, voxels: np.ndarray) -> sitk.Image | None:
    """The image of a ``.nii.gz`` from its voxel bytes, decompressed once already by the
    check (SimpleITK would decompress the file again: a third of the time a large CT takes
    to open), on the grid SimpleITK reads from its header; None where SimpleITK would make
    more of the voxels than their stored values (scaled, of several components, not 3-D
    or 4-D, another pixel type): it reads those itself."""
    if header.dtype is None or header.scaled or len(header.shape) not in (3, 4):
        return None
    try:
        info = read_information(path)
    except RuntimeError:
        return None
    if info.GetNumberOfComponents() != 1 or tuple(info.GetSize()) != tuple(header.shape):
        return None
    array = voxels.view(header.dtype).reshape(tuple(reversed(header.shape)))
    image = sitk.GetImageFromArray(array.astype(array.dtype.newbyteorder("="), copy=False), isVector=False)
    if image.GetPixelID() != info.GetPixelID():
        return None
    image.SetSpacing(info.GetSpacing())
    image.SetOrigin(info.GetOrigin())
    image.SetDirection(info.GetDirection())
    return image


def read_image_file(path: str | os.PathLike) -> sitk.Image:
    """An image file as SimpleITK reads it, or an MGH file (:mod:`annotator.io.mgh`), with
    no checks (RuntimeError when it cannot be read)."""
    return mgh.read_mgh(path) if mgh.is_mgh(path) else sitk.ReadImage(str(path))


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


def check_geometry(volume: Volume, where: str) -> None:
    """Refuse a voxel size that is not a finite positive number, and a position or
    orientation that holds NaN/inf or is degenerate (never replaced by a guess)."""
    spacing, origin = np.asarray(volume.spacing, float), np.asarray(volume.origin, float)
    direction = np.asarray(volume.direction, float).reshape(3, 3)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise GeometryError(f"{where}: voxel size {tuple(spacing)} mm is not a finite positive number on every axis")
    if not np.all(np.isfinite(origin)):
        raise GeometryError(f"{where}: the image position {tuple(origin)} holds NaN or infinity")
    if not np.all(np.isfinite(direction)) or abs(abs(np.linalg.det(direction)) - 1) > 1e-3:
        raise GeometryError(f"{where}: the image orientation is not a rotation (NaN, zero or skewed axes)")


def replace_non_finite(volume: Volume, where: str) -> None:
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


def guess_modality(array: np.ndarray) -> str:
    """"CT" for an image in Hounsfield units (air near -1000 in a good share of its voxels,
    nothing much below but padding: -3024 or -2000 outside the field of view), else
    "unknown": files other than DICOM do not say."""
    if array.size == 0 or array.dtype.kind not in "iuf":
        return "unknown"
    # with the padding first: a CT whose air is clipped to -1024 holds it as one value too
    for sample in (intensity_sample(array, keep_padding=True), intensity_sample(array)):
        air = (sample > -1100) & (sample < -900)
        if sample.size and -1100 <= np.percentile(sample, 0.5) <= -900 and air.mean() > 0.01:
            return "CT"
    return "unknown"


def read_volume(path: str | os.PathLike, series: str | int | None = None, scan: FolderScan | None = None) -> Volume:
    """Read an image file (of a 4-D file, one volume), a DICOM folder or a DICOM file.

    Parameters
    ----------
    path
        A NIfTI/NRRD/MHA file, a folder holding DICOM series, or a DICOM file (a
        multi-frame image, or a slice: its series opens).
    series
        For a folder: SeriesInstanceUID or index in :func:`annotator.io.dicom.scan_folder`'s
        listing; the largest series by default. For a 4-D file: which of its volumes,
        from 0 (the first by default).
    scan
        For a folder: its :func:`annotator.io.dicom.scan_folder` listing, when it was
        made already (its headers are not read twice).

    Raises
    ------
    InputError
        With a message naming the file and the problem.
    """
    path = export_folder(Path(path))
    if path.is_dir():
        from annotator.io import dicom  # pydicom: only when a folder is read

        volume = dicom.read_series(path, series, scan)
    elif path.is_file() and looks_like_dicom(path):
        from annotator.io import dicom

        volume = dicom.read_file(path)
    else:
        return _file_volumes(path, series)[0]
    return _checked(volume, str(path))


#: a 4-D file of more volumes than this (a time series) shows the one annotated only
MAX_COMPANIONS = 8


def channel_names(path: Path) -> list[str] | None:
    """The channels of a task's images (of a 4-D file's volumes, or of nnU-Net's files
    ``case_0000``, ``case_0001``, ...), as the ``dataset.json`` in the folder of ``path`` or
    the one above names them ("modality" of the Decathlon, "channel_names" of nnU-Net:
    ``{"0": "FLAIR", "1": "T1w"}``, numbered from 0 without gaps); None where none does."""
    for folder in (path.parent, path.parent.parent):
        try:
            described = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(described, dict):
            continue
        for key in ("channel_names", "modality"):
            names = described.get(key)
            if isinstance(names, dict) and names and all(str(i) in names for i in range(len(names))):
                return [str(names[str(i)]).strip() or str(i + 1) for i in range(len(names))]
    return None


#: what data sets call their MR channels (the Decathlon's "modality", nnU-Net's "channel_names")
_MR_CHANNELS = {"MR", "MRI", "T1", "T1W", "T1GD", "T1C", "T1CE", "T1POST", "T2", "T2W", "FLAIR", "ADC", "DWI", "PD",
                "SWI", "HBV", "DIXON"}


def channel_modality(name: str) -> str | None:
    """The modality a data set's channel name says ("CT"; "MR" for "MRI", "T2", "FLAIR",
    "ADC" and the like), else None."""
    key = "".join(c for c in name.upper() if c.isalnum())
    return "CT" if key == "CT" else "MR" if key in _MR_CHANNELS else None


#: the last 4-D file one volume was read of, while :func:`companions` has not read its
#: others: (path, size, modification time) -> what :func:`_read_sitk` gave (one file at most)
_KEPT: dict[tuple, tuple] = {}


def _stamp(path: Path) -> tuple | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return str(path.resolve()), found.st_size, found.st_mtime_ns


def _file_volumes(path: Path, which: str | int | None = "all") -> list[Volume]:
    """The volumes of an image file: the one of a 3-D file; of a 4-D file (time points or
    channels, as the Decathlon's multi-modal images) or a 3-D file of several values per
    voxel (a NRRD of diffusion volumes; not a colour image), each (``which``: "all") or the one
    numbered ``which`` from 0 (the first for None), named by what ``dataset.json`` calls
    it (:func:`channel_names`), else by its number; its modality is the one that name
    says, else a guess from its values."""
    stamp = _stamp(path)
    kept = _KEPT.pop(stamp, None) if which == "all" and stamp is not None else None
    image, non_finite = kept or _read_sitk(path)
    components = image.GetNumberOfComponentsPerPixel()
    stacked = image.GetDimension() == 4 and components == 1
    colour = image.GetPixelID() == sitk.sitkVectorUInt8 and components in (3, 4)
    vector = image.GetDimension() == 3 and components > 1 and not colour  # a NRRD's diffusion volumes, say
    count = image.GetSize()[3] if stacked else components if vector else 1
    if which == "all":
        numbers = list(range(count))
    else:
        number = 0 if which is None else int(which) if str(which).isdigit() else -1
        if not 0 <= number < count:
            raise InputError(f"{path}: no volume '{which}' (it holds {count}, numbered 0 to {count - 1})")
        numbers = [number]
    _KEPT.clear()
    if which != "all" and 1 < count <= MAX_COMPANIONS and stamp is not None:  # its others are shown next
        _KEPT[stamp] = (image, non_finite)
    named = channel_names(path)
    named = named if named and len(named) == count else None
    names = named or [f"volume {i + 1} of {count}" for i in range(count)]
    volumes = []
    for number in numbers:
        one = image
        if stacked:
            size = list(image.GetSize())
            size[3] = 0
            one = sitk.Extract(image, size, [0, 0, 0, number])
        elif vector:
            one = sitk.VectorIndexSelectionCast(image, number)
        check_scalar_3d(one, str(path))
        name = image_stem(path) + (f" ({names[number]})" if count > 1 else "")
        volume = volume_from_sitk(one, name=name, source=Source(path=str(path), volume=number if count > 1 else None))
        volume.modality = (named and channel_modality(named[number])) or guess_modality(volume.array)
        mask = non_finite[number] if non_finite is not None and non_finite.ndim == 4 else non_finite
        if mask is not None and mask.shape == volume.shape:
            volume.array = volume.array.astype(np.float32, copy=False) if volume.array.dtype.kind != "f" else volume.array
            volume.array[mask] = np.nan  # SimpleITK made them 0: the NaN rule below decides
        if count > 1:
            shown = ("the others are shown beneath it" if count <= MAX_COMPANIONS
                     else f"the others are not shown (more than {MAX_COMPANIONS})")
            listed = f" ({', '.join(named)})" if named else ""
            which = named[number] if named else f"volume {number + 1}"
            volume.warnings.append(f"a 4-D image of {count} volumes{listed}: {which} is annotated and {shown}; "
                                   "its label fits every volume of the file")
        volumes.append(_checked(volume, str(path)))
    return volumes


def companions(volume: Volume) -> list[Volume]:
    """The other volumes of the 4-D file ``volume`` is one of (other channels or time
    points: shown beside it, never annotated), at most :data:`MAX_COMPANIONS`; none for
    any other image. The file is read again, unless it was the last read for one volume
    and has not changed since."""
    number, path = volume.source.volume, Path(volume.source.path)
    if number is None or not path.is_file():
        return []
    try:
        reader = read_information(path)
    except RuntimeError:
        return []
    size, components = reader.GetSize(), reader.GetNumberOfComponents()
    count = size[3] if len(size) == 4 else components if len(size) == 3 else 1
    if not 1 < count <= MAX_COMPANIONS:
        return []
    others = [v for v in _file_volumes(path) if v.source.volume != number]
    for other in others:
        other.warnings = [w for w in other.warnings if not w.startswith("a 4-D image")]
    return others


def read_parts(folder: Path, keys: list[str], image: Volume) -> list[Volume]:
    """The acquisitions ``keys`` (:attr:`annotator.io.dicom.SeriesInfo.key`) of the DICOM
    series in ``folder``'s own files that lie on ``image``'s grid, in that order, its
    headers read once. Another plane (of a three-plane localizer) is not the image's and
    is left out; one that cannot be read, or lies in its plane on another grid, is left
    out, named in a warning on ``image``."""
    from annotator.io import dicom

    scan = dicom.scan_folder(folder, below=False)
    found = {info.key: info for info in scan.series}
    files: dict[Path, list[Volume]] = {}
    direction = np.reshape(image.direction, (3, 3))
    shown = []
    for key in keys:
        name = key.partition("/")[2] or key
        orientation = _orientation(found.get(key))
        if orientation is not None and not np.allclose(orientation, direction[:, :2].T.ravel(), atol=1e-3):
            continue
        try:
            volume = _read_part(found[key], folder, files) if key in found else read_volume(folder, key, scan)
        except InputError as exc:
            image.warnings.append(f"{name} not shown: {exc}")
            continue
        if not np.allclose(np.reshape(volume.direction, (3, 3)), direction, atol=1e-3):
            continue
        if volume.same_geometry(image, rtol=1e-4):
            shown.append(volume)
        else:
            image.warnings.append(f"{name} not shown: its grid ({volume.shape[::-1]} voxels at {volume.origin}) "
                                  f"is not this image's ({image.shape[::-1]} at {image.origin})")
    return shown


def _orientation(info) -> np.ndarray | None:
    """The ImageOrientationPatient of a single-frame series' first slice, if it says one."""
    try:
        values = np.asarray([float(v) for v in info.files[0].dataset.ImageOrientationPatient], float)
    except (AttributeError, IndexError, TypeError, ValueError):  # a multi-frame image, or no such part
        return None
    return values if values.size == 6 else None


def export_folder(path: Path) -> Path:
    """The folder a CD or USB export's DICOMDIR indexes (where its series are), else ``path``."""
    return path.parent if is_dicomdir(path) and path.is_file() else path


def read_all(path: str | os.PathLike) -> tuple[list[Volume], list[str]]:
    """Every volume ``path`` holds: each DICOM image series of a folder and below it (each
    acquisition of a series that holds several), largest first; each volume of a 4-D
    file; else the one image. And why each series that cannot be read was left out (a
    message per series, naming it). A folder with no image series at all, or a file that
    cannot be read, raises :class:`InputError`. A multi-frame DICOM file: each volume it
    holds (its echoes, time points ...)."""
    from annotator.io import dicom

    folder = export_folder(Path(path))
    if not folder.is_dir():
        if folder.is_file() and looks_like_dicom(folder):
            return [_checked(v, str(folder)) for v in dicom.file_volumes(folder)], []
        return _file_volumes(folder), []
    scan = dicom.scan_folder(folder)
    dicom.pick_series(scan, folder, None)  # none at all: its message says why
    volumes, problems = [], []
    files: dict[Path, list[Volume]] = {}
    for info in scan.series:
        try:
            volumes.append(_read_part(info, folder, files))
        except InputError as exc:
            problems.append(f"series '{info.title}' left out: {exc}")
    return volumes, problems


def _read_part(info, folder: Path, files: dict[Path, list[Volume]]) -> Volume:
    """One series (or part of one) of a :func:`annotator.io.dicom.scan_folder` listing of
    ``folder``, checked; a volume of a multi-frame file that holds several comes from
    ``files``, where each such file's volumes are kept once it was read (once for all)."""
    from annotator.io import dicom

    volume = None
    if info.frames:
        from annotator.io.multiframe import read_volumes

        path = info.files[0].path
        if path not in files:
            files[path] = read_volumes(path, place=info.folder)
        volume = next((v for v in files[path] if set(v.source.frames) == set(info.frames)), None)
    return _checked(volume or dicom.read_info(info, folder), str(info.folder))


def _checked(volume: Volume, where: str) -> Volume:
    check_geometry(volume, where)
    replace_non_finite(volume, where)
    return volume


def read_label(path: str | os.PathLike, image: Volume) -> np.ndarray:
    """Read a label map that must lie on ``image``'s grid; return its integer array.

    The label's geometry must equal the image's within float32 precision (what a NIfTI
    header can hold), or its voxel centres be the image's (:meth:`Volume.on_grid_of`): the
    same grid stored another way round (its rows flipped, its axes in another order),
    turned to the image's order, or for a 3D Slicer segmentation a part of it (saved
    cropped to its segments), put in its place; values must be non-negative integers.
    """
    path = Path(path)
    other = read_label_volume(path)
    image.warnings.extend(other.warnings)
    if not other.same_geometry(image, rtol=1e-5):
        from annotator.io.slicer_seg import is_segmentation

        placed = other.on_grid_of(image, part=is_segmentation(path))  # stored another way round, or cropped
        if placed is not None:
            array, outside = placed
            if outside:
                image.warnings.append(f"{path.name}: {outside:,} labelled voxels lie outside {image.name} and are "
                                      "left out")
            return as_label_array(np.ascontiguousarray(array), image, str(path))
    return as_label_array(other.array, image, str(path), other)


def read_label_volume(path: str | os.PathLike) -> Volume:
    """A label map file on its own grid, as a volume of its values (a 3D Slicer
    segmentation of several layers flattened into one label: :mod:`annotator.io.slicer_seg`,
    what that says in ``warnings``)."""
    path = Path(path)
    label, non_finite = _read_sitk(path)
    if non_finite is not None and non_finite.any():
        raise InputError(f"{path}: label values must be whole numbers (found NaN or infinity)")
    fields = {k: label.GetMetaData(k) for k in label.GetMetaDataKeys() if k.startswith("Segment")}
    said = []
    if label.GetNumberOfComponentsPerPixel() > 1 and label.GetDimension() == 3 and fields:
        from annotator.io import slicer_seg

        flat, said = slicer_seg.flatten(sitk.GetArrayViewFromImage(label), fields, path.name)
        one = sitk.GetImageFromArray(flat)
        one.CopyInformation(label)
        label = one
    check_scalar_3d(label, str(path))
    volume = volume_from_sitk(label, name=image_stem(path), source=Source(path=str(path)))
    volume.warnings.extend(said)
    return volume


def as_label_array(array: np.ndarray, image: Volume, where: str, geometry: Volume | None = None,
                   file: bool = True) -> np.ndarray:
    """A label array checked against its image, as a label is held (:func:`as_label`);
    ``where``: the file it was read from, or (``file`` False) is to be written to."""
    if tuple(array.shape) != image.shape:
        raise GeometryError(
            f"{where}: label has {_xyz(array.shape)} voxels but the image has {_xyz(image.shape)}"
        )
    if geometry is not None and not geometry.same_geometry(image, rtol=1e-5):
        raise GeometryError(f"{where}: label geometry differs from the image ({_differences(geometry, image)})")
    return as_label(array, where if file else f"the label for {where}", file)


def _differences(label: Volume, image: Volume) -> str:
    """What of a label's grid differs from its image's (the same size): only that."""
    said = []
    for name in label.geometry_differences(image, rtol=1e-5):
        if name == "direction":
            said.append("its axes run otherwise: it is flipped or turned against the image")
        else:
            ours, theirs = (tuple(round(v, 4) for v in getattr(v, name)) for v in (label, image))
            said.append(f"{name} {ours} vs {theirs} mm")
    return "; ".join(said)


def _xyz(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in reversed(shape)) + " (x,y,z)"
