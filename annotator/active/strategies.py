"""The ways to choose the next image: ``random`` (seeded), ``first`` (the store's order),
``epistemic`` (Monte-Carlo dropout) and ``tta`` (test-time augmentation). A higher score
means "label this sooner"."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from annotator.errors import InputError

STRATEGIES = {
    "tta": "the automatic prediction repeated with the image shifted and its contrast changed; "
           "how much the repeats disagree around the structures, and how faintly they stand out",
    "epistemic": "the automatic prediction repeated with dropout active in the network (8 passes); "
                 "how much the repeats disagree around the structures, and how faintly they stand out",
    "random": "a seeded shuffle",
    "first": "the datastore's own order",
}
#: the strategy the worklist uses unless told otherwise (the better predictor of the
#: automatic prediction's error in `annotator bench active`)
DEFAULT = "tta"
#: Monte-Carlo dropout passes of ``epistemic``
EPISTEMIC_PASSES = 8


@dataclass
class Score:
    score: float
    per_label: dict[str, float] = field(default_factory=dict)


def check(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy '{strategy}' (known: {', '.join(STRATEGIES)})")
    return strategy


def needs_model(strategy: str) -> bool:
    return check(strategy) in ("tta", "epistemic")


def plain_score(strategy: str, image_id: str, position: int, seed: int = 0) -> Score:
    """The score of a strategy that needs no model."""
    if strategy == "random":
        digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
        return Score(int.from_bytes(digest[:8], "big") / 2**64)
    if strategy == "first":
        return Score(-float(position))
    raise InputError(f"strategy '{strategy}' needs a model")


def model_score(strategy: str, session, seed: int = 0) -> Score:
    """The score of ``tta`` or ``epistemic`` from a click session of the image."""
    from annotator.active.uncertainty import uncertainty

    found = uncertainty(session, strategy, n=EPISTEMIC_PASSES, seed=seed)
    return Score(found.score, found.per_label)
