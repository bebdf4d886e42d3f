"""npe2 sample-data commands: one per entry of the shipped sample manifest."""

from __future__ import annotations

from annotator.napari.layers import image_layer_data
from annotator.samples import load_sample


def _sample(sample_id: str) -> list[tuple]:
    volume, _ = load_sample(sample_id)
    return [image_layer_data(volume)]


def hippocampus() -> list[tuple]:
    return _sample("hippocampus")


def ct_abdomen() -> list[tuple]:
    return _sample("ct-abdomen")


def ct_phantom() -> list[tuple]:
    return _sample("ct-phantom")


__all__ = ["ct_abdomen", "ct_phantom", "hippocampus"]
