"""Label maps in a folder: told apart from the images, linked to their image by name or grid,
never listed as images to annotate, shown and usable as the image's label."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from annotator.annotation import AnnotationSession
from annotator.datastore import LocalDatastore
from annotator.datastore.label_maps import is_label_map, link, split
from annotator.errors import GeometryError
from paths import DATA, HIPPO

TOTALSEG = DATA / "totalsegmentator_example"


def test_the_totalsegmentator_folder_lists_its_images_with_their_label_maps():
    proc = subprocess.run([sys.executable, "-m", "annotator", "status", str(TOTALSEG), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    records = {r["id"]: r["label_maps"] for r in json.loads(proc.stdout)}
    assert records == {"example_ct": ["example_seg_fast_force_split"], "example_ct_dicom": ["example_seg_dicom"],
                       "example_ct_sm": ["example_seg"], "example_mr_sm": ["example_seg_mr"]}


def test_a_folder_tells_label_maps_from_images_by_their_values_where_names_say_little(tmp_path):
    """A FreeSurfer subject's ``brainmask.mgz`` (the skull-stripped T1, named like a mask)
    is an image; an ``aseg`` or a parcellation of some forty structures (more values than
    a few, named like a label or not at all) is a label map; a CT whose air is one value,
    or stored in 8 bits of a narrow window, stays an image."""
    import nibabel as nib

    ct = nib.load(TOTALSEG / "example_ct_sm.nii.gz")
    seg = np.asarray(nib.load(TOTALSEG / "example_seg.nii.gz").dataobj).astype(np.int32)
    assert len(np.unique(seg)) > 40
    hu = np.asarray(ct.dataobj).astype(np.int16)
    brain = np.clip((hu + 200) / 2, 0, 255).astype(np.uint8) * (seg > 0)
    assert len(np.unique(brain)) > 100
    subject = tmp_path / "mri"
    subject.mkdir()
    nib.save(nib.MGHImage(hu, ct.affine), subject / "T1.mgz")
    nib.save(nib.MGHImage(brain, ct.affine), subject / "brainmask.mgz")
    nib.save(nib.MGHImage(seg, ct.affine), subject / "aseg.mgz")
    nib.save(nib.MGHImage((seg * 3).astype(np.int32), ct.affine), subject / "parcellation.mgz")
    air = np.where(hu < -900, -1024, hu).astype(np.int16)
    nib.save(nib.Nifti1Image(air, ct.affine), subject / "ct.nii.gz")
    windowed = np.clip(hu / 80 * 255, 0, 255).astype(np.uint8)  # 8 bits of a brain window: 81 values
    nib.save(nib.Nifti1Image(windowed, ct.affine), subject / "ct_8bit.nii.gz")
    found = {p.name.split(".")[0]: p for p in subject.iterdir()}
    images, maps = split(found)
    assert sorted(images) == ["T1", "brainmask", "ct", "ct_8bit"] and sorted(maps) == ["aseg", "parcellation"]
    # what the napari reader asks of a file opened alone
    assert not is_label_map("brainmask", subject / "brainmask.mgz") and is_label_map("aseg", subject / "aseg.mgz")
    # on one grid with images whose names say nothing of it, a label map labels each of
    # those with the fewest other words in their names
    store = LocalDatastore(subject)
    assert {r.id: sorted(r.label_maps) for r in store.records()} == {
        **{image: ["aseg", "parcellation"] for image in ("T1", "brainmask", "ct")}, "ct_8bit": []}
    label, _ = store.label_map("brainmask", "aseg", store.open_image("brainmask"))
    np.testing.assert_array_equal(np.unique(label, return_counts=True), np.unique(seg, return_counts=True))


def test_a_folder_reads_the_values_of_its_files_again_only_when_they_change(tmp_path, monkeypatch):
    """Telling a FreeSurfer subject's label maps from its images reads each small integer
    volume whole (seconds for a subject's twenty-odd); the next opening of the folder takes
    what they said from the user cache, unless a file was rewritten. An MGH file's header
    is read without its voxels (nibabel's own loading decompressed the whole file for the
    scan parameters after them)."""
    import gzip

    import nibabel as nib

    from annotator.datastore import label_maps
    from annotator.io.read import read_information

    brain = nib.load(HIPPO / "images" / "hippocampus_001.nii.gz")
    t1 = np.asarray(brain.dataobj).astype(np.uint8)
    aseg = np.asarray(nib.load(HIPPO / "labels" / "hippocampus_001.nii.gz").dataobj).astype(np.int32) * 17
    root = tmp_path / "subjects"
    subject = root / "bert" / "mri"
    subject.mkdir(parents=True)
    for name in ("T1", "norm", "brainmask"):
        nib.save(nib.MGHImage(t1, brain.affine), subject / f"{name}.mgz")
    nib.save(nib.MGHImage(aseg, brain.affine), subject / "aseg.mgz")
    read, real = [], label_maps.read_image_file
    monkeypatch.setattr(label_maps, "read_image_file", lambda path: read.append(path.name) or real(path))
    first = LocalDatastore(root)
    assert sorted(read) == ["T1.mgz", "aseg.mgz", "brainmask.mgz", "norm.mgz"]
    read.clear()
    again = LocalDatastore(root)
    assert read == []
    expected = {f"bert/mri/{n}": ["bert/mri/aseg"] for n in ("T1", "brainmask", "norm")}
    assert {r.id: r.label_maps for r in again.records()} == {r.id: r.label_maps for r in first.records()} == expected
    nib.save(nib.MGHImage((aseg > 0).astype(np.int32) * 255, brain.affine), subject / "norm.mgz")  # rewritten
    assert LocalDatastore(root).ids() == ["bert/mri/T1", "bert/mri/brainmask"] and read == ["norm.mgz"]
    read.clear()
    label_maps.Remembered(label_maps.CACHE_NAME).path.write_text("[broken")  # a broken cache costs the time only
    assert LocalDatastore(root).ids() == ["bert/mri/T1", "bert/mri/brainmask"] and len(read) == 4
    # the header alone: a file cut short after it still tells its grid (its voxels do not read)
    whole = gzip.decompress((subject / "T1.mgz").read_bytes())
    (subject / "cut.mgz").write_bytes(gzip.compress(whole[: len(whole) // 3]))
    assert tuple(read_information(subject / "cut.mgz").GetSize()) == t1.shape
    with pytest.raises(RuntimeError, match="its voxels cannot be read"):
        label_maps.read_image_file(subject / "cut.mgz")


def test_a_label_map_stored_another_way_round_is_found_by_its_grid_and_read_onto_its_image(tmp_path):
    """A label map named like no image, its rows flipped and its axes in another order,
    belongs to the image whose grid of points it shares (not to an image of the same
    size elsewhere in space), and opens with it, voxel for voxel."""
    rng = np.random.default_rng(1)
    image = sitk.GetImageFromArray((rng.random((6, 12, 10)) * 500).astype(np.int16))
    image.SetSpacing((0.8, 0.9, 2.5))
    image.SetOrigin((10.0, -20.0, 30.0))
    sitk.WriteImage(image, str(tmp_path / "knee.nii.gz"))
    elsewhere = sitk.Image(image)
    elsewhere.SetOrigin((110.0, -20.0, 30.0))
    sitk.WriteImage(elsewhere, str(tmp_path / "ankle.nii.gz"))
    mask = np.zeros((6, 12, 10), np.uint8)
    mask[1:4, 2:7, 3:9] = 2
    label = sitk.GetImageFromArray(mask)
    label.CopyInformation(image)
    sitk.WriteImage(sitk.PermuteAxes(sitk.Flip(label, [False, True, False]), [1, 0, 2]),
                    str(tmp_path / "from_the_planning_system.nii.gz"))
    store = LocalDatastore(tmp_path)
    records = {r.id: r.label_maps for r in store.records()}
    assert records == {"ankle": [], "knee": ["from_the_planning_system"]}
    volume = store.open_image("knee")
    np.testing.assert_array_equal(store.label_map("knee", "from_the_planning_system", volume)[0], mask)


def _write(path, array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path


def test_names_and_grids_decide_and_images_are_never_taken_for_labels(tmp_path):
    rng = np.random.default_rng(0)
    mr = (rng.random((8, 16, 16)) * 500).astype(np.int16)
    ct = (rng.random((8, 16, 16)) * 2000 - 1000).astype(np.int16)
    mask = np.zeros((8, 16, 16), np.uint8)
    mask[2:6, 4:12, 4:12] = 1
    _write(tmp_path / "brain_t1.nii.gz", mr)
    _write(tmp_path / "abdomen.nii.gz", ct, spacing=(0.8, 0.8, 2.0))
    uint8_mr = (rng.random((8, 16, 16)) * 255).astype(np.uint8)  # an 8-bit image with many values: an image
    _write(tmp_path / "old_scanner.nii.gz", uint8_mr, origin=(5.0, 0.0, 0.0))
    _write(tmp_path / "brain_t1_mask.nii.gz", mask)  # by name
    _write(tmp_path / "organs.nii.gz", mask * 3, spacing=(0.8, 0.8, 2.0))  # few 8-bit values: by grid
    (tmp_path / "labels_from_elsewhere").mkdir()
    _write(tmp_path / "labels_from_elsewhere" / "nothing_matches_seg.nii.gz", mask, spacing=(9.0, 9.0, 9.0))
    found = {p.name.split(".")[0]: p for p in tmp_path.rglob("*.nii.gz")}
    found = {("labels_from_elsewhere/" if "labels_from" in str(p) else "") + k: p for k, p in found.items()}
    images, maps = split(found)
    assert set(images) == {"brain_t1", "abdomen", "old_scanner"}
    assert set(maps) == {"brain_t1_mask", "organs", "labels_from_elsewhere/nothing_matches_seg"}
    assert link(images, maps) == {"brain_t1_mask": ["brain_t1"], "organs": ["abdomen"],
                                  "labels_from_elsewhere/nothing_matches_seg": []}


def test_a_label_map_opens_beside_its_image_and_can_become_its_label(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    for name in ("example_ct_sm.nii.gz", "example_seg.nii.gz", "example_mr_sm.nii.gz"):
        shutil.copy(TOTALSEG / name, folder)
    shutil.copy(HIPPO / "images" / "hippocampus_001.nii.gz", folder)
    store = LocalDatastore(folder)
    assert [r.id for r in store.records()] == ["example_ct_sm", "example_mr_sm", "hippocampus_001"]
    session = AnnotationSession()
    session.open(folder / "example_ct_sm.nii.gz")
    assert list(session.label_maps) == ["example_seg"] and not session.label.any()
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_seg.nii.gz")))
    session.use_label_map("example_seg")
    np.testing.assert_array_equal(session.label, expected)
    # TotalSegmentator's label table (a NIfTI header extension) names the Label list
    offered = {p.value: p.name for p in session.labels}
    assert offered[5] == "liver" and offered[1] == "spleen" and offered[117] == "costal_cartilages"
    session.undo()
    assert not session.label.any()
    session.redo()
    session.accept()
    volume = session.volume
    np.testing.assert_array_equal(session.store.label("example_ct_sm", volume), expected)
    assert session.store.record("example_ct_sm").status.value == "labeled"


def test_a_mask_per_structure_is_named_by_its_file(tmp_path):
    """TotalSegmentator's output of a file per structure (``segmentations/liver.nii.gz``
    beside ``ct.nii.gz``): the folder is one label map of the image, each mask's structure
    named by its file, and Use as label offers those names; a mask named after its image
    (``ct_seg``), or by a number alone (``mask_2``), names nothing."""
    ct = sitk.ReadImage(str(TOTALSEG / "example_ct_sm.nii.gz"))
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(TOTALSEG / "example_seg.nii.gz")))
    folder = tmp_path / "case"
    (folder / "segmentations").mkdir(parents=True)
    sitk.WriteImage(ct, str(folder / "ct.nii.gz"))

    def mask(values, path):
        image = sitk.GetImageFromArray(values.astype(np.uint8))
        image.CopyInformation(ct)
        sitk.WriteImage(image, str(path))

    mask(seg == 5, folder / "segmentations" / "liver.nii.gz")
    mask(seg == 1, folder / "segmentations" / "spleen.nii.gz")
    mask(seg == 5, folder / "ct_seg.nii.gz")
    mask(seg == 5, folder / "mask_2.nii.gz")
    mask(seg, folder / "ct_totalseg.nii.gz")  # all 42 structures: named so, a label map too (was an image)
    store = LocalDatastore(folder)
    [record] = store.records()
    assert record.id == "ct" and sorted(record.label_maps) == ["ct_seg", "ct_totalseg", "mask_2", "segmentations"]
    volume = store.open_image("ct")
    assert {m: store.label_map("ct", m, volume)[1] for m in record.label_maps} == {
        "ct_seg": {}, "ct_totalseg": {}, "mask_2": {}, "segmentations": {"liver": 1, "spleen": 2}}
    session = AnnotationSession()
    session.open(folder / "ct.nii.gz")
    session.use_label_map("segmentations")
    np.testing.assert_array_equal(session.label, (seg == 5) * 1 + (seg == 1) * 2)
    assert {p.value: p.name for p in session.labels}[1] == "liver"
    assert {p.value: p.name for p in session.labels}[2] == "spleen"


def test_a_folder_of_masks_of_one_image_is_one_label_map(tmp_path):
    """A folder of masks of one image (TotalSegmentator writes 117, one per structure;
    they were 117 label maps, each read whole and shown as a layer: a CT of 11 million
    voxels opened in 51 s and 3 GB) is one label map: a structure per mask, in the order
    of the files, valued as the folder's labels.json names them; an empty mask adds
    nothing, a file of several values a structure per value, and where masks overlap the
    smaller is kept, said. Maps beside the image, or in a folder holding maps of other
    images or ones that name no structure of their own (versions of one label), stay
    label maps each."""
    import gzip
    import json

    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.normal(0, 10, (12, 20, 16)).astype(np.int16))
    image.SetSpacing((1.5, 1.5, 3.0))
    root = tmp_path / "study"
    (root / "out" / "segmentations").mkdir(parents=True)
    other = sitk.Image(image)
    other.SetOrigin((0.0, 0.0, 90.0))  # another scan
    sitk.WriteImage(image, str(root / "ct.nii.gz"))
    sitk.WriteImage(other, str(root / "case1.nii.gz"))

    def mask(values, path, on=image):
        written = sitk.GetImageFromArray(values.astype(np.uint8))
        written.CopyInformation(on)
        sitk.WriteImage(written, str(path))

    box = np.zeros((12, 20, 16), np.uint8)
    liver, vessel, kidney, lesions = box.copy(), box.copy(), box.copy(), box.copy()
    liver[2:10, 2:12, 2:10] = 1
    vessel[4:6, 5:7, 3:9] = 1  # inside the liver
    kidney[3:8, 14:18, 10:14] = 1
    lesions[1, 1, 1], lesions[10, 18, 14] = 1, 2
    masks = root / "out" / "segmentations"
    for name, values in (("liver", liver), ("liver_vessels", vessel), ("kidney_left", kidney),
                         ("pancreas", box), ("lesions", lesions)):
        mask(values, masks / f"{name}.nii.gz")
    raw = gzip.decompress((masks / "liver.nii.gz").read_bytes())
    (masks / "stomach.nii.gz").write_bytes(gzip.compress(raw[:-100]))  # its voxels cut short: left out, said
    (root / "labels.json").write_text(json.dumps({"labels": {"5": "liver"}}))
    (root / "segs").mkdir()
    mask(liver, root / "segs" / "case1_seg.nii.gz", other)  # two versions of one label: two maps
    mask(kidney, root / "segs" / "case1_seg_v2.nii.gz", other)
    store = LocalDatastore(root)
    assert {r.id: sorted(r.label_maps) for r in store.records()} == {
        "case1": ["segs/case1_seg", "segs/case1_seg_v2"], "ct": ["out/segmentations"]}
    volume = store.open_image("ct")
    label, names = store.label_map("ct", "out/segmentations", volume)
    assert names == {"kidney_left": 1, "lesions_1": 2, "lesions_2": 3, "liver": 5, "liver_vessels": 4}
    np.testing.assert_array_equal(label, kidney * 1 + (lesions == 1) * 2 + (lesions == 2) * 3
                                  + (liver & ~vessel) * 5 + vessel * 4)
    assert any("segments overlap (liver_vessels over liver in 24 voxels)" in w for w in volume.warnings)
    assert any(w.startswith("out/segmentations/stomach left out: ") and "stomach.nii.gz" in w for w in volume.warnings)
    session = AnnotationSession()
    session.open(root / "ct.nii.gz")
    assert session.label_maps.keys() == {"out/segmentations"}
    proc = subprocess.run([sys.executable, "-m", "annotator", "accept", str(root), "ct", "out/segmentations"],
                          capture_output=True, text=True, timeout=120)  # accepted by its id: it is no file
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(LocalDatastore(root).label("ct", volume), label)
    assert LocalDatastore(root).names_of("ct")[4] == "liver_vessels"
    # a mask beside the image, or masks of two images in one folder: each its own
    mask(liver, root / "out" / "segmentations" / "case1_liver.nii.gz", other)
    again = LocalDatastore(root)
    assert {r.id: sorted(r.label_maps) for r in again.records()} == {
        "case1": ["out/segmentations/case1_liver", "segs/case1_seg", "segs/case1_seg_v2"],
        "ct": [f"out/segmentations/{n}" for n in ("kidney_left", "lesions", "liver", "liver_vessels", "pancreas",
                                                  "stomach")]}


def test_a_folder_of_a_series_with_its_segmentations_beside_it():
    """The dcmqi folder: a CT series folder, DICOM SEG files (linked by the series they
    segment) and NRRD label maps (some named ``*_seg``, some only 16-bit with few values),
    all on the series' grid."""
    store = LocalDatastore(DATA / "dcmqi_ct3slice_seg", labels_dir="/nonexistent-never-written")
    [record] = store.records()
    assert record.id == "ct-3slice"
    assert set(record.label_maps) == {"heart_seg", "liver_seg", "liver_spine_seg", "spine_seg", "partial_overlaps-1",
                                      "partial_overlaps-2", "partial_overlaps-3", "liver", "partial_overlaps"}
    volume = store.open_image("ct-3slice")
    liver, names = store.label_map("ct-3slice", "liver_seg", volume)
    assert liver.any() and names == {"liver": 1}  # a plain NRRD mask: named by its file
    from_seg, names = store.label_map("ct-3slice", "liver", volume)  # the same liver, as a DICOM SEG
    np.testing.assert_array_equal(from_seg, liver)
    assert names == {"liver": 1}
    both, names = store.label_map("ct-3slice", "liver_spine_seg", volume)
    assert both.max() > 1 and names == {}  # not one structure: its file does not say which value is which
    overlaps, names = store.label_map("ct-3slice", "partial_overlaps", volume)
    assert set(np.unique(overlaps)) == {0, 1, 2, 3, 4, 5} and names["green"] == 1 and len(names) == 5


