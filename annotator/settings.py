"""Per-user settings (last datastore, label presets, server URL), kept in the user config dir.

Stored as JSON (atomically) in ``platformdirs.user_config_dir("annotator")``; secrets never
go here (they belong in the OS keyring).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path

from platformdirs import user_config_dir

from annotator.io.atomic import atomic_write_text


@dataclass
class LabelPreset:
    value: int
    name: str
    color: str


#: colours of labels that no preset colours, by value
PALETTE = ["#e6194b", "#ffe119", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6"]


def palette_colour(value: int) -> str:
    """A colour for label ``value``: the palette's first, then hues a golden angle apart
    (neighbouring values, often neighbouring structures, differ)."""
    value = int(value)
    if 1 <= value <= len(PALETTE):
        return PALETTE[value - 1]
    import colorsys

    red, green, blue = colorsys.hsv_to_rgb((value * 0.381966) % 1.0, 0.75, 0.95)
    return "#{:02x}{:02x}{:02x}".format(round(red * 255), round(green * 255), round(blue * 255))


def default_presets() -> list[LabelPreset]:
    raw = json.loads(files("annotator.resources").joinpath("label_presets.json").read_text("utf-8"))
    return [LabelPreset(**p) for p in raw["presets"]]


def offered_labels(presets: list[LabelPreset], names: dict[str, int] | None) -> list[LabelPreset]:
    """The labels to annotate with: the person's ``presets``, with the ``names`` (name ->
    value) a data set gives its labels (its ``labels.json``). A data set's name takes the
    place of a default name (``1: structure`` becomes ``1: anterior``) and keeps the
    preset's colour; a name the person gave stays; default presets the data set does not
    name are left out."""
    if not names:
        return list(presets)
    defaults = {p.value: p.name for p in default_presets()}
    mine = {p.value: p for p in presets}
    named = {int(v): n for n, v in names.items()}
    out = []
    for value, name in named.items():
        preset = mine.get(value)
        if preset is None:
            out.append(LabelPreset(value, name, palette_colour(value)))
        elif preset.name == defaults.get(value):
            out.append(LabelPreset(value, name, preset.color))
        else:
            out.append(preset)
    out += [p for p in presets if p.value not in named and p.name != defaults.get(p.value)]
    return sorted(out, key=lambda p: p.value)


@dataclass
class Settings:
    last_datastore: str = ""
    server_url: str = ""
    strategy: str = "tta"  # how the worklist ranks the unlabeled images (annotator.active)
    #: a server's URL -> CA certificates to trust for it (no secret: where the file is)
    ca_bundles: dict[str, str] = field(default_factory=dict)
    presets: list[LabelPreset] = field(default_factory=default_presets)

    @staticmethod
    def path() -> Path:
        return Path(user_config_dir("annotator")) / "settings.json"

    @classmethod
    def load(cls) -> "Settings":
        """The saved settings; defaults where the file is missing or unreadable."""
        try:
            raw = json.loads(cls.path().read_text("utf-8"))
        except (OSError, ValueError):
            return cls()
        presets = [LabelPreset(**p) for p in raw.get("presets", [])] or default_presets()
        bundles = raw.get("ca_bundles", {})
        return cls(last_datastore=str(raw.get("last_datastore", "")),
                   server_url=str(raw.get("server_url", "")), strategy=str(raw.get("strategy", "tta")),
                   ca_bundles={str(k): str(v) for k, v in bundles.items()} if isinstance(bundles, dict) else {},
                   presets=presets)

    def save(self) -> None:
        atomic_write_text(self.path(), json.dumps(asdict(self), indent=1))
