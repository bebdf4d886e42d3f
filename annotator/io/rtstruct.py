"""DICOM RT Structure Sets (RTSTRUCT) as labels: the contours radiotherapy planning and
many public collections keep their segmentations in.

A structure set names its structures (ROIs) and outlines each on the slices of a
series: closed planar polygons in patient coordinates. Each polygon is filled on the
slice it lies on (a voxel is inside when its centre is); polygons of one structure on
one slice fill by the even-odd rule, so an outline inside another is a hole. Where
structures overlap the smaller is kept, so that one inside another (an organ inside the
body outline) stays visible (:mod:`annotator.io.overlaps`). Points, open polylines and
polygons that do not lie on one of the image's slices are left out; both are said.

A label is written as a structure set too (:func:`series_rtstruct`, for the planning
systems that read contours and not SEGs): each label value a structure, each connected
region of it on a slice outlined where its voxels meet the others (half a voxel out from
the outermost voxel centres, so that filling the outlines as above gives the label back),
a hole as an outline inside another.
"""

from __future__ import annotations

import numpy as np
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from annotator.errors import InputError
from annotator.io.overlaps import Part, one_label
from annotator.io.volume import Volume

#: how far (in slices) a polygon may lie from the slice it is drawn on
SLICE_TOLERANCE = 0.25
#: the ContourData attribute's tag
_CONTOUR_DATA = BaseTag(0x30060050)


def referenced_series(ds) -> str:
    """The SeriesInstanceUID whose slices a structure set outlines ("" if it says none)."""
    for frame in ds.get("ReferencedFrameOfReferenceSequence") or []:
        for study in frame.get("RTReferencedStudySequence") or []:
            for series in study.get("RTReferencedSeriesSequence") or []:
                if series.get("SeriesInstanceUID"):
                    return str(series.SeriesInstanceUID)
    return ""


def referenced_instances(ds) -> set[str]:
    """The SOP Instance UIDs of the slices a structure set's contours are drawn on."""
    found = set()
    for roi in ds.get("ROIContourSequence") or []:
        for contour in roi.get("ContourSequence") or []:
            for image in contour.get("ContourImageSequence") or []:
                found.add(str(image.get("ReferencedSOPInstanceUID", "")))
    for frame in ds.get("ReferencedFrameOfReferenceSequence") or []:
        for study in frame.get("RTReferencedStudySequence") or []:
            for series in study.get("RTReferencedSeriesSequence") or []:
                for image in series.get("ContourImageSequence") or []:
                    found.add(str(image.get("ReferencedSOPInstanceUID", "")))
    return found - {""}


