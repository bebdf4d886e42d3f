"""Every bad input gets an error naming the file and the problem."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from annotator.errors import GeometryError, InputError
from annotator.io import read_label, read_volume, write_label
from paths import DATA, HIPPO

HIPPO_IMAGE = HIPPO / "images" / "hippocampus_001.nii.gz"


def _edit_series(folder, change):
    """Apply ``change(index, dataset)`` to every file of a series copy, sorted by position."""
    files = sorted(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    for i, path in enumerate(files):
        ds = pydicom.dcmread(path)
        if change(i, ds) is not False:
            ds.save_as(path)
    return files


def test_gantry_tilt_built_by_shearing_positions(dicom_copy):
    def shear(i, ds):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.35 * i, z]  # ~19 degrees of tilt
    _edit_series(dicom_copy, shear)
    with pytest.raises(GeometryError, match=r"gantry tilt of 19\.\d degrees") as err:
        read_volume(dicom_copy)
    assert str(dicom_copy) in str(err.value)


def test_uneven_slice_spacing(dicom_copy):
    def nudge(i, ds):
        if i == 10:
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z + 0.4]
        else:
            return False
    _edit_series(dicom_copy, nudge)
    with pytest.raises(GeometryError, match="uneven slice spacing"):
        read_volume(dicom_copy)


def test_missing_slices_are_named(dicom_copy):
    files = _edit_series(dicom_copy, lambda i, ds: False)
    files[20].unlink()
    files[21].unlink()
    with pytest.raises(GeometryError, match=r"missing slices: .* \(about 2 slice\(s\) missing\)") as err:
        read_volume(dicom_copy)
    assert files[19].name in str(err.value) and files[22].name in str(err.value)


def test_mixed_image_sizes(dicom_copy):
    def shrink(i, ds):
        if i != 5:
            return False
        pixels = ds.pixel_array[:25, :17].copy()
        ds.Rows, ds.Columns = 25, 17
        ds.PixelData = pixels.tobytes()
    files = _edit_series(dicom_copy, shrink)
    with pytest.raises(GeometryError, match=r"mixes image sizes: .*17x25 in 1 files") as err:
        read_volume(dicom_copy)
    assert files[5].name in str(err.value)


def test_duplicate_positions(dicom_copy):
    def dup(i, ds):
        if i != 7:
            return False
        ds.ImagePositionPatient = [float(v) for v in pydicom.dcmread(files_sorted[6]).ImagePositionPatient]
    files_sorted = sorted(dicom_copy.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    _edit_series(dicom_copy, dup)
    with pytest.raises(GeometryError, match="same position"):
        read_volume(dicom_copy)


def test_truncated_dicom_file_is_named(dicom_copy):
    files = _edit_series(dicom_copy, lambda i, ds: False)
    data = files[12].read_bytes()
    files[12].write_bytes(data[: len(data) - 1000])
    with pytest.raises(InputError, match="truncated") as err:
        read_volume(dicom_copy)
    assert files[12].name in str(err.value)


def test_non_image_files_in_the_folder_are_skipped(dicom_copy):
    (dicom_copy / "README.txt").write_text("scan notes")
    (dicom_copy / "thumbs.db").write_bytes(b"\x00" * 300)
    volume = read_volume(dicom_copy)
    assert volume.size == (34, 50, 40)


def test_single_slice_series_is_2d(dicom_copy):
    for path in sorted(dicom_copy.iterdir())[1:]:
        path.unlink()
    with pytest.raises(GeometryError, match="single slice"):
        read_volume(dicom_copy)


def test_a_radiograph_and_a_colour_picture_are_said_as_what_they_are(dicom_copy, tmp_path):
    """A projection radiograph (one 2-D image, no slice position: a DX beside a patient's CT)
    was refused for the position tags it lacks, a colour screenshot too, where its colour
    is what stops it; each was a row of the folder's worklist that could not open."""
    first = sorted(dicom_copy.iterdir())[0]
    for folder in ("dx", "sc"):
        (tmp_path / folder).mkdir()
    ds = pydicom.dcmread(first)
    ds.Modality = "DX"
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "SliceLocation"):
        if tag in ds:
            delattr(ds, tag)
    ds.save_as(tmp_path / "dx" / "chest.dcm")
    with pytest.raises(InputError, match=r"no DICOM image series found \(chest.dcm: a single 2-D DX image, not a "):
        read_volume(tmp_path / "dx")
    ds.Modality, ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = "OT", 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes(int(ds.Rows) * int(ds.Columns) * 3)
    ds.save_as(tmp_path / "sc" / "screen.dcm")
    with pytest.raises(InputError, match=r"screen.dcm: a colour OT image \(colour is not supported\)"):
        read_volume(tmp_path / "sc")
    # neither is an image of the folder's listing, nor a report (it was a row that could not open)
    shutil.copytree(dicom_copy, tmp_path / "mr")
    (tmp_path / "sr").mkdir()
    report = pydicom.dcmread(first)
    report.Modality = "SR"
    report.save_as(tmp_path / "sr" / "report.dcm")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "slice.dcm").write_bytes(first.read_bytes()[:600])  # cut short: it stays, to say so
    from annotator.datastore import open_datastore

    store, _ = open_datastore(tmp_path)
    assert sorted(r.id for r in store.records()) == ["broken", "mr", dicom_copy.name]


