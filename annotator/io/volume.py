"""The one image type of the product: voxels plus their place in the patient.

Axis order
----------
``Volume.array`` is indexed ``[z, y, x]`` (slice, row, column), the order in which
SimpleITK hands out arrays and in which napari shows slices. ``spacing``, ``origin``
and ``direction`` follow ITK's ``(x, y, z)`` order and LPS patient coordinates, so
they round-trip unchanged through SimpleITK. ``index_to_array`` converts an ITK
index ``(x, y, z)`` — what the CLI takes — to an array index.

A label is a plain integer ``numpy`` array with the same shape as the image it
belongs to; its geometry is always the image's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from annotator.errors import GeometryError


@dataclass(frozen=True)
class Source:
    """Where a volume came from: a file path and, for DICOM, its UIDs."""

    path: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uids: tuple[str, ...] = ()  # the instance of each slice (z order)
    frame_of_reference_uid: str = ""
    #: a multi-frame image: the frame number (from 1) of each slice in its instance
    frames: tuple[int, ...] = ()
    #: one volume of a 4-D file: its number there (from 0); None for any other image
    volume: int | None = None


@dataclass
class Volume:
    """A 3-D scalar image with its physical geometry and provenance."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    modality: str = "unknown"
    source: Source = field(default_factory=Source)
    name: str = ""
    warnings: list[str] = field(default_factory=list)
    #: the display window its header recommends, (center, width); display only, never used
    #: by the engine
    window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        # a script's volume checked as the readers check files: a 2-D array or a voxel size
        # of 0, NaN or below 0 would fail deep inside the engine, far from its cause
        if np.ndim(self.array) != 3:
            raise GeometryError(f"a volume needs a 3-D array (z, y, x); this one is {np.ndim(self.array)}-D")
        if len(self.spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in self.spacing):
            raise GeometryError(f"a volume's voxel size must be 3 positive numbers (x, y, z, mm); got "
                                f"{tuple(self.spacing)}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def size(self) -> tuple[int, int, int]:
        """Image size in ITK order ``(x, y, z)``."""
        return tuple(reversed(self.array.shape))  # type: ignore[return-value]

    @property
    def array_spacing(self) -> tuple[float, float, float]:
        """Voxel spacing in mm in array order ``(z, y, x)`` (napari's ``scale``)."""
        return tuple(reversed(self.spacing))  # type: ignore[return-value]

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """How far the image reaches along its three axes, in mm, longest first (the same
        whichever way it is stored)."""
        return tuple(sorted((float(n * s) for n, s in zip(self.shape, self.array_spacing)), reverse=True))

    def index_to_array(self, index_xyz: tuple[int, int, int]) -> tuple[int, int, int]:
        """ITK voxel index ``(x, y, z)`` to array index ``(z, y, x)``."""
        return tuple(int(v) for v in reversed(index_xyz))  # type: ignore[return-value]

    def contains(self, index_xyz: tuple[int, int, int]) -> bool:
        """Whether an ITK index lies inside the image."""
        return all(0 <= int(i) < n for i, n in zip(index_xyz, self.size))

    def to_sitk(self, array: np.ndarray | None = None) -> sitk.Image:
        """This geometry around ``array`` (default: the image's own voxels)."""
        image = sitk.GetImageFromArray(self.array if array is None else array)
        self.copy_geometry_to(image)
        return image

    def copy_geometry_to(self, image: sitk.Image) -> None:
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)

    def same_geometry(self, other: "Volume", rtol: float = 0.0) -> bool:
        """Same shape and geometry, exactly (``rtol=0``) or within a tolerance."""
        if self.shape != other.shape:
            return False
        pairs = [(self.spacing, other.spacing), (self.origin, other.origin),
                 (self.direction, other.direction)]
        if rtol == 0.0:
            return all(tuple(a) == tuple(b) for a, b in pairs)
        scale = max(1.0, float(np.max(np.abs(self.origin))))
        return all(np.allclose(a, b, rtol=rtol, atol=rtol * scale) for a, b in pairs)

    def index_affine(self) -> np.ndarray:
        """4×4 matrix from an array index ``(z, y, x)`` to the patient position (LPS,
        x-y-z order) of that voxel's centre."""
        matrix = np.eye(4)
        matrix[:3, :3] = (np.reshape(self.direction, (3, 3)) @ np.diag(self.spacing))[:, ::-1]
        matrix[:3, 3] = self.origin
        return matrix

    def in_order_of(self, image: "Volume", atol: float = 1e-3) -> np.ndarray | None:
        """This volume's voxels in ``image``'s storage order when both hold the same grid
        of points stored another way (rows flipped, axes in another order: a label
        written by a tool that turns every image to one orientation); None when the
        grids differ. ``atol``: in voxels."""
        turn = np.linalg.solve(self.index_affine(), image.index_affine())  # image index -> this volume's index
        axes = np.argmax(np.abs(turn[:3, :3]), axis=0)  # this volume's axis of each of image's axes
        signs = np.sign(turn[axes, range(3)])
        ideal = np.zeros((3, 3))
        ideal[axes, range(3)] = signs
        if sorted(axes) != [0, 1, 2] or not np.allclose(turn[:3, :3], ideal, atol=atol):
            return None
        if tuple(self.shape[a] for a in axes) != image.shape:
            return None
        ends = [0 if s > 0 else n - 1 for s, n in zip(signs, image.shape)]  # where image's index 0 falls here
        if not np.allclose(turn[axes, 3], ends, atol=atol):
            return None
        turned = np.transpose(self.array, axes)
        return np.flip(turned, [a for a in range(3) if signs[a] < 0]) if (signs < 0).any() else turned

    def summary(self) -> str:
        """A few lines for a person: modality, size, spacing, range."""
        finite = self.array[np.isfinite(self.array)] if self.array.dtype.kind == "f" else self.array
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (float("nan"),) * 2
        lines = [
            f"name:      {self.name}",
            f"modality:  {self.modality}",
            f"size:      {' x '.join(str(s) for s in self.size)} voxels (x, y, z)",
            f"spacing:   {' x '.join(f'{s:.4g}' for s in self.spacing)} mm",
            f"origin:    ({', '.join(f'{o:.4g}' for o in self.origin)}) mm",
            f"type:      {self.array.dtype}, values {lo:.6g} .. {hi:.6g}",
        ]
        if self.source.series_uid:
            lines.append(f"series:    {self.source.series_uid}")
        lines += [f"warning:   {w}" for w in self.warnings]
        return "\n".join(lines)