def test_a_seg_in_a_series_folder_is_its_label_map_and_never_hides_the_series(tmp_path):
    """A SEG file exported into the folder of its series (named to be read first) is a
    label map of that series; a folder of SEG files only is no image, and a SEG of a
    series not here stays unlinked."""
    series = tmp_path / "store" / "ct"
    shutil.copytree(DATA / "dcmqi_ct3slice_seg" / "ct-3slice", series)
    shutil.copy(DATA / "dcmqi_ct3slice_seg" / "liver.dcm", series / "00_liver.dcm")
    (tmp_path / "store" / "segs").mkdir()
    shutil.copy(DATA / "dcmqi_ct3slice_seg" / "partial_overlaps.dcm", tmp_path / "store" / "segs")
    shutil.copy(DATA / "dicom_seg_tcga_gbm" / "DicomSeg.dcm", tmp_path / "store" / "segs")
    store = LocalDatastore(tmp_path / "store")
    [record] = store.records()
    assert record.id == "ct" and set(record.label_maps) == {"ct/00_liver", "segs/partial_overlaps"}
    liver, names = store.label_map("ct", "ct/00_liver", store.open_image("ct"))
    assert liver.sum() == 107098 and names == {"liver": 1}  # DicomSeg.dcm (another series) is offered nowhere


