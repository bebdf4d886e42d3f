"""The local datastore: discovery, status, versions, history, atomic saves, locking."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from annotator.datastore import LocalDatastore, Status, Version
from annotator.datastore.remembered import Remembered
from annotator.errors import DatastoreError
from paths import DATA


def _label(image, value: int, fill: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(value)
    return (rng.random(image.shape) < fill).astype(np.uint8) * value


def test_images_are_discovered_with_status(hippo_store):
    (hippo_store / "notes.txt").write_text("not an image")
    store = LocalDatastore(hippo_store)
    assert store.ids() == ["hippocampus_001", "hippocampus_003", "hippocampus_004", "hippocampus_006"]
    assert {r.status for r in store.records()} == {Status.UNLABELED}
    assert store.labels_root == hippo_store.resolve() / "labels"
    assert not (hippo_store / "labels").exists()  # opening a folder writes nothing into it


def test_dicom_series_folders_are_images(tmp_path):
    shutil.copytree(DATA / "udacity_study3_mr_dicom" / "11_HCropVolume", tmp_path / "a" / "crop")
    shutil.copy(DATA / "msd_task04_hippocampus" / "images" / "hippocampus_001.nii.gz", tmp_path / "a")
    store = LocalDatastore(tmp_path / "a")
    assert store.ids() == ["crop", "hippocampus_001"]
    assert store.open_image("crop").size == (34, 50, 40)


def test_a_dicom_file_names_the_series_folder_it_lies_in(tmp_path, multiframe_mr):
    from annotator.datastore.factory import open_datastore

    study = tmp_path / "study"
    shutil.copytree(DATA / "udacity_study3_mr_dicom" / "11_HCropVolume", study / "crop")
    shutil.copytree(multiframe_mr.parent, study / "enhanced")
    for path, image_id, shape in ((study / "crop" / "7.dcm", "crop", (40, 50, 34)),
                                  (study / "enhanced" / multiframe_mr.name, "enhanced", (40, 50, 34))):
        store, found = open_datastore(path)
        assert found == image_id and store.folder == study.resolve()
        assert store.open_image(found).shape == shape


def test_a_file_of_few_values_opened_by_name_is_the_image_to_annotate(tmp_path):
    """A phantom with no noise (an integer image of three values) looks like a label map,
    and in its folder it is one; opened by name, the person asks to annotate it (it was
    refused: "not an image of" its folder)."""
    import SimpleITK as sitk

    from annotator.datastore.factory import open_datastore

    z, y, x = np.ogrid[:24, :40, :40]
    phantom = np.where((z - 12) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 < 80, 100, 0).astype(np.int16)
    phantom[(z - 12) ** 2 + (y - 20) ** 2 + (x - 24) ** 2 < 9] = 200
    sitk.WriteImage(sitk.GetImageFromArray(phantom), str(tmp_path / "phantom.nii.gz"))
    shutil.copy(DATA / "msd_task04_hippocampus" / "images" / "hippocampus_001.nii.gz", tmp_path / "mr.nii.gz")
    store, found = open_datastore(tmp_path / "phantom.nii.gz")
    assert found == "phantom" and "phantom" in store.ids()
    np.testing.assert_array_equal(store.open_image(found).array, phantom)
    assert open_datastore(tmp_path)[0].ids() == ["mr"]  # the folder: a label map beside an image


def test_each_series_of_a_folder_is_an_image_of_its_own(tmp_path):
    """A folder holding several series side by side (as some exports leave them) lists
    each: the largest keeps the folder's id, the others are named by their SeriesNumber
    (or their place, where the header has none); labels stay with their series, and a
    slice names its own series."""
    from annotator.datastore.factory import open_datastore

    study, flat = DATA / "udacity_study3_mr_dicom", tmp_path / "study" / "flat"
    flat.mkdir(parents=True)
    for series in ("11-T1post-18670", "36468-FLAIRreg-58706", "11_HCropVolume"):
        for path in (study / series).iterdir():
            shutil.copy(path, flat / f"{series[:5]}_{path.name}")
    store = LocalDatastore(tmp_path / "study")
    assert store.ids() == ["flat", "flat#36468", "flat#3"]  # T1post and FLAIR tie: listing order
    names = {i: store.open_image(i).name for i in store.ids()}
    assert names == {"flat": "T1post", "flat#36468": "FLAIR_reg", "flat#3": "HippoCrop"}
    assert [r.name for r in store.records()] == ["flat (MR T1post)", "flat#36468 (MR FLAIR_reg)", "flat#3 (MR HippoCrop)"]
    crop = store.open_image("flat#3")
    label = _label(crop, 1)
    store.accept("flat#3", label, crop)
    again = LocalDatastore(tmp_path / "study")
    assert [r.id for r in again.records() if r.status == Status.LABELED] == ["flat#3"]
    np.testing.assert_array_equal(again.label("flat#3", again.open_image("flat#3")), label)
    for prefix, image_id in (("11_HC", "flat#3"), ("36468", "flat#36468"), ("11-T1", "flat")):
        found = open_datastore(sorted(flat.glob(f"{prefix}_*"))[3])[1]
        assert found == image_id
    assert open_datastore(flat)[1] == "flat"  # the folder: its largest series


def test_each_echo_of_a_series_is_an_image_and_a_file_names_its_own(tmp_path, two_echoes_mr):
    from annotator.datastore.factory import open_datastore

    shutil.copytree(two_echoes_mr, tmp_path / "study" / "echoes")
    store = LocalDatastore(tmp_path / "study")
    assert [(r.id, r.name) for r in store.records()] == [("echoes", "echoes (MR HippoCrop, echo 1)"),
                                                         ("echoes#2", "echoes#2 (MR HippoCrop, echo 2)")]
    one, two = store.open_image("echoes"), store.open_image("echoes#2")
    np.testing.assert_array_equal(two.array, one.array * 2 + 5)
    # each shows the other beneath it; a series of one acquisition shows nothing more
    [beside_one] = store.companions("echoes", one)
    assert beside_one.name == "HippoCrop (echo 2)" and beside_one.source.sop_uids == two.source.sop_uids
    np.testing.assert_array_equal(beside_one.array, two.array)
    assert [v.name for v in store.companions("echoes#2", two)] == ["HippoCrop (echo 1)"]
    shutil.copytree(DATA / "udacity_study3_mr_dicom" / "11_HCropVolume", tmp_path / "study" / "crop")
    store = LocalDatastore(tmp_path / "study")
    assert store.companions("crop", store.open_image("crop")) == []
    assert open_datastore(tmp_path / "study" / "echoes" / "12b.dcm")[1] == "echoes#2"
    assert open_datastore(tmp_path / "study" / "echoes" / "12a.dcm")[1] == "echoes"


def test_an_acquisition_on_another_grid_is_not_shown_with_the_image(tmp_path, two_echoes_mr):
    """Echo 2 covering half the slices is an image of its own, but not shown beneath echo
    1 (its grid is not echo 1's): a warning says so; echo 1 is not shown beneath it either."""
    import pydicom

    folder = tmp_path / "study" / "echoes"
    folder.mkdir(parents=True)
    for path in sorted(two_echoes_mr.iterdir()):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if int(ds.EchoNumbers) == 1 or float(ds.ImagePositionPatient[2]) <= 20:
            shutil.copy(path, folder)
    store = LocalDatastore(tmp_path / "study")
    assert store.ids() == ["echoes", "echoes#2"]
    one, two = store.open_image("echoes"), store.open_image("echoes#2")
    assert one.shape == (40, 50, 34) and two.shape == (20, 50, 34)
    assert store.companions("echoes", one) == [] and store.companions("echoes#2", two) == []
    assert any(w.startswith("echo 2 not shown: its grid") for w in one.warnings)
    assert any(w.startswith("echo 1 not shown: its grid") for w in two.warnings)


def test_a_dicom_folder_is_read_again_only_when_its_files_change(tmp_path, monkeypatch):
    """Listing a folder's series reads every header; the next listing takes them from the
    user cache, unless a file was added, removed or rewritten."""
    from annotator.datastore import dicom_folders

    study = DATA / "udacity_study3_mr_dicom"
    shutil.copytree(study / "11_HCropVolume", tmp_path / "a" / "crop")
    shutil.copytree(study / "11-T1post-18670", tmp_path / "a" / "t1")
    read, real = [], dicom_folders._read
    monkeypatch.setattr(dicom_folders, "_read", lambda folder: read.append(folder.name) or real(folder))
    first = LocalDatastore(tmp_path / "a")
    assert sorted(read) == ["crop", "t1"]
    read.clear()
    again = LocalDatastore(tmp_path / "a")
    assert read == [] and again.ids() == first.ids() == ["crop", "t1"]
    assert [r.name for r in again.records()] == ["crop (MR HippoCrop)", "t1 (MR T1post)"]
    for path in sorted((study / "36468-FLAIRreg-58706").iterdir()):  # a second series joins the crop
        shutil.copy(path, tmp_path / "a" / "crop" / f"flair_{path.name}")
    assert LocalDatastore(tmp_path / "a").ids() == ["crop", "crop#2", "t1"] and read == ["crop"]  # FLAIR: larger
    read.clear()
    Remembered(dicom_folders.CACHE_NAME).path.write_text("{not json")  # a broken cache costs the time only
    assert LocalDatastore(tmp_path / "a").ids() == ["crop", "crop#2", "t1"] and sorted(read) == ["crop", "t1"]
    read.clear()
    monkeypatch.setattr(dicom_folders, "LISTING", dicom_folders.LISTING + 1)  # a version that tells series apart anew
    assert LocalDatastore(tmp_path / "a").ids() == ["crop", "crop#2", "t1"] and sorted(read) == ["crop", "t1"]
    read.clear()
    LocalDatastore(tmp_path / "a")
    assert read == []


def test_labels_stay_with_their_series_when_a_larger_series_joins_its_folder(tmp_path):
    """The largest series of a folder has the folder's id; once labels are saved under an
    id, that id stays on their series."""
    study = DATA / "udacity_study3_mr_dicom"
    for name in ("a", "b"):
        shutil.copytree(study / "11_HCropVolume", tmp_path / name / "crop")
    store = LocalDatastore(tmp_path / "a")
    crop = store.open_image("crop")
    store.save_draft("crop", _label(crop, 1), crop)
    store.accept("crop", _label(crop, 2), crop)
    for name in ("a", "b"):  # the FLAIR series (larger) is copied into the crop's folder
        for path in sorted((study / "36468-FLAIRreg-58706").iterdir()):
            shutil.copy(path, tmp_path / name / "crop" / f"flair_{path.name}")
    labelled, fresh = LocalDatastore(tmp_path / "a"), LocalDatastore(tmp_path / "b")
    assert fresh.ids() == ["crop", "crop#2"] and fresh.open_image("crop").name == "FLAIR_reg"
    assert labelled.ids() == ["crop", "crop#36468"] and labelled.open_image("crop").name == "HippoCrop"
    np.testing.assert_array_equal(labelled.label("crop", labelled.open_image("crop")), _label(crop, 2))
    assert labelled.open_image("crop#36468").name == "FLAIR_reg"


def test_a_series_folder_is_its_own_files_not_the_folders_below_it(tmp_path):
    study = DATA / "udacity_study3_mr_dicom"
    shutil.copytree(study / "11_HCropVolume", tmp_path / "a" / "crop")
    shutil.copytree(study / "11-T1post-18670", tmp_path / "a" / "crop" / "t1")  # larger, one level down
    store = LocalDatastore(tmp_path / "a")
    assert store.ids() == ["crop", "crop/t1"]
    assert store.open_image("crop").name == "HippoCrop" and store.open_image("crop/t1").name == "T1post"


def test_a_cd_export_with_a_dicomdir_lists_its_series(tmp_path, capsys):
    """The top of a CD or USB export holds a DICOMDIR and its series lie in folders below,
    in files with no extension: opening the top opens the export, not its parent folder
    with the export as one more image."""
    import pydicom
    from pydicom.fileset import FileSet

    from annotator.datastore.factory import open_datastore
    from annotator.io import read_volume
    from annotator.napari.reader import read_layers

    study = DATA / "udacity_study3_mr_dicom"
    export = FileSet()
    for number, series in enumerate(("11_HCropVolume", "11-T1post-18670"), start=90):
        for path in sorted((study / series).iterdir()):
            ds = pydicom.dcmread(path)
            ds.SeriesNumber = ds.get("SeriesNumber") or number  # what a DICOMDIR record needs
            for tag, value in (("PatientID", "P1"), ("StudyID", "1"), ("StudyDate", "20200101"),
                               ("StudyTime", "120000"), ("InstanceNumber", 1)):
                if not ds.get(tag):
                    setattr(ds, tag, value)
            export.add(ds)
    export.write(tmp_path / "export")
    assert (tmp_path / "export" / "DICOMDIR").is_file()
    store, image_id = open_datastore(tmp_path / "export")
    assert store.folder == (tmp_path / "export").resolve() and image_id is None
    names = sorted(r.name.split(" (")[1] for r in store.records())
    assert names == ["MR HippoCrop)", "MR T1post)"]
    assert sorted(layer[1]["name"] for layer in read_layers(str(tmp_path / "export"))) == ["HippoCrop", "T1post"]
    # the DICOMDIR itself, as a double-click or File > Open gives it, opens the export too
    dicomdir = tmp_path / "export" / "DICOMDIR"
    store, image_id = open_datastore(dicomdir)
    assert store.folder == (tmp_path / "export").resolve() and image_id is None
    assert sorted(layer[1]["name"] for layer in read_layers(str(dicomdir))) == ["HippoCrop", "T1post"]
    assert read_volume(dicomdir).name == "T1post"  # the largest, as for a folder
    from annotator.cli import main

    assert main(["info", str(dicomdir)]) == 0
    assert "export: 2 DICOM series" in capsys.readouterr().out
    from fnmatch import fnmatch

    import npe2

    [ours] = npe2.PluginManifest.from_distribution("annotator3d").contributions.readers
    assert any(fnmatch(str(dicomdir), pattern) for pattern in ours.filename_patterns)


def test_listing_a_folder_of_odd_files_prints_nothing(tmp_path):
    """What ITK's readers print about a broken file while a folder's headers are looked at
    stays off the terminal (the file is just not listed as a label map)."""
    import SimpleITK as sitk

    shutil.copy(DATA / "msd_task04_hippocampus" / "images" / "hippocampus_001.nii.gz", tmp_path)
    sitk.WriteImage(sitk.Image([40, 40, 40], sitk.sitkUInt8), str(tmp_path / "extra.mha"))
    data = (tmp_path / "extra.mha").read_bytes()
    (tmp_path / "extra.mha").write_bytes(data[: len(data) - 63_000])  # its voxels cut short
    script = f"from annotator.datastore import open_datastore; print(open_datastore({str(tmp_path)!r})[0].ids())"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "hippocampus_001" in proc.stdout and proc.stderr == ""


def test_searching_a_large_folder_reports_and_can_be_stopped(tmp_path):
    """A folder of many folders (a home folder, Downloads) says how the search goes, and a
    cancel stops it before anything is listed or written."""
    from annotator.annotation.jobs import Cancelled, Job
    from annotator.datastore.factory import open_datastore

    big = tmp_path / "big"
    for i in range(120):
        (big / f"project{i:03d}" / "notes").mkdir(parents=True)
    for i in range(25):
        shutil.copy(DATA / "msd_task04_hippocampus" / "images" / "hippocampus_001.nii.gz",
                    big / f"project{i:03d}" / f"case{i}.nii.gz")
    heard = []
    store, image_id = open_datastore(big / "project003" / "case3.nii.gz",
                                     progress=lambda text, fraction: heard.append((text, fraction)))
    assert image_id == "case3" and store.ids() == ["case3"]  # the image's own folder
    store, _ = open_datastore(big, progress=lambda text, fraction: heard.append((text, fraction)))
    assert len(store.ids()) == 25
    searching = [t for t, f in heard if t.startswith("searching big:")]
    assert searching[0] == "searching big: 0 images in 0 folders so far" and len(searching) == 5  # 241 folders
    assert "in 200 folders so far" in searching[-1]
    headers = [(t, f) for t, f in heard if t.startswith("looking at the headers of 25 images")]
    assert [f for _t, f in headers] == [0.0, 0.8]

    job = Job("opening big")
    reports = []

    def report(text, fraction):
        reports.append(text)
        if len(reports) == 2:
            job.cancel()
        job.report(text, fraction)

    with pytest.raises(Cancelled):
        open_datastore(big, progress=report)
    assert len(reports) == 2 and not (big / "labels").exists()  # stopped at the report after the cancel


def test_reload_lists_images_added_since_the_folder_opened_and_keeps_the_work(hippo_store, tmp_path, monkeypatch):
    """Images copied into the folder while the app had it open never joined the worklist
    until the folder was opened again (which asks to settle the work in progress). Reload
    (F5) lists them, says what changed, and leaves the open image and its work alone."""
    from annotator.annotation import AnnotationSession
    from annotator.settings import Settings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    session = AnnotationSession(settings=Settings())
    said = []
    session.status.connect(said.append)
    session.warning.connect(said.append)
    session.reload()
    assert "no list to reload" in said[-1]
    store = LocalDatastore(hippo_store)
    session.set_datastore(store)
    session.open_image("hippocampus_001")
    session.label[10:20, 10:20, 10:20] = 1
    session.painted()
    shutil.copy(DATA / "msd_task04_hippocampus" / "images" / "hippocampus_007.nii.gz", hippo_store)
    shutil.copy(DATA / "msd_task04_hippocampus" / "images" / "hippocampus_011.nii.gz", hippo_store)
    (hippo_store / "hippocampus_006.nii.gz").unlink()
    session.reload()
    assert said[-1] == "store: 5 images (2 new images, 1 no longer there)"
    assert session.store is not store and "hippocampus_007" in session.store.ids()
    assert store.ids() == ["hippocampus_001", "hippocampus_003", "hippocampus_004", "hippocampus_006"]
    assert session.image_id == "hippocampus_001" and session.dirty  # the work is still here
    assert session.accept()
    assert session.store.record("hippocampus_001").status == Status.LABELED
    session.reload()
    assert said[-1] == "store: 5 images, none new"
    (hippo_store / "hippocampus_001.nii.gz").unlink()  # the open image itself goes
    session.reload()
    assert said[-1] == "hippocampus_001 is no longer in store: its label cannot be saved there"


def test_accept_keeps_original_and_history(hippo_store):
    store = LocalDatastore(hippo_store, history=2)
    image = store.open_image("hippocampus_001")
    proposed, first, second, third, fourth = (_label(image, v) for v in (1, 2, 3, 1, 2))

    store.save_draft("hippocampus_001", first, image)
    assert store.record("hippocampus_001").status == Status.IN_PROGRESS
    np.testing.assert_array_equal(store.label("hippocampus_001", image, Version.DRAFT), first)

    store.accept("hippocampus_001", first, image, proposed=proposed)
    assert store.record("hippocampus_001").status == Status.LABELED
    assert store.label("hippocampus_001", image, Version.DRAFT) is None
    np.testing.assert_array_equal(store.label("hippocampus_001", image, Version.ORIGINAL), proposed)
    np.testing.assert_array_equal(store.label("hippocampus_001", image), first)

    for later in (second, third, fourth):
        store.accept("hippocampus_001", later, image)
    np.testing.assert_array_equal(store.label("hippocampus_001", image), fourth)
    np.testing.assert_array_equal(store.label("hippocampus_001", image, Version.ORIGINAL), proposed)
    history = store.history("hippocampus_001")
    assert len(history) == 2  # trimmed to the newest two earlier finals: second, third
    from annotator.io import read_label

    files = sorted((store.labels_root / "history" / "hippocampus_001").iterdir())
    assert len(files) == 2
    np.testing.assert_array_equal(read_label(files[0], image), second)
    np.testing.assert_array_equal(read_label(files[1], image), third)
    # read back through the store: the last earlier one first
    np.testing.assert_array_equal(store.earlier_label("hippocampus_001", image), third)
    np.testing.assert_array_equal(store.earlier_label("hippocampus_001", image, 2), second)
    with pytest.raises(DatastoreError, match="'hippocampus_001' has 2 earlier labels, not 3"):
        store.earlier_label("hippocampus_001", image, 3)
    other = store.open_image("hippocampus_003")
    with pytest.raises(DatastoreError, match="'hippocampus_003' has no earlier label"):
        store.earlier_label("hippocampus_003", other)
    assert store.versions("hippocampus_001") == ["original", "final"] and store.versions("hippocampus_003") == []

    record = {r.id: r for r in store.records()}["hippocampus_001"]
    assert record.versions == ["original", "final"]


def test_the_names_a_label_was_accepted_with_stay_with_it(hippo_store):
    """What the Label list called each value when the label was accepted is kept (for a
    DICOM SEG made of it later), over the folder's names; values the label lacks are not."""
    store = LocalDatastore(hippo_store)
    image = store.open_image("hippocampus_001")
    assert store.names_of("hippocampus_001") == {}
    (hippo_store / "labels.json").write_text('{"labels": {"1": "anterior", "2": "posterior"}}')
    assert store.names_of("hippocampus_001") == {1: "anterior", 2: "posterior"}
    store.accept("hippocampus_001", _label(image, 1), image, names={1: "head", 3: "never drawn"})
    assert store.names_of("hippocampus_001") == {1: "head", 2: "posterior"}
    assert store.names_of("hippocampus_003") == {1: "anterior", 2: "posterior"}


def test_info_and_wrong_input(hippo_store):
    store = LocalDatastore(hippo_store)
    store.set_info("hippocampus_003", score=0.25)
    again = LocalDatastore(hippo_store)
    assert {r.id: r for r in again.records()}["hippocampus_003"].info == {"score": 0.25}
    image = store.open_image("hippocampus_001")
    with pytest.raises(DatastoreError, match="no image 'nope'"):
        store.accept("nope", _label(image, 1), image)
    with pytest.raises(Exception, match="voxels but the image"):
        store.accept("hippocampus_001", np.zeros((3, 3, 3), np.uint8), image)
    assert store.record("hippocampus_001").status == Status.UNLABELED


def test_labels_can_live_elsewhere(hippo_store, tmp_path):
    store = LocalDatastore(hippo_store, labels_dir=tmp_path / "elsewhere")
    image = store.open_image("hippocampus_004")
    store.accept("hippocampus_004", _label(image, 1), image)
    assert (tmp_path / "elsewhere" / "final" / "hippocampus_004.nii.gz").exists()
    assert not (hippo_store / "labels").exists()


def test_lock_held_elsewhere_gives_a_clear_error(hippo_store):
    store = LocalDatastore(hippo_store, lock_timeout=0.2)
    image = store.open_image("hippocampus_001")
    store.set_info("hippocampus_001", seen=True)  # the labels folder and its lock exist now
    store = LocalDatastore(hippo_store, lock_timeout=0.2)
    from filelock import FileLock

    with FileLock(str(store.labels_root / ".lock")):
        with pytest.raises(DatastoreError, match="another program holds the datastore lock"):
            store.accept("hippocampus_001", _label(image, 1), image)


_SAVER = textwrap.dedent("""
    import sys, numpy as np
    from annotator.datastore import LocalDatastore
    from annotator.io.volume import Volume
    store = LocalDatastore(sys.argv[1])
    image = store.open_image("hippocampus_001")
    big = Volume(np.zeros((160, 384, 384), np.int16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0),
                 (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    # a large, poorly compressible label makes the write take a while
    label = np.random.default_rng(1).integers(0, 200, big.shape).astype(np.uint8)
    print("ready", flush=True)
    while True:
        store.accept("big", label, big)
""")


def test_sigkill_during_save_leaves_previous_version_intact(hippo_store, tmp_path):
    from annotator.io.volume import Volume

    big = Volume(np.zeros((160, 384, 384), np.int16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0),
                 (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))

    import SimpleITK as sitk

    ramp = (np.arange(np.prod(big.shape)) % 997).reshape(big.shape).astype(np.int16)  # an image, not a label map
    sitk.WriteImage(big.to_sitk(ramp), str(hippo_store / "big.nii.gz"))
    store = LocalDatastore(hippo_store)
    previous = np.zeros(big.shape, np.uint8)
    previous[10:20, 10:20, 10:20] = 7
    store.accept("big", previous, big)
    final = store.labels_root / "final" / "big.nii.gz"
    before = final.read_bytes()

    child = subprocess.Popen([sys.executable, "-c", _SAVER, str(hippo_store)], stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 60
    temp = []
    while not temp and time.monotonic() < deadline:
        temp = [p for p in final.parent.iterdir() if p.name.startswith(".tmp-") and p.stat().st_size > 0]
        time.sleep(0.005)
    assert temp, "the child never started writing"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    assert final.read_bytes() == before  # killed mid-write: the old file, untouched
    reopened = LocalDatastore(hippo_store)  # cleans up what the dead writer left
    np.testing.assert_array_equal(reopened.label("big", big), previous)
    assert not [p for p in reopened.labels_root.rglob(".tmp-*")]
    assert json.loads((reopened.labels_root / "datastore.json").read_text())["images"]["big"]


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from annotator.datastore import LocalDatastore
    store = LocalDatastore(sys.argv[1])
    for i in range(int(sys.argv[2]), int(sys.argv[3])):
        store.set_info("hippocampus_001", **{f"key{i}": i})
""")


def test_two_processes_do_not_lose_each_others_updates(hippo_store):
    LocalDatastore(hippo_store)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(hippo_store), str(a), str(a + 30)])
             for a in (0, 30)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    info = {r.id: r for r in LocalDatastore(hippo_store).records()}["hippocampus_001"].info
    assert info == {f"key{i}": i for i in range(60)}


def test_folder_that_cannot_hold_labels_uses_the_user_data_folder(hippo_store, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    (hippo_store / "labels").write_text("a file where the labels folder would go")
    store = LocalDatastore(hippo_store)
    assert store.labels_root.is_relative_to(tmp_path / "xdg" / "annotator" / "datastores")
    image = store.open_image("hippocampus_001")
    store.accept("hippocampus_001", _label(image, 1), image)
    assert LocalDatastore(hippo_store).record("hippocampus_001").status == Status.LABELED
    assert (hippo_store / "labels").read_text().startswith("a file")


def test_an_nnunet_task_folder_is_one_image_a_case_with_its_channels_beneath(tmp_path):
    """nnU-Net's raw layout: ``imagesTr/case_0000.nii.gz``, ``case_0001.nii.gz`` (channels as
    dataset.json names them), ``labelsTr/case.nii.gz``, labels named ``{"name": value}``. A
    case is one image, named by its first channel; the others come as companions on its
    grid; its label file is its label map. A channel off the grid is left out, said; a case
    missing a channel stays as separate files."""
    import SimpleITK as sitk

    from paths import HIPPO

    task = tmp_path / "Dataset001_Hippo"
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (task / folder).mkdir(parents=True)
    source = sitk.ReadImage(str(HIPPO / "images" / "hippocampus_001.nii.gz"), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(source)

    def write(values, path, like=source):
        image = sitk.GetImageFromArray(values.astype(np.float32))
        image.CopyInformation(like)
        sitk.WriteImage(image, str(path))

    write(array, task / "imagesTr" / "hippo_001_0000.nii.gz")
    write(array.max() - array, task / "imagesTr" / "hippo_001_0001.nii.gz")
    shutil.copy(HIPPO / "labels" / "hippocampus_001.nii.gz", task / "labelsTr" / "hippo_001.nii.gz")
    write(array, task / "imagesTr" / "hippo_002_0000.nii.gz")
    shifted = sitk.GetImageFromArray(array)
    shifted.CopyInformation(source)
    shifted.SetOrigin((5.0, 0.0, 0.0))
    write(array, task / "imagesTr" / "hippo_002_0001.nii.gz", like=shifted)
    write(array, task / "imagesTs" / "hippo_003_0000.nii.gz")  # its second channel is missing
    (task / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T1", "1": "inverted"}, "labels": {"background": 0, "anterior": 1, "posterior": 2},
        "file_ending": ".nii.gz"}))
    store = LocalDatastore(task)
    assert {r.id: r.label_maps for r in store.records()} == {
        "imagesTr/hippo_001_0000": ["labelsTr/hippo_001"], "imagesTr/hippo_002_0000": [],
        "imagesTs/hippo_003_0000": []}
    assert store.label_names() == {"anterior": 1, "posterior": 2}
    volume = store.open_image("imagesTr/hippo_001_0000")
    assert volume.name == "hippo_001 (T1)" and "2 channels (T1, inverted)" in volume.warnings[0]
    assert volume.modality == "MR"  # T1, as the task names it
    [other] = store.companions("imagesTr/hippo_001_0000", volume)
    assert other.name == "hippo_001 (inverted)" and other.same_geometry(volume)
    np.testing.assert_allclose(other.array, array.max() - array)
    off = store.open_image("imagesTr/hippo_002_0000")
    assert store.companions("imagesTr/hippo_002_0000", off) == []
    assert "channel inverted left out: hippo_002_0001.nii.gz does not lie on the grid" in off.warnings[-1]
    lone = store.open_image("imagesTs/hippo_003_0000")
    assert lone.name == "hippo_003_0000" and store.companions("imagesTs/hippo_003_0000", lone) == []
    from annotator.datastore.factory import open_datastore

    store, image_id = open_datastore(task / "imagesTr" / "hippo_001_0001.nii.gz")  # a channel's file: its case
    assert image_id == "hippo_001_0000" and store.label_names() == {"anterior": 1, "posterior": 2}
    (task / "dataset.json").write_text(json.dumps({"labels": {"1": "anterior"}}))  # no channels named: files
    assert len(LocalDatastore(task).records()) == 5


def test_a_folder_without_images_says_what_an_image_is(tmp_path):
    """A folder holding only a DICOM SEG (its series elsewhere) opened as an empty list with
    no word; it now says that nothing was found and what counts as an image, in the app
    (the session's warning) and from `annotator status`, and that its label maps want
    their image (TotalSegmentator's masks opened without their CT)."""
    from annotator.annotation import AnnotationSession
    from annotator.settings import Settings

    folder = tmp_path / "seg_only"
    shutil.copytree(DATA / "dicom_seg_tcga_gbm", folder)
    store = LocalDatastore(folder, labels_dir=tmp_path / "labels")
    assert store.records() == []
    [notice] = store.notices()
    assert notice.startswith(f"{folder}: no images found. Images are files ending in .nii.gz, ")
    assert "DICOM SEG or RT Structure Set is a label" in notice
    assert notice.endswith(". Here is only 1 label map (DicomSeg): open the folder that holds its image too, and "
                           "it opens beside it")
    masks = tmp_path / "segmentations"  # TotalSegmentator's masks, opened without their CT
    masks.mkdir()
    for name in ("liver", "spleen"):
        shutil.copy(DATA / "totalsegmentator_example" / "example_seg.nii.gz", masks / f"{name}.nii.gz")
    [notice] = LocalDatastore(masks, labels_dir=tmp_path / "l3").notices()
    assert notice.endswith("Here are only 2 label maps (liver, spleen): open the folder that holds their image too, "
                           "and they open beside it")
    assert LocalDatastore(DATA / "totalsegmentator_example", labels_dir=tmp_path / "l2").notices() == []
    session = AnnotationSession(settings=Settings())
    heard = []
    session.warning.connect(heard.append)
    session.open(folder)
    assert any("no images found" in h for h in heard), heard
    proc = subprocess.run([sys.executable, "-m", "annotator", "status", str(folder)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert proc.returncode == 0 and "0 images" in proc.stdout and "no images found" in proc.stderr


def test_a_place_that_is_no_image_says_which_of_missing_or_not_an_image(tmp_path):
    from annotator.datastore import open_datastore
    from annotator.errors import DatastoreError

    with pytest.raises(DatastoreError, match="missing: no such image, series or folder"):
        open_datastore(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("the labels are in the other folder")
    with pytest.raises(DatastoreError, match="notes.txt: not an image, a DICOM series or a folder of them"):
        open_datastore(tmp_path / "notes.txt")
