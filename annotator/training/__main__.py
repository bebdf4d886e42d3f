"""``python -m annotator.training CONFIG.json``: run one training job, JSON-lines events on stdout."""

import json
import os
import signal
import sys

from annotator.training.config import TrainConfig
from annotator.training.events import EventWriter
from annotator.training.job import run


def _stop_with_parent() -> None:
    """Linux: SIGTERM when the parent dies, so the run stops after its iteration and
    writes its last event and checkpoint (the Stop handler) instead of running on blind."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent was gone before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _take_secrets() -> None:
    """The secrets the parent held in its memory alone (a server's password with no
    keyring there), read from standard input when it is a pipe (:class:`TrainingProcess`)."""
    import stat

    from annotator.datastore import secrets

    try:
        if not stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
            return
        held = json.loads(sys.stdin.read() or "{}")
    except (OSError, ValueError, AttributeError):
        return
    if isinstance(held, dict):
        secrets.take_over(held)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m annotator.training CONFIG.json", file=sys.stderr)
        return 2
    _take_secrets()
    try:
        config = TrainConfig.load(argv[0])
    except Exception as exc:  # reported as an event, so the parent can show it
        EventWriter(None)("error", message=str(exc))
        return 2
    config.run_dir.mkdir(parents=True, exist_ok=True)
    emit = EventWriter(config.run_dir / "events.jsonl")
    _stop_with_parent()
    try:
        return run(config, emit)
    except Exception as exc:
        emit("error", message=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        emit.close()


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # everything is written and flushed: skip the slow interpreter teardown (torch, MONAI),
    # so a cancelled run ends right after its last event
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
