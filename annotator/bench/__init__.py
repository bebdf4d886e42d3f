"""Benchmarks, each `annotator bench NAME` (conventions: JSON + markdown, --quick)."""

from annotator.bench import app, graphcut

#: name -> module with ``add_arguments(parser)`` and ``run(args) -> report dict``
BENCHMARKS = {"app": app, "graphcut": graphcut}
