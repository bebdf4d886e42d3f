"""How unsure a network is about an image: its automatic prediction repeated under small
changes, and how much the repeats disagree around the predicted structures.

The tries below were measured with the DeepEdit starter of that time (0.5 M parameters,
trained on 2 CPU cores); "the starter's validation cases" are the same 42 cases for the
present one.

Two ways to perturb (each pass's class scores come back on the model grid, undone):

- ``tta``: test-time augmentation: the image shifted by :data:`SHIFT` voxels either way
  along each axis, and two small intensity changes (9 passes). Flips were tried and
  dropped: on the hippocampus they predict the error worse (Spearman 0.2 against 0.75
  for shifts on 40 train cases): a flipped image is anatomy the network never saw. The
  shift was chosen on 90 other train cases (3 voxels: Spearman 0.71 and 0.61 on two
  halves, 2 voxels: 0.75 and 0.47, 1 voxel: 0.75 and 0.47). More passes gained nothing
  that held: on the starter model's 42 validation cases and on 40 train cases each for
  two models trained briefly on 5 others, Spearman 0.54, 0.55, 0.83 for these 9 passes,
  0.50, 0.54, 0.83 with shifts of 1, 2 and 3 voxels (21), 0.57, 0.60, 0.82 with diagonal
  shifts of 2 along each pair of axes in place of the shifts (15), 0.53, 0.58, 0.82 with
  all of them (33). Nor did other measures of the 9 passes on those three sets (against
  0.54, 0.55, 0.83): the entropy, weighed by the contrast as below, 0.57, 0.53, 0.81; a
  soft Dice of the mean probability against the consensus, weighed 0.54, 0.56, 0.82 and
  not 0.46, 0.61, 0.81; the unsure voxels (mean probability 0.2–0.8) per boundary
  voxel, weighed, 0.53, 0.57, 0.84; the worst label's disagreement instead of the
  labels' mean 0.46, 0.61, 0.85; the tta and epistemic scores added 0.56, 0.55, 0.80.
  Nor did the predicted structures' size (on the starter's validation cases alone, tta
  0.54 there): how far their volume lies from the median of the training labels' (log
  ratio over its spread) -0.07, the smallest first 0.19; either added to tta's rank at a
  quarter weight 0.51 and 0.50;
  nor did zoomed passes added to the nine (the image scaled about its centre, the scores
  scaled back): on three such sets (the starter's validation cases; train cases 6-45 and
  51-90 scored by models trained briefly on cases 1-5 and 46-50), 0.57, 0.48, 0.54
  without, 0.61, 0.50, 0.49 with zooms of 0.9 and 1.1, 0.60, 0.53, 0.51 with 0.85 and
  1.15;
- ``epistemic``: Monte-Carlo dropout: the same input through the network with dropout
  active. A network trained with dropout layers uses them; one trained without has
  channel dropout applied to the output of each of its blocks but the last.

Per label, the repeats are compared where the label is predicted by any pass, grown by
:data:`MARGIN` voxels (the structure and its surroundings, never the whole volume, so
large and small structures and mostly empty volumes compare fairly). Two aggregates:
``disagreement`` (1 − the mean Dice of each pass against the consensus: the Dice a
repeat is expected to lose) and ``entropy`` (the mean binary entropy of the averaged
probability there).

The score also asks the image, not only the network, two things per label. How distinct
the predicted label is from what surrounds it (:func:`contrast`: the difference of the
mean intensity inside it and in a shell around it, in units of the shell's spread): a
network can be steady and still wrong where a structure fades into its neighbours. And
where the image puts the label's boundary (:func:`boundary_disagreement`: a GraphCut seeded
by the prediction's inside and a ring around it, against the prediction): a prediction
the image's edges do not bear out is the likelier error (one cut per label, about 0.05 s
on a hippocampus crop; seeds eroded by one voxel and a ring at two did worse). A label's
score is ``r / (1 + r)`` with ``r = a ** p * boundary / contrast ** q`` (``a`` its
aggregate): it grows with the network's unsteadiness, with the image's disagreement and
with a fainter boundary, and stays below 1. A label no pass predicts scores 1 (the
network finds nothing: the image most needs a person). The image's score is the same of
the labels' mean ``r``.

The powers ``(p, q)`` are the model's own where its training chose them on its
validation cases (:mod:`annotator.active.calibration`; the sidecar's ``uncertainty``),
else :data:`POWERS`. Which ones rank the errors best depends on the model: one still
learning is unsteady wherever it goes wrong, a good one goes wrong where a boundary is
faint. The default was chosen on two sets of train cases, never on the test cases: the
starter's 42 validation cases, and 40 train cases scored by a model trained for 3
minutes on 5 others (its mean Dice 0.77). Spearman against 1 − Dice, tta then epistemic,
the mean over both sets: ``(1, 1/2)`` 0.567 and 0.568, ``(1/2, 1/2)`` 0.562 and 0.561,
``(1, 1)`` 0.545 and 0.530, ``(1, 0)`` (no contrast) 0.518 and 0.525.

Tried before, on the same sets (tta, then epistemic): the aggregate bounded first and
weighed against the contrast of all the structures together, ``a / (a + contrast ** w)``,
then times the boundary disagreement: the starter's cases 0.30, 0.42, 0.45, 0.48, 0.46
for ``w`` 0, 1/4, 1/2, 1, 2 (epistemic 0.38, 0.50, 0.50, 0.48, 0.46), the brief model's
0.74, 0.69, 0.62, 0.55, 0.48 (0.68, 0.64, 0.60, 0.53, 0.44); each label's own contrast
ranks the starter's errors better (``(1/4, 1/2)`` 0.54 and 0.56 against the best power of
the whole structures' 0.48 and 0.50). The boundary factor, chosen on an earlier starter's
cases and an earlier brief model's, tta and epistemic: 0.54 and 0.52 without it, 0.56
and 0.49 with it; 0.45 and 0.45 without, 0.48 and 0.47 with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from annotator.io.volume import Volume

#: voxels of surroundings around a predicted label
MARGIN = 2
#: the shell around the predicted structures that :func:`contrast` compares them with:
#: from this many voxels outside them ...
SHELL = (1, 3)  # ... to this many
#: the seeds of :func:`boundary_disagreement`: the prediction eroded by this many voxels, and
#: a ring this many voxels outside it
SEEDS = (2, 3)
#: how a label's score weighs the repeats' unsteadiness and the structure's contrast, unless
#: the model's sidecar says otherwise (:func:`powers_of`): the aggregate to the first power,
#: over the contrast to the second
POWERS = (1.0, 0.5)
#: the smallest contrast a score divides by (a structure no brighter or darker than its
#: surroundings)
MIN_CONTRAST = 0.01
#: voxels the tta passes shift the image by, and their intensity changes (scale, offset)
#: on the normalised image
SHIFT = 3
_INTENSITY = ((1.1, 0.1), (0.9, -0.1))


@dataclass
class Uncertainty:
    """One image's uncertainty under one kind of perturbation."""

    score: float
    per_label: dict[str, float]
    aggregates: dict[str, float] = field(default_factory=dict)  # the image's mean of each aggregate


