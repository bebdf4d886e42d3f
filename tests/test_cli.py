"""The `annotator` command as a person or a script uses it (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from annotator.bench.simulate import scribbles_from_mask
from annotator.io import read_label, read_volume, write_label
from paths import DATA, HIPPO

IMAGE = HIPPO / "images" / "hippocampus_001.nii.gz"
TRUTH = HIPPO / "labels" / "hippocampus_001.nii.gz"


def annotator(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "annotator", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("command", ["info", "scribbles", "clicks", "tidy", "infer", "samples", "open", "status",
                                     "stats", "accept", "label", "dicomweb list", "dicomweb pull", "dicomweb push-seg",
                                     "dicomweb pull-seg", "orthanc serve",
                                     "bench",
                                     "bench graphcut", "bench app", "bench click", "bench robot",
                                     "bench train", "train"])
def test_help_on_every_subcommand(command):
    out = annotator(*command.split(), "--help").stdout
    assert out.startswith("usage: annotator")


@pytest.mark.parametrize("path", [
    IMAGE, DATA / "totalsegmentator_example" / "example_ct_dicom", DATA / "udacity_study3_mr_dicom",
    DATA / "dcmqi_ct3slice_seg" / "liver_seg.nrrd", DATA / "dcmqi_ct3slice_seg",
], ids=lambda p: p.name)
def test_info(path):
    out = annotator("info", path).stdout
    assert "modality:" in out and "spacing:" in out and "size:" in out


def test_info_lists_series():
    out = annotator("info", DATA / "udacity_study3_mr_dicom").stdout
    assert "3 DICOM series" in out and "T1post" in out and "FLAIR_reg" in out and "HippoCrop" in out
    out = annotator("info", DATA / "udacity_study3_mr_dicom", "--series", "2").stdout
    assert "34 x 50 x 40" in out


def test_info_on_a_folder_of_files_lists_its_images_not_its_labels(tmp_path, hippo_store):
    """A datastore's saved labels (labels/final, labels/history ...) were listed as its image
    files: "11 image files" for three images."""
    for _ in range(2):  # a final label and one before it
        annotator("accept", hippo_store, "hippocampus_001", HIPPO / "labels" / "hippocampus_001.nii.gz")
    assert (hippo_store / "labels" / "final" / "hippocampus_001.nii.gz").exists()
    out = annotator("info", hippo_store).stdout
    assert out.startswith(f"{hippo_store}: ") and "labels/" not in out
    images = [line.strip() for line in out.splitlines()[1:]]
    assert images and all(name.endswith(".nii.gz") and "/" not in name for name in images)
    assert len(images) == 4 and f": {len(images)} image files" in out


def test_info_lists_the_acquisitions_of_a_series_and_reads_each(two_echoes_mr):
    out = annotator("info", two_echoes_mr).stdout
    assert "1 DICOM series (2 volumes: acquisitions told apart)" in out
    key = next(w for w in out.split() if w.endswith("/echo"))  # the key as listed: UID/echo 2
    out = annotator("info", two_echoes_mr, "--series", f"{key} 2").stdout
    assert "HippoCrop (echo 2)" in out and "values 9 .. 393" in out


def test_output_into_a_closed_pipe_says_nothing(two_echoes_mr):
    """`annotator info ... | head -1`: once the reader has gone, no error and no traceback."""
    import os

    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written
    try:
        proc = subprocess.run([sys.executable, "-m", "annotator", "info", str(two_echoes_mr)],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write)
    assert proc.returncode == 1 and proc.stderr == ""


def test_scribbles_command(tmp_path):
    image = read_volume(IMAGE)
    truth = read_label(TRUTH, image) > 0
    strokes = write_label(tmp_path / "strokes.nii.gz", scribbles_from_mask(truth), image)
    out = tmp_path / "seg.nii.gz"
    proc = annotator("scribbles", IMAGE, "--scribbles", strokes, "--out", out)
    assert "method: graphcut-scribbles" in proc.stdout
    seg = read_label(out, image)
    assert set(np.unique(seg)) == {0, 1}
    assert 2 * (seg.astype(bool) & truth).sum() / (seg.astype(bool).sum() + truth.sum()) > 0.75
    # values that are no strokes are said, not left out unsaid
    marked = scribbles_from_mask(truth)
    marked[0, 0, 0] = 7
    proc = annotator("scribbles", IMAGE, "--scribbles", write_label(tmp_path / "seven.nii.gz", marked, image),
                     "--out", out)
    assert "values 7 are no strokes (1 = foreground, 2 = background): left out" in proc.stderr
    marked[marked == 1] = 3
    proc = annotator("scribbles", IMAGE, "--scribbles", write_label(tmp_path / "three.nii.gz", marked, image),
                     "--out", out, check=False)
    assert proc.returncode == 2 and "no foreground stroke (value 1); it holds 3, 7" in proc.stderr


def test_clicks_command_uses_itk_index_order(tmp_path):
    image = read_volume(DATA / "totalsegmentator_example" / "example_ct_sm.nii.gz")
    organs = read_label(DATA / "totalsegmentator_example" / "example_seg.nii.gz", image)
    liver = organs == 5
    z, y, x = (int(v) for v in np.argwhere(liver)[len(np.argwhere(liver)) // 2])
    out = tmp_path / "liver.nii.gz"
    proc = annotator("clicks", DATA / "totalsegmentator_example" / "example_ct_sm.nii.gz",
                     "--fg", f"{x},{y},{z}", "--out", out)
    assert "method: graphcut" in proc.stdout
    seg = read_label(out, image)
    assert seg[z, y, x] == 1
    overlap = (seg.astype(bool) & liver).sum() / seg.astype(bool).sum()
    assert overlap > 0.75  # mostly liver (its cut leaks a little into the abdominal wall: docs/engine.md)


def test_clicks_and_scribbles_correct_a_label_given_with_label(tmp_path, capsys):
    """--label: the commands correct a structure of a saved label as the app does (here
    DeepEdit's answer): a background click alone takes away what it touches; strokes cut
    on the answer; the other label stays and the whole label is written (in this process:
    the network is loaded once)."""
    from annotator.bench.simulate import sparse_scribbles_from_mask
    from annotator.cli import main
    from annotator.engine.methods import METHODS

    def run(*args) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        said = capsys.readouterr()
        return code, said.out, said.err

    case = HIPPO / "images" / "hippocampus_007.nii.gz"  # a test case: the starter never saw it
    image = read_volume(case)
    truth = read_label(HIPPO / "labels" / "hippocampus_007.nii.gz", image)
    answer = METHODS["deepedit"].automatic(image).label
    label = write_label(tmp_path / "auto.nii.gz", answer, image)
    wrong = np.argwhere((answer == 2) & (truth != 2))
    z, y, x = (int(v) for v in wrong[len(wrong) // 2])
    out = tmp_path / "corrected.nii.gz"
    code, out_, _ = run("clicks", case, "--label", label, "--value", "2", "--bg", f"{x},{y},{z}", "--method",
                        "deepedit", "--out", out)
    assert code == 0 and "method: deepedit, label 2 corrected by clicks" in out_
    corrected = read_label(out, image)
    assert corrected[z, y, x] != 2 and not ((corrected == 2) & (answer != 2)).any()
    np.testing.assert_array_equal(corrected == 1, answer == 1)
    strokes = write_label(tmp_path / "strokes.nii.gz", sparse_scribbles_from_mask(truth == 1), image)
    code, out_, _ = run("scribbles", case, "--scribbles", strokes, "--label", label, "--out", out)
    assert code == 0 and "method: graphcut-scribbles on deepedit's answer, label 1 corrected by scribbles" in out_
    corrected = read_label(out, image)
    dice = lambda a, b: 2 * (a & b).sum() / (a.sum() + b.sum())
    assert dice(corrected == 1, truth == 1) > dice(answer == 1, truth == 1)
    kept = (corrected == 2) == (answer == 2)
    assert (kept | (corrected == 1)).all() and kept.mean() > 0.99  # the other label: only what the cut claimed
    code, _, err = run("clicks", case, "--bg", f"{x},{y},{z}", "--out", out)
    assert code == 2 and "background clicks alone correct a label (--label FILE)" in err


def test_tidy_command_fills_between_the_slices_a_structure_is_drawn_on(tmp_path):
    """The true anterior hippocampus kept on every fourth slice across x (ITK's), the
    others emptied: fill_between across x gives most of it back; across z it says
    why it cannot."""
    image = read_volume(IMAGE)
    truth = read_label(TRUTH, image)
    sparse = truth.copy()
    drawn = np.flatnonzero((truth == 1).any(axis=(0, 1)))[::4]  # array axis 2 is ITK's x
    sparse[:, :, [i for i in range(truth.shape[2]) if i not in drawn]] = 0
    label = write_label(tmp_path / "sparse.nii.gz", sparse, image)
    out = tmp_path / "filled.nii.gz"
    proc = annotator("tidy", IMAGE, "--label", label, "--step", "fill_between", "--slices", "x", "--out", out)
    assert "fill between slices: label 1" in proc.stdout
    filled = read_label(out, image)
    dice = lambda a, b: 2 * (a & b).sum() / (a.sum() + b.sum())
    assert dice(filled == 1, truth == 1) > dice(sparse == 1, truth == 1) + 0.2
    assert dice(filled == 1, truth == 1) > 0.8
    np.testing.assert_array_equal(filled == 2, sparse == 2)  # the other label as it was
    proc = annotator("tidy", IMAGE, "--label", out, "--step", "fill_between", "--out", tmp_path / "x.nii.gz",
                     check=False)
    assert proc.returncode != 0 and "no empty slice between two drawn ones" in proc.stderr


def test_every_label_output_can_be_a_dicom_seg(tmp_path):
    """clicks (and scribbles, tidy, infer, pull-seg: one writer) write a DICOM SEG when
    --out ends in .dcm; it holds what the NIfTI holds."""
    series = DATA / "udacity_study3_mr_dicom" / "11_HCropVolume"
    image = read_volume(series)
    z, y, x = (n // 2 for n in image.shape)
    for out in (tmp_path / "a.nii.gz", tmp_path / "a.dcm"):
        proc = annotator("clicks", series, "--fg", f"{x},{y},{z}", "--method", "graphcut", "--out", out)
        assert "method: graphcut" in proc.stdout
    from annotator.io.dicom import read_dataset
    from annotator.io.seg import seg_to_label

    seg = read_dataset(tmp_path / "a.dcm")
    back, names = seg_to_label(seg, image)
    np.testing.assert_array_equal(back, read_label(tmp_path / "a.nii.gz", image))
    assert names == {1: "foreground"} and back.any()


def test_tidy_command_grows_and_shrinks_a_structure_by_millimetres(tmp_path):
    """--step grow/shrink --mm: the anterior hippocampus (1 mm voxels) grown by 1 mm takes
    in the background one voxel around it, never the posterior part's voxels; shrunk by 1
    mm it loses its surface voxels; a margin under a voxel is refused, nothing written."""
    from scipy.ndimage import binary_dilation, binary_erosion

    image = read_volume(IMAGE)
    truth = read_label(TRUTH, image)
    grown, shrunk = tmp_path / "grown.nii.gz", tmp_path / "shrunk.nii.gz"
    proc = annotator("tidy", IMAGE, "--label", TRUTH, "--step", "grow", "--mm", "1", "--out", grown)
    assert "grow: label 1" in proc.stdout
    after = read_label(grown, image)
    anterior = truth == 1
    np.testing.assert_array_equal(after == 1, binary_dilation(anterior) & (truth != 2) | anterior)
    np.testing.assert_array_equal(after == 2, truth == 2)
    annotator("tidy", IMAGE, "--label", TRUTH, "--step", "shrink", "--mm", "1", "--out", shrunk)
    np.testing.assert_array_equal(read_label(shrunk, image) == 1, binary_erosion(anterior, border_value=1))
    proc = annotator("tidy", IMAGE, "--label", TRUTH, "--step", "grow", "--mm", "0.5", "--out",
                     tmp_path / "no.nii.gz", check=False)
    assert proc.returncode == 2 and "less than this image's voxels (1 mm apart)" in proc.stderr
    assert not (tmp_path / "no.nii.gz").exists()


def test_tidy_command_floods_a_lung_from_one_voxel_and_clips_it(tmp_path):
    """--step flood --range: one voxel inside the example CT's right lung, flooded from -1024
    to -400 HU, gives that lung (its lobes in the reference label) and none of the air
    outside the body; --step clip keeps a label's voxels within a range; a range step
    with no range is refused, nothing written."""
    from scipy.ndimage import distance_transform_edt

    example = DATA / "totalsegmentator_example"
    ct = example / "example_ct.nii.gz"
    image = read_volume(ct)
    reference = read_label(example / "example_seg_fast_force_split.nii.gz", image)
    lobes = json.loads((example / "class_map_total.json").read_text())
    right = np.isin(reference, [int(v) for v, name in lobes.items() if name.startswith("lung_") and
                                name.endswith("_right")])
    depth = distance_transform_edt(np.pad(right, 1))[1:-1, 1:-1, 1:-1]  # the image's edge is no inside
    seed = np.zeros(image.shape, np.uint8)
    seed[np.unravel_index(np.argmax(depth), seed.shape)] = 1
    write_label(tmp_path / "seed.nii.gz", seed, image)
    lung, clipped = tmp_path / "lung.nii.gz", tmp_path / "clipped.nii.gz"
    proc = annotator("tidy", ct, "--label", tmp_path / "seed.nii.gz", "--step", "flood", "--range", "-1024", "-400",
                     "--out", lung)
    assert "flood in range: label 1" in proc.stdout
    flooded = read_label(lung, image) == 1
    assert 2 * (flooded & right).sum() / (flooded.sum() + right.sum()) > 0.93
    outside = np.zeros(image.shape, bool)
    outside[:, :, :5] = True  # the columns along the image's side: air outside the body
    assert not (flooded & outside).any() and (image.array[outside] < -400).mean() > 0.5
    annotator("tidy", ct, "--label", lung, "--step", "clip", "--range", "-1024", "-900", "--out", clipped)
    np.testing.assert_array_equal(read_label(clipped, image) == 1, flooded & (image.array <= -900))
    proc = annotator("tidy", ct, "--label", lung, "--step", "clip", "--out", tmp_path / "no.nii.gz", check=False)
    assert proc.returncode == 2 and "--step clip needs --range LOW HIGH" in proc.stderr
    assert not (tmp_path / "no.nii.gz").exists()


def test_tidy_command_writes_a_dicom_seg_of_a_dicom_series(tmp_path):
    series = DATA / "udacity_study3_mr_dicom" / "11_HCropVolume"
    image = read_volume(series)
    label = np.zeros(image.shape, np.uint8)
    label[10:20, 10:20, 10:20] = 1
    label[30:32, 2:4, 2:4] = 1  # a stray island
    path = write_label(tmp_path / "l.nii.gz", label, image)
    out = tmp_path / "tidied.dcm"
    annotator("tidy", series, "--label", path, "--step", "keep_largest", "--out", out)
    from annotator.io.dicom import read_dataset
    from annotator.io.seg import seg_to_label

    back, _names = seg_to_label(read_dataset(out), image)
    expected = label.copy()
    expected[30:32] = 0
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("args,message", [
    (["info", "/nonexistent/file.nii.gz"], "no such file"),
    (["info", "{tmp}/text.txt"], "not an image file"),
    (["info", str(DATA / "dicom_seg_tcga_gbm")], "no DICOM image series"),
    (["clicks", str(IMAGE), "--fg", "100,1,1", "--out", "{tmp}/o.nii.gz"], "outside the image"),
    (["scribbles", str(IMAGE), "--scribbles", str(DATA / "msd_task04_hippocampus/labels/hippocampus_003.nii.gz"),
      "--out", "{tmp}/o.nii.gz"], "voxels but the image"),
    (["open", "--sample", "nope"], "no sample 'nope'"),
    (["clicks", str(IMAGE), "--fg", "10,10,10", "--value", "3", "--out", "{tmp}/o.nii.gz"],
     "without --label the structure is written as 1"),  # --value was left out, the structure written as 1
    (["clicks", str(IMAGE), "--fg", "10,10,10", "--value", "65536", "--out", "{tmp}/o.nii.gz"],
     "65536 is not a label value (1 to 65535)"),
    (["tidy", str(IMAGE), "--label", str(IMAGE), "--step", "smooth", "--value", "0", "--out", "{tmp}/o.nii.gz"],
     "0 is not a label value (1 to 65535)"),
    # said before a benchmark or a training run starts, not after minutes of it
    (["bench", "robot", "--quick", "--plot", "{tmp}/curve.txt"], "'{tmp}/curve.txt' is not a .png file name"),
    (["bench", "robot", "--quick", "--method", "graphcut", "--phantom-seeds", "one"], "not comma-separated seeds"),
    (["bench", "robot", "--quick", "--json", "{tmp}"], "{tmp}: a folder; give a file name for the results"),
    (["train", "--method", "deepedit", "--data", "{tmp}", "--epochs", "0"],
     "epochs 0: give a whole number of 1 or more"),
    (["train", "--method", "deepedit", "--data", "{tmp}", "--val-every", "0"],
     "val-every 0: give a whole number of 1 or more"),
    (["models", "import", str(IMAGE), "--method", "deepedit", "--labels", "a=1"], "not a PyTorch checkpoint"),
    (["dicomweb", "list", "127.0.0.1:8042/dicom-web"], "starts with http:// or https://"),
    (["orthanc", "serve", "--port", "80420"], "'80420' is not a port (1 to 65535)"),
])
def test_bad_input_gives_one_clear_line(tmp_path, args, message):
    (tmp_path / "text.txt").write_text("hello")
    proc = annotator(*[a.format(tmp=tmp_path) for a in args], check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("annotator: error:") and message.format(tmp=tmp_path) in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.nii.gz").exists()


def test_a_label_numbered_beyond_255_is_corrected_and_saved_as_it_is(tmp_path):
    """--label of a structure numbered 1002 (an atlas's cortex, from another tool): cast to
    a byte it became 234; now it keeps its number through a click, a tidy step and accept,
    a new structure may be numbered 2000, and a label with a negative value is refused in
    one line, nothing written."""
    import SimpleITK as sitk

    from annotator.io import read_label, read_volume

    image = sitk.ReadImage(str(IMAGE))
    label = np.zeros(sitk.GetArrayFromImage(image).shape, np.uint16)
    label[10:20, 10:20, 10:20] = 1002
    written = sitk.GetImageFromArray(label)
    written.CopyInformation(image)
    sitk.WriteImage(written, str(tmp_path / "atlas.nii.gz"))
    volume = read_volume(IMAGE)
    annotator("clicks", str(IMAGE), "--fg", "30,25,15", "--label", tmp_path / "atlas.nii.gz", "--value", "2000",
              "--out", tmp_path / "clicked.nii.gz")
    clicked = read_label(tmp_path / "clicked.nii.gz", volume)
    assert clicked.dtype == np.uint16 and {0, 1002, 2000} <= set(np.unique(clicked).tolist())
    assert clicked[15, 15, 15] == 1002 and clicked[15, 25, 30] == 2000  # (x, y, z) given, [z, y, x] read
    annotator("tidy", str(IMAGE), "--label", tmp_path / "atlas.nii.gz", "--step", "grow", "--mm", "2",
              "--value", "1002", "--out", tmp_path / "grown.nii.gz")
    grown = read_label(tmp_path / "grown.nii.gz", volume)
    assert set(np.unique(grown).tolist()) == {0, 1002} and np.count_nonzero(grown) > np.count_nonzero(label)
    store = tmp_path / "store"
    store.mkdir()
    (store / IMAGE.name).write_bytes(IMAGE.read_bytes())
    annotator("accept", store, IMAGE.name.split(".")[0], tmp_path / "atlas.nii.gz")
    saved = next((store / "labels" / "final").iterdir())
    assert np.array_equal(read_label(saved, volume), label)

    written = sitk.GetImageFromArray(np.where(label > 0, -1, 0).astype(np.int16))
    written.CopyInformation(image)
    sitk.WriteImage(written, str(tmp_path / "signed.nii.gz"))
    proc = annotator("clicks", str(IMAGE), "--fg", "15,15,15", "--label", tmp_path / "signed.nii.gz",
                     "--out", tmp_path / "o.nii.gz", check=False)
    assert proc.returncode == 2 and "negative" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.nii.gz").exists()


def test_debug_shows_the_traceback():
    proc = annotator("--debug", "info", "/nonexistent.nii.gz", check=False)
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_open_prints_the_bundled_sample():
    out = annotator("open").stdout
    assert "Hippocampus" in out and "35 x 51 x 35" in out


def test_a_sample_whose_files_are_not_here_says_where_they_come_from_and_what_opens(monkeypatch):
    """From a pip install (no data folder), the Hippocampus sample said only "set
    ANNOTATOR_DATA to the data folder"."""
    from annotator import samples
    from annotator.errors import InputError

    monkeypatch.setattr(samples, "data_root", lambda: None)
    with pytest.raises(InputError, match=r"not with pip.*open the 'ct-phantom' sample") as raised:
        samples.sample_file("hippocampus")
    assert "hippocampus" in str(raised.value)
    assert samples.sample_file("ct-phantom").is_file()  # made here, wherever it runs


def test_bench_graphcut_quick(tmp_path):
    annotator("bench", "graphcut", "--quick", "--json", tmp_path / "b.json", "--md", tmp_path / "b.md")
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["benchmark"] == "graphcut" and report["machine"]["cores"] >= 1
    names = {r["name"]: r for r in report["results"]}
    assert {"update_s_128", "likelihood_s", "maxflow_s", "dice_hippocampus_scribbles"} <= set(names)
    assert report["params"]["region_zyx"] == [128, 128, 128]
    assert 0 < names["likelihood_s"]["value"] < names["update_s_128"]["value"]
    assert len(report["cases"]) == 8 and all(0 <= c["dice"] <= 1 for c in report["cases"])
    assert names["liver_sparse_s_512"]["value"] > 0 and names["liver_sparse_dice_512"]["value"] > 0.95
    assert "| update_s_128 |" in (tmp_path / "b.md").read_text()


def test_status_accept_and_label_reach_the_datastore(hippo_store, tmp_path):
    out = json.loads(annotator("status", hippo_store, "--json").stdout)
    assert [r["id"] for r in out] == ["hippocampus_001", "hippocampus_003", "hippocampus_004", "hippocampus_006"]
    assert all(r["status"] == "unlabeled" and r["versions"] == [] and r["score"] is None for r in out)
    assert not (hippo_store / "labels").exists()  # looking writes nothing

    source = HIPPO / "labels" / "hippocampus_003.nii.gz"
    annotator("accept", hippo_store, "hippocampus_003", source)
    record = {r["id"]: r for r in json.loads(annotator("status", hippo_store, "--json").stdout)}["hippocampus_003"]
    assert record["status"] == "labeled" and record["versions"] == ["original", "final"]
    (hippo_store / "labels.json").write_text('{"labels": {"1": "anterior"}}')
    said = annotator("label", hippo_store, "hippocampus_003", "--out", tmp_path / "back.nii.gz").stdout
    volume = read_volume(hippo_store / "hippocampus_003.nii.gz")
    np.testing.assert_array_equal(read_label(tmp_path / "back.nii.gz", volume), read_label(source, volume))
    counts = np.bincount(read_label(source, volume).ravel())  # 1 mm voxels: 1,000 of them make a mL
    assert said.splitlines()[1:] == [f"  1 anterior: {counts[1]:,} voxels, {counts[1] / 1000:.3g} mL",
                                     f"  2 label 2: {counts[2]:,} voxels, {counts[2] / 1000:.3g} mL"]
    final = (hippo_store / "labels" / "final" / "hippocampus_003.nii.gz").read_bytes()

    # a label of another image's shape: exit 2, one line naming the problem, nothing changed
    bad = annotator("accept", hippo_store, "hippocampus_003", TRUTH, check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "voxels but the image has" in bad.stderr and "Traceback" not in bad.stderr
    assert (hippo_store / "labels" / "final" / "hippocampus_003.nii.gz").read_bytes() == final
    for args in (("nope", source), ("hippocampus_003", tmp_path / "missing.nii.gz")):
        bad = annotator("accept", hippo_store, *args, check=False)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    missing = annotator("label", hippo_store, "hippocampus_001", "--version", "draft", "--out", tmp_path / "x.nii.gz",
                        check=False)
    assert missing.returncode == 2 and "no draft label" in missing.stderr
    # accepted again: the label accepted before is `earlier-1`
    second = read_label(source, volume).copy()
    second[second == 2] = 0
    write_label(tmp_path / "second.nii.gz", second, volume)
    annotator("accept", hippo_store, "hippocampus_003", tmp_path / "second.nii.gz")
    said = annotator("label", hippo_store, "hippocampus_003", "--version", "earlier-1", "--out",
                     tmp_path / "earlier.nii.gz").stdout
    assert said.startswith("hippocampus_003: earlier-1 label ->")
    np.testing.assert_array_equal(read_label(tmp_path / "earlier.nii.gz", volume), read_label(source, volume))
    for version, why in (("earlier-2", "has 1 earlier label, not 2"), ("earlier-0", "not final, original, draft or"),
                         ("newest", "not final, original, draft or")):
        bad = annotator("label", hippo_store, "hippocampus_003", "--version", version, "--out", tmp_path / "x.nii.gz",
                        check=False)
        assert bad.returncode == 2 and why in bad.stderr, bad.stderr


def test_label_writes_a_dicom_seg_of_a_dicom_series(tmp_path):
    """`annotator label ... --out x.dcm`: the final label of a DICOM series as a SEG of its
    slices, its segments named as the folder names its labels; a NIfTI image has no
    slices to refer to, and says so."""
    import shutil

    import pydicom

    from annotator.io.seg import seg_to_label

    store = tmp_path / "store"
    shutil.copytree(DATA / "udacity_study3_mr_dicom" / "11_HCropVolume", store / "crop")
    shutil.copy(HIPPO / "images" / "hippocampus_001.nii.gz", store / "case.nii.gz")
    (store / "labels.json").write_text('{"labels": {"1": "hippocampus"}}')
    volume = read_volume(store / "crop")
    label = np.zeros(volume.shape, np.uint8)
    label[10:20, 10:30, 10:20] = 1
    label[22:26, 10:20, 10:20] = 2
    write_label(tmp_path / "crop_label.nii.gz", label, volume)
    annotator("accept", store, "crop", tmp_path / "crop_label.nii.gz")
    said = annotator("label", store, "crop", "--out", tmp_path / "crop_seg.dcm").stdout
    assert "crop: final label -> " in said
    back, names = seg_to_label(pydicom.dcmread(tmp_path / "crop_seg.dcm"), volume)
    np.testing.assert_array_equal(back, label)
    assert names == {1: "hippocampus", 2: "label 2"}
    annotator("label", store, "crop", "--out", tmp_path / "crop.rtstruct.dcm")  # for a planning system
    from annotator.io.rtstruct import rtstruct_to_label

    back, names, _ = rtstruct_to_label(pydicom.dcmread(tmp_path / "crop.rtstruct.dcm"), volume)
    np.testing.assert_array_equal(back, label)
    assert names == {1: "hippocampus", 2: "label 2"}
    case = read_volume(store / "case.nii.gz")
    write_label(tmp_path / "case_label.nii.gz", (np.arange(case.array.size).reshape(case.shape) % 7 == 0), case)
    annotator("accept", store, "case", tmp_path / "case_label.nii.gz")
    bad = annotator("label", store, "case", "--out", tmp_path / "case_seg.dcm", check=False)
    assert bad.returncode == 2 and "not read from DICOM" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "case_seg.dcm").exists()
    bad = annotator("label", store, "crop", "--out", tmp_path / "crop.png", check=False)
    assert bad.returncode == 2 and "NIfTI (.nii.gz, .nii), as a segmentation NRRD (.seg.nrrd, .nrrd), as a DICOM SEG (.dcm)" in bad.stderr


_IMPORTS = """
import runpy, sys
sys.argv = ["annotator", *sys.argv[1:]]
try:
    runpy.run_module("annotator", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "monai", "pydicom", "napari", "qtpy") if m in sys.modules)
print("HEAVY", ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["info", str(IMAGE)], *[[c, "--help"] for c in (
    "info", "scribbles", "clicks", "infer", "train", "samples", "open", "status", "stats", "accept", "label", "bench",
    "bench dicomweb",
    "dicomweb list", "dicomweb pull", "dicomweb push-seg", "dicomweb pull-seg", "orthanc serve",
    "bench robot", "bench click", "bench train", "bench graphcut", "bench app", "bench cli")]],
    ids=lambda a: " ".join(a)[:40])
def test_quick_commands_import_neither_torch_nor_monai(args):
    proc = subprocess.run([sys.executable, "-c", _IMPORTS, *" ".join(args).split()], capture_output=True,
                          text=True, timeout=120)
    heavy = [line for line in proc.stderr.splitlines() if line.startswith("HEAVY")][-1].split()[1:]
    assert not heavy or not {"torch", "monai", "napari", "qtpy"} & set(heavy[0].split(",")), heavy
    if args[0] in ("--help", "info") and len(args) > 1 or args == ["--help"]:
        assert "pydicom" not in (heavy[0] if heavy else ""), "a NIfTI needs no DICOM library"


def test_bench_cli_quick(tmp_path):
    annotator("bench", "cli", "--quick", "--json", tmp_path / "b.json", "--md", tmp_path / "b.md")
    report = json.loads((tmp_path / "b.json").read_text())
    found = {r["name"]: r["value"] for r in report["results"]}
    assert found["python_s"] < found["info_s"] and 0 < found["info_peak_mb"] < 1000
    assert {"help_s", "bench_help_s", "info_over_python", "help_peak_mb"} <= set(found)


@pytest.mark.parametrize("command", ["status IMAGE", "export IMAGE --out OUT", "plan IMAGE",
                                     "train --method deepgrow2d --data IMAGE", "bench robot --quick --data IMAGE",
                                     "bench robot --method graphcut --quick --data IMAGE"])
def test_a_command_over_a_datastore_given_one_image_says_to_give_its_folder(command, tmp_path):
    """Every command over a datastore's images refuses an image file in one line, as
    `status` did (`plan`, the benchmarks and `train` said "no labelled images in" the file,
    beside a data set's labels)."""
    places = {"IMAGE": str(IMAGE), "OUT": str(tmp_path / "out")}
    proc = annotator(*(places.get(word, word) for word in command.split()), check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{IMAGE}: an image, not a datastore; give its folder" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
