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
    for ds in datasets:  # some writers leave them to the file meta
        ds.SOPClassUID = ds.get("SOPClassUID") or ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.get("SOPInstanceUID") or ds.file_meta.MediaStorageSOPInstanceUID
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


def echoes_in_one_file(series: Path, target: Path, told: str = "echo", count: int = 2) -> Path:
    """``series`` (echo 1) and its voxels × 2 + 5 (echo 2) as one multi-frame image written
    to ``target``, the frames of the two echoes interleaved. ``told``: what tells the
    echoes apart: "echo" their frames' EffectiveEchoTime (25 ms for echo 1, 10 ms for echo
    2, so that their order is not the frames'), "dimension" only a dimension index beside
    the slice position's (on a diffusion gradient direction, the b-value being the same),
    "nothing" nothing. ``count``: echoes k = 3, 4 ... too, voxels × k + 5 (k − 1), echo
    time 10 (k − 1) ms."""
    import copy

    import highdicom as hd
    from pydicom.tag import Tag

    one = pydicom.dcmread(multiframe_of(series, target))
    frames = one.pixel_array
    pixels = np.empty((count * len(frames), *frames.shape[1:]), frames.dtype)
    for k in range(count):
        pixels[k::count] = frames * (k + 1) + 5 * k
    groups = []
    for group in one.PerFrameFunctionalGroupsSequence:
        for echo, time in [(1, 25.0), *((k, 10.0 * (k - 1)) for k in range(2, count + 1))]:
            item = copy.deepcopy(group)
            if told == "echo":
                echo_item = pydicom.Dataset()
                echo_item.EffectiveEchoTime = time
                item.MREchoSequence = pydicom.Sequence([echo_item])
            if told == "dimension":
                direction = pydicom.Dataset()
                direction.DiffusionGradientOrientation = [1.0, 0.0, 0.0] if echo == 1 else [0.0, 1.0, echo - 2.0]
                diffusion = pydicom.Dataset()
                diffusion.DiffusionBValue = 1000.0
                diffusion.DiffusionGradientDirectionSequence = pydicom.Sequence([direction])
                item.MRDiffusionSequence = pydicom.Sequence([diffusion])
                item.FrameContentSequence[0].DimensionIndexValues = [int(item.FrameContentSequence[0].InStackPositionNumber), echo]
            groups.append(item)
    if told == "dimension":
        dimension = pydicom.Dataset()
        dimension.DimensionOrganizationUID = one.DimensionIndexSequence[0].DimensionOrganizationUID
        dimension.DimensionIndexPointer = Tag("DiffusionGradientOrientation")
        dimension.FunctionalGroupPointer = Tag("MRDiffusionSequence")
        one.DimensionIndexSequence = pydicom.Sequence([*one.DimensionIndexSequence, dimension])
    one.PerFrameFunctionalGroupsSequence = pydicom.Sequence(groups)
    one.NumberOfFrames = len(groups)
    one.PixelData = pixels.tobytes()
    one.SOPInstanceUID = one.file_meta.MediaStorageSOPInstanceUID = hd.UID()
    one.save_as(target)
    return target


def planes_in_one_file(series: Path, target: Path) -> Path:
    """``series`` as one multi-frame image written to ``target`` twice: its axial frames,
    then the same pixels again as a sagittal stack (rows along y, columns down z, slices
    1 mm apart along −x), as a scanner's three-plane localizer holds its planes."""
    import copy

    import highdicom as hd

    one = pydicom.dcmread(multiframe_of(series, target))
    groups = list(one.PerFrameFunctionalGroupsSequence)
    sagittal = []
    for group in groups:
        item = copy.deepcopy(group)
        z = float(group.PlanePositionSequence[0].ImagePositionPatient[2])
        item.PlanePositionSequence[0].ImagePositionPatient = [-z, 0.0, 0.0]  # slices in the axial order
        plane = pydicom.Dataset()
        plane.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
        item.PlaneOrientationSequence = pydicom.Sequence([plane])
        sagittal.append(item)
    for group in groups:  # the shared orientation is now each frame's own
        plane = pydicom.Dataset()
        plane.ImageOrientationPatient = list(one.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
                                             .ImageOrientationPatient)
        group.PlaneOrientationSequence = pydicom.Sequence([plane])
    del one.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence
    one.PerFrameFunctionalGroupsSequence = pydicom.Sequence(groups + sagittal)
    one.NumberOfFrames = 2 * len(groups)
    one.PixelData = one.PixelData * 2
    one.SOPInstanceUID = one.file_meta.MediaStorageSOPInstanceUID = hd.UID()
    one.save_as(target)
    return target


def jpeg_lossless(path: Path) -> Path:
    """The multi-frame image ``path`` rewritten in place with each frame compressed as JPEG
    Lossless (process 14, selection value 1: what many archives store), which pydicom has
    no decoder for without GDCM or libjpeg; GDCM (in SimpleITK) encodes the frames."""
    import tempfile

    import SimpleITK as sitk

    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    encoded = []
    with tempfile.TemporaryDirectory() as folder:
        for frame in frames:
            writer = sitk.ImageFileWriter()
            writer.SetImageIO("GDCMImageIO")
            writer.SetUseCompression(True)
            writer.SetCompressor("JPEG")
            writer.SetFileName(f"{folder}/frame.dcm")
            writer.Execute(sitk.GetImageFromArray(frame[None]))
            one = pydicom.dcmread(f"{folder}/frame.dcm")
            assert one.file_meta.TransferSyntaxUID == pydicom.uid.JPEGLosslessSV1
            encoded.append(next(pydicom.encaps.generate_frames(one.PixelData, number_of_frames=1)))
    ds.PixelData = pydicom.encaps.encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGLosslessSV1
    ds.save_as(path, enforce_file_format=True)
    return path
