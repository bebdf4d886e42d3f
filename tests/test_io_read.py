"""Reading every set in ../shared/data, and label round trips that keep the geometry."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from annotator.errors import InputError
from annotator.io import read_label, read_volume, scan_folder, write_label
from paths import DATA, HIPPO

NIFTI = sorted((DATA / "totalsegmentator_example").glob("example_*.nii.gz"))
NRRD = sorted((DATA / "dcmqi_ct3slice_seg").glob("*.nrrd"))
DICOM = {
    "ct_jpeg2000": (DATA / "totalsegmentator_example" / "example_ct_dicom", (512, 512, 20), "CT"),
    "ct_3slice": (DATA / "dcmqi_ct3slice_seg" / "ct-3slice", (512, 512, 3), "CT"),
    "mr_t1post_oblique": (DATA / "udacity_study3_mr_dicom" / "11-T1post-18670", (280, 320, 22), "MR"),
    "mr_flair": (DATA / "udacity_study3_mr_dicom" / "36468-FLAIRreg-58706", (280, 320, 22), "MR"),
    "mr_hcrop": (DATA / "udacity_study3_mr_dicom" / "11_HCropVolume", (34, 50, 40), "MR"),
}


def test_every_hippocampus_pair_reads_and_labels_fit(hippo_split):
    cases = hippo_split["train"] + hippo_split["test"]
    assert len(cases) == 260
    for case in cases:
        image = read_volume(HIPPO / "images" / f"{case}.nii.gz")
        label = read_label(HIPPO / "labels" / f"{case}.nii.gz", image)
        assert image.spacing == (1.0, 1.0, 1.0)
        assert label.dtype == np.uint8 and set(np.unique(label)) == {0, 1, 2}, case


@pytest.mark.parametrize("path", NIFTI + NRRD, ids=lambda p: p.name)
def test_file_formats_read_as_3d(path):
    volume = read_volume(path)
    assert volume.array.ndim == 3 and min(volume.shape) >= 3
    assert all(s > 0 for s in volume.spacing)
    np.testing.assert_allclose(np.abs(np.linalg.det(np.reshape(volume.direction, (3, 3)))), 1.0, atol=1e-6)


@pytest.mark.parametrize("key", DICOM)
def test_dicom_series(key):
    folder, size, modality = DICOM[key]
    volume = read_volume(folder)
    assert volume.size == size
    assert volume.modality == modality
    assert volume.source.sop_uids and len(volume.source.sop_uids) == size[2]
    # voxel (0,0,k) sits where slice k of the sorted series says it does
    index_pos = volume.to_sitk().TransformIndexToPhysicalPoint((0, 0, size[2] - 1))
    assert np.linalg.norm(np.subtract(index_pos, volume.origin)) > 0


def test_oblique_series_keeps_its_direction():
    volume = read_volume(DICOM["mr_t1post_oblique"][0])
    normal = np.reshape(volume.direction, (3, 3))[:, 2]
    assert abs(abs(normal[1]) - 0.187) < 0.01  # ~11 degrees about left-right, as acquired


def test_segmentation_files_in_a_folder_are_skipped_not_read():
    scan = scan_folder(DATA / "dcmqi_ct3slice_seg")
    assert [len(s.files) for s in scan.series] == [3]
    reasons = {p.name: r for p, r in scan.skipped}
    assert "SEG" in reasons["liver.dcm"]
    with pytest.raises(InputError, match="no DICOM image series"):
        read_volume(DATA / "dicom_seg_tcga_gbm")


def test_folder_with_several_series_lists_and_picks():
    folder = DATA / "udacity_study3_mr_dicom"
    scan = scan_folder(folder)
    assert len(scan.series) == 3
    assert read_volume(folder).name == "T1post"  # largest (ties keep listing order)
    crop = read_volume(folder, series=scan.series[2].series_uid)
    assert crop.size == (34, 50, 40)
    assert read_volume(folder, series=2).size == (34, 50, 40)
    with pytest.raises(InputError, match="no series 'nope'"):
        read_volume(folder, series="nope")


def _label_for(volume) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 4, size=volume.shape).astype(np.uint8)


@pytest.mark.parametrize("path", NIFTI + [HIPPO / "images" / "hippocampus_001.nii.gz"], ids=lambda p: p.name)
def test_nifti_label_round_trip_is_bit_exact(path, tmp_path):
    image = read_volume(path)
    label = _label_for(image)
    out = write_label(tmp_path / "label.nii.gz", label, image)
    back = sitk.ReadImage(str(out))
    assert back.GetSpacing() == image.spacing
    assert back.GetOrigin() == image.origin
    assert back.GetDirection() == image.direction
    np.testing.assert_array_equal(read_label(out, image), label)


@pytest.mark.parametrize("path", [DICOM[k][0] for k in DICOM] + NRRD[:1], ids=lambda p: p.name)
def test_label_of_dicom_or_nrrd_keeps_grid(path, tmp_path):
    image = read_volume(path)
    label = _label_for(image)
    out = write_label(tmp_path / "label.nii.gz", label, image)
    np.testing.assert_array_equal(read_label(out, image), label)
    back = sitk.ReadImage(str(out))
    # NIfTI stores geometry as float32: equal to that precision
    np.testing.assert_allclose(back.GetOrigin(), image.origin, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(back.GetSpacing(), image.spacing, rtol=1e-6)
    np.testing.assert_allclose(back.GetDirection(), image.direction, atol=1e-6)
    # the same voxel lands at the same place in the patient
    idx = tuple(s - 1 for s in image.size)
    np.testing.assert_allclose(back.TransformIndexToPhysicalPoint(idx),
                               image.to_sitk().TransformIndexToPhysicalPoint(idx), atol=1e-3)


def test_float_label_with_whole_numbers_is_accepted():
    image = read_volume(HIPPO / "images" / "hippocampus_003.nii.gz")
    label = read_label(HIPPO / "labels" / "hippocampus_003.nii.gz", image)  # stored as float32
    assert label.dtype == np.uint8 and label.max() == 2


def test_label_volumes_count_each_value_in_millilitres():
    """Voxels and mL per value on an anisotropic grid, across the million-voxel chunks."""
    from annotator.io.volume import label_counts, label_values, volumes_ml

    label = np.zeros((40, 200, 300), np.uint8)  # 2.4 M voxels: three chunks
    label[:, :100, :] = 3
    label[-1, -1, -7:] = 255
    volumes = volumes_ml(label_counts(label), (0.5, 0.8, 2.5))  # (x, y, z) mm: a voxel is 1 mm³
    assert volumes == {3: (1_200_000, pytest.approx(1200.0)), 255: (7, pytest.approx(0.007))}
    assert label_values(label) == [3, 255]
    assert volumes_ml(label_counts(np.zeros((2, 2, 2), np.uint8)), (1, 1, 1)) == {}
    wide = label.astype(np.uint16)
    wide[0, 0, :5] = 1002  # a FreeSurfer cortex parcel: cast to a byte it was counted as 234
    assert label_values(wide) == [3, 255, 1002] and label_counts(wide)[1002] == 5 and label_counts(wide)[234] == 0
    assert label_values(np.array([[[0, 7]]], np.int64)) == [7] and label_values(np.ones((2, 2, 2), bool)) == [1]


_SWAPPING_STDERR = """
import os
import threading
from annotator.io.read import quiet_c_stderr