def test_a_study_folder_with_seg_files_beside_its_series_folders_opens_as_that_folder(tmp_path):
    """SEG files saved at the top of a study folder, its series in folders below: the folder
    is the study (opened in the app and in napari), not a series of its parent's."""
    from annotator.datastore.factory import open_datastore
    from annotator.napari.reader import get_reader

    study = tmp_path / "study"
    shutil.copytree(DATA / "dcmqi_ct3slice_seg" / "ct-3slice", study / "ct")
    shutil.copy(DATA / "dcmqi_ct3slice_seg" / "liver.dcm", study)
    shutil.copy(DATA / "dicom_seg_tcga_gbm" / "DicomSeg.dcm", study)
    store, image_id = open_datastore(study)
    assert image_id is None and store.folder == study.resolve()
    assert {r.id: r.label_maps for r in store.records()} == {"ct": ["liver"]}
    assert open_datastore(study / "ct")[1] == "ct"
    layers = get_reader(str(study))(str(study))
    assert [kwargs["name"] for _, kwargs, _ in layers] == [store.open_image("ct").name]


def test_a_decathlon_task_folder_links_its_labels_even_stored_as_float(tmp_path):
    """imagesTr/ and labelsTr/ side by side (the Decathlon, nnU-Net): each label map links to
    its image by name, also one stored as float32 (hippocampus_003 of the Decathlon is);
    a float image of many values named like a label is still an image."""
    task = tmp_path / "Task04"
    for folder in ("imagesTr", "labelsTr"):
        (task / folder).mkdir(parents=True)
    for case in ("hippocampus_001", "hippocampus_003"):
        shutil.copy(HIPPO / "images" / f"{case}.nii.gz", task / "imagesTr")
        shutil.copy(HIPPO / "labels" / f"{case}.nii.gz", task / "labelsTr")
    image = sitk.ReadImage(str(HIPPO / "images" / "hippocampus_001.nii.gz"), sitk.sitkFloat32)
    sitk.WriteImage(image, str(task / "imagesTr" / "hippocampus_001_mask.nii.gz"))
    assert sitk.ReadImage(str(task / "labelsTr" / "hippocampus_003.nii.gz")).GetPixelIDTypeAsString() == "32-bit float"
    store = LocalDatastore(task)
    assert {r.id: r.label_maps for r in store.records()} == {
        "imagesTr/hippocampus_001": ["labelsTr/hippocampus_001"], "imagesTr/hippocampus_001_mask": [],
        "imagesTr/hippocampus_003": ["labelsTr/hippocampus_003"]}
    volume = store.open_image("imagesTr/hippocampus_003")
    label, _ = store.label_map("imagesTr/hippocampus_003", "labelsTr/hippocampus_003", volume)
    assert label.dtype == np.uint8 and set(np.unique(label)) == {0, 1, 2}