def _fill(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Where in a slice of ``shape`` (rows, columns) the voxel centres lie inside
    ``polygon`` ((n, 2) column, row coordinates), by the even-odd rule: a centre is inside
    when a line from it to the left crosses the outline an odd number of times."""
    rows, columns = shape
    inside = np.zeros(shape, bool)
    first, last = max(int(np.ceil(polygon[:, 1].min())), 0), min(int(np.floor(polygon[:, 1].max())), rows - 1)
    if last < first:
        return inside
    x, y = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x, -1), np.roll(y, -1)
    centres = np.arange(first, last + 1, dtype=float)[:, None]  # the rows the outline spans
    crosses = (np.minimum(y, y2) <= centres) & (centres < np.maximum(y, y2))  # (rows, edges); flat edges never
    at = x + (centres - y) / np.where(y2 != y, y2 - y, 1.0) * (x2 - x)  # where each edge meets each row
    row, _ = np.nonzero(crosses)
    counts = np.zeros((last - first + 1, columns + 1), np.int32)
    np.add.at(counts, (row, np.clip(np.ceil(at[crosses]).astype(int), 0, columns)), 1)
    inside[first:last + 1] = np.cumsum(counts[:, :columns], axis=1) % 2 == 1
    return inside


def _points(contour) -> np.ndarray:
    """A contour's ContourData as (n, 3) numbers: read from the file's text at once (pydicom
    makes an object of each number, seconds for a structure set of a CT)."""
    value = contour.get_item("ContourData").value
    if isinstance(value, (bytes, bytearray)):
        numbers = np.asarray(value.decode("ascii").strip(" \x00").split("\\"), float)
    else:
        numbers = np.asarray([float(v) for v in (value if isinstance(value, (list, tuple, MultiValue)) else [value])])
    return numbers.reshape(-1, 3)


def rtstruct_to_label(ds, volume: Volume, known: dict[str, int] | None = None
                      ) -> tuple[np.ndarray, dict[int, str], list[str]]:
    """The label of a structure set ``ds`` on ``volume`` (the series it outlines), the
    structure names by label value, and what was left out, for a person. A structure
    takes the value its name has in ``known`` (name -> value: what the reader has seen
    before), else its number where that is free, else the lowest free value."""
    from annotator.io.seg import distinct_names, segment_values

    uid = referenced_series(ds)
    if uid and volume.source.series_uid and uid != volume.source.series_uid:
        raise InputError(f"the structure set {ds.get('SOPInstanceUID', '')} outlines another series than {volume.name}")
    names = distinct_names({int(r.ROINumber): str(r.get("ROIName", "") or f"structure {r.ROINumber}")
                            for r in ds.get("StructureSetROISequence") or [] if "ROINumber" in r})
    to_index = np.linalg.inv(np.reshape(volume.direction, (3, 3)) * np.asarray(volume.spacing))
    origin = np.asarray(volume.origin, float)
    depth, rows, columns = volume.shape
    masks: dict[int, dict[int, np.ndarray]] = {}  # structure -> slice -> where it is there
    off, other = 0, 0  # polygons off the image's slices; points and open lines
    for roi in ds.get("ROIContourSequence") or []:
        if "ReferencedROINumber" not in roi:  # type 1: a file cut short ends in such an item
            raise InputError(f"the structure set {ds.get('SOPInstanceUID', '')} is damaged (cut short?): contours "
                             "that name no structure")
        number = int(roi.ReferencedROINumber)
        for contour in roi.get("ContourSequence") or []:
            if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                other += 1
                continue
            try:
                points = _points(contour)
            except (AttributeError, KeyError, TypeError, ValueError):
                off += 1
                continue
            index = (points - origin) @ to_index.T  # (x, y, z) voxel coordinates
            z = float(np.median(index[:, 2]))
            k = int(round(z))
            if len(points) < 3 or not 0 <= k < depth or np.abs(index[:, 2] - k).max() > SLICE_TOLERANCE:
                off += 1
                continue
            slices = masks.setdefault(number, {})
            slices[k] = slices.get(k, False) ^ _fill(index[:, :2], (rows, columns))
    sizes = {n: sum(int(m.sum()) for m in slices.values()) for n, slices in masks.items()}
    painted = [n for n in sorted(sizes, key=lambda n: -sizes[n]) if sizes[n]]
    if not painted:
        raise InputError(f"the structure set {ds.get('SOPInstanceUID', '')}: none of its contours lies on the slices "
                         f"of {volume.name}")
    values = segment_values({n: names.get(n, f"structure {n}") for n in painted}, {}, known or {})
    plane = rows * columns
    parts = [Part(values[n], names.get(n, f"structure {n}"),
                  np.concatenate([np.flatnonzero(inside) + k * plane for k, inside in masks[n].items()]))
             for n in painted]
    label, left_out = one_label(volume.shape, parts, f"the structure set {ds.get('SOPInstanceUID', '')}")
    if off:
        left_out.append(f"{off} contour(s) left out: not on a slice of {volume.name}")
    if other:
        left_out.append(f"{other} point or open contour(s) left out: only closed outlines fill a structure")
    return label, {values[n]: names.get(n, f"structure {n}") for n in painted}, left_out


#: RT Structure Set Storage
RTSTRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
#: what a structure set's reference to its study names (the Study Component SOP class, as
#: planning systems write it)
_STUDY_CLASS = "1.2.840.10008.3.1.2.3.1"
#: patient and study attributes a structure set copies from its image (type 2: may be empty)
_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
           "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber", "FrameOfReferenceUID")


def outlines(mask: np.ndarray) -> list[np.ndarray]:
    """Closed outlines ((n, 2) column, row coordinates) of where a 2-D ``mask`` is set: the
    outer edge of each region and of each hole in it, half a voxel out from the voxel
    centres (filled by :func:`_fill`, they give the mask back)."""
    import contourpy

    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return []
    part = mask[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]  # its extent only: a slice is large
    padded = np.pad(part.astype(np.float32), 1)  # regions on the edge close too
    lines = contourpy.contour_generator(z=padded, line_type=contourpy.LineType.Separate).lines(0.5)
    corner = np.array([columns[0], rows[0]], float) - 1.0
    return [line[:-1] + corner for line in lines if len(line) > 3]  # the last point repeats the first


def _ds(values) -> list[str]:
    """Decimal strings of at most 16 characters (the DICOM DS limit), to a thousandth of a mm."""
    return [f"{v:.3f}".rstrip("0").rstrip(".") or "0" for v in np.asarray(values, float).ravel()]


def label_to_rtstruct(label: np.ndarray, image: Volume, sources: list, names: dict[int, str],
                      algorithm: str | None = None, series_number: int = 9002):
    """A structure set of ``label`` ((z, y, x) on ``image``, read from the DICOM instances
    whose headers are ``sources``): a structure per label value, named by ``names``, an
    ORGAN where its name spells a structure of the body (:func:`annotator.io.seg_codes.is_anatomy`)."""
    import pydicom

    from annotator.io.seg_codes import is_anatomy
    from annotator.io.volume import label_values

    if label.shape != image.shape:
        raise InputError(f"label of shape {label.shape} (z,y,x) does not fit {image.name} {image.shape}")
    values = label_values(label)
    if not values:
        raise InputError("the label is empty: there is no structure to write")
    ds = _header(sources[0], series_number)
    on_slice = _slice_references(image, sources)
    ds.ReferencedFrameOfReferenceSequence = _referenced_frame(ds, image, sources[0], on_slice)
    to_patient = np.reshape(image.direction, (3, 3)) * np.asarray(image.spacing)  # (column, row, slice) -> mm
    origin = np.asarray(image.origin, float)
    rois, contours, observations = [], [], []
    for value in values:  # each structure numbered by its label value: read back, it keeps it
        roi = pydicom.Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = value, ds.FrameOfReferenceUID
        roi.ROIName = names.get(value, f"label {value}")[:64]
        roi.ROIGenerationAlgorithm = "SEMIAUTOMATIC" if algorithm else "MANUAL"
        if algorithm:
            roi.ROIGenerationDescription = algorithm[:64]
        rois.append(roi)
        contour = pydicom.Dataset()
        contour.ReferencedROINumber = value
        contour.ContourSequence = pydicom.Sequence(_contours(label == value, on_slice, origin, to_patient))
        contours.append(contour)
        observation = pydicom.Dataset()
        observation.ObservationNumber, observation.ReferencedROINumber = value, value
        # a structure of the body is an ORGAN; what else one is (a GTV, a PTV) is the planner's to say
        observation.RTROIInterpretedType = "ORGAN" if is_anatomy(roi.ROIName) else ""
        observation.ROIInterpreter = ""
        observations.append(observation)
    ds.StructureSetROISequence = pydicom.Sequence(rois)
    ds.ROIContourSequence = pydicom.Sequence(contours)
    ds.RTROIObservationsSequence = pydicom.Sequence(observations)
    return ds


def _header(first, series_number: int):
    """A new structure set's own attributes, and the patient's and study's of ``first``
    (a header of its image)."""
    import datetime

    import pydicom
    from pydicom.uid import generate_uid

    import annotator

    now = datetime.datetime.now()
    ds = pydicom.Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = RTSTRUCT_CLASS, generate_uid()
    for keyword in _COPIED:
        setattr(ds, keyword, first.get(keyword, ""))
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = "RTSTRUCT", generate_uid(), series_number, 1
    ds.SeriesDescription = "Annotator structures"
    ds.Manufacturer, ds.SoftwareVersions, ds.OperatorsName = "Annotator", annotator.__version__, ""
    ds.StructureSetLabel = "Annotator"
    ds.StructureSetDate, ds.StructureSetTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = RTSTRUCT_CLASS, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    return ds


def _slice_references(image: Volume, sources: list):
    """A function of a slice number giving a new reference to the instance (and frame) it
    came from."""
    import pydicom

    classes = {str(ds.SOPInstanceUID): str(ds.get("SOPClassUID", "") or ds.file_meta.MediaStorageSOPClassUID)
               for ds in sources}

    def reference(k: int):
        item = pydicom.Dataset()
        uid = image.source.sop_uids[k]
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = classes.get(uid, ""), uid
        if image.source.frames:
            item.ReferencedFrameNumber = int(image.source.frames[k])
        return item

    return reference


def _referenced_frame(ds, image: Volume, first, on_slice):
    """The structure set's frame of reference, study, series and every slice of it."""
    import pydicom

    ds.PositionReferenceIndicator = first.get("PositionReferenceIndicator", "")
    series = pydicom.Dataset()
    series.SeriesInstanceUID = image.source.series_uid or str(first.get("SeriesInstanceUID", ""))
    series.ContourImageSequence = pydicom.Sequence([on_slice(k) for k in range(image.shape[0])])
    study = pydicom.Dataset()
    study.ReferencedSOPClassUID, study.ReferencedSOPInstanceUID = _STUDY_CLASS, ds.StudyInstanceUID
    study.RTReferencedSeriesSequence = pydicom.Sequence([series])
    frame = pydicom.Dataset()
    frame.FrameOfReferenceUID = ds.FrameOfReferenceUID
    frame.RTReferencedStudySequence = pydicom.Sequence([study])
    return pydicom.Sequence([frame])


def _contours(mask: np.ndarray, on_slice, origin: np.ndarray, to_patient: np.ndarray) -> list:
    """The contour items of one structure (``mask``, z-y-x): its :func:`outlines` on each
    slice, in patient millimetres. Their points are stored as the file holds them (text
    joined by backslashes): pydicom would otherwise check each of a CT's million numbers
    as an object of its own, seconds per structure set."""
    import pydicom
    from pydicom.charset import default_encoding
    from pydicom.dataelem import RawDataElement

    items = []
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        for line in outlines(mask[k]):
            points = origin + np.column_stack([line, np.full(len(line), float(k))]) @ to_patient.T
            item = pydicom.Dataset()
            item.ContourImageSequence = pydicom.Sequence([on_slice(int(k))])
            item.ContourGeometricType, item.NumberOfContourPoints = "CLOSED_PLANAR", len(points)
            text = "\\".join(_ds(points)).encode("ascii")
            text += b" " * (len(text) % 2)  # values of even length
            item[_CONTOUR_DATA] = RawDataElement(_CONTOUR_DATA, "DS", len(text), text, 0, False, True)
            # written as it is (the file's explicit VR little endian; no text of its own, so
            # no character set to convert it to)
            item.set_original_encoding(False, True, default_encoding)
            items.append(item)
    return items


def series_rtstruct(label: np.ndarray, image: Volume, names: dict[int, str],
                    algorithm: str | None = None) -> tuple[str, bytes]:
    """(SOP Instance UID, file bytes) of the structure set of ``label`` on ``image``, read
    from the DICOM files in its source folder."""
    import io

    from annotator.io.seg import source_headers

    ds = label_to_rtstruct(label, image, source_headers(image, "an RT Structure Set"), names, algorithm)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return str(ds.SOPInstanceUID), buffer.getvalue()
