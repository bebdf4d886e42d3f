"""`annotator-app --self-test`: check, headless, that everything the app needs works here:
the imports, the bundled sample, one network click, one GraphCut scribble, one training
iteration in a child process (the frozen app starts itself for it), a label written and
read back in a temporary datastore. Prints one line per check and a summary; exit 0
when all pass. Made for the frozen app (`make bundle-test`), it runs from a virtualenv
too."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np


def _imports() -> str:
    import highdicom  # noqa: F401
    import maxflow  # noqa: F401
    import monai
    import napari
    import pydicom  # noqa: F401
    import SimpleITK  # noqa: F401
    import torch
    from qtpy import QtWidgets  # noqa: F401

    return f"napari {napari.__version__}, torch {torch.__version__}, MONAI {monai.__version__}"


def _sample():
    from annotator.samples import load_sample

    volume, label = load_sample("hippocampus")
    if label is None or not label.any():
        raise RuntimeError("the hippocampus sample has no label")
    return volume, label


def _click(volume, label) -> str:
    from annotator.engine.methods import METHODS

    centre = tuple(int(v) for v in np.argwhere(label == 1).mean(axis=0).round())
    result = METHODS["deepedit"].clicks(volume, [centre], [], previous=np.zeros(volume.shape, np.uint8), value=1)
    voxels = int((result.patch == 1).sum())
    if voxels == 0:
        raise RuntimeError("the network click gave an empty label")
    return f"DeepEdit click: {voxels} voxels in {result.seconds:.2f} s"


def _scribble(volume, label) -> str:
    from annotator.bench.simulate import scribbles_from_mask
    from annotator.engine.methods import METHODS

    strokes = scribbles_from_mask(label > 0)
    result = METHODS["graphcut"].scribbles(volume, strokes, previous=np.zeros(volume.shape, np.uint8), value=1)
    voxels = int((result.patch == 1).sum())
    if voxels == 0:
        raise RuntimeError("the GraphCut scribble gave an empty label")
    return f"GraphCut scribbles: {voxels} voxels in {result.seconds:.2f} s"


def _training(folder: Path) -> str:
    from annotator.samples import data_root, manifest
    from annotator.training.config import TrainConfig
    from annotator.training.runner import TrainingProcess

    sample = next(s for s in manifest() if s.id == "hippocampus")
    data = folder / "data"
    for sub, source in (("images", sample.image), ("labels", sample.label)):
        (data / sub).mkdir(parents=True)
        for copy in ("a", "b"):  # two cases: one to train on, one to validate
            shutil.copy(data_root() / source, data / sub / f"case_{copy}.nii.gz")
    config = TrainConfig(method="deepedit", data=[str(data)], name="self-test", epochs=1, max_iterations=1,
                         batch_size=1, patch=[32, 32, 32], val_fraction=0.5, out=str(folder / "run"),
                         install=False, activate=False)
    job = TrainingProcess(config)
    job.start()
    job.wait(600)
    job.poll()
    error = next((e for e in job.events if e["event"] == "error"), None)
    if error or not any(e["event"] == "done" for e in job.events):
        raise RuntimeError(f"the training child did not finish: {error['message'] if error else job.outcome()}")
    return f"training child ({Path(sys.executable).name}): 1 iteration, {job.outcome()}"


def _datastore(folder: Path, volume, label) -> str:
    import SimpleITK as sitk

    from annotator.datastore import LocalDatastore

    store_dir = folder / "store"
    store_dir.mkdir()
    sitk.WriteImage(volume.to_sitk(), str(store_dir / "case.nii.gz"))
    store = LocalDatastore(store_dir)
    image = store.open_image("case")
    store.accept("case", label.astype(np.uint8), image)
    back = LocalDatastore(store_dir).label("case", image)
    if back is None or not np.array_equal(back, label):
        raise RuntimeError("the label read back differs from the one written")
    return "label written and read back in a temporary datastore"


def _other_tools(folder: Path, volume, label) -> str:
    """The files of other tools the frozen app must read and write (nibabel inside it): a
    NIfTI label's label table, a FreeSurfer MGZ."""
    import nibabel as nib

    from annotator.io import read_volume, save_label
    from annotator.io.label_names import label_names_in

    save_label(folder / "named.nii.gz", label.astype(np.uint8), volume, {1: "anterior"})
    if label_names_in(folder / "named.nii.gz").get("anterior") != 1:
        raise RuntimeError("the NIfTI label table was not read back")
    matrix = np.diag([*volume.spacing, 1.0])
    nib.save(nib.MGHImage(volume.array.transpose(2, 1, 0).astype(np.float32), matrix), folder / "T1.mgz")
    if read_volume(folder / "T1.mgz").shape != volume.shape:
        raise RuntimeError("the MGZ image read back differs")
    return "NIfTI label table and FreeSurfer MGZ read back"


def run() -> int:
    checks: list[tuple[str, bool, str]] = []

    def check(name, work, *args):
        start = time.perf_counter()
        try:
            detail = work(*args)
            checks.append((name, True, detail or ""))
            print(f"ok    {name}: {detail} ({time.perf_counter() - start:.1f} s)", flush=True)
        except Exception as exc:  # every check is reported, the run goes on
            checks.append((name, False, f"{type(exc).__name__}: {exc}"))
            print(f"FAIL  {name}: {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc(file=sys.stderr)

    check("imports", _imports)
    loaded = []
    check("sample", lambda: loaded.append(_sample()) or "hippocampus sample read with its label")
    with tempfile.TemporaryDirectory(prefix="annotator-self-test-") as tmp:
        if loaded:
            volume, label = loaded[0]
            check("network click", _click, volume, label)
            check("scribbles", _scribble, volume, label)
            check("datastore", _datastore, Path(tmp), volume, label)
            check("other tools' files", _other_tools, Path(tmp), volume, label)
        check("training", _training, Path(tmp))
    passed = sum(ok for _, ok, _ in checks)
    print(json.dumps({"self_test": "passed" if passed == len(checks) else "failed", "passed": passed,
                      "checks": len(checks), "frozen": bool(getattr(sys, "frozen", False))}), flush=True)
    return 0 if passed == len(checks) and len(checks) == 7 else 1  # every check ran (none skipped by a failed sample)