def test_a_task_folders_training_labels_are_its_images_labels(tmp_path):
    """A Decathlon or nnU-Net task's ``labelsTr/`` file is its image's label (the final
    version until one is accepted), so training and the benchmarks use a task folder as
    it is; an image without one stays unlabelled, and so do one with two (which is its
    label is not guessed) and one whose label map is not a task's training label (a
    ``_seg`` file beside it); an accepted label takes over, and the task's file is left as
    it was."""
    task = tmp_path / "Task04"
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (task / folder).mkdir(parents=True)
    for case in ("hippocampus_001", "hippocampus_003"):
        shutil.copy(HIPPO / "images" / f"{case}.nii.gz", task / "imagesTr")
    shutil.copy(HIPPO / "labels" / "hippocampus_001.nii.gz", task / "labelsTr")
    two = sitk.ReadImage(str(HIPPO / "labels" / "hippocampus_003.nii.gz"))
    for ending in (".nii.gz", ".nrrd"):
        sitk.WriteImage(two, str(task / "labelsTr" / f"hippocampus_003{ending}"))
    shutil.copy(HIPPO / "images" / "hippocampus_004.nii.gz", task / "imagesTs")
    shutil.copy(HIPPO / "labels" / "hippocampus_004.nii.gz", task / "imagesTs" / "hippocampus_004_seg.nii.gz")
    store = LocalDatastore(task)
    assert {r.id: (r.status.value, r.label_maps) for r in store.records()} == {
        "imagesTr/hippocampus_001": ("labeled", ["labelsTr/hippocampus_001"]),
        "imagesTr/hippocampus_003": ("unlabeled", ["labelsTr/hippocampus_003.nii.gz", "labelsTr/hippocampus_003.nrrd"]),
        "imagesTs/hippocampus_004": ("unlabeled", ["imagesTs/hippocampus_004_seg"])}
    assert store.training_ids() == ["imagesTr/hippocampus_001"]
    from annotator.datastore.cases import default_split, labelled_cases  # what `bench robot --data` scores

    assert default_split(task) == "all"
    assert [(i, int(label.max())) for i, _, label in labelled_cases(task)] == [("imagesTr/hippocampus_001", 2)]
    volume = store.open_image("imagesTr/hippocampus_001")
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(HIPPO / "labels" / "hippocampus_001.nii.gz")))
    np.testing.assert_array_equal(store.label("imagesTr/hippocampus_001", volume), truth)
    before = (task / "labelsTr" / "hippocampus_001.nii.gz").read_bytes()
    mine = (truth == 1).astype(np.uint8)
    store.accept("imagesTr/hippocampus_001", mine, volume)
    np.testing.assert_array_equal(LocalDatastore(task).label("imagesTr/hippocampus_001", volume), mine)
    assert (task / "labelsTr" / "hippocampus_001.nii.gz").read_bytes() == before