def swap():
    for _ in range(300):
        with quiet_c_stderr():
            os.write(2, b"noise of a C library\\n")

threads = [threading.Thread(target=swap) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
os.write(2, b"stderr still reaches the terminal\\n")
"""


def test_stderr_kept_quiet_by_several_threads_at_once_comes_back():
    """Threads that read images at once (the file worker, a ranking) each keep C noise
    off the terminal; afterwards stderr is the terminal's again, not a deleted file."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _SWAPPING_STDERR], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stderr == "stderr still reaches the terminal\n"


def test_each_echo_of_a_series_is_a_volume_of_its_own(two_echoes_mr):
    """Two echoes in one series lie at the same positions: the series splits by its
    EchoNumbers, each part reads as a volume (the first by default), and a file opens
    its own echo."""
    crop = read_volume(DATA / "udacity_study3_mr_dicom" / "11_HCropVolume")
    parts = scan_folder(two_echoes_mr).series
    assert [(p.part, p.slices) for p in parts] == [("echo 1", 40), ("echo 2", 40)]
    assert parts[0].series_uid == parts[1].series_uid and parts[0].key != parts[1].key
    first, second = read_volume(two_echoes_mr), read_volume(two_echoes_mr, parts[1].key)
    np.testing.assert_array_equal(first.array, crop.array)
    np.testing.assert_array_equal(second.array, crop.array * 2 + 5)
    assert first.name == "HippoCrop (echo 1)" and second.name == "HippoCrop (echo 2)"
    assert second.same_geometry(crop) and len(set(first.source.sop_uids) & set(second.source.sop_uids)) == 0
    opened = read_volume(two_echoes_mr / "7b.dcm")
    assert opened.name == "HippoCrop (echo 2)" and opened.source.sop_uids == second.source.sop_uids
    np.testing.assert_array_equal(opened.array, second.array)


def test_slices_of_one_series_keep_their_own_rescale(tmp_path):
    """Each slice's RescaleSlope/Intercept applies to it: where they differ from slice to
    slice (PET, some MR), a first slice of slope 1 must not make the others whole numbers."""
    import pydicom

    crop = DATA / "udacity_study3_mr_dicom" / "11_HCropVolume"
    expected = {}
    for i, path in enumerate(sorted(crop.iterdir())):
        ds = pydicom.dcmread(path)
        ds.RescaleSlope, ds.RescaleIntercept = (2.5, -0.25) if i % 2 else (1, 0)
        ds.save_as(tmp_path / path.name)
        expected[float(ds.ImagePositionPatient[2])] = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    volume = read_volume(tmp_path)
    image = volume.to_sitk()
    for z in range(volume.shape[0]):
        position = round(image.TransformIndexToPhysicalPoint((0, 0, z))[2], 3)
        np.testing.assert_allclose(volume.array[z], expected[position], rtol=1e-6)
    assert volume.array.dtype == np.float32


def test_each_volume_of_a_4d_file_reads_on_its_grid(tmp_path):
    """A 4-D file (the Decathlon's multi-modal images, a time series) opens its first
    volume, says so, and gives any other by its number; a NaN in the second is replaced
    there only; napari gets each as a layer, the first on top."""
    from annotator.napari.reader import read_layers

    source = HIPPO / "images" / "hippocampus_001.nii.gz"
    first = sitk.ReadImage(str(source), sitk.sitkFloat32)
    second = sitk.GetArrayFromImage(first) * 2 + 5
    second[3, 4, 5] = np.nan
    second_image = sitk.GetImageFromArray(second)
    second_image.CopyInformation(first)
    path = tmp_path / "two_channels.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([first, second_image]), str(path))
    plain = read_volume(source)
    volume = read_volume(path)
    assert volume.name == "two_channels (volume 1 of 2)" and volume.same_geometry(plain, rtol=1e-6)
    np.testing.assert_allclose(volume.array, plain.array)
    assert "a 4-D image of 2 volumes" in volume.warnings[0]
    other = read_volume(path, 1)
    assert other.name == "two_channels (volume 2 of 2)" and other.same_geometry(plain, rtol=1e-6)
    expected = plain.array.astype(np.float32) * 2 + 5
    assert other.array[3, 4, 5] == np.nanmin(expected) and not np.isnan(other.array).any()
    keep = np.ones(other.shape, bool)
    keep[3, 4, 5] = False
    np.testing.assert_allclose(other.array[keep], expected[keep], rtol=1e-6)
    with pytest.raises(InputError, match="no volume '2' \\(it holds 2"):
        read_volume(path, 2)
    layers = read_layers(str(path))
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["two_channels (volume 2 of 2)", "two_channels (volume 1 of 2)"]
    assert layers[-1][1].get("visible", True) and not layers[0][1]["visible"]
    # its 3-D label is a label of it: written on its grid and read back
    label = (plain.array > np.percentile(plain.array, 80)).astype(np.uint8)
    write_label(tmp_path / "two_channels_label.nii.gz", label, volume)
    np.testing.assert_array_equal(read_label(tmp_path / "two_channels_label.nii.gz", volume), label)


def _bare(source, target, implicit: bool) -> None:
    """``source`` written as older scanners and archives wrote DICOM: the data set alone,
    with no 128-byte preamble, no "DICM" and no file meta."""
    import pydicom
    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import write_dataset

    body = pydicom.Dataset(pydicom.dcmread(source))
    with open(target, "wb") as f:
        out = DicomFileLike(f)
        out.is_little_endian, out.is_implicit_VR = True, implicit
        write_dataset(out, body)


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit_vr", "explicit_vr"])
def test_dicom_files_without_preamble_read_as_their_series(tmp_path, implicit):
    """Files holding a bare data set are DICOM to every part of the app: the series reads
    as the same volume, a folder of them lists it, and its SEG refers to its files."""
    import io

    import pydicom

    from annotator.datastore.factory import open_datastore
    from annotator.io.seg import series_seg, seg_to_label
    from annotator.io.sniff import looks_like_dicom

    source = DATA / "udacity_study3_mr_dicom" / "11_HCropVolume"
    series = tmp_path / "old" / "crop"
    series.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        _bare(path, series / path.stem, implicit)
    (series / "notes.txt").write_text("\x08 not DICOM, though it starts with a byte 8")
    first = sorted(series.iterdir())[0]
    assert first.read_bytes()[128:132] != b"DICM" and looks_like_dicom(first)
    assert not looks_like_dicom(series / "notes.txt")
    plain, old = read_volume(source), read_volume(series)
    np.testing.assert_array_equal(old.array, plain.array)
    assert old.same_geometry(plain) and old.source.sop_uids == plain.source.sop_uids
    store, image_id = open_datastore(first)
    assert image_id == "crop" and [r.id for r in store.records()] == ["crop"]
    label = np.zeros(old.shape, np.uint8)
    label[10:20, 10:30, 10:20] = 1
    _, data = series_seg(label, old, {1: "hippocampus"})
    seg = pydicom.dcmread(io.BytesIO(data))
    referenced = {str(i.ReferencedSOPInstanceUID) for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == set(plain.source.sop_uids)
    np.testing.assert_array_equal(seg_to_label(seg, old)[0], label)


def test_the_volumes_of_a_4d_file_take_their_names_from_dataset_json(tmp_path):
    """nnU-Net's ``channel_names`` or the Decathlon's ``modality``, in the file's folder or
    the one above; a list that does not fit the file names nothing. The other volumes are
    the companions of the one annotated, unless there are too many (a time series)."""
    import json

    from annotator.io.read import MAX_COMPANIONS, companions

    image = sitk.ReadImage(str(HIPPO / "images" / "hippocampus_001.nii.gz"), sitk.sitkFloat32)
    (tmp_path / "imagesTr").mkdir()
    path = tmp_path / "imagesTr" / "prostate_00.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([image, image]), str(path))
    assert read_volume(path).name == "prostate_00 (volume 1 of 2)"
    (tmp_path / "dataset.json").write_text(json.dumps({"modality": {"0": "T2", "1": "ADC", "2": "DWI"}}))
    assert read_volume(path).name == "prostate_00 (volume 1 of 2)"  # three names for two volumes
    (tmp_path / "imagesTr" / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T2", "1": "ADC"}}))
    first = read_volume(path)
    assert first.name == "prostate_00 (T2)" and first.source.volume == 0 and first.modality == "MR"
    assert "a 4-D image of 2 volumes (T2, ADC): T2 is annotated and the others are shown beneath it" in first.warnings[0]
    [other] = companions(first)
    assert other.name == "prostate_00 (ADC)" and other.source.volume == 1 and other.warnings == []
    assert other.same_geometry(first)
    assert [v.name for v in companions(read_volume(path, 1))] == ["prostate_00 (T2)"]
    assert companions(read_volume(HIPPO / "images" / "hippocampus_001.nii.gz")) == []
    series = tmp_path / "series.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([image] * (MAX_COMPANIONS + 1)), str(series))
    many = read_volume(series)
    assert companions(many) == [] and "the others are not shown" in many.warnings[0]


def test_the_other_volumes_of_a_4d_file_come_from_the_read_of_the_one_opened(tmp_path, monkeypatch):
    """Opening a volume of a 4-D file reads it whole once: its other volumes come from
    that read, not from a second one (a BRATS image took 1.9 s more), unless the file has
    changed since, when they come from the file as it is."""
    import os

    from annotator.io import read as reading

    image = sitk.ReadImage(str(HIPPO / "images" / "hippocampus_001.nii.gz"), sitk.sitkFloat32)
    path = tmp_path / "brain.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([image, image * 2]), str(path))
    reads = []
    real = reading._read_sitk
    monkeypatch.setattr(reading, "_read_sitk", lambda p: reads.append(p) or real(p))
    [other] = reading.companions(read_volume(path))
    assert len(reads) == 1
    np.testing.assert_array_equal(other.array, sitk.GetArrayFromImage(image * 2))
    assert reading.companions(read_volume(path)) and len(reads) == 2  # each open: one read
    first = read_volume(path)
    sitk.WriteImage(sitk.JoinSeries([image, image * 3]), str(path))
    os.utime(path, ns=(1, 1))  # changed, whatever the clock's resolution
    [other] = reading.companions(first)
    assert len(reads) == 4
    np.testing.assert_array_equal(other.array, sitk.GetArrayFromImage(image * 3))


def test_a_raw_voxel_file_is_not_taken_for_a_dicom_data_set(tmp_path):
    """A MetaImage's .raw voxels can start like one DICOM element (group 8, a small
    length): two elements in order are needed."""
    from annotator.io.sniff import looks_like_dicom

    raw = tmp_path / "ct.raw"
    raw.write_bytes(np.array([8, 5, 3, 0, 9, 9, 9, 9] * 40, np.int16).tobytes())
    assert not looks_like_dicom(raw)


def test_a_task_s_dataset_json_says_the_modality_of_its_images(tmp_path):
    """The Decathlon's "modality" {"0": "CT"} or {"0": "MRI"}: a CT gets the CT windows and
    models without a guess from its values; an unknown channel name leaves the guess."""
    import json
    import shutil

    from annotator.io.read import channel_modality

    assert [channel_modality(n) for n in ("CT", "MRI", "t1gd", "T2w", "FLAIR", "noNorm", "PET")] == [
        "CT", "MR", "MR", "MR", "MR", None, None]
    source = HIPPO / "images" / "hippocampus_001.nii.gz"
    assert read_volume(source).modality == "unknown"
    shutil.copy(source, tmp_path / "case.nii.gz")
    for said, modality in (("MRI", "MR"), ("CT", "CT"), ("noNorm", "unknown")):
        (tmp_path / "dataset.json").write_text(json.dumps({"modality": {"0": said}}))
        volume = read_volume(tmp_path / "case.nii.gz")
        assert volume.modality == modality and volume.name == "case"


def test_a_file_of_several_values_per_voxel_reads_as_volumes(tmp_path):
    """A NRRD of diffusion volumes (one vector of values per voxel, not a colour image):
    each value is a volume, as each volume of a 4-D file is; a colour image stays refused."""
    from annotator.io.read import companions

    values = np.random.default_rng(0).random((4, 5, 6, 3)).astype(np.float32)
    path = tmp_path / "dwi.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(values, isVector=True), str(path))
    first = read_volume(path)
    assert first.name == "dwi (volume 1 of 3)" and first.source.volume == 0
    np.testing.assert_array_equal(first.array, values[..., 0])
    others = companions(first)
    assert [v.name for v in others] == ["dwi (volume 2 of 3)", "dwi (volume 3 of 3)"]
    np.testing.assert_array_equal(others[1].array, values[..., 2])
    np.testing.assert_array_equal(read_volume(path, 1).array, values[..., 1])


@pytest.mark.parametrize("key", ["ct_3slice", "mr_hcrop", "mr_t1post_oblique"])
def test_a_series_simpleitk_cannot_read_is_decoded_by_pydicom_alike(key, tmp_path):
    """GDCM takes a bare data set whose first element is empty for no DICOM at all
    (older CT archives write an empty SpecificCharacterSet first); pydicom decodes it,
    and the volume is the one SimpleITK reads from the Part 10 files: voxels and geometry
    (an oblique series too)."""
    from pathlib import Path

    import pydicom
    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import write_dataset

    from annotator.io import dicom

    folder = DICOM[key][0]
    bare = tmp_path / "bare"
    bare.mkdir()
    for i, source in enumerate(sorted(folder.iterdir())):
        body = pydicom.Dataset(pydicom.dcmread(source))
        body.SpecificCharacterSet = ""  # empty, and first: what GDCM does not take for DICOM
        with open(bare / f"{i:03d}", "wb") as f:
            out = DicomFileLike(f)
            out.is_little_endian, out.is_implicit_VR = True, True
            write_dataset(out, body)
    with pytest.raises(RuntimeError):
        sitk.ReadImage(str(sorted(bare.iterdir())[0]))
    plain, decoded = read_volume(folder), read_volume(bare)
    np.testing.assert_array_equal(decoded.array, plain.array)
    assert decoded.same_geometry(plain, rtol=1e-6) and decoded.modality == plain.modality
    files = dicom.check_series(dicom.scan_folder(folder).series[0])  # the same path on Part 10 files
    again = dicom._read_by_pydicom(files, Path(folder))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(again), plain.array)


def test_a_series_reads_in_the_smallest_type_that_holds_its_values(tmp_path):
    """A CT of unsigned values and an intercept of -1024 (SimpleITK: int32) reads as
    int16; a fractional slope (SimpleITK: float64) as float32; values are unchanged."""
    import pydicom

    crop = DATA / "udacity_study3_mr_dicom" / "11_HCropVolume"
    for unsigned, slope, intercept, kind in ((1, 1, -1024, np.int16), (1, 0.3, 0, np.float32), (0, 20, 0, np.int32)):
        folder = tmp_path / f"{unsigned}_{slope}_{intercept}"
        folder.mkdir()
        expected = {}
        for path in sorted(crop.iterdir()):
            ds = pydicom.dcmread(path)
            stored = ds.pixel_array.astype(np.int32) * 20 + 1
            ds.PixelRepresentation = 0 if unsigned else 1
            ds.PixelData = stored.astype(np.uint16 if unsigned else np.int16).tobytes()
            ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
            ds.save_as(folder / path.name)
            expected[round(float(ds.ImagePositionPatient[2]), 3)] = stored * slope + intercept
        volume = read_volume(folder)
        assert volume.array.dtype == kind
        image = volume.to_sitk()
        for z in range(volume.shape[0]):
            position = round(image.TransformIndexToPhysicalPoint((0, 0, z))[2], 3)
            np.testing.assert_allclose(volume.array[z], expected[position], rtol=1e-6)


def test_a_ct_s_padding_is_not_tissue(tmp_path):
    """A CT written with its field of view's outside as one value (-3024 or -2000 HU) or
    with all its air clipped to -1024 reads as a CT; the intensity range that display and
    GraphCut use leaves the padding out; an MR's zeroed background is padding too."""
    from annotator.io.volume import intensity_range

    ct = read_volume(DATA / "totalsegmentator_example" / "example_ct_sm.nii.gz")
    side = 180  # the crop (101 x 122) inside a round field of view, air around it
    z, y, x = ct.shape
    array = np.random.default_rng(0).normal(-1000, 20, (z, side, side)).astype(np.int16)
    top, left = (side - y) // 2, (side - x) // 2
    array[:, top:top + y, left:left + x] = ct.array
    rows, cols = np.mgrid[:side, :side]
    outside = (rows - side / 2) ** 2 + (cols - side / 2) ** 2 > (side / 2) ** 2
    ranges = []
    for name, padding in (("3024", -3024), ("2000", -2000)):
        array[:, outside] = padding
        path = tmp_path / f"padded{name}.nii.gz"
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
        volume = read_volume(path)
        assert volume.modality == "CT", name
        ranges.append(intensity_range(volume.array))
    assert ranges[0] == ranges[1] and -1100 < ranges[0][0] < -900
    clipped = np.maximum(array, -1024)
    clipped[clipped < -900] = -1024  # every air voxel one value
    sitk.WriteImage(sitk.GetImageFromArray(clipped), str(tmp_path / "clipped.nii.gz"))
    assert read_volume(tmp_path / "clipped.nii.gz").modality == "CT"
    mr = read_volume(HIPPO / "images" / "hippocampus_001.nii.gz").array
    background = np.pad(mr, 20)  # zeros around it: most of the voxels
    assert intensity_range(background) == pytest.approx(intensity_range(mr), rel=0.05)
    assert intensity_range(background)[0] > 0
    # an image of two values with no noise (a mask shown as an image, a phantom): its lowest
    # value is what lies around the rest, not padding (left out, the range was (1, 1): the
    # picture one grey, and GraphCut's intensity model spread over nothing)
    ball = (np.add.outer(np.add.outer(np.arange(-8, 9) ** 2, np.arange(-8, 9) ** 2), np.arange(-8, 9) ** 2) < 30)
    assert intensity_range(ball * 100.0 + 7) == (7.0, 107.0)
    classes = ball * 100.0 + 7
    classes[:, :, :4] = 57  # three values: the lowest still a class of its own
    assert intensity_range(classes)[0] == 7.0
    classes[8, 8, 8] = 207  # its rarest class too: a percentile left it out
    assert intensity_range(classes) == (7.0, 207.0)


def test_freesurfer_mgh_files_read_as_their_nifti_twins(tmp_path):
    """FreeSurfer's ``.mgz`` (SimpleITK reads none: "unable to determine ImageIO reader"):
    an oblique one reads with the voxels and geometry of the NIfTI of the same array and
    matrix, frames as the volumes of a 4-D file; a folder's ``aseg.mgz`` is the label map of
    its ``T1.mgz``; a truncated or foreign file is refused naming it."""
    import nibabel as nib

    from annotator.datastore.folder import LocalDatastore
    from annotator.io import read_all

    rng = np.random.default_rng(0)
    voxels = rng.integers(0, 200, (40, 30, 20)).astype(np.float32)
    matrix = np.array([[-1.0, 0, 0, 20], [0, 0, 1.2, -30], [0, -0.9, 0, 15], [0, 0, 0, 1]])  # FreeSurfer's LIA
    nib.save(nib.MGHImage(voxels, matrix), tmp_path / "lia.mgz")
    nib.save(nib.Nifti1Image(voxels, matrix), tmp_path / "lia.nii.gz")
    mgz, nifti = read_volume(tmp_path / "lia.mgz"), read_volume(tmp_path / "lia.nii.gz")
    np.testing.assert_array_equal(mgz.array, nifti.array)
    np.testing.assert_allclose(mgz.spacing, nifti.spacing, atol=1e-6)
    np.testing.assert_allclose(mgz.origin, nifti.origin, atol=1e-4)
    np.testing.assert_allclose(mgz.direction, nifti.direction, atol=1e-6)
    nib.save(nib.MGHImage(np.stack([voxels, 2 * voxels], -1), matrix), tmp_path / "frames.mgz")
    frames, _ = read_all(tmp_path / "frames.mgz")
    assert len(frames) == 2
    np.testing.assert_array_equal(frames[1].array, 2 * nifti.array)
    data = (tmp_path / "lia.mgz").read_bytes()
    (tmp_path / "cut.mgz").write_bytes(data[: len(data) // 2])
    (tmp_path / "other.mgz").write_bytes(b"not an image" * 10)
    plain = gzip.decompress(data)  # the header: version, width, height, depth, frames, type (big-endian)
    (tmp_path / "type.mgh").write_bytes(plain[:20] + struct.pack(">i", 77) + plain[24:])
    (tmp_path / "empty.mgh").write_bytes(plain[:4] + struct.pack(">i", 0) + plain[8:])
    for name, why in (("cut.mgz", ""), ("other.mgz", ""), ("type.mgh", r" \(not a readable MGH file \(unknown voxel type 77"),
                      ("empty.mgh", r" \(not a readable MGH file \(size 0 x 30 x 20")):
        with pytest.raises(InputError, match=f"{name}: cannot be read as an image{why}"):
            read_volume(tmp_path / name)
    (tmp_path / "plain.mgh").write_bytes(plain)  # not gzipped: the same image
    np.testing.assert_array_equal(read_volume(tmp_path / "plain.mgh").array, nifti.array)
    subject = tmp_path / "subject" / "mri"
    subject.mkdir(parents=True)
    brain = nib.load(HIPPO / "images" / "hippocampus_001.nii.gz")
    nib.save(nib.MGHImage(np.asarray(brain.dataobj).astype(np.uint8), brain.affine), subject / "T1.mgz")
    aseg = np.asarray(nib.load(HIPPO / "labels" / "hippocampus_001.nii.gz").dataobj).astype(np.int32) * 17
    nib.save(nib.MGHImage(aseg, brain.affine), subject / "aseg.mgz")
    store = LocalDatastore(subject)
    [record] = store.records()
    assert record.id == "T1" and record.label_maps == ["aseg"]
    volume = store.open_image("T1")
    label, _ = store.label_map("T1", "aseg", volume)
    assert sorted(np.unique(label)) == [0, 17, 34]
    assert np.count_nonzero(label) == np.count_nonzero(aseg)


def test_a_nifti_gz_is_decompressed_once_and_reads_as_simpleitk_reads_it(tmp_path, monkeypatch):
    """The check that counts a ``.nii.gz``'s voxel bytes decompresses it (SimpleITK reads a
    file cut short as zeros); its voxels are then taken from there, not decompressed again
    by SimpleITK (a CT of 88 million voxels opened in 2.5 s, now 1.7). Whatever the type,
    byte order, dimensions or gzip members, the image is SimpleITK's own;
    files it would scale, or of several components, it still reads itself."""
    import nibabel as nib

    from annotator.io import read as reader

    rng = np.random.default_rng(3)
    ct = (rng.random((20, 24, 16)) * 3000 - 1024).astype(np.int16)
    turn = np.radians(10)  # an oblique scan
    affine = np.eye(4)
    affine[:3, :3] = np.array([[-np.cos(turn), -np.sin(turn), 0], [-np.sin(turn), np.cos(turn), 0], [0, 0, 1]]) @ np.diag(
        [0.8, 0.8, 2.5])
    affine[:3, 3] = (100, -50, 30)
    files = {
        "int16.nii.gz": nib.Nifti1Image(ct, affine),
        "uint8.nii.gz": nib.Nifti1Image((ct > 0).astype(np.uint8), affine),
        "float64.nii.gz": nib.Nifti1Image(ct / 7.0, affine),
        "float32.nii.gz": nib.Nifti1Image((ct / 3.0).astype(np.float32), affine),
        "big-endian.nii.gz": nib.Nifti1Image(ct.astype(">i4"), affine),
        "4d.nii.gz": nib.Nifti1Image(np.stack([ct, ct // 2], -1), affine),
        "scaled.nii.gz": nib.Nifti1Image(ct, affine),
    }
    files["scaled.nii.gz"].header.set_slope_inter(2.0, -5.0)
    for name, image in files.items():
        if name == "big-endian.nii.gz":
            image = nib.Nifti1Image(ct.astype(">i4"), affine, nib.Nifti1Header(endianness=">"))
        nib.save(image, tmp_path / name)
    raw = gzip.decompress((tmp_path / "int16.nii.gz").read_bytes())  # two gzip members, zero padding after
    (tmp_path / "members.nii.gz").write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]) + bytes(64))
    itk_reads = []
    real = reader.read_image_file
    monkeypatch.setattr(reader, "read_image_file", lambda path: itk_reads.append(Path(path).name) or real(path))
    for path in sorted(tmp_path.iterdir()):
        ours, _ = reader._read_sitk(path)
        theirs = sitk.ReadImage(str(path))
        assert (ours.GetPixelID(), ours.GetSize()) == (theirs.GetPixelID(), theirs.GetSize()), path.name
        np.testing.assert_allclose(ours.GetSpacing(), theirs.GetSpacing())
        np.testing.assert_allclose(ours.GetOrigin(), theirs.GetOrigin())
        np.testing.assert_allclose(ours.GetDirection(), theirs.GetDirection())
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(ours), sitk.GetArrayViewFromImage(theirs))
    assert itk_reads == ["scaled.nii.gz"]
    (tmp_path / "garbage.nii.gz").write_bytes(gzip.compress(raw) + b"not gzip")
    with pytest.raises(InputError, match="garbage.nii.gz: file is truncated or damaged"):
        read_volume(tmp_path / "garbage.nii.gz")
