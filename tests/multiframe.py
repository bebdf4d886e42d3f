"""DICOM made here from single-frame series: multi-frame images (highdicom's legacy
conversion) with their frames stored in a chosen order, and series holding two echoes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from paths import DATA

#: a small single-frame series: 40 MR slices of 34 x 50
MR_SERIES = DATA / "udacity_study3_mr_dicom" / "11_HCropVolume"


def multiframe_of(series: Path, target: Path, order: list[int] | None = None) -> Path:
    """A Legacy Converted Enhanced MR/CT image of the single-frame ``series``, written to
    ``target``; ``order``: the stored frames rearranged (frame i of the file is the
    converted image's frame ``order[i]``, from 0)."""
    import highdicom as hd

    datasets = [pydicom.dcmread(p) for p in sorted(series.iterdir()) if p.is_file()]
    convert = {"MR": hd.legacy.LegacyConvertedEnhancedMRImage,
               "CT": hd.legacy.LegacyConvertedEnhancedCTImage}[datasets[0].Modality]
    image = convert(datasets, series_instance_uid=hd.UID(), series_number=7, sop_instance_uid=hd.UID(),
                    instance_number=1)
    if order is not None:
        frames = image.pixel_array.reshape(len(order), image.Rows, image.Columns)
        image.PixelData = np.ascontiguousarray(frames[order]).tobytes()
        groups = list(image.PerFrameFunctionalGroupsSequence)
        image.PerFrameFunctionalGroupsSequence = pydicom.Sequence([groups[i] for i in order])
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save_as(target)
    return target


def two_echoes_of(series: Path, target: Path) -> Path:
    """``series`` as echo 1 and a second echo (other voxel values, new instances) in one
    series in ``target``, the files of both echoes interleaved by name."""
    from pydicom.uid import generate_uid

    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in series.iterdir() if p.is_file()):
        ds = pydicom.dcmread(path)
        ds.EchoNumbers = 1
        ds.save_as(target / f"{path.stem}a.dcm")
        ds.EchoNumbers = 2
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PixelData = (ds.pixel_array * 2 + 5).astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(target / f"{path.stem}b.dcm")
    return target
