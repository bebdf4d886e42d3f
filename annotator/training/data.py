"""Training data: the final labels of datastores, prepared on the model grid, a seeded
split, MONAI pipelines.

Cases come through the datastore interface (:mod:`annotator.datastore`): a folder, a
dataset folder or a server, each opened by its place in the training process. Each
case is read once, brought to the model grid with the same preprocessing as inference
(:mod:`annotator.engine.prepare`) and cached; the random part (crops, intensity jitter)
is a composed MONAI dictionary transform.
"""

from __future__ import annotations

import numpy as np
from monai import transforms as mt
from monai.data import CacheDataset

from dataclasses import dataclass
from functools import lru_cache

from annotator.datastore import Datastore, Version
from annotator.datastore.factory import open_store
from annotator.datastore.cases import unlabelled_hint
from annotator.engine.axes import orientation_view, turn_array
from annotator.engine.prepare import prepare_image, prepare_label
from annotator.errors import InputError
from annotator.models.card import ModelCard
from annotator.training.config import TrainConfig
from annotator.words import agree


@dataclass(frozen=True)
class Case:
    """An image with a final label: its datastore's place and its id there."""

    place: str
    id: str


@lru_cache(maxsize=8)
def store_at(place: str) -> Datastore:
    """The datastore at ``place`` (opened once per process)."""
    return open_store(place)


def gather(config: TrainConfig, emit=None) -> list[Case]:
    """The labelled images of the run's datastores. One labelled only by a label on a server
    (from another workstation) is downloaded now, its label kept here as its final one; it
    is left out where that label cannot be used for it. ``emit`` hears of such downloads."""
    cases = []
    for place in config.data:
        store = store_at(place)
        final_here = {r.id for r in store.records() if Version.FINAL.value in r.versions}
        ids = store.training_ids(config.split)
        elsewhere = [i for i in ids if i not in final_here]
        if elsewhere and emit is not None:
            emit("message", text=f"downloading {len(elsewhere)} series labelled on {store.name} from another "
                                 f"workstation, with {agree(len(elsewhere), 'its label', 'their labels')}")
        cases += [Case(store.place, i) for i in ids
                  if i in final_here or store.label(i, store.open_image(i)) is not None]
    if len(cases) < 2:
        raise InputError(f"training needs at least 2 labelled images; found {len(cases)} in {', '.join(config.data)}"
                         + "".join(unlabelled_hint(place) for place in config.data))
    return cases


def split_cases(cases: list[Case], val_fraction: float, seed: int) -> tuple[list[Case], list[Case]]:
    """Seeded train/validation split (the same cases for the same seed, whatever the order given)."""
    ordered = sorted(cases, key=lambda c: (c.id, c.place))
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_val = min(len(ordered) - 1, max(1, int(round(len(ordered) * val_fraction))))
    return [ordered[i] for i in sorted(order[n_val:])], [ordered[i] for i in sorted(order[:n_val])]


def label_map(config: TrainConfig) -> dict[str, int]:
    """Label name -> value in the label files: the config's, the dataset's (its labels.json
    or dataset.json), or 1..N found."""
    if config.labels:
        return dict(config.labels)
    for place in config.data:
        names = store_at(place).label_names()
        if names:
            return names
    return {}


def read_case(case: Case):
    """(volume, final label) of a case; a bad file or label names the case."""
    store = store_at(case.place)
    try:
        volume = store.open_image(case.id)
        label = store.label(case.id, volume)
    except Exception as exc:
        raise InputError(f"training case '{case.id}' of {case.place}: {exc}") from exc
    if label is None:
        raise InputError(f"training case '{case.id}' of {case.place}: it has no final label")
    return volume, label


