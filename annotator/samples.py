"""Sample data listed in the shipped manifest (``resources/samples.json``).

File samples are looked up in a data folder: ``$ANNOTATOR_DATA``, else the
``shared/data`` folder beside a source checkout, else the ``data`` folder the frozen app
carries (the hippocampus case). The generated CT phantom needs no
files and is always available.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from platformdirs import user_cache_dir

from annotator.errors import InputError
from annotator.io.atomic import atomic_path
from annotator.io.phantom import ct_phantom
from annotator.io.read import read_label, read_volume
from annotator.io.volume import Volume


@dataclass(frozen=True)
class Sample:
    id: str
    title: str
    modality: str
    licence: str
    image: str = ""
    label: str = ""
    image_sha256: str = ""
    label_sha256: str = ""
    generated: str = ""


def data_root() -> Path | None:
    """The folder that holds the sample files, if there is one."""
    env = os.environ.get("ANNOTATOR_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [parent / "shared" / "data" for parent in here.parents[1:4]]
    if getattr(sys, "frozen", False):
        candidates.append(Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / "data")
    return next((c for c in candidates if c.is_dir()), None)


def manifest() -> list[Sample]:
    raw = json.loads(files("annotator.resources").joinpath("samples.json").read_text("utf-8"))
    return [Sample(**entry) for entry in raw["samples"]]


def available_samples() -> list[Sample]:
    """Samples whose files are present (always including generated ones)."""
    root = data_root()
    return [s for s in manifest() if s.generated or (root is not None and (root / s.image).exists())]


def sample_path(sample: Sample) -> Path:
    root = data_root()
    if sample.generated or root is None or not (root / sample.image).exists():
        raise InputError(f"sample '{sample.id}' has no files here: its image ({sample.image}) comes with the "
                         "installed app and beside a source checkout (../shared/data), not with pip; set "
                         "ANNOTATOR_DATA to a folder that holds it, or open the 'ct-phantom' sample, made here")
    return root / sample.image


def sample_file(sample_id: str) -> Path:
    """A path to open the sample from; generated samples are written once to the user cache."""
    sample = _by_id(sample_id)
    if not sample.generated:
        path = sample_path(sample)
        _check_sha(path, sample.image_sha256)
        return path
    path = Path(user_cache_dir("annotator")) / "samples" / sample.id / f"{sample.id}.nii.gz"
    if not path.exists():
        volume, _ = ct_phantom()
        with atomic_path(path) as tmp:
            sitk.WriteImage(volume.to_sitk(), str(tmp), useCompression=True)
    return path


def _by_id(sample_id: str) -> Sample:
    by_id = {s.id: s for s in manifest()}
    if sample_id not in by_id:
        raise InputError(f"no sample '{sample_id}' (samples: {', '.join(by_id)})")
    return by_id[sample_id]


def load_sample(sample_id: str) -> tuple[Volume, np.ndarray | None]:
    """The sample's volume and, when it has one, its reference label."""
    sample = _by_id(sample_id)
    volume = read_volume(sample_file(sample_id))
    volume.modality = sample.modality
    volume.name = sample.title
    label = None
    if sample.generated:
        label = ct_phantom()[1]  # seeded: the organs of the written volume
    elif sample.label:
        label_path = data_root() / sample.label  # type: ignore[operator]
        _check_sha(label_path, sample.label_sha256)
        label = read_label(label_path, volume)
    return volume, label


def _check_sha(path: Path, expected: str) -> None:
    if expected and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise InputError(f"{path}: sample file differs from the shipped manifest (checksum mismatch)")


def modality_of(path: str | os.PathLike) -> str | None:
    """The modality the samples' manifest gives the images of the folder ``path`` lies in
    (the hippocampus sample's NIfTI files do not say they are MR); None for any other."""
    root = data_root()
    if root is None:
        return None
    folder = Path(path).resolve().parent
    return next((s.modality for s in manifest() if s.image and (root / s.image).resolve().parent == folder), None)


def is_sample_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is one of the sample files (their labels go to the user data dir)."""
    path = Path(path).resolve()
    roots = [Path(user_cache_dir("annotator")) / "samples"]
    root = data_root()
    if root is not None:
        roots.append(root.resolve())
    return any(path.is_relative_to(r) for r in roots)
