"""Labels are never lost, mixed up or written where they do not belong.

Each test states one way a label store could fail (a full disk, a crafted index, a
crash between two files, read-only media, look-alike ids, links) and checks that it does not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from annotator.datastore import LocalDatastore, Status, open_datastore
from annotator.datastore.labels import file_name, image_id_of
from annotator.datastore.places import find_images
from annotator.errors import AnnotatorError, DatastoreError
from annotator.models.card import check_name
from annotator.training.config import TrainConfig
from paths import HIPPO


def _label(image, value: int, fill: float = 0.2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + value)
    return (rng.random(image.shape) < fill).astype(np.uint8) * value


@contextmanager
def _mounted(kind: str, target: Path, options: str):
    """A tmpfs or read-only bind mount at ``target`` (root only); skips where mounting is not allowed."""
    target.mkdir(parents=True, exist_ok=True)
    args = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)] if kind == "tmpfs" else \
        ["mount", "--bind", options, str(target)]
    if os.geteuid() != 0 or subprocess.run(args, capture_output=True).returncode != 0:
        yield False
        return
    try:
        if kind == "bind":
            subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=True, capture_output=True)
        yield True
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def test_a_full_disk_raises_and_leaves_the_previous_final_byte_identical(tmp_path, monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(HIPPO / "images" / "hippocampus_001.nii.gz", images)
    labels = tmp_path / "small-disk"
    with _mounted("tmpfs", labels, "size=64k") as mounted:
        if not mounted:  # no tiny file system here: a write that stops short, as a full disk does
            import SimpleITK as sitk

            real = sitk.WriteImage

            def short_write(image, path, *args, **kwargs):
                real(image, path, *args, **kwargs)
                data = Path(path).read_bytes()
                if len(data) > 3000:
                    Path(path).write_bytes(data[: len(data) // 3])

            monkeypatch.setattr(sitk, "WriteImage", short_write)
        store = LocalDatastore(images, labels_dir=labels)
        image = store.open_image("hippocampus_001")
        small = np.zeros(image.shape, np.uint8)
        small[10:14, 20:24, 10:14] = 1
        store.accept("hippocampus_001", small, image)
        final = labels / "final" / "hippocampus_001.nii.gz"
        before = final.read_bytes()
        failures = 0
        for seed in range(6):  # random labels do not compress: they do not fit
            noisy = (np.random.default_rng(seed).random(image.shape) * 200).astype(np.uint8)
            for save in (lambda: store.accept("hippocampus_001", noisy, image),
                         lambda: store.save_draft("hippocampus_001", noisy, image)):
                with pytest.raises(DatastoreError, match="could not be written"):
                    save()
                failures += 1
                assert final.read_bytes() == before
        assert failures == 12
        assert not [p for p in labels.rglob(".tmp-*")]  # nothing half-written left behind
        reopened = LocalDatastore(images, labels_dir=labels)
        np.testing.assert_array_equal(reopened.label("hippocampus_001", image), small)
        assert reopened.record("hippocampus_001").status == Status.LABELED


def test_ids_map_to_distinct_reversible_file_names():
    ids = ["a/b", "a__b", "a%2Fb", ".hidden", ".tmp-x", "..", "with space", "ümlaut/ß", "x:y", "a\\b"]
    names = [file_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert all("/" not in n and "\\" not in n and not n.startswith(".") for n in names)
    assert [image_id_of(n) for n in names] == ids
    rng = np.random.default_rng(0)
    for _ in range(500):
        text = "".join(chr(int(c)) for c in rng.integers(32, 0x2FF, rng.integers(1, 12)))
        assert image_id_of(file_name(text)) == text


def test_two_ids_that_used_to_collide_keep_their_own_labels(tmp_path):
    for sub in ("a", "."):
        (tmp_path / "store" / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(HIPPO / "images" / "hippocampus_001.nii.gz", tmp_path / "store" / "a" / "b.nii.gz")
    shutil.copy(HIPPO / "images" / "hippocampus_001.nii.gz", tmp_path / "store" / "a__b.nii.gz")
    store = LocalDatastore(tmp_path / "store")
    assert store.ids() == ["a/b", "a__b"]
    image = store.open_image("a/b")
    one, two = _label(image, 1), _label(image, 2)
    store.accept("a/b", one, image)
    store.accept("a__b", two, image)
    np.testing.assert_array_equal(store.label("a/b", image), one)
    np.testing.assert_array_equal(store.label("a__b", image), two)


def test_a_crafted_index_cannot_make_the_store_touch_files_outside_it(hippo_store, tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    store = LocalDatastore(hippo_store, history=1)
    image = store.open_image("hippocampus_001")
    store.accept("hippocampus_001", _label(image, 1), image)
    index_path = store.labels_root / "datastore.json"
    index = json.loads(index_path.read_text())
    index["images"]["hippocampus_001"]["history"] = [
        {"file": str(victim), "saved": "x"}, {"file": "../../precious.txt", "saved": "x"},
        {"file": "history/../../../precious.txt", "saved": "x"}, {"file": 5}, "junk"]
    index_path.write_text(json.dumps(index))
    store = LocalDatastore(hippo_store, history=1)
    for value in (2, 1, 2):  # every accept archives and trims the history
        store.accept("hippocampus_001", _label(image, value), image)
    assert victim.read_text() == "keep me"
    assert len(store.history("hippocampus_001")) == 1


def test_history_orphaned_by_a_crash_is_taken_back_when_the_store_opens(hippo_store):
    store = LocalDatastore(hippo_store, history=3)
    image = store.open_image("hippocampus_001")
    for value in (1, 2, 1):
        store.accept("hippocampus_001", _label(image, value), image)
    assert len(store.history("hippocampus_001")) == 2
    # a crash after a final was archived, before the index was written: a history file
    # the index does not list
    folder = store.labels_root / "history" / "hippocampus_001"
    newest = sorted(folder.iterdir())[-1]
    orphan = folder / "29990101T000000.000000Z-final.nii.gz"
    shutil.copy(newest, orphan)
    reopened = LocalDatastore(hippo_store, history=3)
    history = reopened.history("hippocampus_001")
    assert len(history) == 3 and history[-1]["saved"].startswith("2999-01-01")
    listed = json.loads((reopened.labels_root / "datastore.json").read_text())["images"]["hippocampus_001"]["history"]
    assert {h["file"] for h in listed} == {p.name for p in folder.iterdir()}
    # and a listed file that is gone leaves the index
    orphan.unlink()
    assert len(LocalDatastore(hippo_store, history=3).history("hippocampus_001")) == 2


def test_a_damaged_index_is_kept_aside_and_rebuilt_from_the_label_files(hippo_store):
    """An index that is not JSON any more (a disk error, an edit by hand) stopped the whole
    folder from opening; it is kept beside a new one rebuilt from the label files (the
    earlier finals back in the history), and the person is told."""
    from annotator.annotation import AnnotationSession
    from annotator.settings import Settings

    store = LocalDatastore(hippo_store)
    image = store.open_image("hippocampus_001")
    for value in (1, 2):
        store.accept("hippocampus_001", _label(image, value), image)
    other = store.open_image("hippocampus_003")
    store.save_draft("hippocampus_003", _label(other, 1), other)
    store.set_scores({"hippocampus_004": 0.5})
    index = store.labels_root / "datastore.json"
    damaged = index.read_bytes()[:-40]
    index.write_bytes(damaged)
    session = AnnotationSession(settings=Settings())
    warnings = []
    session.warning.connect(warnings.append)
    session.open(hippo_store)
    assert session.volume is not None and len(warnings) == 1
    assert "datastore.json: datastore index was damaged" in warnings[0] and "kept as datastore.json.damaged-" in warnings[0]
    reopened = session.store
    kept = [p for p in reopened.labels_root.iterdir() if p.name.startswith("datastore.json.damaged-")]
    assert len(kept) == 1 and kept[0].read_bytes() == damaged  # nothing lost
    records = {r.id: r for r in reopened.records()}
    assert records["hippocampus_001"].status == Status.LABELED and records["hippocampus_003"].status == Status.IN_PROGRESS
    assert records["hippocampus_004"].score is None  # scores are not in any label file
    np.testing.assert_array_equal(reopened.earlier_label("hippocampus_001", image), _label(image, 1))
    assert LocalDatastore(hippo_store).notices() == []  # rebuilt once


def test_a_finished_datastore_on_read_only_media_opens_for_viewing(hippo_store, tmp_path):
    store = LocalDatastore(hippo_store)
    image = store.open_image("hippocampus_001")
    store.accept("hippocampus_001", _label(image, 1), image)
    view = tmp_path / "dvd"
    with _mounted("bind", view, str(hippo_store)) as mounted:
        if not mounted:
            pytest.skip("no read-only mount possible here (needs root)")
        ro = LocalDatastore(view)
        assert ro.labels_root == view.resolve() / "labels"  # its own labels, not an empty copy elsewhere
        assert not ro.writable and "read-only" in ro.read_only_reason()
        assert ro.record("hippocampus_001").status == Status.LABELED
        np.testing.assert_array_equal(ro.label("hippocampus_001", image), _label(image, 1))
        with pytest.raises(DatastoreError, match="cannot be saved here: its labels folder is read-only"):
            ro.accept("hippocampus_003", _label(image, 2), image)
        with pytest.raises(DatastoreError, match="read-only"):
            ro.save_draft("hippocampus_001", _label(image, 2), image)


def test_images_with_the_same_stem_are_distinct(tmp_path):
    folder = tmp_path / "store"
    (folder / "s1").mkdir(parents=True)
    src = HIPPO / "images" / "hippocampus_001.nii.gz"
    shutil.copy(src, folder / "case.nii.gz")
    import SimpleITK as sitk

    sitk.WriteImage(sitk.ReadImage(str(src)), str(folder / "case.nrrd"))
    shutil.copy(src, folder / "s1.nii.gz")
    for dcm in sorted((HIPPO.parent / "udacity_study3_mr_dicom" / "11_HCropVolume").iterdir()):
        shutil.copy(dcm, folder / "s1")
    shutil.copy(src, folder / "single.nii.gz")
    found = find_images(folder)
    assert sorted(found) == ["case.nii.gz", "case.nrrd", "s1", "s1.nii.gz", "single"]
    store = LocalDatastore(folder)
    a, b = store.open_image("case.nii.gz"), store.open_image("case.nrrd")
    store.accept("case.nii.gz", _label(a, 1), a)
    assert store.record("case.nrrd").status == Status.UNLABELED
    assert store.open_image("s1").shape != store.open_image("s1.nii.gz").shape


def test_a_dataset_folder_is_never_written_and_still_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    dataset = tmp_path / "dataset"
    for sub in ("images", "labels"):
        (dataset / sub).mkdir(parents=True)
        for case in ("hippocampus_001", "hippocampus_003"):
            shutil.copy(HIPPO / sub / f"{case}.nii.gz", dataset / sub)
    (dataset / "images" / "hippocampus_004.nii.gz").write_bytes((HIPPO / "images" / "hippocampus_004.nii.gz").read_bytes())
    before = sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*"))
    store, image_id = open_datastore(dataset)
    assert image_id is None and store.ids() == ["hippocampus_001", "hippocampus_003", "hippocampus_004"]
    assert store.training_ids() == ["hippocampus_001", "hippocampus_003"]  # the reference labels are finals
    image = store.open_image("hippocampus_004")
    store.accept("hippocampus_004", _label(image, 1), image)
    assert store.training_ids() == ["hippocampus_001", "hippocampus_003", "hippocampus_004"]
    assert sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*")) == before
    assert open_datastore(dataset)[0].record("hippocampus_004").status == Status.LABELED


def test_names_that_could_leave_their_folder_are_refused():
    for bad in ("../x", "a/b", "a\\b", "..", ".hidden", "", "a" * 200):
        with pytest.raises(AnnotatorError, match="refused"):
            check_name(bad)
        with pytest.raises(AnnotatorError, match="refused"):
            TrainConfig(method="deepedit", data=["x"], name=bad or "/")
    assert check_name("deepedit-hippocampus-mr_v2.1") == "deepedit-hippocampus-mr_v2.1"


def test_links_out_of_the_labels_folder_are_refused(hippo_store, tmp_path):
    store = LocalDatastore(hippo_store)
    image = store.open_image("hippocampus_001")
    store.accept("hippocampus_001", _label(image, 1), image)
    outside = tmp_path / "outside.nii.gz"
    outside.write_bytes(b"not yours")
    final = store.labels_root / "final" / "hippocampus_003.nii.gz"
    final.symlink_to(outside)
    with pytest.raises(DatastoreError, match="outside the labels folder"):
        store.accept("hippocampus_003", _label(image, 2), image)
    with pytest.raises(DatastoreError, match="outside the labels folder"):
        store.label("hippocampus_003", image)
    assert outside.read_bytes() == b"not yours"
    # a linked folder is not searched for images
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(HIPPO / "images" / "hippocampus_008.nii.gz", tmp_path / "elsewhere")
    (hippo_store / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert "linked/hippocampus_008" not in LocalDatastore(hippo_store).ids()


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_label_files_follow_the_umask(hippo_store, mask):
    old = os.umask(mask)
    try:
        store = LocalDatastore(hippo_store)
        image = store.open_image("hippocampus_001")
        store.accept("hippocampus_001", _label(image, 1), image)
    finally:
        os.umask(old)
    for version in ("final", "original"):
        mode = (store.labels_root / version / "hippocampus_001.nii.gz").stat().st_mode & 0o777
        assert mode == 0o666 & ~mask, oct(mode)
    assert (store.labels_root / "datastore.json").stat().st_mode & 0o777 == 0o666 & ~mask


_SAVER = """
import sys, numpy as np
from annotator.datastore import LocalDatastore
store = LocalDatastore(sys.argv[1])
image = store.open_image(sys.argv[2])
rng = np.random.default_rng(int(sys.argv[3]))
i = 0
while True:
    label = (rng.random(image.shape) < 0.3).astype(np.uint8) * (1 + i % 3)
    action = i % 3
    if action == 0:
        store.accept(sys.argv[2], label, image)
    elif action == 1:
        store.save_draft(sys.argv[2], label, image)
    else:
        store.set_info(sys.argv[2], step=i)
    i += 1
"""


def test_two_processes_saving_at_once_lose_nothing(hippo_store):
    code = """
import sys, numpy as np
from annotator.datastore import LocalDatastore
store = LocalDatastore(sys.argv[1])
image = store.open_image(sys.argv[2])
for i in range(8):
    store.accept(sys.argv[2], np.full(image.shape, 1 + i % 2, np.uint8), image)
    store.set_info(sys.argv[2], **{f"k{i}": i})
"""
    procs = [subprocess.Popen([sys.executable, "-c", code, str(hippo_store), case])
             for case in ("hippocampus_001", "hippocampus_003")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    store = LocalDatastore(hippo_store)
    for case in ("hippocampus_001", "hippocampus_003"):
        assert store.record(case).info == {f"k{i}": i for i in range(8)}
        assert len(store.history(case)) == 7
        image = store.open_image(case)
        assert (store.label(case, image) == 2).all()