def test_notes_and_thumbnails_beside_dicom_files_never_hide_them(tmp_path):
    """A series folder and a folder of SEG files whose first files (by name) are notes,
    reports and thumbnails: both are still found."""
    store = tmp_path / "store"
    shutil.copytree(DATA / "dcmqi_ct3slice_seg" / "ct-3slice", store / "ct")
    (store / "segs").mkdir()
    shutil.copy(DATA / "dcmqi_ct3slice_seg" / "liver.dcm", store / "segs" / "z_liver")
    for folder in (store / "ct", store / "segs"):
        for name in ("0_README.txt", "1_report.pdf", "2_thumb.png", "3_info.json", "4_notes.md", "5_list.csv"):
            (folder / name).write_text("not DICOM")
    found = LocalDatastore(store)
    assert {r.id: r.label_maps for r in found.records()} == {"ct": ["segs/z_liver"]}


def test_a_seg_of_one_acquisition_is_the_label_map_of_that_acquisition(tmp_path, two_echoes_mr):
    """A series of two echoes is two images; a SEG of echo 2 belongs to echo 2 (it refers to
    that echo's slices), not to the series' first echo."""
    from annotator.io.seg import series_seg

    folder = tmp_path / "store" / "echoes"
    shutil.copytree(two_echoes_mr, folder)
    store = LocalDatastore(tmp_path / "store")
    assert [r.id for r in store.records()] == ["echoes", "echoes#2"]
    echo2 = store.open_image("echoes#2")
    label = np.zeros(echo2.shape, np.uint8)
    label[12:20, 10:30, 8:20] = 3
    _, data = series_seg(label, echo2, {3: "hippocampus"})
    (folder / "zz_seg.dcm").write_bytes(data)
    store = LocalDatastore(tmp_path / "store")
    assert {r.id: r.label_maps for r in store.records()} == {"echoes": [], "echoes#2": ["echoes/zz_seg"]}
    found, names = store.label_map("echoes#2", "echoes/zz_seg", echo2)
    np.testing.assert_array_equal(found, label)


def test_a_4d_image_of_a_folder_opens_with_its_3d_label_beside_it(tmp_path):
    """The Decathlon's multi-modal images are 4-D, their labels 3-D: the image is listed
    once, opens its first volume, and its label map (linked by its grid) opens on it."""
    source = HIPPO / "images" / "hippocampus_004.nii.gz"
    image = sitk.ReadImage(str(source))
    sitk.WriteImage(sitk.JoinSeries([image, image]), str(tmp_path / "brain.nii.gz"))
    shutil.copy(HIPPO / "labels" / "hippocampus_004.nii.gz", tmp_path / "brain_tumour.nii.gz")
    store = LocalDatastore(tmp_path)
    [record] = store.records()
    assert record.id == "brain" and record.label_maps == ["brain_tumour"]
    volume = store.open_image("brain")
    found, _ = store.label_map("brain", "brain_tumour", volume)
    np.testing.assert_array_equal(found, sitk.GetArrayFromImage(sitk.ReadImage(str(HIPPO / "labels" / "hippocampus_004.nii.gz"))))


