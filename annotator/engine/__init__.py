"""Inference: GraphCut from scribbles and clicks, and networks, behind one method registry."""

from annotator.engine.interactive import GraphCutParams, segment_clicks, segment_scribbles
from annotator.engine.methods import METHODS, Method, choose, methods_for
from annotator.engine.region import Result

__all__ = ["GraphCutParams", "METHODS", "Method", "Result", "choose", "methods_for", "segment_clicks",
           "segment_scribbles"]
