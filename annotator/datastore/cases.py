"""Images with a reference (final) label, read through the datastore interface: what
benchmarks score on."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from annotator.datastore.base import Version
from annotator.datastore.factory import open_store
from annotator.errors import DatastoreError, InputError
from annotator.io.volume import Volume
from annotator.words import agree


def default_split(place: str | os.PathLike) -> str:
    """``test`` when the store at ``place`` has a test split (a dataset folder's
    ``split.json``), else ``all``: what a benchmark scores by default."""
    store = open_store(place)
    try:
        store.training_ids("test")
    except DatastoreError:
        return "all"
    return "test"


def unlabelled_hint(place: str | os.PathLike) -> str:
    """What to do where the store at ``place`` has no image with a final label but has
    label maps beside its images (a ``case_seg.nii.gz``, TotalSegmentator's masks): they
    are offered, not taken as labels, until one is accepted. Empty where it has none."""
    try:
        store = open_store(place)
        mapped = [r for r in store.records() if r.label_maps and Version.FINAL.value not in r.versions]
    except DatastoreError:
        return ""
    if not mapped:
        return ""
    shown = ", ".join(f"{r.id} ({', '.join(r.label_maps)})" for r in mapped[:3]) + (", ..." if len(mapped) > 3 else "")
    n = len(mapped)
    return (f"; {n} of its images {agree(n, 'has', 'have')} a label map beside "
            f"{agree(n, 'it', 'them')} but no final label: {shown}. A label map counts once "
            f"accepted: `annotator accept {place} IMAGE_ID LABEL_MAP` (its id, as in parentheses here, or a label file), "
            "or Use as label, then Accept, in the app")


def no_labelled_images(places, what: str = "") -> InputError:
    """The error for data with no labelled image, saying what would label it."""
    places = [str(p) for p in ([places] if isinstance(places, (str, os.PathLike)) else places)]
    hints = "".join(unlabelled_hint(p) for p in places)
    return InputError(f"no labelled images in {', '.join(places)}{' ' + what if what else ''}{hints}")


def labelled_cases(place: str | os.PathLike, split: str = "all", limit: int | None = None,
                   only=None) -> Iterator[tuple[str, Volume, np.ndarray]]:
    """(id, image, final label) of the store at ``place``, in ``split`` (``train``/``test``
    need a dataset folder's ``split.json``), only those of ``only`` when given, at most
    ``limit`` of them."""
    store = open_store(place)
    wanted = None if only is None else set(only)
    ids = [i for i in store.training_ids(split) if wanted is None or i in wanted]
    for image_id in ids[:limit]:
        volume = store.open_image(image_id)
        label = store.label(image_id, volume)
        if label is not None:  # a label on a server that cannot be used for the image: not labelled after all
            yield image_id, volume, label
