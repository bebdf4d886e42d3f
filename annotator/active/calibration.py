"""How much a model's scores should trust its own unsteadiness, chosen on its validation
cases.

A label's score weighs how much the repeats disagree against how faintly the structure
stands out (:func:`annotator.active.uncertainty.weighed`, the contrast to a power). Which
power predicts the error best depends on the model, not only on the images: on the
hippocampus, a model still learning (mean Dice 0.77) is unsteady wherever it goes wrong,
and its errors are ranked best with a small power (Spearman against 1 − Dice on 40 train
cases: 0.69 with 1/4, 0.55 with 1, 0.48 with 2); the starter (0.87) is steady and goes
wrong where a boundary is faint (its 42 validation cases: 0.42, 0.48 and 0.46). So a
DeepEdit run with enough validation cases scores them once with each strategy's repeats,
measures Spearman's correlation between each power's score and 1 − Dice of the
automatic answer, and keeps the best power per strategy in the model's sidecar
(``uncertainty``); a model with fewer validation cases, or none calibrated (a model from
elsewhere), scores with the default power. The repeats are run once per case; only the
weighing is repeated per power.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from annotator.active.strategies import EPISTEMIC_PASSES
from annotator.active.uncertainty import WEIGHT, Measured, measure, weighed

#: the powers of the contrast tried
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)
#: fewer validation cases than this rank too loosely to choose by (with 20 cases, a
#: correlation of 0.3 arises by chance about one time in ten): the default stays
MIN_CASES = 20
#: at most this many validation cases are scored (the first ones; a minute or two on a CPU)
MAX_CASES = 50
KINDS = ("tta", "epistemic")


def choose(measured: dict[str, list[Measured]], errors: list[float]) -> dict:
    """The sidecar's ``uncertainty``: per strategy, the power whose scores of the
    ``measured`` cases rank ``errors`` (1 − Dice) best, and each power's Spearman. A tie
    keeps the default; with fewer than :data:`MIN_CASES` cases, or errors all alike,
    nothing is chosen (empty)."""
    from scipy.stats import spearmanr

    if len(errors) < MIN_CASES or np.ptp(errors) == 0:
        return {}
    found: dict = {"contrast_weight": {}, "spearman": {}, "cases": len(errors)}
    for kind, cases in measured.items():
        rhos = {}
        for weight in WEIGHTS:
            scores = [weighed(m, weight).score for m in cases]
            rho = spearmanr(scores, errors).correlation
            rhos[weight] = -1.0 if np.isnan(rho) else float(rho)
        best = max(rhos, key=lambda w: (round(rhos[w], 6), w == WEIGHT))
        found["contrast_weight"][kind] = best
        found["spearman"][kind] = {str(w): round(r, 4) for w, r in rhos.items()}
    return found


def calibrate(model, card, cases: Sequence, read: Callable[[object], tuple[str, object, np.ndarray]],
              progress: Callable[[str, float], None] | None = None, seed: int = 0) -> dict:
    """:func:`choose` on the first :data:`MAX_CASES` of ``cases``, each read when its turn
    comes (``read(case)``: its id, volume and label on the volume's grid; one image in
    memory at a time), scored by ``model`` (a DeepEdit network and its card).
    ``progress(text, fraction)`` may raise to stop."""
    from annotator.engine.deep import new_session
    from annotator.engine.metrics import dice_per_label

    report = progress or (lambda text, fraction: None)
    cases = list(cases)[:MAX_CASES]
    if len(cases) < MIN_CASES:
        return {}
    measured: dict[str, list[Measured]] = {kind: [] for kind in KINDS}
    errors = []
    values = sorted(card.foreground.values())
    for position, case in enumerate(cases):
        case_id, volume, label = read(case)
        report(f"scoring validation case {case_id} ({position + 1} of {len(cases)})", position / len(cases))
        session = new_session(volume, model, card)
        dice = dice_per_label(session.automatic().label, label, values)
        errors.append(1.0 - float(np.mean(list(dice.values()))))
        for kind in KINDS:
            measured[kind].append(measure(session, kind, EPISTEMIC_PASSES, seed))
    return choose(measured, errors)
