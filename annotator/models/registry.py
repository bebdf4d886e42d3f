"""Where models are found: bundled in the package, and the user's own in the user data dir.

The registry also keeps which model is active per method. Switching loads and checks
the new model first; if that fails, the previous one stays active.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from typing import TYPE_CHECKING

from platformdirs import user_data_dir

from annotator.errors import ModelError
from annotator.io.atomic import atomic_write_text
from annotator.models.card import ModelCard
from annotator.models.checkpoint import load_card, load_checkpoint

if TYPE_CHECKING:
    import torch


def bundled_dir() -> Path:
    return Path(str(files("annotator.resources").joinpath("models")))


def user_dir() -> Path:
    return Path(user_data_dir("annotator")) / "models"


def suits(made_for: str, modality: str) -> bool:
    """Whether a model made for images of ``made_for`` suits an image of ``modality``: the
    same modality, or a model made for any ("unknown"). An image that does not say its
    modality (a NIfTI) is not a CT, whose Hounsfield units give it away
    (:func:`annotator.io.read.guess_modality`), so an MR model suits it too."""
    return made_for in (modality, "unknown") or modality == "unknown" and made_for != "CT"


@dataclass
class Entry:
    card: ModelCard
    sidecar: Path
    bundled: bool


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(f"model skipped: {message}", stacklevel=3)


class ModelRegistry:
    """Models in ``folders`` (default: bundled, then user), by name; the active one per method."""

    def __init__(self, folders: list[Path] | None = None):
        self._folders = folders
        self.problems: dict[Path, str] = {}
        self._active: dict[str, tuple[torch.nn.Module, ModelCard]] = {}

    @property
    def folders(self) -> list[Path]:
        """Given folders, else bundled then user models (looked up now: the user dir may move)."""
        return self._folders if self._folders is not None else [bundled_dir(), user_dir()]

    def entries(self) -> list[Entry]:
        """Every readable model, each name once (the first folder's: bundled models keep
        their names); a sidecar that cannot be used is skipped, with a warning naming it,
        and listed in :attr:`problems`."""
        found, self.problems, names = [], {}, set()
        for i, folder in enumerate(self.folders):
            if not folder.is_dir():
                continue
            for sidecar in sorted(folder.glob("*.json")):
                if sidecar.name == "active.json":
                    continue
                try:
                    card = load_card(sidecar)
                    if card.name in names:
                        raise ModelError(f"{sidecar}: another model is already called '{card.name}' "
                                         "(bundled models keep their names); rename this one")
                except ModelError as exc:
                    self.problems[sidecar] = str(exc)
                    _warn_once(str(exc))
                    continue
                names.add(card.name)
                found.append(Entry(card, sidecar, bundled=(i == 0)))
        return found

    def find(self, method: str | None = None, modality: str | None = None) -> list[Entry]:
        """Models of ``method`` that suit images of ``modality`` (:func:`suits`)."""
        return [e for e in self.entries() if (method is None or e.card.method == method)
                and (modality is None or suits(e.card.modality, modality))]

    def entry(self, name: str) -> Entry:
        for e in self.entries():
            if e.card.name == name:
                return e
        raise ModelError(f"no model named '{name}'")

    def activate(self, name: str, device: str | torch.device = "cpu") -> ModelCard:
        """Load ``name`` and make it the active model of its method (the old one stays on failure)."""
        entry = self.entry(name)
        model, card = load_checkpoint(entry.sidecar, device)
        self._active[card.method] = (model, card)
        return card

    def active(self, method: str) -> tuple[torch.nn.Module, ModelCard] | None:
        return self._active.get(method)

    # ---- the person's choice, kept across runs -----------------------------------------

    @property
    def choice_file(self) -> Path:
        return self.folders[-1] / "active.json"

    def chosen(self) -> dict[str, str]:
        """method -> model name chosen with :meth:`choose` (what training installs, or the person picks)."""
        try:
            raw = json.loads(self.choice_file.read_text("utf-8"))
            return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        except (OSError, ValueError):
            return {}

    def choose(self, name: str) -> ModelCard:
        """Make ``name`` the model its method uses from now on (checked first; saved atomically)."""
        model, card = load_checkpoint(self.entry(name).sidecar, "cpu")
        choice = self.chosen()
        choice[card.method] = name
        self.choice_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.choice_file, json.dumps(choice, indent=1, sort_keys=True))
        return card

    def defaults(self) -> dict[str, Path]:
        """method -> the sidecar of the model it uses, for each method of the installed
        models that has none chosen (:meth:`preferred`, whatever the image)."""
        chosen = self.chosen()
        found = {m: self.preferred(m) for m in {e.card.method for e in self.entries()} if m not in chosen}
        return {m: e.sidecar for m, e in found.items() if e is not None}

    def preferred(self, method: str, modality: str | None = None, extent_mm=None) -> Entry | None:
        """The model of ``method`` for an image of ``modality`` reaching ``extent_mm`` (mm,
        longest first): of those made for the modality (else of all), those trained on
        images of about its size when any are (:meth:`ModelCard.extent_misfit`); the chosen
        one if it is among them, else the newest of those a training run did not install
        as not to be used (:attr:`ModelCard.not_used`: one that did worse than the model in use
        is there to be chosen, not to answer clicks unasked)."""
        name = self.chosen().get(method)

        def offered(found: list[Entry]) -> list[Entry]:
            return [e for e in found if e.card.name == name or not e.card.not_used]

        entries = offered(self.find(method, modality)) or offered(self.find(method))
        if extent_mm is not None:
            entries = [e for e in entries if not e.card.extent_misfit(extent_mm)] or entries
        return next((e for e in entries if e.card.name == name), entries[-1] if entries else None)
