"""Inference: GraphCut from scribbles and clicks (networks join the same registry)."""

from annotator.engine.interactive import GraphCutParams, segment_clicks, segment_scribbles
from annotator.engine.methods import CLICK_METHODS, SCRIBBLE_METHODS, choose_click_method
from annotator.engine.region import Result

__all__ = [
    "CLICK_METHODS", "SCRIBBLE_METHODS", "GraphCutParams", "Result", "choose_click_method",
    "segment_clicks", "segment_scribbles",
]
