"""Loading torch and MONAI (seconds on a CPU) once, from one thread at a time; in the
background while a person looks at an image, so that the first network click does not
wait for it."""

from __future__ import annotations

import sys
import threading

_IMPORTING = threading.Lock()


def import_network_stack() -> None:
    """Import torch and MONAI's networks: at most one thread at a time, since two threads
    importing torch at once can leave it half-initialised."""
    with _IMPORTING:
        _answer_scipy_first()
        import annotator.engine.session  # noqa: F401
        import monai.networks.nets  # noqa: F401 - what annotator.models.networks builds from


def _answer_scipy_first() -> None:
    """scipy (1.15 on) asks, of the type of each array-like it is given, whether it is a
    torch tensor: with torch in ``sys.modules`` it looks ``torch.Tensor`` up, and while
    another thread is still importing torch that fails ("partially initialized module
    'torch' has no attribute 'Tensor'"), and with it whatever called scipy: napari's 3-D
    camera in the main thread, an engine step in a worker. It remembers each type's
    answer: asked here, before torch starts loading, about the types the app hands it
    (lists, tuples, numbers, numpy arrays and scalars), it answers those from memory."""
    if "torch" in sys.modules:
        return
    try:
        from scipy._lib.array_api_compat import is_torch_array
    except ImportError:  # a scipy without the check
        return
    import numpy as np

    scalars = (np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
               np.uint64, np.uint32, np.uint16, np.uint8, np.bool_)
    for value in ([], (), 0.0, 0, True, None, np.zeros(1), np.ma.masked_array(np.zeros(1)),
                  *(t(0) for t in scalars)):
        is_torch_array(value)


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