def test_a_dicom_slice_opens_its_series_and_a_file_that_only_looks_like_one_is_named(tmp_path):
    study = DATA / "udacity_study3_mr_dicom"
    folder = tmp_path / "flat"  # two series side by side, as some exports leave them
    folder.mkdir()
    for series in ("11_HCropVolume", "36468-FLAIRreg-58706"):
        for path in (study / series).iterdir():
            shutil.copy(path, folder / f"{series[:5]}_{path.name}")
    crop, flair = read_volume(study / "11_HCropVolume"), read_volume(study / "36468-FLAIRreg-58706")
    assert read_volume(folder).shape == flair.shape != crop.shape  # the folder: its largest series
    opened = read_volume(sorted(folder.glob("11_HC_*"))[5])  # a slice: the series that holds it
    np.testing.assert_array_equal(opened.array, crop.array)
    assert opened.source.series_uid == crop.source.series_uid
    fake = tmp_path / "scan.dcm"
    fake.write_bytes(b"not DICOM at all" * 20)
    with pytest.raises(InputError, match="named like a DICOM file, but not one"):
        read_volume(fake)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_nifti_gz(tmp_path, keep):
    data = HIPPO_IMAGE.read_bytes()
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match="cut.nii.gz: .*truncated"):
        read_volume(bad)


def test_truncated_plain_nifti(tmp_path):
    raw = gzip.decompress(HIPPO_IMAGE.read_bytes())
    bad = tmp_path / "cut.nii"
    bad.write_bytes(raw[:5000])
    with pytest.raises(InputError, match=r"cut.nii: file is truncated: 5000 bytes"):
        read_volume(bad)
    good = tmp_path / "whole.nii"
    good.write_bytes(raw)
    assert read_volume(good).size == (35, 51, 35)


def test_non_image_files(tmp_path):
    fake = tmp_path / "notes.nii.gz"
    fake.write_text("not an image")
    with pytest.raises(InputError, match="notes.nii.gz"):
        read_volume(fake)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputError, match="not an image file"):
        read_volume(text)
    with pytest.raises(InputError, match="no such file"):
        read_volume(tmp_path / "missing.nii.gz")
    with pytest.raises(InputError, match="no DICOM image series"):
        read_volume(tmp_path)


def test_2d_image(tmp_path):
    path = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((20, 30), np.int16)), str(path))
    with pytest.raises(GeometryError, match="a 2-D image"):
        read_volume(path)


def test_5d_image(tmp_path):
    path = tmp_path / "dynamic.nrrd"
    frames = [sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)) for _ in range(3)]
    sitk.WriteImage(sitk.JoinSeries([sitk.JoinSeries(frames)] * 2), str(path))
    with pytest.raises(GeometryError, match="a 5-D image"):
        read_volume(path)


