"""``python -m annotator.training CONFIG.json``: run one training job, JSON-lines events on stdout."""

import sys

from annotator.training.config import TrainConfig
from annotator.training.events import EventWriter
from annotator.training.job import run


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m annotator.training CONFIG.json", file=sys.stderr)
        return 2
    try:
        config = TrainConfig.load(argv[0])
    except Exception as exc:  # reported as an event, so the parent can show it
        EventWriter(None)("error", message=str(exc))
        return 2
    config.run_dir.mkdir(parents=True, exist_ok=True)
    emit = EventWriter(config.run_dir / "events.jsonl")
    try:
        return run(config, emit)
    except Exception as exc:
        emit("error", message=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        emit.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