def test_label_names_from_a_file_header(tmp_path):
    """TotalSegmentator's label table in a NIfTI extension and 3D Slicer's segment fields in
    a NRRD name the values; a file without them, or with a broken table, names none."""
    import nibabel as nib

    from annotator.io.label_names import label_names_in

    assert label_names_in(TOTALSEG / "example_seg_mr.nii.gz")["liver"] == 5
    assert label_names_in(HIPPO / "labels" / "hippocampus_001.nii.gz") == {}
    mask = np.zeros((4, 6, 8), np.uint8)
    mask[1:3, 2:4, 2:6] = 3
    image = sitk.GetImageFromArray(mask)
    for key, value in {"Segment0_Name": "Left kidney", "Segment0_LabelValue": "3", "Segment0_Layer": "0",
                       "Segment1_Name": "tumour", "Segment1_LabelValue": "1", "Segment1_Layer": "1"}.items():
        image.SetMetaData(key, value)
    sitk.WriteImage(image, str(tmp_path / "kidney.seg.nrrd"))
    assert label_names_in(tmp_path / "kidney.seg.nrrd") == {"left kidney": 3}  # another layer overlaps: left out
    broken = nib.Nifti1Image(mask, np.eye(4))
    broken.header.extensions.append(nib.nifti1.Nifti1Extension(0, b"<CaretExtension><LabelTable><Label Key="))
    nib.save(broken, tmp_path / "broken_seg.nii.gz")
    assert label_names_in(tmp_path / "broken_seg.nii.gz") == {}


