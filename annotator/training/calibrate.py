"""What is chosen about a trained model on its validation cases, after its weights: how the
worklist scores a DeepEdit model (:mod:`annotator.active.calibration`), and where a
DeepGrow model's first answer is cut.

A DeepGrow model's first answer to a click keeps the voxels where the clicked class beats
the background (the mean of five shifted passes, :mod:`annotator.engine.session`). Whether
"beats" should mean "is more probable" depends on the model: one trained with Dice loss on
small structures answers a little small or large. So each validation structure is
clicked once, as the robot user does (at the centre of the structure), and its first
answer is cut at each log-odds of :data:`THRESHOLDS`; the threshold with the best mean
Dice is kept in the sidecar (``first_answer``), with each threshold's Dice. Fewer than
:data:`~annotator.active.calibration.MIN_CASES` validation cases keep the defaults.
``annotator models calibrate`` does the same for an installed model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from annotator.active.calibration import MAX_CASES, MIN_CASES, read_in_turn
from annotator.errors import InputError
from annotator.io.volume import Volume
from annotator.models.card import ModelCard

#: the log-odds tried: the clicked class must beat the background by this much
THRESHOLDS = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)

Progress = Callable[[str, float], None]
#: reads a case when its turn comes: its id, image and label on the image's grid
Read = Callable[[object], tuple[str, Volume, np.ndarray]]


def choose_threshold(scores: dict[float, list[float]]) -> dict:
    """The sidecar's ``first_answer`` from each threshold's Dice per structure: the
    threshold with the best mean (a tie: the one nearer 0), and each one's mean; empty
    with fewer than :data:`MIN_CASES` structures."""
    counts = {len(v) for v in scores.values()}
    if not scores or min(counts) < MIN_CASES:
        return {}
    means = {t: float(np.mean(v)) for t, v in scores.items()}
    best = max(means, key=lambda t: (round(means[t], 4), -abs(t)))
    return {"threshold": best, "dice": {f"{t:g}": round(d, 4) for t, d in sorted(means.items())},
            "structures": min(counts)}


def first_answers(model, card: ModelCard, cases: Sequence, read: Read,
                  progress: Progress | None = None) -> dict[float, list[float]]:
    """Dice of each structure of the first :data:`MAX_CASES` of ``cases`` (each label
    value of a case is one) after one robot click at its centre (DeepGrow 2D: on the
    clicked slice, which it answers on), the first answer cut at each of
    :data:`THRESHOLDS`. One image in memory at a time; ``progress(text,
    fraction)`` may raise to stop."""
    from annotator.engine.deep import new_session
    from annotator.engine.metrics import dice
    from annotator.training.simulate import next_click

    report = progress or (lambda text, fraction: None)
    cases = list(cases)[:MAX_CASES]
    scores: dict[float, list[float]] = {t: [] for t in THRESHOLDS}
    for volume, label in read_in_turn(cases, read, report, "clicking"):
        session = new_session(volume, model, card)
        empty = np.zeros(label.shape, np.uint8)
        for value in (int(v) for v in np.unique(label) if v > 0):
            truth = label == value
            _, point = next_click(empty, truth.astype(np.uint8))
            scored = slice(point[0], point[0] + 1) if card.spatial_dims == 2 else slice(None)  # 2-D: its slice
            for threshold in THRESHOLDS:  # the same session: the image is prepared once
                session.card = replace(card, first_answer={"threshold": threshold})
                answer = session.click([point], previous=empty).label
                scores[threshold].append(dice(answer[scored] > 0, truth[scored]))
    return scores


def calibrate(model, card: ModelCard, cases: Sequence, read: Read,
              progress: Progress | None = None) -> tuple[ModelCard, str]:
    """``card`` with what its validation ``cases`` choose (DeepEdit: the worklist's powers;
    DeepGrow: the first answer's threshold), and a sentence saying what; ``card`` itself
    and "" when they choose nothing (fewer than :data:`MIN_CASES` cases)."""
    if len(cases) < MIN_CASES:
        return card, ""
    if card.method == "deepedit":
        from annotator.active.calibration import calibrate as powers

        found = powers(model, card, cases, read, progress)
        if not found:
            return card, ""
        text = ", ".join(f"{k} {v['unsteadiness']:g} and {v['contrast']:g}" for k, v in found["powers"].items())
        return replace(card, uncertainty=found), \
            f"the worklist weighs this model's unsteadiness and each label's contrast to the powers: {text}"
    found = choose_threshold(first_answers(model, card, cases, read, progress))
    if not found:
        return card, ""
    chosen = found["dice"][f"{found['threshold']:g}"]
    return replace(card, first_answer=found), \
        f"a first answer keeps the voxels where the clicked structure beats the background by a log-odds of " \
        f"{found['threshold']:g} (mean Dice after one click on {found['structures']} structures " \
        f"{chosen:.3f}; at 0: {found['dice']['0']:.3f})"


#: what the calibrated copy of a bundled model is called: NAME + this
COPY_SUFFIX = "-calibrated"


def calibrate_installed(name: str, data: str | os.PathLike | None = None, progress: Progress | None = None,
                        registry=None) -> str:
    """:func:`calibrate` for the installed model ``name``, its sidecar rewritten (the
    weights as they are): on its validation cases when the sidecar names them and they are
    in ``data`` or where it was trained (under the data folder), else on all the labelled
    images of ``data`` (a data set of the person's own). A bundled model stays as shipped
    (its folder may be read-only, and the package is not the person's to change): the
    choice goes to a copy in the user models folder, ``NAME-calibrated``, which then
    answers in its place where the bundled one did. Returns what was chosen, as a
    sentence; "" when too few cases choose nothing (nothing written). ``progress(text,
    fraction)`` hears each case."""
    from annotator.datastore.factory import open_store
    from annotator.engine.device import choose_device
    from annotator.models import ModelRegistry, load_checkpoint
    from annotator.models.checkpoint import save_card
    from annotator.samples import data_root

    report = progress or (lambda text, fraction: None)
    registry = registry or ModelRegistry()
    entry = registry.entry(name)
    only, trained_on = entry.card.training.get("validation_cases"), entry.card.training.get("data") or []
    place = data
    if place is None:  # where it was trained, when that is here
        place = data_root() / trained_on[0] if data_root() and trained_on else None
        if place is None or not Path(place).exists():
            raise InputError(f"model '{name}': its training images are not found here "
                             f"({place or 'the sidecar names none'}); give the labelled images to calibrate it on")
    store = open_store(place)
    labelled, wanted = store.training_ids(), set(only or [])
    named = [i for i in labelled if i in wanted]  # none here: another data set, all of it
    ids = named or labelled

    def read(image_id):
        volume = store.open_image(image_id)
        return image_id, volume, store.label(image_id, volume)

    report(f"{name}: choosing how it is used on {len(ids)} of {'its validation cases' if named else 'the labelled images'} "
           f"in {place}", 0.0)
    model, card = load_checkpoint(entry.sidecar, choose_device())
    chosen, text = calibrate(model, card, ids, read, progress)
    if text and entry.bundled:
        return f"{text}; {_copy_of_bundled(registry, entry, chosen)}"
    if text:
        save_card(chosen, entry.sidecar)
    return text


def _copy_of_bundled(registry, entry, chosen: ModelCard) -> str:
    """Install ``chosen`` (the calibrated card of the bundled ``entry``) with a copy of its
    weights in the user models folder, chosen for its method where the bundled model was
    the one answering; says what was done."""
    import shutil

    from annotator.io.atomic import atomic_path
    from annotator.models.checkpoint import save_card, weights_path

    name = entry.card.name + COPY_SUFFIX
    was_used = (registry.preferred(entry.card.method, entry.card.modality) or entry).card.name == entry.card.name
    sidecar = registry.folders[-1] / f"{name}.json"
    with atomic_path(weights_path(sidecar)) as tmp:  # the same bytes: the card's hash holds
        shutil.copyfile(weights_path(entry.sidecar), tmp)
    save_card(replace(chosen, name=name), sidecar)
    if was_used:
        registry.choose(name)
    return (f"kept in a copy, '{name}' ({sidecar}), the bundled model as shipped"
            + (f"; '{name}' now answers in its place" if was_used else ""))
