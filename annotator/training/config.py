"""What a training job does: a JSON file the child process reads."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from platformdirs import user_data_dir

from annotator.errors import InputError, ModelError
from annotator.models.card import METHODS, check_name, modality_code


def runs_dir() -> Path:
    """Where training runs keep their checkpoints and event logs."""
    return Path(user_data_dir("annotator")) / "runs"


#: the least each whole number of a run may be (0: the planner or the epochs decide)
WHOLE_NUMBERS = {"epochs": 1, "max_iterations": 0, "batch_size": 0, "val_every": 1, "max_click_iterations": 0,
                 "seed": 0}
#: the range of each other number (max_minutes 0: no time limit)
RANGES = {"max_minutes": (0.0, 1e6), "val_fraction": (0.0, 0.99), "cache_rate": (0.0, 1.0),
          "click_weight": (0.0, 1e3)}


def _said(name: str) -> str:
    """A setting as the command line names it (``--val-every``; the config file's key
    differs by its underscores)."""
    return {"max_iterations": "iterations", "target_spacing": "spacing"}.get(name, name).replace("_", "-")


@dataclass
class TrainConfig:
    """A training run. ``data``: datastore or dataset folders whose labelled images are used."""

    method: str
    data: list[str]
    name: str = ""
    split: str = "all"  # which cases of a dataset folder with split.json ("train" for the starter models)
    labels: dict[str, int] = field(default_factory=dict)  # name -> value in the label files; empty: from the data
    #: value -> name for the values found when the data names none (the app's Label list)
    value_names: dict[str, str] = field(default_factory=dict)
    epochs: int = 50
    max_iterations: int = 0  # 0: epochs decide
    max_minutes: float = 0.0  # 0: no time limit
    # left empty (0): chosen by annotator.training.planner from the data and the machine
    batch_size: int = 0
    patch: list[int] = field(default_factory=list)  # training crop on the model grid (z, y, x)
    target_spacing: list[float] = field(default_factory=list)  # mm, (z, y, x)
    intensity: dict = field(default_factory=dict)
    cache_rate: float = 0.0  # share of the prepared cases kept in memory
    modality: str = "unknown"
    #: network size (annotator.models.networks.VARIANTS); empty: that of the model fine-tuned,
    #: else small
    variant: str = ""
    init: str = "scratch"  # "scratch", "active" (fine-tune the chosen model) or a model name
    resume: str = ""  # a run folder to continue
    learning_rate: float = 1e-3
    val_fraction: float = 0.2
    val_every: int = 1  # epochs
    max_click_iterations: int = 6  # simulated correction rounds per training batch: 0..this many
    previous_label: bool = True  # the network sees the label it corrects (see ModelCard.previous_label)
    click_weight: float = 4.0  # extra cross-entropy weight at the clicks (see job.click_weighted_loss)
    seed: int = 0
    install: bool = True  # copy the best model into the user models folder when the run finishes
    activate: bool = True  # and make it the one its method uses
    out: str = ""  # run folder; default runs_dir()/name
    licence: str = ""
    source: str = ""

    def __post_init__(self):
        if self.method not in METHODS:
            raise InputError(f"unknown method '{self.method}' (known: {', '.join(METHODS)})")
        if not self.data:
            raise InputError("no data folders given")
        if not isinstance(self.value_names, dict):
            raise InputError("value_names must map label values to names, e.g. {\"1\": \"liver\"}")
        self.value_names = {str(k): str(v) for k, v in self.value_names.items()}
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1):
            raise InputError(f"learning rate {self.learning_rate!r}: give a number above 0 and below 1, e.g. 1e-3")
        self._check_numbers()
        self.modality = modality_code(self.modality)
        if not self.name:
            self.name = f"{self.method}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            check_name(self.name, "run and model")
        except ModelError as exc:
            raise InputError(str(exc)) from None

    def _check_numbers(self) -> None:
        """Each count, limit and share within what it can be (a config file is checked as the
        command line is: a run does not start to fail on its first validation)."""
        for name, least in WHOLE_NUMBERS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InputError(f"{_said(name)} {value!r}: give a whole number of {least} or more")
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise InputError(f"{_said(name)} {value!r}: give a number from {low:g} to {high:g}")
        for name in ("patch", "target_spacing"):
            value = getattr(self, name)
            lengths = (2, 3) if name == "patch" and self.method == "deepgrow2d" else (3,)  # a slice's crop
            if value and (len(value) not in lengths or not all(isinstance(v, (int, float)) and v > 0 for v in value)):
                raise InputError(f"{_said(name)} {value!r}: give three sizes above 0, or none")

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else runs_dir() / self.name

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def save(self, path: str | os.PathLike) -> Path:
        from annotator.io.atomic import atomic_write_text

        atomic_write_text(path, self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainConfig":
        try:
            raw = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read the training config ({exc})") from exc
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        return cls(**raw)
