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

from annotator.io.atomic import atomic_write_text, keep_aside


@dataclass
class LabelPreset:
    value: int
    name: str
    color: str


def default_presets() -> list[LabelPreset]:
    raw = json.loads(files("annotator.resources").joinpath("label_presets.json").read_text("utf-8"))
    return [LabelPreset(**p) for p in raw["presets"]]


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
        """The saved settings; defaults where the file is missing or unreadable (a file
        that is not settings any more is kept aside, not overwritten by the next save)."""
        try:
            raw = json.loads(cls.path().read_text("utf-8"))
            bundles = raw.get("ca_bundles", {})
            presets = [LabelPreset(int(p["value"]), str(p["name"]), str(p["color"])) for p in raw.get("presets", [])]
            return cls(last_datastore=str(raw.get("last_datastore", "")),
                       server_url=str(raw.get("server_url", "")), strategy=str(raw.get("strategy", "tta")),
                       ca_bundles={str(k): str(v) for k, v in bundles.items()} if isinstance(bundles, dict) else {},
                       presets=presets or default_presets())
        except OSError:
            return cls()
        except (ValueError, TypeError, KeyError, AttributeError):  # not JSON, or not these settings
            keep_aside(cls.path())
            return cls()

    def save(self) -> None:
        atomic_write_text(self.path(), json.dumps(asdict(self), indent=1))
