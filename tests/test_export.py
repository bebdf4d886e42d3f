"""A datastore's labelled images exported in nnU-Net's raw layout, for training elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from annotator.datastore import LocalDatastore
from annotator.datastore.export import case_names, export_nnunet
from annotator.errors import InputError
from annotator.io import read_label, read_volume
from paths import HIPPO


def _store(folder, cases=("hippocampus_001", "hippocampus_003", "hippocampus_004"), labelled=2):
    folder.mkdir()
    for case in cases:
        (folder / f"{case}.nii.gz").write_bytes((HIPPO / "images" / f"{case}.nii.gz").read_bytes())
    store = LocalDatastore(folder)
    for case in cases[:labelled]:
        image = store.open_image(case)
        label = read_label(HIPPO / "labels" / f"{case}.nii.gz", image)
        label[label == 2] = 5  # values with a gap: 1 and 5
        store.accept(case, label, image, names={1: "anterior", 5: "posterior"})
    return store


def test_the_labelled_images_export_with_their_geometry_and_consecutive_values(tmp_path):
    store = _store(tmp_path / "store")
    out = tmp_path / "Dataset001_Hippo"
    described = export_nnunet(store, out)
    assert described["numTraining"] == 2 and described["file_ending"] == ".nii.gz"
    assert described["labels"] == {"background": 0, "anterior": 1, "posterior": 2}
    assert described["channel_names"] == {"0": "image"}
    assert json.loads((out / "dataset.json").read_text()) == described
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [
        "hippocampus_001_0000.nii.gz", "hippocampus_003_0000.nii.gz"]  # 004 has no label
    for case in ("hippocampus_001", "hippocampus_003"):
        source = read_volume(HIPPO / "images" / f"{case}.nii.gz")
        image = read_volume(out / "imagesTr" / f"{case}_0000.nii.gz")
        assert image.same_geometry(source, rtol=1e-6)
        np.testing.assert_array_equal(image.array, source.array)
        truth = read_label(HIPPO / "labels" / f"{case}.nii.gz", source)
        np.testing.assert_array_equal(read_label(out / "labelsTr" / f"{case}.nii.gz", image), truth)
    # read back here: each case an image with its label beside it, named as exported
    again = LocalDatastore(out)
    assert {r.id: r.label_maps for r in again.records()} == {
        "imagesTr/hippocampus_001_0000": ["labelsTr/hippocampus_001"],
        "imagesTr/hippocampus_003_0000": ["labelsTr/hippocampus_003"]}
    assert again.label_names() == {"anterior": 1, "posterior": 2}
    # nothing is written over
    before = (out / "dataset.json").read_bytes()
    with pytest.raises(InputError, match="a folder that holds files; export into a new folder"):
        export_nnunet(store, out)
    assert (out / "dataset.json").read_bytes() == before
    with pytest.raises(InputError, match="dataset.json: a file; export into a new folder"):
        export_nnunet(store, out / "dataset.json")
    with pytest.raises(InputError, match="no image has a final label"):
        export_nnunet(_store(tmp_path / "none", labelled=0), tmp_path / "empty")


def test_channels_export_as_channels_and_the_command_says_what_it_wrote(tmp_path):
    """A 4-D image's other volumes, with --channels, become _0001, ... named as its
    dataset.json names them."""
    store_folder = tmp_path / "task"
    store_folder.mkdir()
    image = sitk.ReadImage(str(HIPPO / "images" / "hippocampus_001.nii.gz"), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(image)
    inverted = sitk.GetImageFromArray(array.max() - array)
    inverted.CopyInformation(image)
    sitk.WriteImage(sitk.JoinSeries([image, inverted]), str(store_folder / "case 1.nii.gz"))
    (store_folder / "dataset.json").write_text(json.dumps({"modality": {"0": "T1", "1": "inverted"}}))
    store = LocalDatastore(store_folder)
    volume = store.open_image("case 1")
    store.accept("case 1", read_label(HIPPO / "labels" / "hippocampus_001.nii.gz", volume), volume)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "annotator", "export", str(store_folder), "--out", str(out),
                           "--channels"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{out}: 1 case, channels T1, inverted; labels 1 ")
    described = json.loads((out / "dataset.json").read_text())
    assert described["channel_names"] == {"0": "T1", "1": "inverted"} and described["annotator"]["cases"] == {
        "case_1": "case 1"}
    np.testing.assert_allclose(read_volume(out / "imagesTr" / "case_1_0001.nii.gz").array, array.max() - array)


def test_case_names_are_safe_and_unique():
    assert case_names(["series/s1", "series_s1", "imagesTr/la_003_0000", "a b#2"]) == {
        "series/s1": "series_s1", "series_s1": "series_s1_2", "imagesTr/la_003_0000": "imagesTr_la_003",
        "a b#2": "a_b_2"}


def test_channels_keep_one_order_whichever_volume_was_annotated(tmp_path, two_echoes_mr):
    """Echo 1 labelled as one image and echo 2 as another: with --channels both cases are
    echo 1 then echo 2, as nnU-Net needs every case's channels in one order."""
    import shutil

    shutil.copytree(two_echoes_mr, tmp_path / "store" / "echoes")
    store = LocalDatastore(tmp_path / "store")
    assert store.ids() == ["echoes", "echoes#2"]
    for image_id in store.ids():
        image = store.open_image(image_id)
        label = np.zeros(image.shape, np.uint8)
        label[10:20, 10:30, 5:20] = 1
        store.accept(image_id, label, image, names={1: "hippocampus"})
    described = export_nnunet(store, tmp_path / "out", channels=True)
    assert described["channel_names"] == {"0": "echo 1", "1": "echo 2"}
    echo1 = read_volume(two_echoes_mr)
    for case in ("echoes", "echoes_2"):
        np.testing.assert_array_equal(read_volume(tmp_path / "out" / "imagesTr" / f"{case}_0000.nii.gz").array,
                                      echo1.array)
        np.testing.assert_array_equal(read_volume(tmp_path / "out" / "imagesTr" / f"{case}_0001.nii.gz").array,
                                      echo1.array * 2 + 5)


def test_channel_order_compares_numbers_as_numbers():
    from annotator.datastore.export import channel_order
    from annotator.io.volume import Source, Volume

    def volume(name, path="/x/series", number=None):
        return Volume(np.zeros((2, 2, 2), np.int16), (1, 1, 1), (0, 0, 0), tuple(np.eye(3).ravel()), name=name,
                      source=Source(path=path, volume=number))

    names = ["s (TE 10)", "s (TE 9.5)", "s (echo 10)", "s (echo 2)"]
    assert sorted(names, key=lambda n: channel_order(volume(n))) == ["s (TE 9.5)", "s (TE 10)", "s (echo 2)",
                                                                     "s (echo 10)"]
    assert channel_order(volume("b (T2)", number=1)) > channel_order(volume("a (ADC)", number=0))
    assert channel_order(volume("b", "/t/case_0000.nii.gz")) < channel_order(volume("a", "/t/case_0001.nii.gz"))
