"""Training jobs in a child process: events, checkpoints, cancel, resume, crashes, torchrun."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from paths import HIPPO
from annotator.errors import InputError
from annotator.datastore import LocalDatastore, open_datastore
from annotator.models import ModelRegistry, load_checkpoint
from annotator.training.config import TrainConfig
from annotator.training.data import Case, random_transforms, split_cases
from annotator.training.runner import TrainingProcess, past_runs
from annotator.training.simulate import next_click

CASES = ["hippocampus_001", "hippocampus_003", "hippocampus_004", "hippocampus_006", "hippocampus_008"]


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory) -> Path:
    """Five labelled hippocampus cases in the dataset layout (images/, labels/, labels.json)."""
    folder = tmp_path_factory.mktemp("hippo5")
    for sub in ("images", "labels"):
        (folder / sub).mkdir()
        for case in CASES:
            shutil.copy(HIPPO / sub / f"{case}.nii.gz", folder / sub)
    shutil.copy(HIPPO / "labels.json", folder)
    return folder


@pytest.fixture
def user_dirs(tmp_path, monkeypatch) -> Path:
    """The user data dir (models, runs) in a temporary folder, for this process and its children."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "annotator"


def _config(folder: Path, tmp_path: Path, **kw) -> TrainConfig:
    base = dict(method="deepedit", data=[str(folder)], name="tiny", epochs=1, max_iterations=4, batch_size=2,
                patch=[32, 32, 32], out=str(tmp_path / "run"), val_fraction=0.4)
    base.update(kw)
    return TrainConfig(**base)


def _run_to_end(job: TrainingProcess, timeout: float = 240) -> list[dict]:
    job.start()
    assert job.wait(timeout) is not None, "training did not finish"
    job.poll()
    return job.events


def _wait_for(job: TrainingProcess, kind: str, timeout: float = 120) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for event in job.poll():
            if event["event"] == kind:
                return event
            assert event["event"] != "error", event
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event in {timeout} s")


def test_tiny_run_writes_events_a_checkpoint_and_installs_the_model(dataset_folder, tmp_path, user_dirs, capsys):
    events = _run_to_end(TrainingProcess(_config(dataset_folder, tmp_path)))
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["message", "start"] and "progress" in kinds and "validation" in kinds and "done" in kinds, kinds
    assert events[0]["text"].startswith("planned: ")  # what the config left open came from the planner
    start = events[1]
    assert (start["train_cases"], start["val_cases"]) == (3, 2)
    validations = [e for e in events if e["event"] == "validation"]
    assert validations and all(0.0 <= v["dice"] <= 1.0 for v in validations)
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1]["iteration"] == 4 and np.isfinite(progress[-1]["loss"])
    # the best checkpoint is a valid, verified model with its provenance
    model, card = load_checkpoint(tmp_path / "run" / "best.json")
    assert card.labels == {"anterior": 1, "posterior": 2} and card.method == "deepedit"
    assert card.orientation == "SAR"  # which way its training images ran: others are turned so
    assert card.previous_label and card.architecture["in_channels"] == 1 + 3 + 2  # image, clicks, earlier label
    assert set(card.training["cases"]) | set(card.training["validation_cases"]) == set(CASES)
    assert card.metrics["val_dice"] == max(v["dice"] for v in validations)
    # the sizes of the training images (mm, longest axis first), the smallest and largest of each axis
    from annotator.io import read_volume

    extents = np.array([read_volume(dataset_folder / "images" / f"{c}.nii.gz").extent_mm
                        for c in card.training["cases"]])
    np.testing.assert_allclose(card.training["extent_mm"]["smallest"], extents.min(axis=0), atol=0.05)
    np.testing.assert_allclose(card.training["extent_mm"]["largest"], extents.max(axis=0), atol=0.05)
    # installed in the user models folder, and not used: the bundled starter, which answers
    # for the same labels, does better on the same validation cases (4 iterations cannot)
    assert (user_dirs / "models" / "tiny.json").exists()
    baseline = card.training["baseline"]
    assert baseline["model"] == "deepedit-hippocampus-mr" and baseline["dice"] > card.metrics["val_dice"]
    done = events[-2] if events[-1]["event"] == "exit" else events[-1]
    assert done["event"] == "done" and not done["activated"]
    assert done["not_used"].startswith("its validation Dice") and "deepedit-hippocampus-mr's on the same" \
        in done["not_used"]
    assert ModelRegistry().chosen() == {}
    # nor does it answer clicks while none is chosen: the starter stays in use
    installed = load_checkpoint(user_dirs / "models" / "tiny.json")[1]
    assert installed.training["not_used"] == done["not_used"]
    assert ModelRegistry().preferred("deepedit").card.name == "deepedit-hippocampus-mr"
    from annotator.cli import main

    def listed(name: str = "tiny") -> str:
        assert main(["models", "list"]) == 0
        return next(r for r in capsys.readouterr().out.splitlines() if f" {name} " in r)

    assert listed().endswith(f"(not used unless chosen: {done['not_used']})")
    assert listed("deepedit-hippocampus-mr").startswith("* ")  # in use, none chosen: marked as such
    assert listed("deepedit-hippocampus-mr").endswith("(the default: none chosen)")
    ModelRegistry().choose("tiny")  # chosen, it is used
    assert ModelRegistry().preferred("deepedit").card.name == "tiny"
    row = listed()
    assert row.startswith("* tiny") and "not used" not in row and "default" not in row
    assert listed("deepedit-hippocampus-mr").startswith("  ")
    assert past_runs(user_dirs / "runs") == [] and past_runs(tmp_path)[0]["state"] == "done"