def test_a_segmentation_saved_cropped_to_its_segments_is_its_images_label_map(tmp_path):
    """3D Slicer can save a segmentation cropped to its segments' extent (its "Crop to
    minimum extent"; and one that has no reference image always), or grown past the image
    to keep segments that reach beyond it: on the image's voxels but not its size. It is
    the image's label map, put in its place (flipped and with its axes in another order
    too); what lies outside the image is left out and said. A label shifted by part of a
    voxel is not on the image's grid and is linked to nothing (it was refused either way:
    "label has 65x62x30 voxels but the image has ...")."""
    from annotator.io import read_label, read_volume

    source, folder, other = DATA / "totalsegmentator_example", tmp_path / "store", tmp_path / "other"
    folder.mkdir()
    other.mkdir()
    shutil.copy(source / "example_ct_sm.nii.gz", folder / "ct.nii.gz")
    full = sitk.ReadImage(str(source / "example_seg.nii.gz"))
    liver = sitk.Cast(sitk.BinaryThreshold(full, 5, 5, 1, 0), sitk.sitkUInt8)
    truth = sitk.GetArrayFromImage(liver)
    z, y, x = (np.flatnonzero(np.any(truth, axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    cropped = liver[int(x[0]):int(x[-1]) + 1, int(y[0]):int(y[-1]) + 1, int(z[0]):int(z[-1]) + 1]
    assert cropped.GetSize() != liver.GetSize()
    for key, value in {"Segment0_Name": "liver", "Segment0_LabelValue": "1", "Segment0_Layer": "0"}.items():
        cropped.SetMetaData(key, value)
    sitk.WriteImage(cropped, str(folder / "Segmentation.seg.nrrd"))  # Slicer's own name: no word of the image's
    store = LocalDatastore(folder)
    [record] = store.records()
    assert record.label_maps == ["Segmentation.seg"]
    volume = store.open_image("ct")
    label, names = store.label_map("ct", "Segmentation.seg", volume)
    np.testing.assert_array_equal(label, truth)
    assert names == {"liver": 1}
    image = read_volume(folder / "ct.nii.gz")
    turned = sitk.PermuteAxes(sitk.Flip(cropped, [True, False, True]), [2, 0, 1])
    turned.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    sitk.WriteImage(turned, str(other / "t.seg.nrrd"))
    np.testing.assert_array_equal(read_label(other / "t.seg.nrrd", image), truth)
    grown = sitk.ConstantPad(liver, [4, 0, 2], [0, 3, 1], 0)
    grown[0, 0, 0] = 1  # a voxel beyond the image
    grown.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    sitk.WriteImage(grown, str(other / "grown.nrrd"))
    np.testing.assert_array_equal(read_label(other / "grown.nrrd", image), truth)
    assert image.warnings[-1] == "grown.nrrd: 1 labelled voxels lie outside ct and are left out"
    sitk.WriteImage(cropped[:, :, :], str(other / "plain.nii.gz"))  # no Slicer segmentation: a label of another size
    with pytest.raises(GeometryError, match="label has 65x62x30 .* voxels but the image has 122x101x30"):
        read_label(other / "plain.nii.gz", image)
    shifted = sitk.Image(cropped)
    shifted.SetOrigin(tuple(np.add(cropped.GetOrigin(), (0.4 * cropped.GetSpacing()[0], 0, 0))))
    (folder / "Segmentation.seg.nrrd").unlink()
    sitk.WriteImage(shifted, str(folder / "Segmentation.seg.nrrd"))
    assert [r.label_maps for r in LocalDatastore(folder).records()] == [[]]


def test_a_bids_segmentation_is_named_by_its_look_up_table(tmp_path):
    """A BIDS derivative's discrete segmentation names its values in a ``*_dseg.tsv`` beside
    it (or one ``dseg.tsv`` for the data set); its image, in the raw data's tree, lists it
    as its label map, and accepting it keeps the names. A table without the index and name
    columns names nothing."""
    from annotator.io.label_names import label_names_in

    anat, derived = tmp_path / "sub-01" / "anat", tmp_path / "derivatives" / "seg" / "sub-01" / "anat"
    anat.mkdir(parents=True)
    derived.mkdir(parents=True)
    shutil.copy(HIPPO / "images" / "hippocampus_001.nii.gz", anat / "sub-01_T1w.nii.gz")
    seg = derived / "sub-01_desc-hippo_dseg.nii.gz"
    shutil.copy(HIPPO / "labels" / "hippocampus_001.nii.gz", seg)
    assert label_names_in(seg) == {}
    (tmp_path / "derivatives" / "seg" / "dseg.tsv").write_text("index\tname\n1\tHippocampus head\n2\tbody and tail\n")
    assert label_names_in(seg) == {"hippocampus head": 1, "body and tail": 2}  # the data set's table
    (derived / "sub-01_desc-hippo_dseg.tsv").write_text(
        "index\tname\tabbreviation\r\n1\tAnterior hippocampus\tAH\r\n2\tPosterior hippocampus\tPH\r\n")
    assert label_names_in(seg) == {"anterior hippocampus": 1, "posterior hippocampus": 2}  # its own
    store = LocalDatastore(tmp_path)
    [record] = store.records()
    assert record.label_maps == ["derivatives/seg/sub-01/anat/sub-01_desc-hippo_dseg"]
    volume = store.open_image(record.id)
    _, names = store.label_map(record.id, record.label_maps[0], volume)
    assert names == {"anterior hippocampus": 1, "posterior hippocampus": 2}
    (derived / "sub-01_desc-hippo_dseg.tsv").write_text("value\tlabel\n1\tAH\n")
    (tmp_path / "derivatives" / "seg" / "dseg.tsv").unlink()
    assert label_names_in(seg) == {}


def test_a_freesurfer_segmentation_is_named_by_its_colour_table(tmp_path, monkeypatch):
    """An ``aseg.mgz`` takes the names of FreeSurfer's colour table in the installation
    ``FREESURFER_HOME`` names, or of a ``*LUT.txt`` beside it, for the values it holds
    (the table names some 1,300); a NIfTI label is not named by FreeSurfer's table, and a
    damaged ``aseg.mgz`` names nothing."""
    import nibabel as nib

    from annotator.io.label_names import label_names_in

    home = tmp_path / "freesurfer"
    home.mkdir()
    (home / "FreeSurferColorLUT.txt").write_text(
        "#$Id: a colour table\n#No. Label Name:                R   G   B   A\n\n"
        "0   Unknown                   0   0   0   0\n"
        "17  Left-Hippocampus        220 216  20   0\n"
        "53  Right-Hippocampus       220 216  20   0\n"
        "1035 ctx-lh-insula          255 192  32   0\n"
        "4   Left-Lateral-Ventricle  120  18 134   0  # a comment after a row\n")
    monkeypatch.setenv("FREESURFER_HOME", str(home))
    subject = tmp_path / "subject" / "mri"
    subject.mkdir(parents=True)
    aseg = np.zeros((6, 8, 10), np.int32)
    aseg[1:3, 2:5, 2:6], aseg[3:5, 2:5, 2:6], aseg[1:3, 5:7, 6:9] = 17, 53, 1035
    nib.save(nib.MGHImage(aseg, np.eye(4)), subject / "aseg.mgz")
    assert label_names_in(subject / "aseg.mgz") == {"left-hippocampus": 17, "right-hippocampus": 53,
                                                    "ctx-lh-insula": 1035}
    nib.save(nib.Nifti1Image(aseg, np.eye(4)), subject / "aseg_seg.nii.gz")
    assert label_names_in(subject / "aseg_seg.nii.gz") == {}
    (subject / "my_LUT.txt").write_text("17 hippocampus 1 2 3 0\n")  # a table beside it comes first
    assert label_names_in(subject / "aseg.mgz") == {"hippocampus": 17}
    data = (subject / "aseg.mgz").read_bytes()
    (subject / "aseg.mgz").write_bytes(data[: len(data) // 2])
    assert label_names_in(subject / "aseg.mgz") == {}


def test_an_itk_snap_segmentation_is_named_by_its_label_descriptions(tmp_path):
    """ITK-SNAP keeps names apart from the segmentation, in the label description file it
    exports: beside the label (its own name, or one named for labels), it names the values;
    its defaults ("Clear Label", "Label 3") name nothing, nor does another text file."""
    from annotator.io.label_names import label_names_in

    seg = tmp_path / "case_seg.nii.gz"
    shutil.copy(HIPPO / "labels" / "hippocampus_001.nii.gz", seg)
    (tmp_path / "label notes.txt").write_text("1 anterior, 2 posterior\n")
    assert label_names_in(seg) == {}
    rows = ['    0     0    0    0        0  0  0    "Clear Label"',
            '    1   255    0    0        1  1  1    "Anterior hippocampus"',
            '    2     0  255    0      0.5  1  1    "Posterior hippocampus"',
            '    3     0    0  255        1  1  1    "Label 3"']
    (tmp_path / "label_descriptions.txt").write_text(
        "################################################\n# ITK-SnAP Label Description File\n"
        "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL\n################################################\n"
        + "\n".join(rows) + "\n")
    assert label_names_in(seg) == {"anterior hippocampus": 1, "posterior hippocampus": 2}


def test_a_prediction_is_named_by_the_dataset_json_beside_it(tmp_path):
    """nnU-Net writes its task's ``dataset.json`` beside its predictions: a prediction
    handed over from that folder is named by it (names to values, or the Decathlon's
    values to names); a broken one names nothing."""
    from annotator.io.label_names import label_names_in

    shutil.copy(HIPPO / "labels" / "hippocampus_001.nii.gz", tmp_path / "hippocampus_001.nii.gz")
    assert label_names_in(tmp_path / "hippocampus_001.nii.gz") == {}
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "Anterior": 1, "Posterior": 2}}))
    assert label_names_in(tmp_path / "hippocampus_001.nii.gz") == {"anterior": 1, "posterior": 2}
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "head", "2": "tail"}}))
    assert label_names_in(tmp_path / "hippocampus_001.nii.gz") == {"head": 1, "tail": 2}
    (tmp_path / "dataset.json").write_text('{"labels": [1, 2]}')
    assert label_names_in(tmp_path / "hippocampus_001.nii.gz") == {}


