"""The training planner: settings from the data and the machine, explicit settings kept."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from annotator.io.volume import Volume
from annotator.training.config import TrainConfig
from annotator.training.planner import Machine, plan, plan_cases, resolve
from paths import HIPPO

CPU = Machine(cores=2, memory_gb=16.0)


def _case(shape, spacing_zyx, modality="MR", seed=0):
    rng = np.random.default_rng(seed)
    array = rng.normal(40, 20, shape).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    label[tuple(slice(s // 4, 3 * s // 4) for s in shape)] = 1
    array[label > 0] += 100
    volume = Volume(array, tuple(reversed(spacing_zyx)), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0),
                    modality=modality)
    return volume, label


def test_the_hippocampus_plan_is_its_starter_recipe():
    found = plan([str(HIPPO)], "train", CPU)
    assert found.images == 208 and found.sampled == 20
    assert found.target_spacing == [1.0, 1.0, 1.0]
    assert found.patch == [48, 64, 48] and found.batch_size == 2 and found.cache_rate == 1.0
    assert all(p % 16 == 0 for p in found.patch)


def test_thick_slices_keep_their_own_spacing_and_ct_gets_one_window():
    cases = [_case((30, 64, 64), (5.0, 0.7, 0.7), "CT", 0), _case((40, 64, 64), (3.0, 0.8, 0.8), "CT", 1),
             _case((30, 64, 64), (5.0, 0.75, 0.75), "CT", 2)]
    found = plan_cases(cases, 3, CPU)
    assert found.target_spacing[1:] == [0.75, 0.75]
    assert found.target_spacing[0] < 5.0  # the 10th percentile of the slice spacings, not the median
    assert any("anisotropic" in n for n in found.notes)
    inside = np.concatenate([v.array[lab > 0] for v, lab in cases])
    assert found.intensity["kind"] == "window"
    assert found.intensity["low"] == round(float(np.percentile(inside, 0.5)), 1)


def test_the_crop_fits_the_device_and_the_cache_the_memory():
    cases = [_case((200, 400, 400), (1.0, 1.0, 1.0), "CT", s) for s in range(2)]
    small = plan_cases(cases, 500, Machine(cores=2, memory_gb=4.0))
    assert np.prod(small.patch) <= 96 ** 3 and small.batch_size == 2
    assert small.cache_rate < 0.1 and any("would not fit" in n for n in small.notes)
    gpu = plan_cases(cases, 500, Machine(cores=16, memory_gb=128.0, gpu="big", gpu_memory_gb=80.0))
    assert np.prod(gpu.patch) > np.prod(small.patch) and 2 <= gpu.batch_size <= 8
    assert gpu.cache_rate > small.cache_rate


def test_training_takes_the_plan_unless_told_otherwise():
    planned = resolve(TrainConfig(method="deepedit", data=[str(HIPPO)], split="train"))
    assert planned.patch == [48, 64, 48] and planned.target_spacing == [1.0, 1.0, 1.0] and planned.batch_size >= 2
    told = resolve(TrainConfig(method="deepedit", data=[str(HIPPO)], split="train", patch=[32, 32, 32],
                               batch_size=3, target_spacing=[2.0, 2.0, 2.0]))
    assert told.patch == [32, 32, 32] and told.batch_size == 3 and told.target_spacing == [2.0, 2.0, 2.0]


def test_cli_plan(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "annotator", "plan", str(HIPPO), "--split", "test", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["images"] == 52 and found["patch"] and found["machine"]["cores"] >= 1
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "annotator", "plan", str(empty)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and "no labelled images" in proc.stderr
