"""The segmentation methods the GUI and CLI can choose from, by name."""

from __future__ import annotations

from annotator.engine.interactive import segment_clicks, segment_scribbles
from annotator.errors import InputError
from annotator.io.volume import Volume

#: Methods answering foreground/background clicks (best first).
CLICK_METHODS = {"graphcut": segment_clicks}
#: Methods answering scribbles.
SCRIBBLE_METHODS = {"graphcut": segment_scribbles}


def choose_click_method(volume: Volume, requested: str = "auto") -> str:
    """The method to answer clicks on ``volume``: ``requested``, or the best available."""
    if requested == "auto":
        return next(iter(CLICK_METHODS))
    if requested not in CLICK_METHODS:
        raise InputError(f"unknown method '{requested}' (available: {', '.join(CLICK_METHODS)})")
    return requested