def test_colour_image(tmp_path):
    path = tmp_path / "rgb.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6, 3), np.uint8), isVector=True), str(path))
    with pytest.raises(GeometryError, match="3 values per voxel"):
        read_volume(path)


def test_nan_voxels_are_replaced_with_a_warning(tmp_path):
    array = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) + 10
    array[1, 2, 3] = np.nan
    array[2, 2, 2] = np.inf
    path = tmp_path / "nan.mha"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    volume = read_volume(path)
    assert np.isfinite(volume.array).all()
    assert volume.array[1, 2, 3] == 10.0
    assert "2 NaN/infinite voxels" in volume.warnings[0]
    sitk.WriteImage(sitk.GetImageFromArray(np.full((4, 5, 6), np.nan, np.float32)), str(path))
    with pytest.raises(InputError, match="every voxel is NaN"):
        read_volume(path)


def test_label_of_wrong_shape_or_geometry(tmp_path):
    image = read_volume(HIPPO_IMAGE)
    other = read_volume(HIPPO / "images" / "hippocampus_003.nii.gz")
    with pytest.raises(GeometryError, match=r"label has .* voxels but the image has 35x51x35"):
        read_label(HIPPO / "labels" / "hippocampus_003.nii.gz", image)
    with pytest.raises(GeometryError, match="voxels but the image"):
        write_label(tmp_path / "x.nii.gz", np.zeros(other.shape, np.uint8), image)
    shifted = sitk.GetImageFromArray(np.zeros(image.shape, np.uint8))
    image.copy_geometry_to(shifted)
    shifted.SetSpacing((1.0, 1.0, 1.5))
    path = tmp_path / "shifted.nii.gz"
    sitk.WriteImage(shifted, str(path))
    with pytest.raises(GeometryError, match=r"geometry differs from the image \(spacing \(1.0, 1.0, 1.5\) vs "
                                            r"\(1.0, 1.0, 1.0\) mm\)$"):  # only what differs
        read_label(path, image)
    shifted.SetSpacing(image.spacing)
    shifted.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))  # a mirror: the same size, its axes otherwise
    shifted.SetOrigin(image.origin)
    sitk.WriteImage(shifted, str(path))
    with pytest.raises(GeometryError, match=r"geometry differs from the image \(its axes run otherwise: it is "
                                            r"flipped or turned against the image\)$"):  # it listed equal values
        read_label(path, image)


def test_a_label_of_the_same_grid_stored_another_way_round_is_turned_to_the_image(tmp_path):
    """A label written by a tool that stores every image in one orientation (rows
    flipped, axes permuted; the TotalSegmentator example's label of its DICOM CT is
    such) holds the same voxels: it is read onto the image, voxel for voxel. The same
    storage one voxel off is still refused."""
    image = read_volume(HIPPO_IMAGE)
    truth = read_label(HIPPO / "labels" / "hippocampus_001.nii.gz", image)
    label = sitk.GetImageFromArray(truth)
    image.copy_geometry_to(label)
    turned = sitk.PermuteAxes(sitk.Flip(label, [False, True, True]), [2, 0, 1])  # the same points in space
    assert turned.GetSize() != label.GetSize()
    path = tmp_path / "turned.nii.gz"
    sitk.WriteImage(turned, str(path))
    np.testing.assert_array_equal(read_label(path, image), truth)
    turned.SetOrigin(turned.TransformIndexToPhysicalPoint((1, 0, 0)))  # one voxel along
    sitk.WriteImage(turned, str(path))
    with pytest.raises(GeometryError, match="voxels but the image|geometry differs"):
        read_label(path, image)


