"""How much a model's scores should trust its own unsteadiness, and how much the image's
contrast, chosen on its validation cases.

A label's score weighs how much the repeats disagree, to one power, against how faintly
the structure stands out, to another (:func:`annotator.active.uncertainty.weighed`). Which
powers predict the error best depends on the model, not only on the images: on the
hippocampus, a model still learning (mean Dice 0.77) is unsteady wherever it goes wrong,
and its errors are ranked best by its unsteadiness alone (Spearman against 1 − Dice on 40
train cases, tta: 0.75 with the powers (1, 0), 0.60 with (1/2, 1/2)); the starter (0.87)
is steady and goes wrong where a boundary is faint (its 42 validation cases: 0.29 and
0.52). So a DeepEdit run with enough validation cases scores them once with each
strategy's repeats, measures Spearman's correlation between each pair of powers' scores
and 1 − Dice of the automatic answer, and keeps the best pair per strategy in the model's
sidecar (``uncertainty``); a model with fewer validation cases, or none calibrated (a
model from elsewhere), scores with the default. The repeats are run once per case; only
the weighing is repeated per pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from annotator.active.strategies import EPISTEMIC_PASSES
from annotator.active.uncertainty import POWERS, Measured, measure, weighed

#: the powers tried: of the repeats' unsteadiness (never 0: the strategy would not
#: matter) and of the contrast
UNSTEADINESS = (0.25, 0.5, 1.0)
CONTRAST = (0.0, 0.5, 1.0, 2.0)
PAIRS = tuple((p, q) for p in UNSTEADINESS for q in CONTRAST)
#: fewer validation cases than this rank too loosely to choose by (with 20 cases, a
#: correlation of 0.3 arises by chance about one time in ten): the default stays
MIN_CASES = 20
#: at most this many validation cases are scored (the first ones; a minute or two on a CPU)
MAX_CASES = 50
KINDS = ("tta", "epistemic")


def choose(measured: dict[str, list[Measured]], errors: list[float]) -> dict:
    """The sidecar's ``uncertainty``: per strategy, the powers whose scores of the
    ``measured`` cases rank ``errors`` (1 − Dice) best (``powers``: {strategy:
    {"unsteadiness", "contrast"}}), and each pair's Spearman (``spearman``: {strategy:
    {"p/q": rho}}). A tie keeps the default; with fewer than :data:`MIN_CASES` cases, or
    errors all alike, nothing is chosen (empty)."""
    from scipy.stats import spearmanr

    if len(errors) < MIN_CASES or np.ptp(errors) == 0:
        return {}
    found: dict = {"powers": {}, "spearman": {}, "cases": len(errors)}
    for kind, cases in measured.items():
        rhos = {}
        for pair in PAIRS:
            rho = spearmanr([weighed(m, pair).score for m in cases], errors).correlation
            rhos[pair] = -1.0 if np.isnan(rho) else float(rho)
        best = max(rhos, key=lambda pair: (round(rhos[pair], 6), pair == POWERS))
        found["powers"][kind] = {"unsteadiness": best[0], "contrast": best[1]}
        found["spearman"][kind] = {f"{p:g}/{q:g}": round(r, 4) for (p, q), r in rhos.items()}
    return found


def read_in_turn(cases: Sequence, read: Callable, report: Callable[[str, float], None],
                 doing: str) -> Iterator[tuple[object, np.ndarray]]:
    """(volume, label) of each of ``cases``, read when its turn comes (``read(case)``: its
    id, volume and label), what is done said to ``report`` ("scoring validation case ID (3
    of 20)"). A case whose label turns out unusable (None: a server's label that cannot
    be used for its image) is passed over: the cases are then fewer."""
    for position, case in enumerate(cases):
        case_id, volume, label = read(case)
        report(f"{doing} validation case {case_id} ({position + 1} of {len(cases)})", position / len(cases))
        if label is not None:
            yield volume, label


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
    for volume, label in read_in_turn(cases, read, report, "scoring"):
        session = new_session(volume, model, card)
        dice = dice_per_label(session.automatic().label, label, values)
        errors.append(1.0 - float(np.mean(list(dice.values()))))
        for kind in KINDS:
            measured[kind].append(measure(session, kind, EPISTEMIC_PASSES, seed))
    return choose(measured, errors)
