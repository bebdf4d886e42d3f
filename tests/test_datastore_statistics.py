"""`annotator stats`: each structure's volume and the image's intensities inside it, per
image of a datastore with a final label."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest

from annotator.datastore.statistics import FIELDS, structure_statistics
from annotator.errors import InputError
from annotator.io import read_label, read_volume
from annotator.io.volume import Volume
from paths import HIPPO


def test_each_structure_is_measured_in_millilitres_and_image_units():
    rng = np.random.default_rng(0)
    image = rng.normal(40.0, 10.0, (12, 20, 24)).astype(np.float32)
    volume = Volume(image, (0.5, 0.8, 2.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))  # x, y, z: 1 mm³ a voxel
    label = np.zeros(image.shape, np.uint8)
    label[2:6, 3:9, 4:10] = 1
    label[8:11, 12:18, 15:22] = 4  # a value with none below it but 1
    label[0, 0, 0] = 4  # and a stray voxel far from its bulk: measured with it
    rows = structure_statistics(volume, label, {1: "liver"})
    assert [(r["value"], r["name"], r["voxels"]) for r in rows] == [(1, "liver", 144), (4, "label 4", 127)]
    for row in rows:
        inside = image[label == row["value"]].astype(np.float64)
        assert row["volume_ml"] == pytest.approx(row["voxels"] * 1e-3)
        for key, value in (("mean", inside.mean()), ("sd", inside.std()), ("min", inside.min()),
                           ("median", np.median(inside)), ("max", inside.max())):
            assert row[key] == pytest.approx(value, abs=1e-4), key
    wide = label.astype(np.uint16)
    wide[wide == 4] = 1002  # a label map numbered past a byte (FreeSurfer's cortex parcels)
    assert [(r["value"], r["voxels"], r["mean"]) for r in structure_statistics(volume, wide)] == [
        (r["value"] if r["value"] == 1 else 1002, r["voxels"], r["mean"]) for r in rows]
    with pytest.raises(InputError, match=r"the label has shape \(3, 3, 3\)"):
        structure_statistics(volume, np.zeros((3, 3, 3), np.uint8))


def test_stats_command_writes_a_table_and_a_csv_of_a_folders_labels(tmp_path):
    """Two labelled hippocampus cases and one whose label file is damaged: their two parts
    each, in mL and in the image's units, and the damaged one named as left out."""
    folder = tmp_path / "data"
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True)
    cases = ["hippocampus_001", "hippocampus_003", "hippocampus_004"]
    for case in cases:
        for sub in ("images", "labels"):
            shutil.copy(HIPPO / sub / f"{case}.nii.gz", folder / sub / f"{case}.nii.gz")
    shutil.copy(HIPPO / "labels.json", folder / "labels.json")  # the parts' names
    (folder / "labels" / "hippocampus_004.nii.gz").write_bytes(b"\x1f\x8b not a label")
    out = tmp_path / "stats.csv"
    proc = subprocess.run([sys.executable, "-m", "annotator", "stats", str(folder), "--csv", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "left out hippocampus_004" in proc.stdout and "4 structures of 2 images" in proc.stdout
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == FIELDS and [(r["image"], r["name"]) for r in rows] == [
        (c, part) for c in cases[:2] for part in ("anterior", "posterior")]
    for row in rows:
        volume = read_volume(HIPPO / "images" / f"{row['image']}.nii.gz")
        label = read_label(HIPPO / "labels" / f"{row['image']}.nii.gz", volume)
        inside = volume.array[label == int(row["value"])].astype(np.float64)
        assert int(row["voxels"]) == inside.size
        assert float(row["volume_ml"]) == pytest.approx(inside.size * np.prod(volume.array_spacing) / 1000, abs=1e-4)
        assert float(row["mean"]) == pytest.approx(inside.mean(), abs=1e-3)
        assert float(row["median"]) == pytest.approx(np.median(inside), abs=1e-3)
    line = next(line for line in proc.stdout.splitlines() if line.startswith("hippocampus_001  anterior"))
    assert f"{float(rows[0]['volume_ml']):.2f}" in line
    for case in cases[:2]:  # none left that can be read: said, as for any bad input
        (folder / "labels" / f"{case}.nii.gz").write_bytes(b"\x1f\x8b not a label")
    proc = subprocess.run([sys.executable, "-m", "annotator", "stats", str(folder)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "none of its labelled images could be measured" in proc.stderr
