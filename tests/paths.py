"""Where the shared test data lives: ../shared/data beside the checkout."""

from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HIPPO = DATA / "msd_task04_hippocampus"