def test_label_with_fractions_or_negatives(tmp_path):
    image = read_volume(HIPPO_IMAGE)
    frac = np.zeros(image.shape, np.float32)
    frac[0, 0, 0] = 0.5
    with pytest.raises(InputError, match="whole numbers"):
        write_label(tmp_path / "f.nii.gz", frac, image)
    neg = np.zeros(image.shape, np.int16)
    neg[0, 0, 0] = -1
    with pytest.raises(InputError, match="the label for .*n.nii.gz holds the value -1"):
        write_label(tmp_path / "n.nii.gz", neg, image)
    assert not (tmp_path / "f.nii.gz").exists() and not (tmp_path / "n.nii.gz").exists()
    almost = np.zeros(image.shape, np.float64)  # whole numbers as a tool's float scaling leaves them
    almost[1:4, 2:5, 3:6], almost[0, 0, 0] = 2 + 1e-7, 1 - 1e-6
    write_label(tmp_path / "a.nii.gz", almost, image)
    back = read_label(tmp_path / "a.nii.gz", image)
    assert back.dtype == np.uint8 and np.bincount(back.ravel()).tolist() == [image.array.size - 28, 1, 27]


def test_duplicate_positions_that_a_per_slice_tag_would_split_stay_refused(dicom_copy):
    """A scanner that gives each slice its own AcquisitionNumber does not make a series
    with a duplicated slice into one volume per slice."""
    def dup(i, ds):
        ds.AcquisitionNumber = i + 1
        if i == 7:
            ds.ImagePositionPatient = [float(v) for v in pydicom.dcmread(files_sorted[6]).ImagePositionPatient]
    files_sorted = sorted(dicom_copy.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    _edit_series(dicom_copy, dup)
    with pytest.raises(GeometryError, match="same position.*no header tag tells them apart"):
        read_volume(dicom_copy)


@pytest.mark.parametrize("seg", [DATA / "dicom_seg_tcga_gbm" / "DicomSeg.dcm", DATA / "dcmqi_ct3slice_seg" / "liver.dcm"],
                         ids=lambda p: p.name)
def test_a_dicom_seg_is_not_opened_as_an_image(seg):
    """A SEG is multi-frame, but a segmentation: it is named, never read as a volume of its
    own (one segment would open as a strange image, several not at all)."""
    with pytest.raises(InputError, match=r"a DICOM SEG object \(a segmentation\); open the series it refers to"):
        read_volume(seg)


@pytest.mark.parametrize("shape, spacing, message", [
    ((10, 10), (1.0, 1.0, 1.0), "3-D array"), ((2, 10, 10, 3), (1.0, 1.0, 1.0), "this one is 4-D"),
    ((4, 10, 10), (1.0, 0.0, 1.0), "voxel size"), ((4, 10, 10), (1.0, 1.0, -2.0), "voxel size"),
    ((4, 10, 10), (float("nan"), 1.0, 1.0), "voxel size"), ((4, 10, 10), (1.0, 1.0), "voxel size")])
def test_a_volume_a_script_builds_is_checked_as_a_file_is(shape, spacing, message):
    """A 2-D array or a voxel size of 0, NaN or below 0 is refused where the volume is made
    (it failed deep inside the engine: a division by zero, an index out of range)."""
    from annotator.io.volume import Volume

    with pytest.raises(GeometryError, match=message):
        Volume(np.zeros(shape, np.float32), spacing, (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))


def test_a_mask_as_the_image_is_taken_as_0_and_1_and_other_values_than_numbers_are_refused():
    """A boolean array (a mask a script shows as the image) becomes 0 and 1 where the
    volume is made, and strokes on it are cut (it failed in the engine: numpy cannot
    subtract booleans); complex or text values are refused with their type named."""
    from annotator.engine.interactive import segment_scribbles
    from annotator.io.volume import Volume

    mask = np.zeros((12, 20, 20), bool)
    mask[3:9, 5:15, 5:15] = True
    volume = Volume(mask, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    assert volume.array.dtype == np.uint8 and volume.array.sum() == mask.sum()
    strokes = np.zeros(mask.shape, np.uint8)
    strokes[6, 8:12, 10] = 1
    strokes[6, 1, :] = 2
    cut = segment_scribbles(volume, strokes).label > 0
    assert not (cut & ~mask).any() and cut.sum() > 0.8 * mask.sum()  # its corners rounded by the smoothing
    for values in (np.zeros((4, 5, 6), np.complex64), np.full((4, 5, 6), "a")):
        with pytest.raises(InputError, match=f"real numbers.*{values.dtype}"):
            Volume(values, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
