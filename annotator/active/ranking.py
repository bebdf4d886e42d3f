"""Rank the unlabeled images of any datastore by a strategy.

Scores are kept with each image in the store (``info["active"][strategy]``, with the
model they came from: its name and weights checksum, the version of the scoring,
:data:`SCORING`, and the image's modality and extent), so a ranking asks the network
again only for images it has not scored with the current model: a new active model, or a
new way of scoring, makes every cached score stale. A score that is still current is
taken without opening its image (its modality and extent say which model would score it,
and whether one may). The worklist's score column is the store's score, written as each
image is scored. An image that cannot be opened is skipped with its reason; the rest are
ranked. An image whose modality no installed model knows is skipped too (an MR model's
uncertainty on a CT says nothing; a server's series whose listing says so is skipped
without being downloaded), as is one far larger or smaller than the images the
model was trained on (:meth:`annotator.models.card.ModelCard.extent_misfit`), and its
modality and size kept, so that the next ranking skips it without reading it again
(until a model for it is installed); when that leaves nothing to rank, the ranking fails
with that reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from annotator.active.strategies import Score, check, model_score, needs_model, plain_score
from annotator.datastore import Datastore, Status
from annotator.errors import AnnotatorError, DatastoreError, ModelError
from annotator.words import count


@dataclass
class Ranked:
    id: str
    score: float
    strategy: str
    per_label: dict[str, float] = field(default_factory=dict)
    cached: bool = False

    def to_json(self) -> dict:
        return {"id": self.id, "score": self.score, "strategy": self.strategy}


@dataclass
class Ranking:
    ranked: list[Ranked]  # highest score first
    skipped: dict[str, str]  # image id -> why
    seconds_per_image: float = 0.0  # scoring cost of the images scored now (not cached)


#: the version of how model-based scores are computed (2: weighed against the
#: structures' contrast; 3: against each label's, to the model's powers); a cached score of
#: another version is computed again
SCORING = 3


def model_version(card) -> str:
    """The model and how its scores are weighed (a model calibrated again scores again)."""
    how = "".join(f"/{k}={v['unsteadiness']:g},{v['contrast']:g}" for k, v in sorted(card.powers.items()))
    return f"{card.name}@{(card.weights_sha256 or card.version or 'unknown')[:16]}{how}"


def rank(store: Datastore, strategy: str, progress: Callable[[str, float], None] | None = None,
         seed: int = 0, method: str = "deepedit") -> Ranking:
    """Score the store's images that are not labeled, highest first. ``progress(text,
    fraction)`` may raise to cancel (the scores so far stay in the store)."""
    check(strategy)
    report = progress or (lambda text, fraction: None)
    records = [r for r in store.records() if r.status != Status.LABELED]
    clicks = None
    if needs_model(strategy):
        from annotator.engine.deep import DeepClicks

        clicks = DeepClicks(method)
    ranked, skipped, spent, scored_now, no_model = [], {}, 0.0, 0, []
    for position, record in enumerate(records):
        report(f"scoring {record.name} ({position + 1} of {len(records)}, {strategy})", position / max(len(records), 1))
        cached = record.info.get("active", {}).get(strategy, {}) if isinstance(record.info.get("active"), dict) else {}
        try:
            if clicks is None:
                found, origin, was_cached = plain_score(strategy, record.id, position, seed), {}, False
            else:
                found, origin, was_cached, seconds = _scored(store, record, strategy, clicks, cached, seed)
                if not was_cached:
                    spent += seconds
                    scored_now += 1
        except (AnnotatorError, OSError, ValueError, RuntimeError) as exc:
            if isinstance(exc, ModelError):  # no model may score it: an earlier score goes too
                no_model.append(str(exc))
                if record.score is not None:
                    _write(lambda: store.set_scores({record.id: None}))
            skipped[record.id] = str(exc)
            report(f"skipped {record.name}: {exc}", (position + 1) / max(len(records), 1))
            continue
        ranked.append(Ranked(record.id, found.score, strategy, found.per_label, was_cached))
        _keep(store, record, strategy, found, origin)
    if not ranked and no_model:
        raise ModelError(no_model[0])  # nothing could be scored: one clear reason
    report(f"{count(len(ranked), 'image')} ranked by {strategy}", 1.0)
    ranked.sort(key=lambda r: -r.score)
    return Ranking(ranked, skipped, spent / scored_now if scored_now else 0.0)


def _current(cached: dict, version: str) -> Score | None:
    """The cached score if ``version`` of the model made it with today's scoring."""
    if (cached.get("model") == version and cached.get("scoring") == SCORING
            and isinstance(cached.get("score"), (int, float))):
        return Score(float(cached["score"]), dict(cached.get("per_label", {})))
    return None


