"""Clicks answered by a network (DeepGrow 3D, DeepEdit): the active model, one session per image."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

from annotator.engine.device import choose_device
from annotator.engine.loading import import_network_stack
from annotator.engine.region import Result
from annotator.errors import ModelError
from annotator.io.volume import PLANES, Volume, plane_across
from annotator.models.card import ORIENTATION_LETTERS, ModelCard
from annotator.models.registry import ModelRegistry, suits

if TYPE_CHECKING:  # sessions need torch, imported on the first click rather than at startup
    from annotator.engine.session import ClickSession


#: how each note of what may make a network's answers poor ends
POOR = "Results may be poor."


def no_model(method: str) -> str:
    """What is said when no model of ``method`` is installed."""
    return f"no {method} model installed (train one, or use graphcut)"


def modality_note(card: ModelCard, modality: str) -> str | None:
    """A warning when a model meets an image it does not suit (:func:`suits`: one of another
    modality, or a CT model and an image whose values are not Hounsfield units); using it
    is allowed."""
    if suits(card.modality, modality):
        return None
    this = "not in Hounsfield units" if modality == "unknown" else modality
    return f"model '{card.name}' was trained on {card.modality} images; this image is {this}. {POOR}"


def extent_note(card: ModelCard, volume: Volume) -> str | None:
    """A warning when ``volume`` is far larger or smaller than every image ``card``'s model
    was trained on (:meth:`ModelCard.extent_misfit`); using it is allowed."""
    misfit = card.extent_misfit(volume.extent_mm)
    return f"{misfit}. {POOR}" if misfit else None


def plane_note(card: ModelCard, volume: Volume) -> str | None:
    """A warning when a 2-D network trained on slices of one plane (its card's
    ``orientation``: across its first letter) answers an image whose slices (across the
    array's first axis, the one clicked on) lie in another: a sagittal series for a
    network of axial slices. Its slices are still turned the nearest way in their plane."""
    if card.spatial_dims != 2 or not card.orientation:
        return None
    here = plane_across(np.reshape(volume.direction, (3, 3))[:, 2])  # across the first array axis
    trained = PLANES[ORIENTATION_LETTERS[card.orientation[0]][0]]  # across its first axis
    if here == trained:
        return None
    return f"model '{card.name}' was trained on {trained} slices; this image's slices are {here}. {POOR}"


def model_notes(card: ModelCard, volume: Volume) -> str | None:
    """What may make ``card``'s model answer poorly on ``volume``: another modality, an
    image of another size than it was trained on, a 2-D network's slices of another plane."""
    notes = [modality_note(card, volume.modality), extent_note(card, volume), plane_note(card, volume)]
    return "\n".join(n for n in notes if n) or None


def new_session(volume: Volume, model, card: ModelCard) -> ClickSession:
    """A click session of ``volume`` with a loaded network: the one way sessions are made."""
    import_network_stack()
    from annotator.engine.session import ClickSession

    return ClickSession(volume, model, card, next(model.parameters()).device)


def session_for_model(volume: Volume, name: str, registry: ModelRegistry | None = None) -> ClickSession:
    """A click session of ``volume`` with the installed model called ``name``."""
    from annotator.models import load_checkpoint

    entry = (registry or ModelRegistry()).entry(name)
    model, card = load_checkpoint(entry.sidecar, choose_device())
    return new_session(volume, model, card)


class DeepClicks:
    """A click method backed by the registry's active model of ``method``.

    Sessions (the image prepared for the network) are kept for the last few images, so
    going back and forth between two images does not prepare them again.
    """

    def __init__(self, method: str, registry: ModelRegistry | None = None, keep: int = 2):
        self.method = method
        self.registry = registry or ModelRegistry()
        self.keep = keep
        self._sessions: "OrderedDict[int, ClickSession]" = OrderedDict()

    def available(self, volume: Volume) -> bool:
        """Whether "auto" may choose this method for ``volume``: a model is installed for its
        modality, trained on images of about its size (the bundled hippocampus DeepEdit, trained
        on crops of 26 to 58 mm, answered three robot clicks on the liver, spleen, right kidney
        and stomach of the example abdominal MR with Dice 0.01 or less; GraphCut: 0.47 to 0.88)."""
        return any(not e.card.extent_misfit(volume.extent_mm) for e in self.registry.find(self.method, volume.modality))

    def session(self, volume: Volume) -> ClickSession:
        model, card = self.model(volume)  # a newly chosen model drops the old sessions
        key = id(volume)
        if key in self._sessions and self._sessions[key].volume is volume:
            self._sessions.move_to_end(key)
            return self._sessions[key]
        session = new_session(volume, model, card)
        self._sessions[key] = session
        while len(self._sessions) > self.keep:
            self._sessions.popitem(last=False)
        return session

    def prepared(self, volume: Volume) -> bool:
        """Whether ``volume`` already has a prepared session (the next click is a fast one)."""
        session = self._sessions.get(id(volume))
        return session is not None and session.volume is volume and session.prepared

    def warning(self, volume: Volume) -> str | None:
        """What may make the model that would answer poor on ``volume`` (:func:`model_notes`)."""
        entry = self.registry.preferred(self.method, volume.modality, volume.extent_mm)
        return model_notes(entry.card, volume) if entry else None

    def model(self, volume: Volume):
        """(network, card) for ``volume``: the preferred model, loaded when it changed."""
        preferred = self.registry.preferred(self.method, volume.modality, volume.extent_mm)
        if preferred is None:
            raise ModelError(no_model(self.method))
        import_network_stack()
        active = self.registry.active(self.method)
        if active is None or active[1].name != preferred.card.name:
            self.registry.activate(preferred.card.name, choose_device())
            self._sessions.clear()
        return self.registry.active(self.method)

    def __call__(self, volume: Volume, fg, bg=(), previous=None, value: int = 1) -> Result:
        return self.session(volume).click(list(fg), list(bg), previous=previous, value=value)