class Prepare(mt.MapTransform):
    """Read a case and bring image and label to the model grid; labels become classes 0..N."""

    def __init__(self, card: ModelCard, values: list[int], extents: dict | None = None):
        super().__init__(["image", "label"])
        self.card = card
        self.extents = extents  # case id -> the image's extent in mm, filled as cases are read
        self.lut = np.zeros(max(values, default=0) + 1, np.uint8)  # label value -> class (at most 255 classes)
        for cls, v in enumerate(values, start=1):
            self.lut[v] = cls

    def __call__(self, item: dict) -> dict:
        volume, label = read_case(Case(item["place"], item["id"]))
        if self.extents is not None:
            self.extents[item["id"]] = volume.extent_mm
        array, spacing = volume.array, volume.array_spacing
        view = orientation_view(self.card.orientation, volume.direction) if self.card.orientation else None
        if view is not None:  # stored another way than the card's orientation: turned to it (a 2-D
            # network's slices are then the turned volume's, as ClickSession turns them in their plane)
            array, label = turn_array(array, *view), turn_array(label, *view)
            spacing = tuple(spacing[a] for a in view[0])
        image = prepare_image(array, spacing, self.card).numpy()
        prepared = prepare_label(label, spacing, self.card)
        classes = np.where(prepared < self.lut.size, self.lut[np.minimum(prepared, self.lut.size - 1)], 0)
        return {**item, "image": image[None], "label": classes[None]}


#: random rotation (radians about each axis) and scaling of the training crops, each
#: applied to half of them: without it the longer runs a GPU allows overfit (DeepEdit on
#: the hippocampus, 6.5 minutes on one GPU: validation Dice peaked at 0.852 and fell;
#: with it 0.870, and 0.879 with the medium network; see docs/training.md)
ROTATE, SCALE, AUGMENT_PROB = 0.2, 0.1, 0.5


def random_transforms(patch: list[int]) -> mt.Compose:
    """Pad to a little more than the patch, crop around foreground or background (so the
    image is not always in the same place in the patch), rotate and scale at random,
    jitter intensity. The rotation turns a crop a fifth of the patch larger on each side
    about its centre (enough for the patch's corners at the largest turn and shrink) and
    keeps the middle, so that its cost follows the patch, not the image; a one-slice
    patch (DeepGrow 2D) turns in its plane only."""
    keys = ["image", "label"]
    flat = patch[0] == 1
    margin = [0 if p == 1 else p // 5 for p in patch]
    larger = [p + 2 * m for p, m in zip(patch, margin)]
    return mt.Compose([
        mt.SpatialPadd(keys, spatial_size=[p + 8 if p > 1 else 1 for p in larger]),
        mt.RandCropByPosNegLabeld(keys, label_key="label", spatial_size=larger, pos=3, neg=1, num_samples=1),
        mt.RandAffined(keys, prob=AUGMENT_PROB, rotate_range=(ROTATE, 0, 0) if flat else (ROTATE,) * 3,
                       scale_range=(0, SCALE, SCALE) if flat else (SCALE,) * 3, mode=("bilinear", "nearest"),
                       padding_mode="border"),
        mt.CenterSpatialCropd(keys, roi_size=patch),
        mt.RandScaleIntensityd("image", factors=0.1, prob=0.5),
        mt.RandShiftIntensityd("image", offsets=0.05, prob=0.5),
    ])


def dataset(cases: list[Case], card: ModelCard, values: list[int], patch: list[int] | None,
            cache_rate: float = 1.0, extents: dict | None = None) -> CacheDataset:
    """Cases prepared once and cached (``cache_rate`` of them: the planner keeps the cache
    within memory); with ``patch``, random crops of it on every read. ``extents`` gets
    each image's extent in mm as it is read."""
    steps = [Prepare(card, values, extents)] + ([random_transforms(patch)] if patch else [])
    items = [{"place": c.place, "id": c.id} for c in cases]
    return CacheDataset(items, mt.Compose(steps), cache_rate=cache_rate, num_workers=0, progress=False)


def extent_range(extents) -> dict:
    """The sidecar's ``training.extent_mm``: the smallest and the largest extent in mm of
    the training images along each axis, longest axis first (empty: none read)."""
    found = np.array(list(extents), float)
    if not found.size:
        return {}
    return {"smallest": [round(float(v), 1) for v in found.min(axis=0)],
            "largest": [round(float(v), 1) for v in found.max(axis=0)]}
