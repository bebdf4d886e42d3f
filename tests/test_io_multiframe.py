"""Multi-frame DICOM images (Enhanced MR/CT: a whole series in one file) open as the
series they hold (their labels as DICOM SEG: test_io_seg.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

from annotator.errors import GeometryError, InputError
from annotator.io import read_volume, scan_folder
from multiframe import MR_SERIES as MR


@pytest.fixture(scope="module")
def series():
    return read_volume(MR)


@pytest.mark.parametrize("where", ["file", "folder"])
def test_a_multi_frame_image_is_the_series_it_holds(series, multiframe_mr, where):
    volume = read_volume(multiframe_mr if where == "file" else multiframe_mr.parent)
    np.testing.assert_array_equal(volume.array, series.array)
    assert volume.same_geometry(series, rtol=1e-6)
    assert volume.modality == "MR" and volume.window == series.window
    # each slice knows its frame: the frame's own position is the slice's
    header = pydicom.dcmread(multiframe_mr, stop_before_pixels=True)
    for z, frame in enumerate(volume.source.frames):
        position = header.PerFrameFunctionalGroupsSequence[frame - 1].PlanePositionSequence[0].ImagePositionPatient
        np.testing.assert_allclose([float(v) for v in position],
                                   volume.to_sitk().TransformIndexToPhysicalPoint((0, 0, z)), atol=1e-3)
    assert sorted(volume.source.frames) == list(range(1, 41)) and volume.source.frames != tuple(range(1, 41))
    assert set(volume.source.sop_uids) == {str(header.SOPInstanceUID)} and len(volume.source.sop_uids) == 40


def _edited(path, target, edit):
    ds = pydicom.dcmread(path)
    edit(ds)
    ds.save_as(target)
    return target


def test_frames_that_are_not_one_volume_are_named(multiframe_mr, tmp_path):
    def same_place(ds):
        groups = ds.PerFrameFunctionalGroupsSequence
        groups[1].PlanePositionSequence[0].ImagePositionPatient = list(
            groups[0].PlanePositionSequence[0].ImagePositionPatient)

    with pytest.raises(GeometryError, match="frames 1 and 2 lie at the same place \\(its 40 frames lie at 39 places\\)"):
        read_volume(_edited(multiframe_mr, tmp_path / "twice.dcm", same_place))

    def moved(ds):
        position = ds.PerFrameFunctionalGroupsSequence[4].PlanePositionSequence[0].ImagePositionPatient
        position[2] = float(position[2]) + 0.4

    with pytest.raises(GeometryError, match="regular"):
        read_volume(_edited(multiframe_mr, tmp_path / "uneven.dcm", moved))

    def no_position(ds):
        del ds.PerFrameFunctionalGroupsSequence[6].PlanePositionSequence

    with pytest.raises(GeometryError, match="frame 7 has no position"):
        read_volume(_edited(multiframe_mr, tmp_path / "lost.dcm", no_position))

    def truncated(ds):
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]

    with pytest.raises(InputError, match="pixel data"):
        read_volume(_edited(multiframe_mr, tmp_path / "short.dcm", truncated))


def test_a_series_folder_mixing_multi_frame_and_single_frame_files_is_named(multiframe_mr, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(MR, folder)
    ds = pydicom.dcmread(multiframe_mr)
    ds.SeriesInstanceUID = pydicom.dcmread(next(MR.iterdir()), stop_before_pixels=True).SeriesInstanceUID
    ds.save_as(folder / "enhanced.dcm")
    with pytest.raises(GeometryError, match="mixes 1 multi-frame images with 40 other files.*open one multi-frame"):
        read_volume(folder)
    assert read_volume(folder / "enhanced.dcm").shape == (40, 50, 34)  # the file on its own opens


def test_several_multi_frame_images_in_one_series_are_a_volume_each(series, multiframe_mr, tmp_path):
    """Some scanners store each echo of an enhanced series as a multi-frame image of its
    own: each is an image of the folder, in the order of its InstanceNumber."""
    from annotator.datastore import LocalDatastore

    folder = tmp_path / "study" / "enhanced"
    folder.mkdir(parents=True)
    first = pydicom.dcmread(multiframe_mr)
    second = pydicom.dcmread(multiframe_mr)
    second.SOPInstanceUID = second.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    second.InstanceNumber = 2
    second.PixelData = (second.pixel_array * 2 + 5).astype(second.pixel_array.dtype).tobytes()
    second.save_as(folder / "a.dcm")  # listed first by name, second by number
    first.save_as(folder / "b.dcm")
    parts = scan_folder(folder).series
    assert [(p.part, [f.path.name for f in p.files]) for p in parts] == [("image 1", ["b.dcm"]), ("image 2", ["a.dcm"])]
    np.testing.assert_array_equal(read_volume(folder).array, series.array)
    np.testing.assert_array_equal(read_volume(folder, parts[1].key).array, series.array * 2 + 5)
    store = LocalDatastore(tmp_path / "study")
    assert store.ids() == ["enhanced", "enhanced#2"]
    np.testing.assert_array_equal(store.open_image("enhanced#2").array, series.array * 2 + 5)


@pytest.mark.parametrize("told", ["echo", "dimension"])
def test_the_volumes_of_one_multi_frame_file_are_an_image_each(series, tmp_path, told):
    """Enhanced MR written by the scanner holds every echo (time point, b-value) in one
    file, their frames at the same places again: each is an image, named by what tells it
    apart, its frames its own."""
    from multiframe import echoes_in_one_file

    path = echoes_in_one_file(MR, tmp_path / "study" / "enhanced" / "enhanced.dcm", told)
    parts = scan_folder(path.parent).series
    first, second = (series.array * 2 + 5, series.array) if told == "echo" else (series.array, series.array * 2 + 5)
    names = ["TE 10", "TE 25"] if told == "echo" else ["volume 1", "volume 2"]
    assert [(p.part, p.slices) for p in parts] == [(names[0], 40), (names[1], 40)]
    volumes = [read_volume(path.parent, p.key) for p in parts]
    for volume, expected, name in zip(volumes, (first, second), names):
        np.testing.assert_array_equal(volume.array, expected)
        assert volume.same_geometry(series, rtol=1e-6) and volume.name.endswith(f"({name})")
        assert len(set(volume.source.frames)) == 40
    # echo 1's frames are the file's odd frames, echo 2's its even ones
    assert {f % 2 for f in volumes[0].source.frames} == ({0} if told == "echo" else {1})
    assert {f % 2 for f in volumes[1].source.frames} == ({1} if told == "echo" else {0})
    np.testing.assert_array_equal(read_volume(path).array, first)  # the file alone: the first of them
    # napari's File > Open of the file or its folder: a layer each
    from annotator.napari.reader import read_layers

    for place in (path, path.parent):
        layers = read_layers(str(place))
        assert [layer[1]["name"] for layer in layers] == [v.name for v in reversed(volumes)]  # the first on top
        np.testing.assert_array_equal(layers[0][0], second)


def test_the_planes_of_one_multi_frame_file_are_an_image_each(series, tmp_path):
    """A file holding an axial and a sagittal stack (a three-plane localizer, say) is two
    images, named by their plane, each on its own grid."""
    from multiframe import planes_in_one_file

    path = planes_in_one_file(MR, tmp_path / "localizer" / "enhanced.dcm")
    parts = scan_folder(path.parent).series
    assert [(p.part, p.slices) for p in parts] == [("axial", 40), ("sagittal", 40)]
    axial, sagittal = (read_volume(path.parent, p.key) for p in parts)
    assert axial.same_geometry(series, rtol=1e-6)
    np.testing.assert_array_equal(sagittal.array, series.array)
    np.testing.assert_allclose(np.reshape(sagittal.direction, (3, 3)), [[0, 0, -1], [1, 0, 0], [0, -1, 0]], atol=1e-6)
    assert sagittal.name.endswith("(sagittal)") and set(sagittal.source.frames) == set(range(41, 81))


def test_many_volumes_of_one_multi_frame_file_open_in_napari_as_one_layer(series, tmp_path, monkeypatch):
    """A time series of 10 in one file is one 4-D layer, a slider for its volumes; the
    file is read once for all of them, as a file or in its folder."""
    from annotator.io import multiframe
    from annotator.napari.reader import read_layers
    from multiframe import echoes_in_one_file

    path = echoes_in_one_file(MR, tmp_path / "enhanced.dcm", count=10)
    reads, real = [], multiframe.read_dataset
    monkeypatch.setattr(multiframe, "read_dataset", lambda *a, **k: reads.append(a) or real(*a, **k))
    assert len(read_layers(str(tmp_path))[0][0]) == 10 and len(reads) == 1
    [(data, kwargs, kind)] = read_layers(str(path))
    assert len(reads) == 2
    assert kind == "image" and data.shape == (10, 40, 50, 34)
    np.testing.assert_array_equal(data[0], series.array * 2 + 5)  # by echo time: 10, 20, 25, 30 ...
    np.testing.assert_array_equal(data[1], series.array * 3 + 10)
    np.testing.assert_array_equal(data[2], series.array)


def test_volumes_of_one_multi_frame_file_that_nothing_tells_apart_are_named(tmp_path):
    from multiframe import echoes_in_one_file

    path = echoes_in_one_file(MR, tmp_path / "enhanced.dcm", "nothing")
    with pytest.raises(GeometryError, match="80 frames lie at 40 places: 2 volumes in one file, and no per-frame header"):
        read_volume(path)
    with pytest.raises(GeometryError, match="2 volumes in one file"):
        read_volume(tmp_path)


def test_each_volume_of_a_multi_frame_file_has_its_own_label_and_seg(series, tmp_path):
    """In a folder store the two echoes of one file are two images, each shown with the
    other beneath it; a SEG of echo 2 refers to echo 2's frames alone, reads back on it,
    places nothing on echo 1, and is echo 2's label map, not echo 1's."""
    from annotator.datastore import LocalDatastore
    from annotator.io.seg import referenced_frames, refers_to, seg_to_label, series_seg
    from multiframe import echoes_in_one_file

    path = echoes_in_one_file(MR, tmp_path / "store" / "enhanced" / "enhanced.dcm")
    store = LocalDatastore(tmp_path / "store")
    assert store.ids() == ["enhanced", "enhanced#2"]
    te10, te25 = store.open_image("enhanced"), store.open_image("enhanced#2")
    np.testing.assert_array_equal(te25.array, series.array)
    assert [v.name for v in store.companions("enhanced#2", te25)] == [te10.name]
    label = np.zeros(te25.shape, np.uint8)
    label[10:20, 10:30, 5:20] = 1
    label[25:30, 5:10, 5:10] = 2
    _, data = series_seg(label, te25, {1: "hippocampus", 2: "tumor"})
    seg = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    used = {te25.source.frames[z] for z in np.flatnonzero(label.any(axis=(1, 2)))}
    assert {frame for _, frame in referenced_frames(seg)} == used  # odd frames of the file
    back, names = seg_to_label(seg, te25)
    np.testing.assert_array_equal(back, label)
    assert names == {1: "hippocampus", 2: "tumor"}
    assert not seg_to_label(seg, te10)[0].any()
    assert refers_to(seg, te25) and not refers_to(seg, te10)
    (path.parent / "zz_seg.dcm").write_bytes(data)
    store = LocalDatastore(tmp_path / "store")
    assert {r.id: r.label_maps for r in store.records()} == {"enhanced": [], "enhanced#2": ["enhanced/zz_seg"]}
    np.testing.assert_array_equal(store.label_map("enhanced#2", "enhanced/zz_seg", te25)[0], label)


def test_the_planes_of_a_three_plane_localizer_series_are_an_image_each(series, tmp_path):
    """A localizer series holds slices in three planes: each plane is an image (named by
    it) where the whole series was refused; a plane of one slice says so when opened."""
    folder = tmp_path / "localizer"
    shutil.copytree(MR, folder)
    for i, path in enumerate(sorted(MR.iterdir())[:5]):  # five sagittal slices, 1 mm apart
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
        ds.ImagePositionPatient = [float(i), 0.0, 0.0]
        ds.save_as(folder / f"sag{i}.dcm")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]  # one coronal slice
    ds.save_as(folder / "cor.dcm")
    parts = scan_folder(folder).series
    assert sorted((p.part, p.slices) for p in parts) == [("axial", 40), ("coronal", 1), ("sagittal", 5)]
    axial = read_volume(folder)  # the largest
    assert axial.name.endswith("(axial)") and axial.same_geometry(series, rtol=1e-6)
    np.testing.assert_array_equal(axial.array, series.array)
    sagittal = read_volume(folder, next(p.key for p in parts if p.part == "sagittal"))
    assert sagittal.shape == (5, 50, 34)
    with pytest.raises(GeometryError, match="single slice"):
        read_volume(folder, next(p.key for p in parts if p.part == "coronal"))
    # the other planes are not the axial image's: not shown with it, and nothing to say about them
    from annotator.datastore import LocalDatastore

    store = LocalDatastore(tmp_path)
    opened = store.open_image("localizer")
    assert opened.name.endswith("(axial)") and store.companions("localizer", opened) == []
    assert not [w for w in opened.warnings if "not shown" in w]


def test_the_other_volumes_of_a_multi_frame_file_come_from_one_read_of_it(series, tmp_path, monkeypatch):
    from annotator.datastore import LocalDatastore
    from annotator.io import multiframe
    from multiframe import echoes_in_one_file

    echoes_in_one_file(MR, tmp_path / "store" / "enhanced" / "enhanced.dcm", count=3)
    store = LocalDatastore(tmp_path / "store")
    image = store.open_image("enhanced#3")  # TE 25: the source series
    np.testing.assert_array_equal(image.array, series.array)
    reads, real = [], multiframe.read_dataset
    monkeypatch.setattr(multiframe, "read_dataset", lambda *a, **k: reads.append(a) or real(*a, **k))
    others = store.companions("enhanced#3", image)
    assert [v.name[-7:] for v in others] == ["(TE 10)", "(TE 20)"] and len(reads) == 1
    np.testing.assert_array_equal(others[1].array, series.array * 3 + 10)


def test_a_multi_frame_image_in_jpeg_lossless_reads_as_it_was(series, tmp_path):
    """JPEG Lossless (process 14), as many archives store images, has no decoder in pydicom
    here: GDCM decodes it, to the same volumes voxel for voxel, each echo its own, a CT's
    rescale applied once; damaged frames are named."""
    from multiframe import echoes_in_one_file, jpeg_lossless, multiframe_of

    from paths import DATA

    path = echoes_in_one_file(MR, tmp_path / "mr" / "enhanced.dcm")
    before = [read_volume(path.parent, p.key) for p in scan_folder(path.parent).series]
    jpeg_lossless(path)
    with pytest.raises(RuntimeError, match="missing dependencies"):  # else this test shows nothing
        pydicom.dcmread(path).pixel_array
    parts = scan_folder(path.parent).series
    assert [p.part for p in parts] == ["TE 10", "TE 25"]
    for part, old in zip(parts, before):
        new = read_volume(path.parent, part.key)
        np.testing.assert_array_equal(new.array, old.array)
        assert new.array.dtype == old.array.dtype and new.same_geometry(old, rtol=1e-6)
        assert new.source.frames == old.source.frames
    ct = multiframe_of(DATA / "totalsegmentator_example" / "example_ct_dicom", tmp_path / "ct" / "ct.dcm")
    old = read_volume(ct)
    assert old.array.min() == -1024  # stored values from 0, intercept -1024
    jpeg_lossless(ct)
    new = read_volume(ct)
    np.testing.assert_array_equal(new.array, old.array)
    assert new.array.dtype == old.array.dtype and new.same_geometry(old, rtol=1e-6)
    ds = pydicom.dcmread(ct)
    frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    frames[3] = frames[3][: len(frames[3]) // 3]  # a frame cut short
    ds.PixelData = pydicom.encaps.encapsulate(frames)
    ds.save_as(ct)
    with pytest.raises(InputError, match=r"ct\.dcm: pixel data cannot be decoded \(JPEG Lossless"):
        read_volume(ct)