def test_a_model_for_labels_no_model_answers_is_used_once_it_finds_something(tmp_path, user_dirs):
    """A model for labels no installed model answers has nothing to beat but Dice 0: a run
    on two accepted labels of a whole-head MR made a model of validation Dice 0.000 the
    one that answered every click."""
    from annotator.training.job import _why_not_used

    folder = tmp_path / "data"
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True)
        for case in CASES[:3]:
            shutil.copy(HIPPO / sub / f"{case}.nii.gz", folder / sub)
    events = _run_to_end(TrainingProcess(_config(folder, tmp_path / "a", labels={"front": 1, "back": 2},
                                                 name="others")))
    done = next(e for e in events if e["event"] == "done")
    assert done["activated"] and done["not_used"] == "" and done["best_dice"] > 0
    assert ModelRegistry().chosen() == {"deepedit": "others"}
    card = load_checkpoint(user_dirs / "models" / "others.json")[1]
    assert card.training["baseline"] == {}
    assert _why_not_used(0.0, card) == "it found nothing on its validation cases (Dice 0.000)"
    assert _why_not_used(0.01, card) is None


def test_the_event_log_matches_stdout(dataset_folder, tmp_path, user_dirs):
    job = TrainingProcess(_config(dataset_folder, tmp_path, method="deepgrow3d"))
    events = _run_to_end(job)
    logged = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in logged] == [e["event"] for e in events if e["event"] != "exit"]
    assert load_checkpoint(tmp_path / "run" / "best.json")[1].labels == {"structure": 1}


def test_cancel_stops_within_two_seconds_and_resume_continues(dataset_folder, tmp_path, user_dirs):
    config = _config(dataset_folder, tmp_path, max_iterations=100_000, activate=True)
    job = TrainingProcess(config)
    job.start()
    try:
        _wait_for(job, "progress")
        asked = time.monotonic()
        job.cancel()
        assert job.wait(10) is not None
        stopped = time.monotonic() - asked
    finally:
        job.kill()
    job.poll()
    cancelled = next(e for e in job.events if e["event"] == "cancelled")
    assert stopped <= 2.0, f"took {stopped:.2f} s to stop"
    assert (tmp_path / "run" / "last.json").exists()
    assert ModelRegistry().chosen() == {}  # a cancelled run does not change the model in use
    resumed = TrainingProcess(_config(dataset_folder, tmp_path, resume=str(tmp_path / "run"),
                                      max_iterations=cancelled["iteration"] + 2, activate=False))
    events = _run_to_end(resumed)
    start = next(e for e in events if e["event"] == "start")
    assert start["start_iteration"] == cancelled["iteration"]
    last = [e for e in events if e["event"] == "progress"][-1]
    assert last["iteration"] == cancelled["iteration"] + 2


