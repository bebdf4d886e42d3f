"""RT Structure Sets (radiotherapy's contours, as many public collections hold their
segmentations) read as labels of the series they outline."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

from annotator.errors import InputError
from annotator.io import read_volume
from annotator.io.rtstruct import rtstruct_to_label
from paths import DATA
from rtstruct import rtstruct_of

CROP = DATA / "udacity_study3_mr_dicom" / "11_HCropVolume"
OBLIQUE = DATA / "udacity_study3_mr_dicom" / "11-T1post-18670"


def _structures(shape):
    """A body outline, an organ inside it, and a ring (a hole in its outline) below them."""
    z, y, x = np.indices(shape)
    body = (z >= 3) & (z < 30) & (y >= 5) & (y < 45) & (x >= 3) & (x < 31)
    organ = (z - 15) ** 2 + (y - 25) ** 2 + (x - 17) ** 2 <= 36
    r = (y - 25) ** 2 + (x - 17) ** 2
    ring = (z >= 32) & (z < 37) & (r <= 100) & (r >= 25)
    return body, organ, ring


@pytest.mark.parametrize("series", [CROP, OBLIQUE], ids=["axial", "oblique"])
def test_a_structure_set_fills_its_outlines_on_the_series_it_outlines(series, tmp_path):
    """Every voxel back: outlines filled on their slices, a hole left open, the organ
    inside the body outline painted over it, numbers kept where they fit a label."""
    volume = read_volume(series)
    body, organ, ring = _structures(volume.shape)
    path = rtstruct_of(series, {7: ("Body", body), 12: ("Liver", organ), 300: ("Ring", ring)}, tmp_path / "rs.dcm")
    label, names, left_out = rtstruct_to_label(pydicom.dcmread(path), volume)
    expected = np.zeros(volume.shape, np.uint16)
    expected[body], expected[organ], expected[ring] = 7, 12, 300  # ROI 300 keeps its number, as a label may
    np.testing.assert_array_equal(label, expected)
    [said] = left_out  # the organ inside the body outline: said, once
    assert f"segments overlap (Liver over Body in {np.count_nonzero(organ & body):,} voxels)" in said
    assert names == {v: n for v, n in ((7, "Body"), (12, "Liver"), (300, "Ring")) if (expected == v).any()}
    # names the reader knows take their values
    label, names, _ = rtstruct_to_label(pydicom.dcmread(path), volume, known={"liver": 2})
    assert names[2] == "Liver" and np.array_equal(label == 2, organ)
    # structures that share a name (every lesion "GTV") each keep one of their own
    path = rtstruct_of(series, {4: ("GTV", organ), 5: ("gtv", body & ~organ)}, tmp_path / "two.dcm")
    label, names, _ = rtstruct_to_label(pydicom.dcmread(path), volume)
    assert names == {4: "GTV 4", 5: "gtv 5"} and np.array_equal(label == 4, organ)


def test_what_a_structure_set_cannot_place_is_said(tmp_path):
    volume = read_volume(CROP)
    body, _, _ = _structures(volume.shape)
    point = pydicom.Dataset()
    point.ContourGeometricType, point.NumberOfContourPoints, point.ContourData = "POINT", 1, [1.0, 2.0, 3.0]
    between = pydicom.Dataset()  # halfway between two slices
    between.ContourGeometricType, between.NumberOfContourPoints = "CLOSED_PLANAR", 3
    origin = np.asarray(volume.origin)
    between.ContourData = [float(v) for v in (origin + [[2, 2, 10.5], [9, 2, 10.5], [2, 9, 10.5]]).ravel()]
    path = rtstruct_of(CROP, {1: ("Body", body)}, tmp_path / "rs.dcm", extra=[point, between])
    label, names, left_out = rtstruct_to_label(pydicom.dcmread(path), volume)
    np.testing.assert_array_equal(label > 0, body)
    assert left_out == ["1 contour(s) left out: not on a slice of HippoCrop",
                        "1 point or open contour(s) left out: only closed outlines fill a structure"]
    other = read_volume(OBLIQUE)
    with pytest.raises(InputError, match="outlines another series than"):
        rtstruct_to_label(pydicom.dcmread(path), other)
    ds = pydicom.dcmread(path)
    for contour in ds.ROIContourSequence[0].ContourSequence:  # drawn a metre away
        points = np.asarray([float(v) for v in contour.ContourData]).reshape(-1, 3) + [0, 0, 1000]
        contour.ContourData = [f"{v:.6g}" for v in points.ravel()]
    with pytest.raises(InputError, match="none of its contours lies on the slices of HippoCrop"):
        rtstruct_to_label(ds, volume)


def test_a_structure_set_in_a_folder_is_a_label_map_of_its_series(tmp_path):
    """Beside its series (or anywhere in the folder), a structure set is never an image:
    it is a label map of the series it outlines, named as it names its structures."""
    import subprocess
    import sys

    from annotator.datastore import LocalDatastore

    shutil.copytree(CROP, tmp_path / "study" / "crop")
    shutil.copytree(OBLIQUE, tmp_path / "study" / "t1")
    volume = read_volume(CROP)
    body, organ, _ = _structures(volume.shape)
    rtstruct_of(CROP, {1: ("Body", body), 2: ("Liver", organ)}, tmp_path / "study" / "crop" / "RS.dcm")
    store = LocalDatastore(tmp_path / "study")
    assert {r.id: r.label_maps for r in store.records()} == {"crop": ["crop/RS"], "t1": []}
    image = store.open_image("crop")
    label, names = store.label_map("crop", "crop/RS", image)
    assert names == {"body": 1, "liver": 2} and np.array_equal(label == 2, organ)
    proc = subprocess.run([sys.executable, "-m", "annotator", "info", str(tmp_path / "study" / "crop" / "RS.dcm")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "a DICOM RTSTRUCT object (a structure set: outlines)" in proc.stderr
    assert "a folder offers its RTSTRUCT files as label maps" in proc.stderr


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")  # pydicom on the broken number: what this test makes
def test_a_damaged_label_file_is_named_and_the_others_still_read(tmp_path):
    """A structure set with a broken number or cut short, and a SEG cut short: each is
    refused as a label naming the file (the image still opens), the good one reads."""
    from annotator.datastore import LocalDatastore
    from annotator.io.seg import series_seg

    folder = tmp_path / "study" / "crop"
    shutil.copytree(CROP, folder)
    volume = read_volume(CROP)
    body, organ, _ = _structures(volume.shape)
    data = rtstruct_of(CROP, {1: ("Body", body)}, folder / "RS.dcm").read_bytes()
    number = data.find(b"\x06\x30\x22\x00IS\x02\x00")  # (3006,0022) ROI Number, 2 bytes
    (folder / "RS_number.dcm").write_bytes(data[:number + 8] + b"x " + data[number + 10:])
    (folder / "RS_cut.dcm").write_bytes(data[: len(data) // 2])
    _, seg = series_seg(organ.astype(np.uint8), volume, {1: "hippocampus"})
    (folder / "SEG_cut.dcm").write_bytes(seg[: len(seg) * 3 // 4])
    store = LocalDatastore(tmp_path / "study")
    image = store.open_image("crop")
    assert sorted(store.label_maps("crop")) == ["crop/RS", "crop/RS_cut", "crop/RS_number", "crop/SEG_cut"]
    np.testing.assert_array_equal(store.label_map("crop", "crop/RS", image)[0] > 0, body)
    for name, why in (("RS_number", "cannot be read as a label of HippoCrop"), ("RS_cut", "damaged \\(cut short\\?\\)"),
                      ("SEG_cut", "cannot be read as a label of HippoCrop")):
        with pytest.raises(InputError, match=why):
            store.label_map("crop", f"crop/{name}", image)


@pytest.mark.parametrize("series", [CROP, OBLIQUE])
def test_a_label_written_as_a_structure_set_reads_back_voxel_for_voxel(series, tmp_path):
    """For planning systems that read contours: each label value a structure, each region
    outlined half a voxel out from its voxel centres, holes as outlines inside, regions
    on the image's edge and touching only at a corner too; valid (dciodvfy), on the
    series' slices, and read back as the same label, its numbers kept (each structure's
    ROI Number is its value, 1035 too), on an axial and an oblique series."""
    from annotator.io import save_label
    from dciodvfy import dicom_errors

    volume = read_volume(series)
    body, organ, ring = _structures(volume.shape)
    label = np.zeros(volume.shape, np.uint16)
    label[body] = 1
    label[organ] = 7
    label[ring] = 1035
    label[3, 0:4, 0:3] = 1035  # on the image's edge
    label[5, 10, 10] = label[5, 11, 11] = 7  # two voxels that touch at a corner
    path = save_label(tmp_path / "case.rtstruct.dcm", label, volume, {1: "body", 7: "liver", 1035: "ring"},
                      algorithm="graphcut")
    assert dicom_errors(path) == []
    ds = pydicom.dcmread(path)
    assert ds.Modality == "RTSTRUCT" and ds.FrameOfReferenceUID == volume.source.frame_of_reference_uid
    assert [r.ROIName for r in ds.StructureSetROISequence] == ["body", "liver", "ring"]
    assert {r.ROIGenerationAlgorithm for r in ds.StructureSetROISequence} == {"SEMIAUTOMATIC"}
    assert [o.RTROIInterpretedType for o in ds.RTROIObservationsSequence] == ["", "ORGAN", ""]  # the liver
    from annotator.io.rtstruct import referenced_instances, referenced_series

    assert referenced_series(ds) == volume.source.series_uid
    assert referenced_instances(ds) == set(volume.source.sop_uids)
    contours = [c for roi in ds.ROIContourSequence for c in roi.ContourSequence]
    assert all(len(c.ContourData) == 3 * c.NumberOfContourPoints for c in contours)  # numbers pydicom reads
    back, names, left_out = rtstruct_to_label(ds, volume)
    np.testing.assert_array_equal(back, label)
    assert names == {1: "body", 7: "liver", 1035: "ring"} and left_out == []
    assert [int(r.ROINumber) for r in ds.StructureSetROISequence] == [1, 7, 1035]


def test_a_structure_set_of_one_echo_of_a_multi_frame_file_refers_to_its_frames(tmp_path):
    from annotator.io import save_label, scan_folder
    from dciodvfy import dicom_errors
    from multiframe import echoes_in_one_file

    path = echoes_in_one_file(CROP, tmp_path / "enhanced" / "enhanced.dcm")
    echo = read_volume(path.parent, scan_folder(path.parent).series[1].key)
    label = np.zeros(echo.shape, np.uint8)
    label[10:20, 15:30, 8:20] = 1
    out = save_label(tmp_path / "echo_rtstruct.dcm", label, echo, {1: "hippocampus"})
    assert dicom_errors(out) == []
    ds = pydicom.dcmread(out)
    frames = {int(i.ReferencedFrameNumber) for c in ds.ROIContourSequence[0].ContourSequence
              for i in c.ContourImageSequence}
    assert frames <= set(echo.source.frames) and len(frames) == 10
    np.testing.assert_array_equal(rtstruct_to_label(ds, echo)[0], label)


def test_a_structure_set_needs_dicom_with_instance_uids(tmp_path):
    from annotator.io import save_label

    nifti = read_volume(DATA / "msd_task04_hippocampus" / "images" / "hippocampus_001.nii.gz")
    label = np.ones(nifti.shape, np.uint8)
    with pytest.raises(InputError, match="not read from DICOM"):
        save_label(tmp_path / "x.rtstruct.dcm", label, nifti)
    anonymised = read_volume(DATA / "totalsegmentator_example" / "example_ct_dicom")  # its UIDs were removed
    label = np.zeros(anonymised.shape, np.uint8)
    label[2:4, 100:200, 100:200] = 1
    for name in ("x.rtstruct.dcm", "x.dcm"):  # the SEG failed with a bare KeyError ''
        with pytest.raises(InputError, match="carry no SOP Instance UID"):
            save_label(tmp_path / name, label, anonymised)
    crop = read_volume(CROP)
    unplaced = tmp_path / "unplaced"  # no Frame of Reference UID: the SEG failed with highdicom's ValueError
    unplaced.mkdir()
    for path in sorted(CROP.iterdir()):
        ds = pydicom.dcmread(path)
        del ds.FrameOfReferenceUID
        ds.save_as(unplaced / path.name)
    volume = read_volume(unplaced)
    for name in ("x.rtstruct.dcm", "x.dcm"):
        with pytest.raises(InputError, match="carry no Frame of Reference UID"):
            save_label(tmp_path / name, np.ones(volume.shape, np.uint8), volume)
    with pytest.raises(InputError, match="the label is empty: there is no structure to write"):
        save_label(tmp_path / "y.rtstruct.dcm", np.zeros(crop.shape, np.uint8), crop)
