"""The JSON sidecar of a checkpoint: what the weights are, how to feed them, where they came from."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields

from annotator.errors import ModelError

METHODS = ("deepgrow2d", "deepgrow3d", "deepedit")
#: how the methods are named where people read them, in the order they are offered
METHOD_TITLES = {"deepedit": "DeepEdit", "deepgrow3d": "DeepGrow 3D", "deepgrow2d": "DeepGrow 2D"}
#: how an image's intensities reach a network unless its card says otherwise: each
#: image's 0.5 and 99.5 percentiles to 0 and 1
PERCENTILES = {"kind": "percentile", "low": 0.5, "high": 99.5}
FORMAT_VERSION = 1
#: the letters of an ``orientation``: the right-anterior-superior axis each names, and
#: whether it runs the other way (left, posterior, inferior)
ORIENTATION_LETTERS = {"R": (0, False), "L": (0, True), "A": (1, False), "P": (1, True), "S": (2, False),
                       "I": (2, True)}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def check_name(name: str, what: str = "model") -> str:
    """``name`` if it can name a file and nothing else: no path separator, no ``..``, not
    hidden, at most 128 letters, digits and ``._+-``; else :class:`ModelError`."""
    if not _NAME.match(str(name)) or ".." in str(name):
        raise ModelError(f"{what} name '{name}' is refused: use letters, digits and . _ + - "
                         "(no path separators, no '..', not starting with '.')")
    return name


def _mm(extent) -> str:
    return " x ".join(f"{v:.0f}" for v in extent) + " mm"


#: how far beyond the sizes of its training images an image may reach before a model is
#: said not to be for it (each axis, longest first): warned about, not chosen by "auto"
EXTENT_FACTOR = 2.0


def modality_code(text: str) -> str:
    """A modality as DICOM writes it (``CT``, ``MR``), whatever case it was typed in;
    ``unknown`` for none (a model for any modality)."""
    text = str(text or "").strip()
    return "unknown" if text.lower() in ("", "unknown") else text.upper()


@dataclass
class ModelCard:
    """Everything needed to use a network's weights correctly, and their provenance."""

    name: str
    method: str
    architecture: dict
    labels: dict[str, int]
    modality: str = "unknown"
    target_spacing: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])  # mm, (z, y, x)
    intensity: dict = field(default_factory=lambda: dict(PERCENTILES))
    roi_size: list[int] = field(default_factory=lambda: [96, 96, 96])
    #: the network also sees the label it corrects (after the click maps: one channel per
    #: foreground class, 1 where the earlier label has it), as interactive networks that
    #: learn from each correction do; False for models from elsewhere (MONAI Label's)
    previous_label: bool = False
    #: DeepEdit's click channels when their order is not ours (background first, then the
    #: labels by value): a MONAI Label model's follow its label list, background usually last
    guidance_order: list[str] = field(default_factory=list)
    #: width (model voxels) of each click's Gaussian in the click maps (MONAI's DeepEdit: 3)
    guidance_sigma: float = 2.0
    #: how the network's axes lie: "array" (this app's: the image array's (z, y, x) as
    #: stored), "ras" (MONAI's DeepEdit and bundles: (x, y, z) turned to right, anterior,
    #: superior) or "zxy" (MONAI Label's DeepGrow: (z, x, y) as stored); annotator.engine.axes
    axes: str = "array"
    #: for a network of this app's layout: which way the array axes (z, y, x) of the
    #: images it was trained on ran (annotator.engine.axes.orientation_code: "SAR" for a
    #: NIfTI stored in RAS); an image stored otherwise is turned so for it (a 2-D network's
    #: slices in their plane). Empty: as stored
    orientation: str = ""
    #: the network sees the whole image resized to this size (in its own axes' order),
    #: as MONAI's DeepEdit does (``Resized``), and answers on all of it at once; empty: the
    #: image is resampled to :attr:`target_spacing` and the network answers on crops
    input_size: list[int] = field(default_factory=list)
    training: dict = field(default_factory=dict)  # data source, licence, case ids, split
    metrics: dict = field(default_factory=dict)
    #: how the worklist's scores weigh this model's unsteadiness against each label's
    #: contrast, chosen on its validation cases (``powers``: {strategy: {"unsteadiness",
    #: "contrast"}}; annotator.active.calibration); empty: the default
    uncertainty: dict = field(default_factory=dict)
    #: how a structure's first answer is cut from the network's scores, chosen on its
    #: validation cases (``threshold``: the log-odds by which the clicked class must beat the
    #: others, 0 the more probable wins; ``dice``: the mean Dice after one click each
    #: threshold tried gave; annotator.training.calibrate); empty: threshold 0
    first_answer: dict = field(default_factory=dict)
    version: str = ""
    weights_sha256: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        self.modality = modality_code(self.modality)  # "mr" would suit no MR image

    @property
    def powers(self) -> dict[str, dict]:
        """The worklist's powers chosen on its validation cases, per strategy ({} when none)."""
        return (self.uncertainty or {}).get("powers", {})

    @property
    def first_threshold(self) -> float:
        """The log-odds by which the clicked class must beat the others in a first answer."""
        return float(self.first_answer.get("threshold", 0.0))

    @property
    def spatial_dims(self) -> int:
        return int(self.architecture.get("spatial_dims", 3))

    @property
    def class_names(self) -> list[str]:
        """The output classes: background, then the labels by value (DeepGrow: one structure)."""
        if self.method == "deepedit":
            return ["background", *sorted(self.foreground, key=self.foreground.get)]
        return ["background", "structure"]

    def class_of(self, value: int) -> int:
        """The output class of label ``value`` (an unknown value: the first label)."""
        if self.method != "deepedit":
            return 1
        by_value = {v: name for name, v in self.foreground.items()}
        return self.class_names.index(by_value.get(int(value), by_value[min(by_value)]))

    @property
    def guidance(self) -> list[str]:
        """Guidance channels after the image: DeepGrow's foreground/background clicks, or
        DeepEdit's clicks per class (:attr:`guidance_order`, else the classes' order)."""
        if self.method == "deepedit":
            return list(self.guidance_order) or self.class_names
        return ["foreground", "background"]

    @property
    def previous_channels(self) -> int:
        """Channels of the earlier label after the click maps (0 when the network takes none)."""
        return (self.classes - 1) if self.previous_label else 0

    @property
    def input_channels(self) -> int:
        """The image, the click maps and the earlier label's channels."""
        return 1 + len(self.guidance) + self.previous_channels

    @property
    def foreground(self) -> dict[str, int]:
        """The labels other than background (value 0)."""
        return {k: int(v) for k, v in self.labels.items() if int(v) > 0}

    @property
    def classes(self) -> int:
        """Output channels: background plus one per label (DeepGrow: one structure)."""
        return 1 + (len(self.foreground) if self.method == "deepedit" else 1)

    @property
    def not_used(self) -> str:
        """Why a training run installed this model without using it (``training.not_used``):
        it answers only once chosen; "" for any other model."""
        return str(self.training.get("not_used") or "")

    @property
    def trained_extent(self) -> str:
        """How large the images it was trained on were (``training.extent_mm``), as people
        read it: "40 x 32 x 26 mm to 58 x 47 x 41 mm"; "" when the sidecar does not say."""
        trained = self.training.get("extent_mm") or {}
        smallest, largest = trained.get("smallest"), trained.get("largest")
        if not smallest or not largest:
            return ""
        return _mm(largest) if smallest == largest else f"{_mm(smallest)} to {_mm(largest)}"

    def extent_misfit(self, extent_mm) -> str | None:
        """How an image reaching ``extent_mm`` (longest first, ``Volume.extent_mm``) is far
        larger or smaller than every image this model was trained on (``training.extent_mm``):
        a model trained on crops around one structure finds look-alikes all over a whole
        scan, one trained on whole scans lacks their context in a crop. None when it is not,
        or the sidecar does not say."""
        if not self.trained_extent:
            return None
        trained = self.training["extent_mm"]
        if any(h > EXTENT_FACTOR * m for h, m in zip(extent_mm, trained["largest"])):
            how = "far larger than"
        elif any(h < m / EXTENT_FACTOR for h, m in zip(extent_mm, trained["smallest"])):
            how = "far smaller than"
        else:
            return None
        return f"this image ({_mm(extent_mm)}) is {how} the images model '{self.name}' was trained on " \
               f"({self.trained_extent})"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "ModelCard":
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ModelError(f"{where}: sidecar is not valid JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise ModelError(f"{where}: sidecar must be a JSON object")
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("name", "method", "architecture", "labels", "weights_sha256") if not raw.get(k)]
        if missing:
            raise ModelError(f"{where}: sidecar lacks {', '.join(missing)}")
        if raw["method"] not in METHODS:
            raise ModelError(f"{where}: unknown method '{raw['method']}' (known: {', '.join(METHODS)})")
        try:
            card = cls._checked(raw, known, where)
        except ModelError as exc:
            raise ModelError(str(exc) if where in str(exc) else f"{where}: {exc}") from None
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError, OverflowError) as exc:
            raise ModelError(f"{where}: malformed sidecar ({type(exc).__name__}: {str(exc)[:120]})") from None
        return card

    @classmethod
    def _checked(cls, raw: dict, known: set, where: str) -> "ModelCard":
        if int(raw.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
            raise ModelError(f"{where}: written by a newer Annotator (format {raw['format_version']})")
        from annotator.io.volume import LABEL_TOP
        from annotator.models.networks import check_architecture

        card = cls(**{k: v for k, v in raw.items() if k in known})
        if not isinstance(card.name, str):
            raise ModelError(f"{where}: the model name must be text")
        check_name(card.name)
        if not isinstance(card.labels, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= LABEL_TOP
                for k, v in card.labels.items()):
            raise ModelError(f"{where}: labels must map names to values 0..{LABEL_TOP}")
        spacing = [float(v) for v in card.target_spacing]
        if len(spacing) != card.spatial_dims and len(spacing) != 3 or not all(0 < v < 1e3 for v in spacing):
            raise ModelError(f"{where}: target_spacing must be positive mm per axis, not {card.target_spacing}")
        if not all(isinstance(v, int) and 1 <= v <= 1024 for v in card.roi_size):
            raise ModelError(f"{where}: roi_size must be whole numbers from 1 to 1024, not {card.roi_size}")
        check_architecture(card.architecture)
        if not isinstance(card.previous_label, bool):
            raise ModelError(f"{where}: previous_label must be true or false")
        if card.guidance_order and (card.method != "deepedit" or not isinstance(card.guidance_order, list)
                                    or sorted(map(str, card.guidance_order)) != sorted(card.class_names)):
            raise ModelError(f"{where}: guidance_order must list each of {card.class_names} once")
        powers = card.uncertainty.get("powers", {}) if isinstance(card.uncertainty, dict) else None
        if not isinstance(powers, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) and set(v) == {"unsteadiness", "contrast"}
                and all(isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 8 for p in v.values())
                for k, v in powers.items()):
            raise ModelError(f"{where}: uncertainty.powers must map strategies to an unsteadiness and a contrast "
                             "power, each from 0 to 8")
        threshold = card.first_answer.get("threshold", 0.0) if isinstance(card.first_answer, dict) else None
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -4 <= threshold <= 4:
            raise ModelError(f"{where}: first_answer.threshold must be a log-odds from -4 to 4, not {threshold!r}")
        if (isinstance(card.guidance_sigma, bool) or not isinstance(card.guidance_sigma, (int, float))
                or not 0.1 <= card.guidance_sigma <= 20):
            raise ModelError(f"{where}: guidance_sigma must be 0.1 to 20 voxels, not {card.guidance_sigma!r}")
        if card.input_size and (not isinstance(card.input_size, list) or len(card.input_size) != card.spatial_dims
                                or not all(isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= 1024
                                           for v in card.input_size)):
            raise ModelError(f"{where}: input_size must be {card.spatial_dims} whole numbers from 8 to 1024, "
                             f"not {card.input_size!r}")
        if card.architecture.get("name") == "UNETR" and list(card.input_size) != list(card.architecture["img_size"]):
            raise ModelError(f"{where}: a UNETR takes whole images at its img_size "
                             f"{card.architecture['img_size']}: input_size must be that, not {card.input_size}")
        if card.axes not in ("array", "ras", "zxy"):
            raise ModelError(f"{where}: axes must be \"array\", \"ras\" or \"zxy\", not {card.axes!r}")
        if card.orientation and (not isinstance(card.orientation, str) or card.axes != "array"
                                 or sorted(ORIENTATION_LETTERS.get(c, (-1,))[0] for c in card.orientation) != [0, 1, 2]):
            raise ModelError(f"{where}: orientation must name one direction of each axis (as \"SAR\": superior, "
                             f"anterior, right), for a network of axes \"array\", not {card.orientation!r}")
        intensity = card.intensity if isinstance(card.intensity, dict) else {}
        if intensity.get("kind") == "scale" and not float(intensity.get("divide", 0)):
            raise ModelError(f"{where}: a scale normalisation needs a divide other than 0")
        expected = (card.input_channels, card.classes)
        found = (card.architecture.get("in_channels"), card.architecture.get("out_channels"))
        if found != expected:
            raise ModelError(f"{where}: a {card.method} model with {len(card.foreground)} label(s) takes "
                             f"{expected[0]} input and gives {expected[1]} output channels; "
                             f"the architecture says {found[0]} and {found[1]}")
        return card
