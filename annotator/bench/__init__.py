"""Benchmarks, each `annotator bench NAME` (conventions: JSON + markdown, --quick)."""

from annotator.bench import app, click, graphcut, robot, train

#: name -> module with ``add_arguments(parser)`` and ``run(args) -> report dict``
BENCHMARKS = {"app": app, "click": click, "graphcut": graphcut, "robot": robot, "train": train}
