"""What a datastore's labels measure: each structure's volume and the image's intensities
inside it (Hounsfield units on a CT), one row per image and structure, as a table for a
study's spreadsheet (`annotator stats`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import numpy as np

from annotator.datastore.base import Datastore
from annotator.errors import AnnotatorError, InputError
from annotator.io.volume import Volume, label_counts, volumes_ml

#: a row's columns, in order
FIELDS = ("image", "value", "name", "voxels", "volume_ml", "mean", "sd", "min", "median", "max")


def structure_statistics(volume: Volume, label: np.ndarray, names: dict[int, str] | None = None) -> list[dict]:
    """One row per structure (label value) of ``label`` on ``volume``: its voxels, its
    volume in mL and the image's intensities inside it (mean, standard deviation, minimum,
    median, maximum; in the image's units), to 4 decimals. Each structure is measured in
    its own box."""
    from scipy.ndimage import find_objects

    if label.shape != volume.shape:
        raise InputError(f"the label has shape {label.shape} (z,y,x) but the image has {volume.shape}")
    names = names or {}
    sizes = volumes_ml(label_counts(label), volume.array_spacing)
    rows = []
    boxes = find_objects(label)
    for value, (voxels, ml) in sizes.items():
        box = boxes[value - 1]
        inside = np.asarray(volume.array[box][label[box] == value], np.float64)
        measured = {"mean": inside.mean(), "sd": inside.std(), "min": inside.min(), "median": np.median(inside),
                    "max": inside.max()}
        rows.append({"value": value, "name": names.get(value, f"label {value}"), "voxels": voxels,
                     "volume_ml": round(ml, 4), **{k: round(float(v), 4) for k, v in measured.items()}})
    return rows


def datastore_statistics(store: Datastore) -> Iterator[dict]:
    """:func:`structure_statistics` of every image of ``store`` with a final label, each
    row with the image's id first; an image that cannot be read gives one row naming why
    (``"error"``) and the others go on."""
    ids = store.training_ids()
    if not ids:
        raise InputError(f"{store.name}: no image has a final label to measure")
    for image_id in ids:
        try:
            volume = store.open_image(image_id)
            label = store.label(image_id, volume)
            rows = [] if label is None else structure_statistics(
                volume, label, {int(v): str(n) for v, n in store.names_of(image_id).items()})
        except AnnotatorError as exc:
            yield {"image": image_id, "error": str(exc)}
            continue
        for row in rows:
            yield {"image": image_id, **row}


def as_csv(rows: list[dict]) -> str:
    """The rows as CSV text with a header of :data:`FIELDS` (numbers as Python writes them)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(row for row in rows if "error" not in row)
    return out.getvalue()