def test_a_killed_child_leaves_the_previous_model_in_use(dataset_folder, tmp_path, user_dirs):
    _run_to_end(TrainingProcess(_config(dataset_folder, tmp_path, name="first", labels={"front": 1, "back": 2})))
    assert ModelRegistry().chosen() == {"deepedit": "first"}  # no model answered for these labels
    job = TrainingProcess(_config(dataset_folder, tmp_path / "b", name="second", max_iterations=100_000))
    job.start()
    _wait_for(job, "progress")
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait(10) is not None
    job.poll()
    error = next(e for e in job.events if e["event"] == "error")
    assert "ended unexpectedly (signal 9)" in error["message"]
    assert job.outcome() == "failed"
    assert ModelRegistry().chosen() == {"deepedit": "first"}
    assert not (user_dirs / "models" / "second.json").exists()


def test_bad_data_is_reported_and_changes_nothing(tmp_path, user_dirs):
    empty = tmp_path / "empty"
    empty.mkdir()
    events = _run_to_end(TrainingProcess(_config(empty, tmp_path)))
    error = next(e for e in events if e["event"] == "error")
    assert "labelled images; found 0" in error["message"] and str(empty) in error["message"]
    assert ModelRegistry().chosen() == {}
    bad = tmp_path / "bad.json"  # a config file whose label names are not a mapping
    bad.write_text(json.dumps({"method": "deepedit", "data": [str(empty)], "value_names": ["liver"]}))
    with pytest.raises(InputError, match="value_names must map label values to names"):
        TrainConfig.load(bad)
    for rate in (0, -1e-3, 2.0, "fast"):
        with pytest.raises(InputError, match=f"learning rate {rate!r}: give a number above 0 and below 1"):
            _config(empty, tmp_path, learning_rate=rate)
    # counts, limits and shares out of range stop before a run starts (--epochs 0 failed after
    # starting, --val-every 0 at its first validation, --seed -5 in numpy's words)
    for setting, value, said in (("epochs", 0, "epochs 0: give a whole number of 1 or more"),
                                 ("max_iterations", -2, "iterations -2: give a whole number of 0 or more"),
                                 ("val_every", 0, "val-every 0: give a whole number of 1 or more"),
                                 ("seed", -5, "seed -5: give a whole number of 0 or more"),
                                 ("batch_size", 2.5, "batch-size 2.5: give a whole number"),
                                 ("max_minutes", -1.0, "max-minutes -1.0: give a number from 0 to"),
                                 ("val_fraction", 1.0, "val-fraction 1.0: give a number from 0 to 0.99"),
                                 ("patch", [64, 64], r"patch \[64, 64\]: give three sizes above 0"),
                                 ("target_spacing", [1, 0, 1], r"spacing \[1, 0, 1\]: give three sizes above 0")):
        with pytest.raises(InputError, match=said):
            _config(empty, tmp_path, **{setting: value})
    bad.write_text(json.dumps({"method": "deepedit", "data": [str(empty)], "epochs": "50"}))  # a file, the same
    with pytest.raises(InputError, match="epochs '50': give a whole number"):
        TrainConfig.load(bad)
    (empty / "labels.json").write_text("{not json")  # names that cannot be read stop the run, named
    from annotator.errors import DatastoreError
    from annotator.training.data import label_map

    with pytest.raises(DatastoreError, match="labels.json: not readable JSON"):
        label_map(_config(empty, tmp_path))