def _tta_passes(image) -> Iterator[tuple]:
    """(changed image, how to undo it on class scores) for each tta pass."""
    yield image, lambda s: s
    for axis in range(3):
        for step in (-SHIFT, SHIFT):
            yield image.roll(step, axis), lambda s, d=step, a=axis: s.roll(-d, a + 1)
    for scale, offset in _INTENSITY:
        yield image * scale + offset, lambda s: s


@contextlib.contextmanager
def mc_dropout(model, p: float = 0.1):
    """Dropout active in ``model`` during inference: its own dropout layers when it has
    any, else channel dropout after each block but the last."""
    import torch
    import torch.nn.functional as F

    own = [m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0]
    hooks = []
    if own:
        for m in own:
            m.train()
    else:
        from monai.networks.blocks import Convolution

        blocks = [m for m in model.modules() if isinstance(m, Convolution)]

        def drop(_module, _inputs, output):
            return F.dropout3d(output, p, training=True) if output.dim() == 5 else F.dropout2d(output, p, True)

        hooks = [m.register_forward_hook(drop) for m in blocks[:-1]]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
        for m in own:
            m.eval()


def _passes(session, kind: str, n: int, seed: int):
    """Class scores (C, *model grid) of each pass."""
    import torch

    image = session.image()
    if kind == "tta":
        for changed, undo in _tta_passes(image):
            yield undo(session.automatic_scores(changed))
    elif kind == "epistemic":
        torch.manual_seed(seed)
        with mc_dropout(session.model):
            for _ in range(n):
                yield session.automatic_scores()
    else:
        raise ValueError(f"unknown perturbation {kind!r}")


