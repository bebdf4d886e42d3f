"""Images that have a reference label: what training and benchmarks learn from and score on.

Two layouts: a datastore folder (its ``final`` labels), or a dataset folder with
``images/`` and ``labels/`` holding files of the same names (Medical Segmentation
Decathlon style), optionally with ``split.json`` (``{"train": [ids], "test": [ids]}``).
A dataset folder is only read, never written to.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from annotator.errors import DatastoreError
from annotator.io.read import image_stem, is_image_file

SPLITS = ("all", "train", "test")


@dataclass(frozen=True)
class Case:
    id: str
    image: Path
    label: Path


def is_dataset_folder(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / "labels").is_dir() and not (folder / "labels" / "final").is_dir()


def labelled_cases(folder: str | os.PathLike, split: str = "all") -> list[Case]:
    """Cases of ``folder`` in ``split`` (``train``/``test`` need the folder's ``split.json``)."""
    folder = Path(folder)
    if split not in SPLITS:
        raise DatastoreError(f"unknown split '{split}' (use {', '.join(SPLITS)})")
    if not folder.is_dir():
        raise DatastoreError(f"{folder}: not a folder")
    if is_dataset_folder(folder):
        labels = {image_stem(p): p for p in (folder / "labels").iterdir() if is_image_file(p)}
        cases = [Case(image_stem(p), p, labels[image_stem(p)])
                 for p in sorted((folder / "images").iterdir()) if is_image_file(p) and image_stem(p) in labels]
    else:
        from annotator.datastore.local import LocalDatastore

        store = LocalDatastore(folder)
        cases = [Case(i, store.image_path(i), store.label_path(i)) for i in store.ids()
                 if store.label_path(i).exists()]
    if split != "all":
        split_file = folder / "split.json"
        try:
            chosen = set(json.loads(split_file.read_text("utf-8"))[split])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatastoreError(f"{split_file}: no readable '{split}' list ({exc})") from exc
        cases = [c for c in cases if c.id in chosen]
    if not cases:
        raise DatastoreError(f"{folder}: no labelled images{'' if split == 'all' else ' in the ' + split + ' split'}")
    return cases


def label_names(folder: str | os.PathLike) -> dict[str, int] | None:
    """Label names of a dataset folder from its ``labels.json`` (``{"labels": {"1": "name"}}``), if any."""
    try:
        raw = json.loads((Path(folder) / "labels.json").read_text("utf-8"))["labels"]
        return {str(name).lower(): int(v) for v, name in raw.items() if int(v) > 0}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