def volume_from_sitk(image: sitk.Image, **kwargs) -> Volume:
    """Wrap a SimpleITK image (3-D, scalar) as a :class:`Volume`."""
    return Volume(
        array=sitk.GetArrayFromImage(image),
        spacing=tuple(image.GetSpacing()),
        origin=tuple(image.GetOrigin()),
        direction=tuple(image.GetDirection()),
        **kwargs,
    )


#: one value at the bottom of an image holding more than this share of its voxels is
#: padding, not tissue: a CT's outside of its field of view (-3024 or -2000 HU; -1024
#: where air is clipped), an MR's zeroed background
PADDING_SHARE = 0.005
#: an image that holds at most this many values (in a sample of about 4,096) has no noise:
#: its lowest value is one of its classes, not padding
FEW_VALUES = 16


def intensity_sample(array: np.ndarray, max_samples: int = 1 << 20, keep_padding: bool = False) -> np.ndarray:
    """The intensities that say what an image shows: a regular subsample of ``array`` (at
    most about ``max_samples`` voxels: cheap on any volume), its finite values, without
    padding (the lowest value where it holds more than :data:`PADDING_SHARE` of them; how
    much of it a scanner adds says nothing about the patient) unless ``keep_padding``.
    An image of a few values with no noise (a phantom, a mask shown as an image) has no
    padding: its lowest value is what lies around the rest (left out, the range of a mask
    was one value, and a phantom's two lowest classes showed as one black)."""
    step = max(1, int(np.ceil((array.size / max_samples) ** (1 / max(array.ndim, 1)))))
    sample = array[tuple(slice(None, None, step) for _ in range(array.ndim))].ravel()
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size and not keep_padding:
        padding = sample == sample.min()
        if PADDING_SHARE < padding.mean() < 1:
            rest = sample[~padding]
            if not few_values(rest):
                sample = rest
    return sample


def few_values(values: np.ndarray) -> bool:
    """Whether ``values`` (an image's, or a sample of them) hold at most :data:`FEW_VALUES`
    values in a regular sample of about 4,096: an image with no noise."""
    return np.unique(values[:: max(1, values.size // 4096)]).size <= FEW_VALUES


def intensity_range(array: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles of :func:`intensity_sample` (0, 0 when the image
    has no finite value); of an image of few values, its lowest and highest (a percentile
    would leave out its rarest class: a phantom's small bright organ shown as the body
    around it)."""
    sample = intensity_sample(array)
    if not sample.size:
        return 0.0, 0.0
    if few_values(sample):
        return float(sample.min()), float(sample.max())
    lo, hi = np.percentile(sample, [low, high])
    return float(lo), float(hi)


def label_counts(label: np.ndarray) -> np.ndarray:
    """How many voxels of a uint8 label hold each value 0..255: counted a million voxels at
    a time (no sort of the whole label, and no CT-sized copy of 8-byte integers)."""
    flat = np.asarray(label, np.uint8).reshape(-1)
    counts = np.zeros(256, np.int64)
    for start in range(0, flat.size, 1 << 20):
        counts += np.bincount(flat[start:start + (1 << 20)], minlength=256)
    return counts


def label_values(label: np.ndarray) -> list[int]:
    """The values other than 0 that a uint8 label holds, in order."""
    return [int(v) for v in np.flatnonzero(label_counts(label)[1:]) + 1]


def volumes_ml(counts: np.ndarray, spacing) -> dict[int, tuple[int, float]]:
    """Each value other than 0 that :func:`label_counts` found: its voxels and its volume
    in millilitres (``spacing`` in mm)."""
    voxel_ml = float(np.prod(np.asarray(spacing, float))) / 1000.0
    return {int(v): (int(counts[v]), int(counts[v]) * voxel_ml) for v in np.flatnonzero(counts[1:]) + 1}
