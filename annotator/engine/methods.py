"""The segmentation methods the GUI and CLI can choose from, by name."""

from __future__ import annotations

from annotator.engine.deep import DeepClicks
from annotator.engine.interactive import segment_clicks, segment_scribbles
from annotator.errors import InputError
from annotator.io.volume import Volume

#: Methods answering foreground/background clicks.
CLICK_METHODS = {"graphcut": segment_clicks, "deepedit": DeepClicks("deepedit"),
                 "deepgrow3d": DeepClicks("deepgrow3d"), "deepgrow2d": DeepClicks("deepgrow2d")}
#: Methods answering scribbles.
SCRIBBLE_METHODS = {"graphcut": segment_scribbles}
#: What each method needs and what it works on, in a few words (shown beside its name).
DESCRIPTIONS = {
    "graphcut": "no model needed: any CT or MR, clicks and scribbles",
    "deepedit": "network: needs a DeepEdit model for the modality",
    "deepgrow3d": "network: needs a DeepGrow 3D model for the modality",
    "deepgrow2d": "network: needs a DeepGrow 2D model for the modality",
}
#: Preference when choosing automatically: a network for the image's modality, else GraphCut.
_PREFERENCE = ("deepedit", "deepgrow3d", "deepgrow2d")


def choose_click_method(volume: Volume, requested: str = "auto") -> str:
    """The method to answer clicks on ``volume``: ``requested``, or the best available."""
    if requested == "auto":
        return next((m for m in _PREFERENCE if CLICK_METHODS[m].available(volume)), "graphcut")
    if requested not in CLICK_METHODS:
        raise InputError(f"unknown method '{requested}' (available: {', '.join(CLICK_METHODS)})")
    return requested
