"""Clicks answered by a network (DeepGrow 3D, DeepEdit): the active model, one session per image."""

from __future__ import annotations

from collections import OrderedDict

from annotator.engine.device import choose_device
from annotator.engine.region import Result
from annotator.engine.session import ClickSession
from annotator.errors import ModelError
from annotator.io.volume import Volume
from annotator.models.registry import ModelRegistry


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
        return bool(self.registry.find(self.method, volume.modality))

    def session(self, volume: Volume) -> ClickSession:
        key = id(volume)
        if key in self._sessions and self._sessions[key].volume is volume:
            self._sessions.move_to_end(key)
            return self._sessions[key]
        active = self.registry.active(self.method)
        if active is None:
            entries = self.registry.find(self.method, volume.modality) or self.registry.find(self.method)
            if not entries:
                raise ModelError(f"no {self.method} model installed (train one, or use graphcut)")
            self.registry.activate(entries[-1].card.name, choose_device())
            active = self.registry.active(self.method)
        model, card = active
        session = ClickSession(volume, model, card, next(model.parameters()).device)
        self._sessions[key] = session
        while len(self._sessions) > self.keep:
            self._sessions.popitem(last=False)
        return session

    def __call__(self, volume: Volume, fg, bg=(), previous=None, value: int = 1) -> Result:
        return self.session(volume).click(list(fg), list(bg), previous=previous, value=value)