def test_split_is_seeded_and_eighty_twenty():
    store, _ = open_datastore(HIPPO)
    cases = [Case(store.place, i) for i in store.training_ids("train")]
    assert len(cases) == 208
    train, val = split_cases(cases, 0.2, seed=0)
    again = split_cases(list(reversed(cases)), 0.2, seed=0)
    assert (train, val) == again
    assert len(val) == round(0.2 * len(cases)) and not {c.id for c in train} & {c.id for c in val}
    assert split_cases(cases, 0.2, seed=1)[1] != val


def _crops(patch, image, label, n=40):
    transforms = random_transforms(patch)
    transforms.set_random_state(3)
    for _ in range(n):
        out = transforms({"image": image, "label": label})
        out = out[0] if isinstance(out, list) else out
        yield np.asarray(out["image"]), np.asarray(out["label"])


def test_training_crops_are_turned_and_scaled_and_keep_their_classes():
    """Half of the crops are rotated and scaled (without it longer runs overfit): a crop
    keeps the patch's shape, its label stays classes (nearest, not blended) and the
    label's edges are not always axis-aligned; a one-slice patch turns in its plane only."""
    rng = np.random.default_rng(0)
    image = rng.random((1, 40, 56, 44)).astype(np.float32)
    label = np.zeros((1, 40, 56, 44), np.uint8)
    label[0, 8:32, 14:42, 10:34] = 1
    label[0, 14:26, 20:36, 16:28] = 2
    slanted = 0
    for img, lab in _crops([32, 48, 32], image, label):
        assert img.shape == lab.shape == (1, 32, 48, 32)
        assert set(np.unique(lab)) <= {0, 1, 2}
        box = lab[0] == 1
        z = np.flatnonzero(box.any(axis=(1, 2)))
        if z.size:  # an axis-aligned box: every slice that has it has the same footprint
            prints = {box[k].tobytes() for k in z}
            slanted += len(prints) > 2
    assert 5 <= slanted <= 35
    flat = np.zeros((1, 1, 56, 44), np.uint8)
    flat[0, 0, 14:42, 10:34] = 1
    turned = 0
    for img, lab in _crops([1, 48, 32], image[:, :1], flat, 20):
        assert lab.shape == (1, 1, 48, 32) and set(np.unique(lab)) <= {0, 1}
        rows = lab[0, 0].sum(axis=1)  # an upright rectangle: every row it crosses equally long
        turned += len(set(rows[rows > 0].tolist())) > 2
    assert 3 <= turned <= 17