def test_a_slicer_segmentation_of_overlapping_segments_is_one_label(tmp_path):
    """3D Slicer writes overlapping segments on layers of their own (a 4-D ``.seg.nrrd``,
    a layer per component; it was listed as an image and refused: "2 values per voxel"):
    it is a label map, its layers one label (the first layer's values kept, the others
    the next free ones, the smaller segment kept where two overlap, which is said), named
    as Slicer names the segments."""
    from annotator.io.label_names import label_names_in

    source = HIPPO / "images" / "hippocampus_001.nii.gz"
    shutil.copy(source, tmp_path / "brain.nii.gz")
    image = sitk.ReadImage(str(source))
    layers = np.zeros((*sitk.GetArrayViewFromImage(image).shape, 2), np.uint8)
    layers[2:30, 5:40, 5:30, 0] = 1  # "liver", layer 0
    layers[2:30, 42:50, 5:30, 0] = 2  # "kidney", layer 0
    layers[10:15, 10:20, 10:20, 1] = 1  # "tumour" inside the liver, layer 1, the same stored value
    written = sitk.GetImageFromArray(layers, isVector=True)
    written.CopyInformation(image)
    for i, (name, value, layer) in enumerate((("Liver", 1, 0), ("kidney", 2, 0), ("tumour", 1, 1))):
        for key, text in (("ID", f"Segment_{i}"), ("Name", name), ("LabelValue", value), ("Layer", layer)):
            written.SetMetaData(f"Segment{i}_{key}", str(text))
    sitk.WriteImage(written, str(tmp_path / "brain.seg.nrrd"))
    assert label_names_in(tmp_path / "brain.seg.nrrd") == {"liver": 1, "kidney": 2, "tumour": 3}
    store = LocalDatastore(tmp_path)
    [record] = store.records()
    assert record.id == "brain" and record.label_maps == ["brain.seg"]
    volume = store.open_image("brain")
    label, names = store.label_map("brain", "brain.seg", volume)
    expected = layers[..., 0].copy()
    expected[layers[..., 1] == 1] = 3
    np.testing.assert_array_equal(label, expected)
    assert names == {"liver": 1, "kidney": 2, "tumour": 3}
    assert any("segments overlap (tumour over Liver in 500 voxels)" in w and "the smaller is kept" in w
               for w in volume.warnings), volume.warnings


def test_a_label_saved_as_nifti_keeps_its_names(tmp_path):
    """A named label saved as NIfTI carries a label table in its header, as TotalSegmentator
    writes one (it was written without names): read back here, its voxels and geometry
    those of the same label saved unnamed; the app's colours in the table."""
    import nibabel as nib

    from annotator.io import read_volume, save_label
    from annotator.io.label_names import label_names_in

    image = read_volume(DATA / "totalsegmentator_example" / "example_ct_dicom")
    label = np.zeros(image.shape, np.uint8)
    label[5:9, 100:200, 200:300] = 3
    label[10:12, 50:60, 50:80] = 12
    save_label(tmp_path / "named.nii.gz", label, image, {3: "Liver & <left lobe>", 12: "kidney_right"})
    save_label(tmp_path / "plain.nii.gz", label, image)
    assert label_names_in(tmp_path / "named.nii.gz") == {"liver & <left lobe>": 3, "kidney_right": 12}
    assert label_names_in(tmp_path / "plain.nii.gz") == {}
    named, plain = (sitk.ReadImage(str(tmp_path / f"{n}.nii.gz")) for n in ("named", "plain"))
    assert (named.GetOrigin(), named.GetSpacing(), named.GetDirection(), named.GetPixelID()) == \
        (plain.GetOrigin(), plain.GetSpacing(), plain.GetDirection(), plain.GetPixelID())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(named), label)
    [table] = nib.load(tmp_path / "named.nii.gz").header.extensions
    assert table.get_code() == 30 and b'<Label Key="3" Red="0.2353" Green="0.7059" Blue="0.2941"' in table.content


def test_a_seg_or_structure_set_made_elsewhere_is_accepted_as_it_is(tmp_path):
    """`annotator accept` takes a DICOM SEG or RT Structure Set of the image's series, as
    the app takes one as a label map: its segments become the final label with their names
    (it read every file as NIfTI: "named like a DICOM file, but not one"); an image file
    of the series is refused as no label."""
    from rtstruct import rtstruct_of

    from annotator.io import read_volume
    from annotator.io.label_names import label_names_in

    store = tmp_path / "store"
    shutil.copytree(DATA / "dcmqi_ct3slice_seg" / "ct-3slice", store / "ct")
    for path in store.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)

    def annotator(*args):
        return subprocess.run([sys.executable, "-m", "annotator", *args], capture_output=True, text=True,
                              timeout=120)

    proc = annotator("accept", str(store), "ct", str(DATA / "dcmqi_ct3slice_seg" / "liver.dcm"))
    assert proc.returncode == 0 and "accepted as the final label" in proc.stdout and "1 liver" in proc.stdout, \
        proc.stderr
    proc = annotator("label", str(store), "ct", "--out", str(tmp_path / "liver.nii.gz"))
    assert proc.returncode == 0 and "1 liver:" in proc.stdout, proc.stdout + proc.stderr
    volume = read_volume(store / "ct")
    liver = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "liver.nii.gz")))
    assert liver.shape == volume.shape and liver.max() == 1 and (liver == 1).sum() > 1000
    # as 3D Slicer's segmentation NRRD, named, and accepted from it with its name
    proc = annotator("label", str(store), "ct", "--out", str(tmp_path / "liver.seg.nrrd"))
    assert proc.returncode == 0 and label_names_in(tmp_path / "liver.seg.nrrd") == {"liver": 1}, proc.stderr
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "liver.seg.nrrd"))), liver)
    z, y, x = np.ogrid[: volume.shape[0], : volume.shape[1], : volume.shape[2]]
    disk = np.broadcast_to((y - 200) ** 2 + (x - 250) ** 2 <= 40**2, volume.shape)
    rtstruct = rtstruct_of(store / "ct", {5: ("Tumour", disk)}, tmp_path / "rs.dcm")
    proc = annotator("accept", str(store), "ct", str(rtstruct))
    assert proc.returncode == 0 and "5 tumour" in proc.stdout, proc.stdout + proc.stderr
    proc = annotator("label", str(store), "ct", "--out", str(tmp_path / "tumour.nii.gz"))
    tumour = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "tumour.nii.gz")))
    assert set(np.unique(tumour)) == {0, 5} and abs(int((tumour == 5).sum()) - int(disk.sum())) < 0.1 * disk.sum()
    slice_file = sorted((store / "ct").iterdir())[0]
    proc = annotator("accept", str(store), "ct", str(slice_file))
    assert proc.returncode == 2 and "a DICOM CT, not a label" in proc.stderr, proc.stderr
