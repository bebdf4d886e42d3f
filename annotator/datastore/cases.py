"""Images with a reference (final) label, read through the datastore interface: what
benchmarks score on."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from annotator.datastore.factory import open_datastore
from annotator.errors import DatastoreError
from annotator.io.volume import Volume


def default_split(place: str | os.PathLike) -> str:
    """``test`` when the store at ``place`` has a test split (a dataset folder's
    ``split.json``), else ``all``: what a benchmark scores by default."""
    store, _ = open_datastore(place)
    try:
        store.training_ids("test")
    except DatastoreError:
        return "all"
    return "test"


def labelled_cases(place: str | os.PathLike, split: str = "all", limit: int | None = None,
                   only=None) -> Iterator[tuple[str, Volume, np.ndarray]]:
    """(id, image, final label) of the store at ``place``, in ``split`` (``train``/``test``
    need a dataset folder's ``split.json``), only those of ``only`` when given, at most
    ``limit`` of them."""
    store, _ = open_datastore(place)
    wanted = None if only is None else set(only)
    ids = [i for i in store.training_ids(split) if wanted is None or i in wanted]
    for image_id in ids[:limit]:
        volume = store.open_image(image_id)
        yield image_id, volume, store.label(image_id, volume)
