"""The JSON sidecar of a checkpoint: what the weights are, how to feed them, where they came from."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from annotator.errors import ModelError

METHODS = ("deepgrow2d", "deepgrow3d", "deepedit")
FORMAT_VERSION = 1


@dataclass
class ModelCard:
    """Everything needed to use a network's weights correctly, and their provenance."""

    name: str
    method: str
    architecture: dict
    labels: dict[str, int]
    modality: str = "unknown"
    target_spacing: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])  # mm, (z, y, x)
    intensity: dict = field(default_factory=lambda: {"kind": "percentile", "low": 0.5, "high": 99.5})
    roi_size: list[int] = field(default_factory=lambda: [96, 96, 96])
    training: dict = field(default_factory=dict)  # data source, licence, case ids, split
    metrics: dict = field(default_factory=dict)
    version: str = ""
    weights_sha256: str = ""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "ModelCard":
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ModelError(f"{where}: sidecar is not valid JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise ModelError(f"{where}: sidecar must be a JSON object")
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("name", "method", "architecture", "labels", "weights_sha256") if not raw.get(k)]
        if missing:
            raise ModelError(f"{where}: sidecar lacks {', '.join(missing)}")
        if raw["method"] not in METHODS:
            raise ModelError(f"{where}: unknown method '{raw['method']}' (known: {', '.join(METHODS)})")
        if int(raw.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
            raise ModelError(f"{where}: written by a newer Annotator (format {raw['format_version']})")
        return cls(**{k: v for k, v in raw.items() if k in known})
