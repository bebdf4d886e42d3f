"""Active learning: which image to label next. Strategies (random, first, MC-dropout
``epistemic``, test-time-augmentation ``tta``) score the unlabeled images of any datastore;
:func:`rank` orders them and keeps the scores in the store for the worklist."""

from annotator.active.ranking import Ranked, Ranking, model_version, rank
from annotator.active.strategies import DEFAULT, STRATEGIES

__all__ = ["DEFAULT", "STRATEGIES", "Ranked", "Ranking", "model_version", "rank"]
