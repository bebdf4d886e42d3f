"""Benchmarks run end to end in their quick form; the reference pipeline puts clicks where they were made."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from annotator.active.strategies import plain_score
from annotator.bench import reference
from annotator.bench.active import CHANCE_SEEDS
from annotator.io.phantom import ct_phantom
from annotator.io.read import read_volume


def bench(tmp_path, *args) -> dict:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "annotator", "bench", *args, "--json", str(out),
                           "--md", str(tmp_path / "bench.md")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "bench.md").read_text().startswith("### annotator bench")
    return json.loads(out.read_text())


def values(report: dict) -> dict:
    return {r["name"]: r["value"] for r in report["results"]}


class ForegroundEcho(torch.nn.Module):
    """Logit > 0 where the foreground guidance signal is above one half."""

    def forward(self, x):
        return (x[:, 1:2] - 0.5) * 20


def test_reference_deepgrow_click_comes_back_where_it_was_made(tmp_path):
    volume, _ = ct_phantom((30, 80, 70), (2.5, 0.7, 0.9))
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(volume.to_sitk(), str(path))
    click_zyx = (15, 30, 40)
    reference.deepgrow3d_click(path, [list(reversed(click_zyx))], [[5, 5, 5]], ForegroundEcho(),
                               tmp_path / "out.nii.gz", size=(32, 48, 48))
    label = read_volume(tmp_path / "out.nii.gz").array
    assert label.shape == volume.shape
    assert label[click_zyx] == 1
    centre = np.argwhere(label > 0).mean(axis=0)
    assert np.all(np.abs(centre - click_zyx) <= np.array([1.0, 2.0, 2.0])), centre


def test_bench_click_quick(tmp_path):
    report = bench(tmp_path, "click", "--quick", "--slices", "24", "--memory-slices", "16")  # a smaller CT: CI time
    found = values(report)
    for method in ("deepgrow3d", "deepedit"):
        for name in ("click_median_s", "click_p95_s", "forward_median_s", "click_over_forward",
                     "reference_pipeline_median_s", "speedup_vs_reference", "first_click_s"):
            assert found[f"{method}_{name}"] > 0, name
    assert 0 < found["peak_rss_gb"] < 24
    variants = {(v["method"], v["variant"]): v["parameters"] for v in report["variants"]}
    assert variants[("deepgrow3d", "sample-app")] > 5 * variants[("deepgrow3d", "small")]
    assert report["params"]["volume_zyx"] == [24, 512, 512] and report["params"]["memory_volume_zyx"][0] == 16


def test_bench_train_quick(tmp_path):
    report = bench(tmp_path, "train", "--quick")
    found = values(report)
    assert found["iterations_per_s"] > 0 and 0 <= found["final_val_dice"] <= 1
    assert report["params"]["iterations"] == 6


def test_bench_robot_quick_with_the_starter_model(tmp_path):
    report = bench(tmp_path, "robot", "--quick", "--plot", str(tmp_path / "robot.png"))
    found = values(report)
    curves = [c["dice"] for c in report["cases"]]
    assert len(curves) == 4 and all(len(c) == 6 for c in curves)  # 0..5 clicks
    assert found["dice_at_0"] == pytest.approx(np.mean([c[0] for c in curves]), abs=1e-3)
    assert found["dice_at_0"] > 0.7, "the bundled starter model segments the hippocampus"
    assert found["dice_at_5"] >= found["dice_at_0"] - 0.02, "robot clicks do not make it worse"
    assert 0 <= found["noc_90"] <= 5
    made, worse = report["params"]["clicks_made"], report["params"]["worse_clicks"]
    # every DeepEdit click counts, those on the second label or the background before any on the first too
    assert made == 4 * 5 and found["worse_click_share"] == pytest.approx(worse / made, abs=1e-6)
    steps = [(a, b) for c in curves for a, b in zip(c, c[1:])]  # Dice rounded to 4 places in the report
    assert sum(b < a for a, b in steps) <= worse <= sum(b <= a for a, b in steps)
    png = (tmp_path / "robot.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_bench_robot_scores_every_structure_for_deepgrow(tmp_path):
    """DeepGrow answers for any structure: both hippocampus parts of each case are
    clicked and scored, each on its own (not only the one with the model's label value)."""
    report = bench(tmp_path, "robot", "--quick", "--model", "deepgrow3d-hippocampus-mr", "--clicks", "1")
    found = values(report)
    assert report["params"]["clicks_made"] == 4 * 2  # 4 cases, 2 parts, 1 click each
    assert found["dice_at_0"] == 0 and found["dice_at_1"] > 0.7
    assert found["slice_dice_at_1"] > 0.7 and "slice_dice_at_3" not in found  # one click asked for


def test_bench_robot_scores_deepgrow_2d_on_the_slices_it_answers(tmp_path):
    """The bundled DeepGrow 2D answers the slice clicked on: over the volume a click adds a
    slice, on the slice where each part is largest three clicks outline it."""
    report = bench(tmp_path, "robot", "--quick", "--model", "deepgrow2d-hippocampus-mr", "--clicks", "3")
    found = values(report)
    assert report["params"]["method"] == "deepgrow2d" and report["params"]["clicks_made"] == 4 * 2 * 3
    assert found["dice_at_1"] < 0.35  # one slice of a structure of twenty or more
    assert found["slice_dice_at_1"] > 0.75 and found["slice_dice_at_3"] > 0.85
    assert all(len(r["slice_dice"]) == 3 for r in report["cases"])


def test_bench_robot_scores_a_folder_without_a_split_whole(tmp_path):
    """--data FOLDER with no split.json: every labelled image is scored (it was refused
    for want of a test list)."""
    from balls import ball_folder

    folder = ball_folder(tmp_path / "balls", 3)
    report = bench(tmp_path, "robot", "--quick", "--model", "deepgrow3d-hippocampus-mr", "--clicks", "1",
                   "--data", str(folder))
    assert report["params"]["split"] == "all" and report["params"]["cases"] == 3
    assert [r["case"] for r in report["cases"]] == ["ball00", "ball01", "ball02"]


def test_bench_robot_graphcut_quick(tmp_path):
    report = bench(tmp_path, "robot", "--method", "graphcut", "--quick", "--plot", str(tmp_path / "gc.png"))
    found = values(report)
    datasets = {r["dataset"] for r in report["cases"]}
    assert {"ct", "ctdicom", "mr", "hippocampus", "phantom"} <= datasets
    for name in ("dice_sparse_ct_liver", "dice_dense_ct_liver", "dice_click_at_1_ct_liver",
                 "dice_click_at_5_ct_liver", "seconds_ct_liver", "dice_sparse_median", "dice_click_at_5_median",
                 "dice_sparse_hippocampus", "dice_dense_hippocampus"):
        assert name in found, name
    rows = [r for r in report["cases"] if r["dataset"] == "ct" and r["structure"] == "liver"]
    assert found["dice_sparse_ct_liver"] == pytest.approx(rows[0]["sparse"], abs=1e-3)
    assert found["dice_sparse_median"] > 0.7 and found["dice_sparse_phantom_liver"] > 0.9
    hippocampus = [r for r in report["cases"] if r["dataset"] == "hippocampus"]
    assert found["dice_dense_oracle_hippocampus"] == pytest.approx(
        max(np.mean([r["dense_oracle"][lam] for r in hippocampus]) for lam in hippocampus[0]["dense_oracle"]), abs=1e-3)
    assert found["dice_dense_oracle_hippocampus"] > 0.6, "an intensity model from the true label finds it"
    assert all(len(r["clicks"]) == 5 for r in report["cases"])
    assert (tmp_path / "gc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_active_quick_correlates_the_scores_it_reports_and_draws_a_learning_curve(tmp_path):
    from scipy.stats import pearsonr, spearmanr

    report = bench(tmp_path, "active", "--quick", "--no-brief", "--cases", "5", "--plot", str(tmp_path / "a.png"),
                   "--curve", "--rounds", "2", "--curve-step", "4", "--curve-pool", "10", "--curve-held-out", "2")
    found = values(report)
    rows = report["cases"]["starter"]
    assert len(rows) == 5 and all(0 < r["dice"] <= 1 for r in rows)
    errors = [1 - r["dice"] for r in rows]
    for strategy in ("tta", "epistemic"):
        scores = [r[strategy] for r in rows]
        assert found[f"spearman_{strategy}_starter"] == pytest.approx(spearmanr(scores, errors).correlation, abs=1e-4)
        assert found[f"pearson_{strategy}_starter"] == pytest.approx(pearsonr(scores, errors).statistic, abs=1e-4)
    assert found["spearman_best_starter"] == pytest.approx(
        max(found["spearman_tta_starter"], found["spearman_epistemic_starter"]), abs=1e-6)
    # chance on the same cases: the random strategy's rho over many seeds, the reported seed's first
    rhos = np.array([spearmanr([plain_score("random", r["id"], i, seed).score for i, r in enumerate(rows)],
                               errors).correlation for seed in range(CHANCE_SEEDS)])
    assert rhos[0] == pytest.approx(found["spearman_random_starter"], abs=1e-4)
    assert found["spearman_random_mean_starter"] == pytest.approx(rhos.mean(), abs=1e-4)
    assert found["spearman_random_sd_starter"] == pytest.approx(rhos.std(), abs=1e-4) and rhos.std() > 0.1
    # with 5 cases many rankings tie with the best one's rho: a tie reaches it
    reaching = np.mean(rhos >= found["spearman_best_starter"] - 1e-6)
    assert found["random_reaching_best_starter"] == pytest.approx(reaching, abs=1e-4)
    assert report["params"]["ranked_volumes"] == 4 and found["rank_4_volumes_min"] > 0
    # the curve: both strategies start from the same model, then each adds its own 4
    curve = report["curve"]
    assert curve["labelled"] == [4, 8] and len(curve["held_out"]) == 2
    random, tta = curve["dice"]["random"], curve["dice"]["tta"]
    assert len(random) == len(tta) == 2 and random[0] == tta[0] and all(0 <= d <= 1 for d in random + tta)
    for strategy, chosen in curve["chosen"].items():
        assert len(set(chosen)) == 8 and chosen[:4] == curve["chosen"]["random"][:4]
        assert not set(chosen) & set(curve["held_out"]), "the curve is measured on cases it never labels"
        assert found[f"curve_final_dice_{strategy}"] == pytest.approx(curve["dice"][strategy][-1], abs=1e-4)
    for png in ("a.png", "a_curve.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_robot_graphcut_runs_on_a_persons_own_folder(tmp_path):
    """--data: the GraphCut robot on a folder's labelled images (no split.json: all of
    them), each label value a structure named as the folder names it, its CT organs the
    medians; not on the bundled data sets."""
    from annotator.io.phantom import ORGANS
    from annotator.io.write import write_label, write_volume

    folder = tmp_path / "mine"
    volume, label = ct_phantom(shape=(48, 96, 96), spacing_zyx=(2.0, 1.2, 1.2), seed=3)
    write_volume(folder / "images" / "abdomen.nii.gz", volume)
    write_label(folder / "labels" / "abdomen.nii.gz", label, volume)
    names = {str(v): name.capitalize() for v, name, *_ in ORGANS[:2]}  # the kidney stays unnamed
    (folder / "labels.json").write_text(json.dumps({"labels": {"0": "background", **names}}))
    report = bench(tmp_path, "robot", "--method", "graphcut", "--data", str(folder), "--quick")
    found = values(report)
    assert {(r["dataset"], r["case"], r["structure"]) for r in report["cases"]} == {
        ("data", "abdomen", "liver"), ("data", "abdomen", "spleen"), ("data", "abdomen", "label_3")}
    assert report["params"]["split"] == "all" and all(r["modality"] == "CT" for r in report["cases"])
    assert found["dice_sparse_liver"] > 0.9 and "dice_click_at_5_label_3" in found
    liver, spleen = (next(r for r in report["cases"] if r["structure"] == s) for s in ("liver", "spleen"))
    assert found["dice_sparse_median"] == pytest.approx(np.median([liver["sparse"], spleen["sparse"]]), abs=1e-3)
    proc = subprocess.run([sys.executable, "-m", "annotator", "bench", "robot", "--method", "graphcut",
                           "--data", str(folder), "--split", "validation"], capture_output=True, text=True)
    assert proc.returncode != 0 and "GraphCut has no model" in proc.stderr


def test_the_ct_organs_of_a_folder_are_found_however_its_labels_name_them():
    """The targets' medians take a folder's liver, spleen and kidneys whatever the naming
    (sides spelled out or abbreviated, both kidneys as one), and nothing else."""
    from annotator.bench.robot_graphcut import _ct_organ

    for name in ("Liver", "spleen", "kidney_left", "Right Kidney", "Kidney (L)", "kidney_r", "Kidneys", "lt kidney"):
        assert _ct_organ(name), name
    for name in ("liver tumour", "kidney_cyst_left", "label_3", "left", "adrenal_gland_left", "splenic vein"):
        assert not _ct_organ(name), name


def test_a_folder_of_images_and_label_maps_says_how_they_become_labels(tmp_path):
    """Images with a `_seg` label map beside each and nothing accepted: every command that
    needs labelled images names the label maps and how one counts (the DeepEdit robot
    crashed on an IndexError); once accepted, the robots score it, and a quick training
    run trains on it. A labelled image that holds none of the DeepEdit model's label values
    is named as such."""
    from balls import ball

    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(2):
        case_id, volume, label = ball(i)
        sitk.WriteImage(sitk.GetImageFromArray(volume.array), str(folder / f"{case_id}.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(label), str(folder / f"{case_id}_seg.nii.gz"))

    def annotator(*args):
        return subprocess.run([sys.executable, "-m", "annotator", *args], capture_output=True, text=True, timeout=600)

    status = annotator("status", str(folder))
    assert "ball00" in status.stdout and "label maps: ball00_seg" in status.stdout, status.stdout
    for args in (("bench", "robot", "--quick", "--data", str(folder)),
                 ("bench", "robot", "--method", "graphcut", "--quick", "--data", str(folder)),
                 ("plan", str(folder))):
        proc = annotator(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert f"no labelled images in {folder}" in proc.stderr and "ball00 (ball00_seg)" in proc.stderr, proc.stderr
        assert f"annotator accept {folder} IMAGE_ID LABEL_MAP" in proc.stderr, proc.stderr
    proc = annotator("accept", str(folder), "ball01", str(folder / "ball01_seg.nii.gz"))
    assert proc.returncode == 0, proc.stderr
    report = bench(tmp_path, "robot", "--method", "graphcut", "--quick", "--data", str(folder))
    assert [r["case"] for r in report["cases"]] == ["ball01"] and "dice_sparse_label_1" in values(report)
    report = bench(tmp_path, "robot", "--quick", "--clicks", "1", "--data", str(folder))
    assert report["params"]["cases"] == 1 and "dice_at_1" in values(report)
    _, volume, label = ball(1)
    # numbered beyond a byte, as an atlas numbers its structures (the robot's look-up stopped at 255)
    sitk.WriteImage(sitk.GetImageFromArray(label.astype(np.uint16) * 300), str(folder / "other.nii.gz"))
    proc = annotator("accept", str(folder), "ball01", str(folder / "other.nii.gz"))
    assert proc.returncode == 0, proc.stderr
    proc = annotator("bench", "robot", "--quick", "--data", str(folder))
    assert proc.returncode == 2 and "holds a structure to score model" in proc.stderr, proc.stderr
    assert "(label values 1, 2)" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    # a quick training run on a folder with no split.json trains on all it has (it asked for a test split)
    assert annotator("accept", str(folder), "ball00", str(folder / "ball00_seg.nii.gz")).returncode == 0
    report = bench(tmp_path, "train", "--quick", "--method", "deepgrow3d", "--data", str(folder))
    assert report["params"]["data"] == str(folder) and "final_val_dice" in values(report)


def test_the_example_ct_s_liver_is_timed_on_a_512_grid_of_the_same_abdomen():
    """``liver_sparse_s_512_example_ct``'s input: the example CT on 512×512×120 voxels
    over the same extent, its liver the same volume and attenuation."""
    from annotator.bench.graphcut import _example_ct_liver
    from annotator.io.read import read_label
    from paths import DATA

    volume, liver = _example_ct_liver(DATA)
    folder = DATA / "totalsegmentator_example"
    source = read_volume(folder / "example_ct.nii.gz")
    truth = read_label(folder / "example_seg_fast_force_split.nii.gz", source) == 5  # liver
    assert volume.size == (512, 512, 120) and volume.modality == "CT" and liver.shape == volume.shape
    np.testing.assert_allclose(np.multiply(volume.size, volume.spacing), np.multiply(source.size, source.spacing))
    assert volume.origin == source.origin and volume.direction == source.direction
    ml = lambda mask, v: mask.sum() * np.prod(v.spacing) / 1000  # noqa: E731
    assert abs(ml(liver, volume) / ml(truth, source) - 1) < 0.03
    assert abs(np.median(volume.array[liver]) - np.median(source.array[truth])) < 10
