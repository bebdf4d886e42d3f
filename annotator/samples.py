"""Sample data listed in the shipped manifest (``resources/samples.json``).

File samples are looked up in a data folder: ``$ANNOTATOR_DATA``, else the
``shared/data`` folder beside a source checkout. The generated CT phantom needs no
files and is always available.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from annotator.errors import InputError
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
        raise InputError(f"sample '{sample.id}' has no files here (set ANNOTATOR_DATA to the data folder)")
    return root / sample.image


def load_sample(sample_id: str) -> tuple[Volume, np.ndarray | None]:
    """The sample's volume and, when it has one, its reference label."""
    by_id = {s.id: s for s in manifest()}
    if sample_id not in by_id:
        raise InputError(f"no sample '{sample_id}' (samples: {', '.join(by_id)})")
    sample = by_id[sample_id]
    if sample.generated:
        volume, label = ct_phantom()
        return volume, label
    path = sample_path(sample)
    _check_sha(path, sample.image_sha256)
    volume = read_volume(path)
    volume.modality = sample.modality
    volume.name = sample.title
    label = None
    if sample.label:
        label_path = data_root() / sample.label  # type: ignore[operator]
        _check_sha(label_path, sample.label_sha256)
        label = read_label(label_path, volume)
    return volume, label


def _check_sha(path: Path, expected: str) -> None:
    if expected and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise InputError(f"{path}: sample file differs from the shipped manifest (checksum mismatch)")
