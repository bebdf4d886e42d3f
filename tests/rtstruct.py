"""RT Structure Sets made here from a label on a DICOM series: each value's outline on
each slice (scikit-image's marching squares, halfway between the voxel centres inside
and outside, so that filling it gives the voxels back)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

RT_STRUCTURE_SET = "1.2.840.10008.5.1.4.1.1.481.3"


def outlines(mask: np.ndarray) -> list[np.ndarray]:
    """The closed outlines ((n, 2) row, column) of a 2-D mask, holes as outlines of their own."""
    from skimage import measure

    padded = np.pad(mask.astype(float), 1)
    return [c - 1 for c in measure.find_contours(padded, 0.5) if len(c) > 3]


def rtstruct_of(series: Path, structures: dict[int, tuple[str, np.ndarray]], target: Path,
                extra: list[pydicom.Dataset] | None = None) -> Path:
    """A structure set written to ``target`` of ``structures`` (ROI number -> its name and
    its mask, (z, y, x) on the series' grid, slices along the slice normal); ``extra``
    contour items are added to the first structure."""
    from annotator.io import read_volume

    volume = read_volume(series)
    headers = sorted((pydicom.dcmread(p, stop_before_pixels=True) for p in series.iterdir() if p.is_file()),
                     key=lambda ds: float(np.asarray(ds.ImagePositionPatient, float)
                                          @ np.cross(np.asarray(ds.ImageOrientationPatient[:3], float),
                                                     np.asarray(ds.ImageOrientationPatient[3:], float))))
    first = headers[0]
    to_patient = np.reshape(volume.direction, (3, 3)) * np.asarray(volume.spacing)
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = RT_STRUCTURE_SET
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality = "RTSTRUCT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = first.StudyInstanceUID, generate_uid()
    ds.PatientID, ds.PatientName = first.get("PatientID", ""), first.get("PatientName", "")
    ds.StructureSetLabel = "made here"
    frame = pydicom.Dataset()
    frame.FrameOfReferenceUID = first.get("FrameOfReferenceUID", generate_uid())
    study, referenced = pydicom.Dataset(), pydicom.Dataset()
    referenced.SeriesInstanceUID = first.SeriesInstanceUID
    referenced.ContourImageSequence = pydicom.Sequence([_image(h) for h in headers])
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study.RTReferencedSeriesSequence = pydicom.Sequence([referenced])
    frame.RTReferencedStudySequence = pydicom.Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = pydicom.Sequence([frame])
    rois, contours = [], []
    for number, (name, mask) in structures.items():
        roi = pydicom.Dataset()
        roi.ROINumber, roi.ROIName = number, name
        roi.ReferencedFrameOfReferenceUID = frame.FrameOfReferenceUID
        rois.append(roi)
        item = pydicom.Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = [255, 0, 0]
        drawn = []
        for z in range(mask.shape[0]):
            for outline in outlines(mask[z]):
                index = np.stack([outline[:, 1], outline[:, 0], np.full(len(outline), z)], axis=1)  # x, y, z
                points = index @ to_patient.T + np.asarray(volume.origin)
                contour = pydicom.Dataset()
                contour.ContourGeometricType = "CLOSED_PLANAR"
                contour.NumberOfContourPoints = len(points)
                contour.ContourData = [f"{v:.6g}" for v in points.ravel()]
                contour.ContourImageSequence = pydicom.Sequence([_image(headers[z])])
                drawn.append(contour)
        if not contours:
            drawn += list(extra or [])
        item.ContourSequence = pydicom.Sequence(drawn)
        contours.append(item)
    ds.StructureSetROISequence = pydicom.Sequence(rois)
    ds.ROIContourSequence = pydicom.Sequence(contours)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    return target


def _image(header) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.ReferencedSOPClassUID = header.SOPClassUID
    item.ReferencedSOPInstanceUID = header.SOPInstanceUID
    return item
