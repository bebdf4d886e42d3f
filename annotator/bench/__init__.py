"""Benchmarks, each `annotator bench NAME` (conventions: JSON + markdown, --quick).

Their options live in :mod:`annotator.bench.options`; a benchmark's module is imported
only when it runs (:func:`module`)."""

from __future__ import annotations

import importlib
from types import ModuleType

from annotator.bench.options import BENCHMARKS


def module(name: str) -> ModuleType:
    """The module that runs benchmark ``name`` (``run(args) -> report dict``)."""
    return importlib.import_module(BENCHMARKS[name][0])