def _scored(store, record, strategy, clicks, cached, seed) -> tuple[Score, dict, bool, float]:
    """(score, where it came from: model version, image modality and extent, whether it came
    from the cache, seconds spent) of one image."""
    modality, extent = cached.get("modality"), cached.get("extent_mm")
    listed = record.info.get("modality")  # a server's list says it: no download to find a misfit
    if not isinstance(extent, list) and isinstance(listed, str) and listed:
        entry = clicks.registry.preferred(clicks.method, listed)
        if entry:
            _check_fit(store, record, strategy, entry.card, {"modality": listed})
    if isinstance(modality, str) and isinstance(extent, list):  # which model would score it is known
        seen = {"modality": modality, "extent_mm": extent}
        entry = clicks.registry.preferred(clicks.method, modality, extent)
        if entry:
            _check_fit(store, record, strategy, entry.card, seen)
        found = _current(cached, model_version(entry.card)) if entry else None
        if found:
            return found, {"model": cached["model"], **seen}, True, 0.0
    volume = store.open_image(record.id)
    session = clicks.session(volume)
    seen = {"modality": volume.modality, "extent_mm": [round(v, 1) for v in volume.extent_mm]}
    _check_fit(store, record, strategy, session.card, seen)
    origin = {"model": model_version(session.card), **seen}
    found = _current(cached, origin["model"])
    if found:
        return found, origin, True, 0.0
    start = time.perf_counter()
    found = model_score(strategy, session, seed)
    return found, origin, False, time.perf_counter() - start


def _check_fit(store, record, strategy: str, card, seen: dict) -> None:
    """Refuse an image ``card``'s model says nothing useful about, keeping why in its cache
    entry with its modality and extent (``seen``; the worklist shows why)."""
    why = _misfit(card, seen["modality"], seen.get("extent_mm"))
    if why:
        _keep_entry(store, record, strategy, {**seen, "scoring": SCORING, "skipped": why})
        raise ModelError(why)


def _misfit(card, modality: str, extent_mm) -> str | None:
    """Why ``card``'s model says nothing useful about an image: of another modality, or of
    a size far from those it was trained on (a model of hippocampus crops finds look-alikes
    all over a whole head; ``extent_mm`` None: not known yet); None when it may score it."""
    from annotator.engine.deep import modality_note

    if modality_note(card, modality):
        these = "images not in Hounsfield units" if modality == "unknown" else f"{modality} images"
        return (f"no {card.method} model for {these} (the installed '{card.name}' is for "
                f"{card.modality}); rank by random or first")
    misfit = card.extent_misfit(extent_mm) if extent_mm is not None else None
    if misfit:
        return f"no {card.method} model for images of this size: {misfit}; rank by random or first"
    return None


def _keep(store: Datastore, record, strategy: str, found: Score, origin: dict) -> None:
    """The score into the store (worklist column) and its cache entry."""
    entry = {"score": found.score, "per_label": found.per_label, **origin, "scoring": SCORING}
    if _keep_entry(store, record, strategy, entry) or record.score != found.score:
        _write(lambda: store.set_scores({record.id: found.score}))


def _keep_entry(store: Datastore, record, strategy: str, entry: dict) -> bool:
    """``entry`` as the image's cache entry of ``strategy``; whether it changed."""
    active = dict(record.info.get("active", {})) if isinstance(record.info.get("active"), dict) else {}
    if active.get(strategy) == entry:
        return False  # a current cached entry: nothing to write
    active[strategy] = entry
    _write(lambda: store.set_info(record.id, active=active))
    return True


def _write(change: Callable[[], None]) -> None:
    """A store that cannot be written (read-only media) just does not keep it."""
    try:
        change()
    except DatastoreError:
        pass