def test_deepgrow_validation_clicks_a_few_structures_on_the_crop_the_app_answers_on():
    """A CT labels up to a hundred structures: validation clicked every one of them three
    times, each over the whole image (a sliding window), and held every structure's mask
    at once; a DeepGrow 3D run on the example CT (61 structures) made no step in three
    minutes and took 19 GB. Now a few structures, each on the crop a click opens."""
    import torch

    from annotator.models.networks import build_network
    from annotator.training.job import MAX_STRUCTURES, build_card, validate

    card = build_card(TrainConfig(method="deepgrow3d", data=["x"], patch=[16, 16, 16]), {}, [])
    model = build_network(card.architecture)
    seen = []
    model.register_forward_pre_hook(lambda _m, inputs: seen.append(tuple(inputs[0].shape[2:])))
    truth = np.zeros((40, 48, 56), np.int64)
    for k in range(20):  # 20 cubes of 4 voxels, each its own structure
        z, y, x = 4 + 8 * (k % 4), 4 + 8 * (k // 4 % 5), 6 + 8 * (k % 6)
        truth[z:z + 4, y:y + 4, x:x + 4] = k + 1
    image = (truth > 0).astype(np.float32) + np.random.default_rng(0).normal(0, 0.1, truth.shape).astype(np.float32)
    dice = validate(model, [{"image": image[None], "label": truth[None]}], card, torch.device("cpu"), clicks=3)
    assert 0.0 <= dice <= 1.0
    assert MAX_STRUCTURES < 20 and MAX_STRUCTURES <= len(seen) <= 3 * MAX_STRUCTURES  # each clicked, a few rounds
    assert all(shape == (16, 16, 16) for shape in seen), set(seen)  # the crop, one forward a round


def test_a_model_made_for_another_modality_is_no_rival_to_beat():
    """The hippocampus MR model answers CT clicks only as a fallback: a CT run need not beat it."""
    from annotator.training.job import _baseline, build_card

    config = TrainConfig(method="deepgrow3d", data=["x"], modality="CT")
    card = build_card(config, {}, [])
    assert ModelRegistry().preferred("deepgrow3d", "CT").card.modality == "MR"  # the fallback exists
    assert _baseline(None, [], [], None, card, config, "cpu", lambda: False, None, print) == {}


def test_the_robot_clicks_the_centre_of_the_largest_error():
    truth = np.zeros((20, 20, 20), np.int64)
    truth[2:12, 2:12, 2:12] = 1
    pred = np.zeros_like(truth)
    pred[2:12, 2:12, 2:5] = 1  # the rest of the cube is missed
    pred[15:17, 15:17, 15:17] = 1  # a small false positive
    cls, point = next_click(pred, truth)
    assert cls == 1 and truth[point] == 1 and pred[point] == 0
    assert point[2] == 8 and 5 <= point[0] <= 8  # as deep as the missed slab allows
    assert next_click(truth, truth) is None


def test_training_clicks_go_to_error_regions_of_every_size():
    truth = np.zeros((20, 20, 20), np.int64)
    truth[2:12, 2:12, 2:12] = 1
    pred = truth.copy()
    pred[2:12, 2:12, 2:5] = 0  # a large miss
    pred[15:17, 15:17, 15:17] = 1  # a small false positive (8 voxels)
    rng = np.random.default_rng(0)
    clicked = [next_click(pred, truth, rng)[0] for _ in range(200)]
    small = clicked.count(0) / len(clicked)
    assert 0.01 < small < 0.2  # sometimes the small region, drawn by size; mostly the large one


def test_simulated_corrections_see_the_last_prediction_as_the_earlier_label():
    import torch

    from annotator.training.simulate import simulate_guidance

    truth = np.zeros((2, 16, 16, 16), np.int64)
    truth[:, 4:12, 4:12, 4:12] = 1
    seen = []

    def predict(x):  # a network that finds the left half of the cube
        seen.append(x.clone())
        out = torch.zeros((x.shape[0], *x.shape[2:]), dtype=torch.long)
        out[:, 4:12, 4:12, 4:8] = 1
        return out

    rng = np.random.default_rng(3)
    for _ in range(10):
        maps, previous = simulate_guidance(predict, torch.zeros((2, 1, 16, 16, 16)), truth, "deepgrow3d", 2, rng,
                                           max_iterations=3, previous_channels=1)
        assert maps.shape == (2, 2, 16, 16, 16) and previous.shape == (2, 1, 16, 16, 16)
        if seen:  # after a round: the earlier label is that round's prediction, and a click went to the miss
            assert previous[:, 0, 4:12, 4:12, 4:8].min() == 1 and previous[:, 0, :, :, 8:].max() == 0
            assert maps[:, 0, 4:12, 4:12, 8:12].amax() > 0.5
            assert seen[0].shape[1] == 1 + 2 + 1 and seen[0][:, 3].max() == 0  # none before the first round
            return
    raise AssertionError("no correction round in ten batches")


def test_a_model_widened_for_the_earlier_label_answers_as_before():
    import torch

    from annotator.models import build_network
    from annotator.models.networks import architecture
    from annotator.training.job import widen_inputs

    torch.manual_seed(0)
    base = build_network(architecture("deepedit", 2)).eval()
    wide = build_network(architecture("deepedit", 2, previous_label=True)).eval()
    wide.load_state_dict(widen_inputs(base.state_dict(), wide.state_dict()))
    x = torch.rand((1, 4, 16, 16, 16))
    earlier = torch.rand((1, 2, 16, 16, 16))
    with torch.no_grad():
        assert torch.allclose(base(x), wide(torch.cat([x, earlier], dim=1)), atol=1e-5)


def test_torchrun_two_cpu_processes(dataset_folder, tmp_path, user_dirs):
    config = _config(dataset_folder, tmp_path, activate=False).save(tmp_path / "config.json")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "annotator.training", str(config)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    start = next(e for e in events if e["event"] == "start")
    assert start["world"] == 2 and start["per_epoch"] == 1  # 3 training cases, batch 2 each on 2 ranks
    assert events[-1]["event"] == "done"
    assert load_checkpoint(tmp_path / "run" / "best.json")[1].training["iteration"] == 4


def test_annotator_train_command(dataset_folder, tmp_path, user_dirs):
    proc = subprocess.run([sys.executable, "-m", "annotator", "train", "--method", "deepgrow2d", "--data",
                           str(dataset_folder), "--iterations", "3", "--batch-size", "2", "--patch", "48,48,1",
                           "--name", "cli-2d", "--learning-rate", "2e-4", "--max-minutes", "30"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # installed, not used: three iterations do not beat the bundled DeepGrow 2D on the same cases
    assert "done: best validation Dice" in proc.stdout and "now used for clicks" not in proc.stdout
    assert "is no better than deepgrow2d-hippocampus-mr's on the same cases" in proc.stdout
    assert "choose it with `annotator models use`" in proc.stdout
    assert "3 iterations (at most 30 minutes)" in proc.stdout
    assert json.loads((user_dirs / "runs" / "cli-2d" / "config.json").read_text())["learning_rate"] == 2e-4
    card = load_checkpoint(user_dirs / "models" / "cli-2d.json")[1]
    assert card.spatial_dims == 2 and card.roi_size == [1, 48, 48]
    assert card.orientation == "SAR"  # its slices come turned so: axial, anterior and right
    proc = subprocess.run([sys.executable, "-m", "annotator", "train", "--method", "deepedit"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "give --method and --data" in proc.stderr


def test_training_takes_the_accepted_labels_of_a_datastore(tmp_path, user_dirs):
    # a folder of images annotated in the app: its finals are the training cases, read
    # through the datastore interface (an unlabelled image and a draft are not); its
    # structures numbered as an atlas numbers them, one above 255 (FreeSurfer's 1035)
    folder = tmp_path / "annotated"
    folder.mkdir()
    for case in CASES:
        shutil.copy(HIPPO / "images" / f"{case}.nii.gz", folder)
    store = LocalDatastore(folder)
    from annotator.io import read_label

    atlas = np.array([0, 17, 1035], np.uint16)
    for case in CASES[:3]:
        volume = store.open_image(case)
        store.accept(case, atlas[read_label(HIPPO / "labels" / f"{case}.nii.gz", volume)], volume)
    volume = store.open_image(CASES[3])
    store.save_draft(CASES[3], read_label(HIPPO / "labels" / f"{CASES[3]}.nii.gz", volume), volume)
    assert store.training_ids() == CASES[:3]
    names = {"17": "Anterior", "1035": "posterior", "3": "unused"}  # the app's Label list: the folder names none
    events = _run_to_end(TrainingProcess(_config(folder, tmp_path, val_fraction=0.34, value_names=names)))
    start = next(e for e in events if e["event"] == "start")
    assert (start["train_cases"], start["val_cases"]) == (2, 1)
    done = next(e for e in events if e["event"] == "done")
    card = json.loads((user_dirs / "models" / f"{done['model']}.json").read_text())
    assert sorted(card["training"]["cases"] + card["training"]["validation_cases"]) == CASES[:3]
    # the network's classes, named as the app names the values found and answering with those values
    # (each value a class: 1035 no longer beyond the look-up of values to classes)
    assert card["labels"] == {"anterior": 17, "posterior": 1035}
    assert card["training"]["label_values"] == {"anterior": 17, "posterior": 1035}
    from annotator.engine.deep import new_session

    model, loaded = load_checkpoint(user_dirs / "models" / f"{done['model']}.json")
    session = new_session(store.open_image(CASES[0]), model, loaded)
    assert set(session.class_values()) == {0, 17, 1035}
    point = tuple(int(c) for c in np.argwhere(read_label(HIPPO / "labels" / f"{CASES[0]}.nii.gz",
                                                         store.open_image(CASES[0])) == 2)[0])
    result = session.edit({1035: [point]})  # a click on the structure numbered 1035 draws 1035, not 2
    assert set(np.unique(result.patch)) <= {0, 17, 1035} and 1035 in result.patch


def test_a_bad_case_is_named_in_the_error(dataset_folder, tmp_path, user_dirs):
    bad = tmp_path / "bad"
    shutil.copytree(dataset_folder, bad)
    # another case's label: a different shape from this image
    shutil.copy(HIPPO / "labels" / "hippocampus_011.nii.gz", bad / "labels" / "hippocampus_004.nii.gz")
    events = _run_to_end(TrainingProcess(_config(bad, tmp_path)))
    error = next(e for e in events if e["event"] == "error")
    assert "hippocampus_004" in error["message"] and "voxels but the image has" in error["message"], error
    assert "applying transform" not in error["message"]


_PARENT = """
import sys, time
from annotator.training.config import TrainConfig
from annotator.training.runner import TrainingProcess
config = TrainConfig.load(sys.argv[1])
job = TrainingProcess(config)
job.start()
print("started", flush=True)
time.sleep(600)
"""


def test_a_killed_parent_leaves_a_final_event(dataset_folder, tmp_path, user_dirs):
    config = _config(dataset_folder, tmp_path, max_iterations=100000, epochs=1000)
    path = config.save(tmp_path / "config.json")
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(path)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline().strip() == "started"
    log = config.run_dir / "events.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and '"progress"' not in (log.read_text() if log.exists() else ""):
        time.sleep(0.2)
    parent.kill()  # SIGKILL: the parent says nothing to its child
    parent.wait()
    deadline = time.monotonic() + 60
    last = None
    while time.monotonic() < deadline:
        events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        last = events[-1]["event"]
        if last in ("cancelled", "done", "error"):
            break
        time.sleep(0.2)
    assert last == "cancelled", last
    assert (config.run_dir / "last.json").exists()


def test_a_deepedit_run_keeps_the_worklist_scoring_its_validation_cases_chose(tmp_path, user_dirs):
    """With enough validation cases, the best checkpoint's sidecar says how the worklist
    weighs its scores; with fewer, it says nothing and the default stays."""
    import SimpleITK as sitk
    import torch

    from annotator.active.calibration import MIN_CASES, PAIRS
    from annotator.models import save_checkpoint
    from annotator.models.networks import build_network
    from annotator.training.job import _calibrate, build_card

    folder = tmp_path / "balls"
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:16, :16, :16]  # one crop of the network's each
    ids = []
    for i in range(MIN_CASES):
        ball = (z - 8) ** 2 + (y - 8) ** 2 + (x - 8) ** 2 <= (2 + i % 4) ** 2
        label = np.where(ball, np.where(x < 8, 1, 2), 0).astype(np.uint8)
        image = (rng.normal(0, 1, ball.shape) + (1 + i % 3) * ball).astype(np.float32)
        for sub, array in (("images", image), ("labels", label)):
            sitk.WriteImage(sitk.GetImageFromArray(array), str(folder / sub / f"ball{i:02d}.nii.gz"))
        ids.append(f"ball{i:02d}")
    (folder / "labels.json").write_text(json.dumps({"left": 1, "right": 2}))
    card = build_card(_config(folder, tmp_path, patch=[16, 16, 16], target_spacing=[1.0, 1.0, 1.0]),
                      {"left": 1, "right": 2}, [])
    torch.manual_seed(0)
    best = tmp_path / "best.json"
    cases = [Case(str(folder), i) for i in ids]
    for given, chosen in ((cases[:-1], False), (cases, True)):
        save_checkpoint(build_network(card.architecture), card, best)
        events = []
        _calibrate(best, given, "cpu", False, lambda kind, **kw: events.append((kind, kw)))
        found = load_checkpoint(best)[1].uncertainty
        if not chosen:
            assert found == {} and events == []
            continue
        assert found["cases"] == MIN_CASES and set(found["powers"]) == {"tta", "epistemic"}
        assert all((p["unsteadiness"], p["contrast"]) in PAIRS for p in found["powers"].values())
        assert all(set(rhos) == {f"{p:g}/{q:g}" for p, q in PAIRS} for rhos in found["spearman"].values())
        assert [kind for kind, _ in events] == ["message", "message"]
        assert "to the powers: tta " in events[-1][1]["text"] and "epistemic " in events[-1][1]["text"]


def test_fine_tuning_keeps_the_network_of_the_model_it_starts_from(dataset_folder, tmp_path, user_dirs):
    """The DeepEdit starter is the medium network; fine-tuning it (the Training dock's
    default) with no size given trained a small network from scratch instead."""
    from annotator.training.job import resolve_variant

    starter = ModelRegistry().entry("deepedit-hippocampus-mr").card
    events = _run_to_end(TrainingProcess(_config(dataset_folder, tmp_path, init="active", max_iterations=1)))
    texts = [e.get("text", "") for e in events if e["event"] == "message"]
    assert "the medium network of deepedit-hippocampus-mr" in texts and "fine-tuning deepedit-hippocampus-mr" in texts
    card = load_checkpoint(tmp_path / "run" / "last.json")[1]
    assert card.architecture == starter.architecture and card.training["fine_tuned_from"] == starter.name
    validation = next(e for e in events if e["event"] == "validation")
    assert validation["dice"] > 0.5  # one step from the starter's weights, not from nothing
    # a size asked for, or a run from scratch, is as asked
    assert resolve_variant(_config(dataset_folder, tmp_path, init="active", variant="small")).variant == "small"
    assert resolve_variant(_config(dataset_folder, tmp_path)).variant == "small"


def test_fine_tuning_takes_a_model_of_other_label_names_and_refuses_another_label_count(tmp_path):
    """The weights are per class, not per name: the starter fine-tunes for two labels named
    otherwise (the Training dock names unnamed data after its Label list); for three, the
    run starts from scratch and says why."""
    import torch

    from annotator.models import build_network
    from annotator.training.job import _initial_weights, build_card

    for labels, fine_tuned in (({"left": 1, "right": 2}, True), ({"a": 1, "b": 2, "c": 3}, False)):
        config = _config(tmp_path, tmp_path, init="deepedit-hippocampus-mr", variant="medium",
                         target_spacing=[1.0, 1.0, 1.0])
        card = build_card(config, labels, [])
        model, said = build_network(card.architecture), []
        before = {k: v.clone() for k, v in model.state_dict().items()}
        _initial_weights(model, config, card, lambda event, **fields: said.append(fields.get("text", "")))
        changed = any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
        assert changed == fine_tuned and card.training.get("fine_tuned_from") == (
            "deepedit-hippocampus-mr" if fine_tuned else None), said
        if not fine_tuned:
            assert said == ["deepedit-hippocampus-mr answers for 2 label(s), this run for 3: training from scratch"]


def test_a_time_limit_ends_the_run_and_its_eta(dataset_folder, tmp_path, user_dirs):
    limit_s = 4.0
    job = TrainingProcess(_config(dataset_folder, tmp_path, method="deepgrow3d", epochs=100000, max_iterations=0,
                                  max_minutes=limit_s / 60, val_every=100000))
    events = _run_to_end(job)
    start = next(e for e in events if e["event"] == "start")
    progress = [e for e in events if e["event"] == "progress"]
    assert start["max_minutes"] == pytest.approx(limit_s / 60) and start["iterations"] >= 100000
    assert progress and progress[-1]["iteration"] < start["iterations"]  # the clock ended it
    assert all(e["eta_s"] <= max(limit_s - e["elapsed_s"], 0) + 0.2 for e in progress), progress
    assert any(e["event"] == "done" for e in events)