@dataclass
class Measured:
    """What the repeats and the image say about one image, before it is weighed: per
    label, its raw aggregates, how far the image's boundary lies from the prediction
    (:func:`boundary_disagreement`) and how distinct the predicted label is from its
    surroundings (:func:`contrast`)."""

    per_label: dict[str, tuple[dict[str, float], float, float]]


def measure(session, kind: str, n: int = 8, seed: int = 0) -> Measured:
    """The repeats of ``session``'s network on its image (``kind``: tta or epistemic;
    ``n``: passes of epistemic; tta has a fixed set), measured."""
    import torch

    total, labels = None, []
    image = session.image()
    for scores in _passes(session, kind, n, seed):
        probs = torch.softmax(scores, dim=0)
        total = probs if total is None else total + probs
        labels.append(probs.argmax(dim=0).to(torch.uint8).cpu().numpy())
    mean = (total / len(labels)).cpu().numpy()
    consensus = mean.argmax(axis=0)
    names = {int(v): name for name, v in session.card.foreground.items()}
    values = session.class_values()
    pixels = image.cpu().numpy()
    grid = Volume(pixels, tuple(float(s) for s in reversed(session.model_spacing)), (0.0, 0.0, 0.0),
                  (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    per_label = {}
    for cls in range(1, mean.shape[0]):
        name = names.get(int(values[cls]), f"label {values[cls]}")
        per_label[name] = (_aggregates([lab == cls for lab in labels], consensus == cls, mean[cls]),
                           boundary_disagreement(grid, consensus, cls), contrast(pixels, consensus == cls))
    return Measured(per_label)


def weighed(measured: Measured, powers: tuple[float, float] = POWERS, aggregate: str = "disagreement") -> Uncertainty:
    """The image's uncertainty from its measurements: per label, ``r`` = its aggregate to
    the power ``powers[0]``, times its boundary disagreement, over its contrast to the
    power ``powers[1]``, shown as ``r / (1 + r)``; the image's score is the same of the
    labels' mean ``r`` (1 where a label is predicted by no repeat)."""
    ratios = {name: _ratios(raw, image_says, distinct, powers)
              for name, (raw, image_says, distinct) in measured.per_label.items()}
    per_label = {name: {k: _bounded(v) for k, v in r.items()} for name, r in ratios.items()}
    aggregates = {a: _bounded(float(np.mean([r[a] for r in ratios.values()]))) if ratios else 0.0
                  for a in ("disagreement", "entropy")}
    return Uncertainty(aggregates[aggregate], {k: v[aggregate] for k, v in per_label.items()}, aggregates)


def powers_of(card, kind: str) -> tuple[float, float]:
    """The powers of ``kind``'s scores of ``card``'s model: the ones chosen on its own
    validation cases when training did (:mod:`annotator.active.calibration`), else
    :data:`POWERS`."""
    chosen = card.powers.get(kind)
    return (float(chosen["unsteadiness"]), float(chosen["contrast"])) if chosen else POWERS


def uncertainty(session, kind: str, n: int = 8, seed: int = 0, aggregate: str = "disagreement") -> Uncertainty:
    """The uncertainty of ``session``'s network on its image (``kind``: tta or epistemic;
    ``n``: passes of epistemic; tta has a fixed set)."""
    return weighed(measure(session, kind, n, seed), powers_of(session.card, kind), aggregate)


def boundary_disagreement(grid: Volume, consensus: np.ndarray, cls: int) -> float:
    """Where the image puts label ``cls``'s boundary, against where the network puts it:
    1 − the Dice of the predicted label and a GraphCut that is given the prediction's
    inside (eroded by :data:`SEEDS` [0] voxels) as foreground, and a ring :data:`SEEDS` [1]
    voxels outside all predicted structures, and the other labels' insides, as background.
    1 for a label not predicted."""
    from annotator.engine.interactive import BACKGROUND, FOREGROUND, segment_scribbles
    from annotator.engine.metrics import dice

    predicted = consensus == cls
    if not predicted.any():
        return 1.0
    inner, ring = SEEDS
    strokes = np.zeros(consensus.shape, np.uint8)
    near = ndimage.binary_dilation(consensus > 0, iterations=ring)
    strokes[ndimage.binary_dilation(near) & ~near] = BACKGROUND
    strokes[ndimage.binary_erosion((consensus > 0) & ~predicted, iterations=inner)] = BACKGROUND
    core = ndimage.binary_erosion(predicted, iterations=inner)
    strokes[core if core.any() else predicted] = FOREGROUND
    cut = segment_scribbles(grid, strokes).label > 0
    return 1.0 - dice(cut, predicted)


def contrast(image: np.ndarray, structures: np.ndarray) -> float:
    """How distinct ``structures`` (a mask) are from their surroundings in ``image``: the
    difference between the mean inside them (eroded by a voxel, when anything is left)
    and the mean in a shell :data:`SHELL` voxels outside them, over the shell's standard
    deviation. 0 when there is no structure or no shell."""
    if not structures.any():
        return 0.0
    near = ndimage.binary_dilation(structures, iterations=SHELL[0])
    shell = ndimage.binary_dilation(near, iterations=SHELL[1] - SHELL[0]) & ~near
    if not shell.any():
        return 0.0
    core = ndimage.binary_erosion(structures)
    core = core if core.any() else structures
    return float(abs(image[core].mean() - image[shell].mean()) / (image[shell].std() + 1e-6))


def _aggregates(masks: list[np.ndarray], consensus: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """Each aggregate of one label's repeats (``masks``) around it; empty for a label no
    repeat predicts."""
    union = np.logical_or.reduce(masks)
    if not union.any():
        return {}
    region = ndimage.binary_dilation(union, iterations=MARGIN)
    p = np.clip(probability[region], 1e-6, 1 - 1e-6)
    entropy = float(np.mean(-(p * np.log2(p) + (1 - p) * np.log2(1 - p))))
    c = consensus.sum()
    dices = [2 * np.logical_and(m, consensus).sum() / max(m.sum() + c, 1) for m in masks]
    return {"disagreement": float(1 - np.mean(dices)), "entropy": entropy}


def _ratios(raw: dict[str, float], image_says: float, distinct: float,
            powers: tuple[float, float]) -> dict[str, float]:
    """A label's aggregates ``raw`` weighed by its boundary disagreement ``image_says`` and
    against its contrast ``distinct`` (a label no repeat predicts, ``raw`` empty: infinite)."""
    if not raw:
        return {"disagreement": np.inf, "entropy": np.inf}
    faint = max(distinct, MIN_CONTRAST) ** powers[1]
    return {k: v ** powers[0] * image_says / faint for k, v in raw.items()}


def _bounded(ratio: float) -> float:
    """``ratio / (1 + ratio)``: from 0 to 1 in the ratio's order (infinite: 1)."""
    return 1.0 if np.isinf(ratio) else float(ratio / (1.0 + ratio))
