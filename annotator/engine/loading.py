"""Loading torch and MONAI (seconds on a CPU) once, from one thread at a time."""

from __future__ import annotations

import threading

_IMPORTING = threading.Lock()


def import_network_stack() -> None:
    """Import torch and MONAI's networks: at most one thread at a time, since two threads
    importing torch at once can leave it half-initialised."""
    with _IMPORTING:
        import annotator.engine.session  # noqa: F401
        import monai.networks.nets  # noqa: F401 - what annotator.models.networks builds from
