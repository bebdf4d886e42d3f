"""DICOM RT Structure Sets (RTSTRUCT) as labels: the contours radiotherapy planning and
many public collections keep their segmentations in.

A structure set names its structures (ROIs) and outlines each on the slices of a
series: closed planar polygons in patient coordinates. Each polygon is filled on the
slice it lies on (a voxel is inside when its centre is); polygons of one structure on
one slice fill by the even-odd rule, so an outline inside another is a hole. The
structures are painted largest first, so that one inside another (an organ inside the
body outline) stays visible. Points, open polylines and polygons that do not lie on one
of the image's slices are left out, and said.
"""

from __future__ import annotations

import numpy as np

from annotator.errors import InputError
from annotator.io.volume import Volume

#: how far (in slices) a polygon may lie from the slice it is drawn on
SLICE_TOLERANCE = 0.25


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
    ``polygon`` ((n, 2) column, row coordinates)."""
    from matplotlib.path import Path as Outline

    inside = np.zeros(shape, bool)
    low = np.maximum(np.floor(polygon.min(axis=0)).astype(int), 0)
    high = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + 1, [shape[1], shape[0]])
    if np.any(high <= low):
        return inside
    columns, rows = np.meshgrid(np.arange(low[0], high[0]), np.arange(low[1], high[1]))
    centres = np.stack([columns.ravel(), rows.ravel()], axis=1)
    hit = Outline(polygon).contains_points(centres).reshape(rows.shape)
    inside[low[1]:high[1], low[0]:high[0]] = hit
    return inside


def rtstruct_to_label(ds, volume: Volume, known: dict[str, int] | None = None
                      ) -> tuple[np.ndarray, dict[int, str], list[str]]:
    """The label of a structure set ``ds`` on ``volume`` (the series it outlines), the
    structure names by label value, and what was left out, for a person. A structure
    takes the value its name has in ``known`` (name -> value: what the reader has seen
    before), else its number where that is free, else the lowest free value."""
    from annotator.io.seg import segment_values

    uid = referenced_series(ds)
    if uid and volume.source.series_uid and uid != volume.source.series_uid:
        raise InputError(f"the structure set {ds.get('SOPInstanceUID', '')} outlines another series than {volume.name}")
    names = {int(r.ROINumber): str(r.get("ROIName", "") or f"structure {r.ROINumber}")
             for r in ds.get("StructureSetROISequence") or [] if "ROINumber" in r}
    to_index = np.linalg.inv(np.reshape(volume.direction, (3, 3)) * np.asarray(volume.spacing))
    origin = np.asarray(volume.origin, float)
    depth, rows, columns = volume.shape
    masks: dict[int, np.ndarray] = {}
    off, other = 0, 0  # polygons off the image's slices; points and open lines
    for roi in ds.get("ROIContourSequence") or []:
        number = int(roi.get("ReferencedROINumber", 0) or 0)
        for contour in roi.get("ContourSequence") or []:
            if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                other += 1
                continue
            try:
                points = np.asarray([float(v) for v in contour.ContourData], float).reshape(-1, 3)
            except (AttributeError, TypeError, ValueError):
                off += 1
                continue
            index = (points - origin) @ to_index.T  # (x, y, z) voxel coordinates
            z = float(np.median(index[:, 2]))
            k = int(round(z))
            if len(points) < 3 or not 0 <= k < depth or np.abs(index[:, 2] - k).max() > SLICE_TOLERANCE:
                off += 1
                continue
            mask = masks.setdefault(number, np.zeros(volume.shape, bool))
            mask[k] ^= _fill(index[:, :2], (rows, columns))
    painted = {n: m for n, m in masks.items() if m.any()}
    if not painted:
        raise InputError(f"the structure set {ds.get('SOPInstanceUID', '')}: none of its contours lies on the slices "
                         f"of {volume.name}")
    values = segment_values({n: names.get(n, f"structure {n}") for n in painted}, {}, known or {})
    label = np.zeros(volume.shape, np.uint8)
    for number in sorted(painted, key=lambda n: -int(painted[n].sum())):  # the largest first: the others on top
        label[painted[number]] = values[number]
    left_out = []
    if off:
        left_out.append(f"{off} contour(s) left out: not on a slice of {volume.name}")
    if other:
        left_out.append(f"{other} point or open contour(s) left out: only closed outlines fill a structure")
    return label, {values[n]: names.get(n, f"structure {n}") for n in painted}, left_out
