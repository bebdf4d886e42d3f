"""Benchmarks, each `annotator bench NAME` (conventions: JSON + markdown, --quick)."""

from annotator.bench import graphcut

#: name -> module with ``add_arguments(parser)`` and ``run(args) -> report dict``
BENCHMARKS = {"graphcut": graphcut}
