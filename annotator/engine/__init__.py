"""Inference: GraphCut from scribbles and clicks, and networks, behind one method registry.

The names below load on first use: importing one engine module (the undo history, say)
does not load GraphCut, SciPy and the model registry with it.
"""

from __future__ import annotations

import importlib

_WHERE = {"GraphCutParams": "interactive", "segment_clicks": "interactive", "segment_scribbles": "interactive",
          "METHODS": "methods", "Method": "methods", "choose": "methods", "methods_for": "methods",
          "Result": "region"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"annotator.engine.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'annotator.engine' has no attribute '{name}'")
