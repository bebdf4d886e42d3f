"""Loading torch and MONAI (seconds on a CPU) once, from one thread at a time; in the
background while a person looks at an image, so that the first network click does not
wait for it."""

from __future__ import annotations

import threading

_IMPORTING = threading.Lock()


def import_network_stack() -> None:
    """Import torch and MONAI's networks: at most one thread at a time, since two threads
    importing torch at once can leave it half-initialised."""
    with _IMPORTING:
        import annotator.engine.session  # noqa: F401
        import monai.networks.nets  # noqa: F401 - what annotator.models.networks builds from


_BACKGROUND: list[threading.Thread] = []


def warm_up() -> None:
    """Start :func:`import_network_stack` in a background thread (once per process)."""
    if not _BACKGROUND:
        # not a daemon: Python waits for it at exit (torch cut off mid-import crashes)
        _BACKGROUND.append(threading.Thread(target=import_network_stack, name="annotator-warm-up", daemon=False))
        _BACKGROUND[0].start()


def finish_warm_up() -> None:
    """Wait for the background import to end. Called when a window closes: an import that
    goes on while Qt tears the window down can crash the interpreter at exit."""
    for thread in _BACKGROUND:
        thread.join()
