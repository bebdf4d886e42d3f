"""The one image type of the product: voxels plus their place in the patient.

Axis order
----------
``Volume.array`` is indexed ``[z, y, x]`` (slice, row, column), the order in which
SimpleITK hands out arrays and in which napari shows slices. ``spacing``, ``origin``
and ``direction`` follow ITK's ``(x, y, z)`` order and LPS patient coordinates, so
they round-trip unchanged through SimpleITK. ``index_to_array`` converts an ITK
index ``(x, y, z)`` — what the CLI takes — to an array index.

A label is a plain integer ``numpy`` array with the same shape as the image it
belongs to; its geometry is always the image's. Its values are 0 (background) to
:data:`LABEL_TOP`, one byte a voxel while every value fits one (:func:`label_dtype`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from annotator.errors import GeometryError, InputError

#: the largest value a label holds (FreeSurfer's maps number structures up to a few thousand)
LABEL_TOP = 65535


def label_dtype(top: int) -> type:
    """The type of a label whose largest value is ``top``: one byte a voxel up to 255, else two."""
    return np.uint8 if top <= 255 else np.uint16


#: how far from a whole number a float label's value may lie (float32 rounding, a scaling)
WHOLE_TOLERANCE = 1e-3


def as_label(label: np.ndarray | None, what: str, file: bool = True) -> np.ndarray | None:
    """``label`` as the engine and the app hold a label (values 0 to :data:`LABEL_TOP`, one
    byte a voxel while every value fits one, else two: :func:`label_dtype`), or
    :class:`InputError` naming ``what`` when it holds what a label cannot: a fraction or NaN
    (some tools store labels as floats: whole numbers are taken), a negative value or one
    too large for two bytes (cast, such a value would wrap round to another one, -1 to
    65535, 70000 to 4464, and be shown and saved as that). ``file``: ``label`` was read
    from a file (which the message says is left as it is)."""
    if label is None:
        return None
    left = " (the file is left as it is)" if file else ""
    if label.dtype.kind == "f":
        whole = np.round(label)  # a float's rounding (1.0000001 from a tool's scaling) is no fraction
        with np.errstate(invalid="ignore"):
            off = label - whole  # NaN where the label is NaN or infinite
        np.abs(off, out=off)
        if not (off.max(initial=0.0) <= WHOLE_TOLERANCE):  # a NaN compares False
            raise InputError(f"{what}: label values must be whole numbers (found fractions or NaN){left}")
        label = whole
    elif label.dtype.kind not in "uib":
        raise InputError(f"{what}: label values must be integers, not {label.dtype}{left}")
    low, top = (int(label.min()), int(label.max())) if label.size else (0, 0)
    if low < 0 or top > LABEL_TOP:
        raise InputError(f"{what} holds the value " + (f"{low} (negative)" if low < 0 else f"{top}")
                         + f"; a label here holds values 1 to {LABEL_TOP}{left}")
    return label.astype(label_dtype(top), copy=False)


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
        if self.array.dtype == bool:  # a mask as the image: 0 and 1
            self.array = self.array.view(np.uint8)
        elif self.array.dtype.kind not in "iuf":
            raise InputError(f"a volume needs real numbers as intensities; this one holds {self.array.dtype} values")

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
        return self.shape == other.shape and not self.geometry_differences(other, rtol)

    def geometry_differences(self, other: "Volume", rtol: float = 0.0) -> list[str]:
        """Which of spacing, origin and direction differ from ``other``'s, exactly
        (``rtol=0``) or beyond a tolerance."""
        pairs = {"spacing": (self.spacing, other.spacing), "origin": (self.origin, other.origin),
                 "direction": (self.direction, other.direction)}
        if rtol == 0.0:
            return [name for name, (a, b) in pairs.items() if tuple(a) != tuple(b)]
        scale = max(1.0, float(np.max(np.abs(self.origin))))
        return [name for name, (a, b) in pairs.items() if not np.allclose(a, b, rtol=rtol, atol=rtol * scale)]

    def index_affine(self) -> np.ndarray:
        """4×4 matrix from an array index ``(z, y, x)`` to the patient position (LPS,
        x-y-z order) of that voxel's centre."""
        return _itk_index_affine(self.spacing, self.origin, self.direction)[:, [2, 1, 0, 3]]

    def on_grid_of(self, image: "Volume", part: bool = False) -> tuple[np.ndarray, int] | None:
        """(this volume's voxels on ``image``'s grid, how many of its non-zero voxels lie
        outside ``image``) when its voxel centres are ``image``'s: the same grid stored
        another way (rows flipped, axes in another order: a label written by a tool that
        turns every image to one orientation), or with ``part``, a part of it or more (a
        label 3D Slicer saved cropped to its segments, or grown to take in segments that
        reach beyond the image); None when they are not (another spacing, orientation or
        size, a shift by part of a voxel, or no voxel in common). Voxels it does not
        cover are 0."""
        found = lattice_map((self.size, self.spacing, self.origin, self.direction),
                            (image.size, image.spacing, image.origin, image.direction))
        if found is None:
            return None
        axes, signs, offsets = found
        whole = all(self.size[axes[a]] == image.size[a] and offsets[a] == (0 if signs[a] > 0 else image.size[a] - 1)
                    for a in range(3))
        if not (whole or part):
            return None
        into, taken = [slice(0)] * 3, [slice(0)] * 3
        for a in range(3):  # ITK axis a of the image: this volume's axis axes[a]
            n, m, o, s = image.size[a], self.size[axes[a]], offsets[a], signs[a]
            first, last = (max(0, -o), min(n - 1, m - 1 - o)) if s > 0 else (max(0, o - m + 1), min(n - 1, o))
            into[2 - a] = slice(first, last + 1)
            ends = sorted((o + s * first, o + s * last))
            taken[2 - axes[a]] = slice(ends[0], ends[1] + 1)
        block = np.transpose(self.array[tuple(taken)], [2 - axes[2 - p] for p in range(3)])
        flipped = [p for p in range(3) if signs[2 - p] < 0]
        block = np.flip(block, flipped) if flipped else block
        if block.shape == image.shape and block.shape == self.shape:
            return block, 0  # the same grid: no copy
        placed = np.zeros(image.shape, self.array.dtype)
        placed[tuple(into)] = block
        return placed, int(np.count_nonzero(self.array)) - int(np.count_nonzero(block))

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


def _itk_index_affine(spacing, origin, direction) -> np.ndarray:
    """4×4 matrix from an ITK index ``(x, y, z)`` to the patient position of that voxel's
    centre."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.reshape(direction, (3, 3)) @ np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix


def lattice_map(grid: tuple, on: tuple, atol: float = 1e-3, shift_atol: float = 0.01) -> tuple | None:
    """How the voxels of ``grid`` lie on those of ``on`` (each (size, spacing, origin,
    direction) in ITK's x, y, z order): (axes, signs, offsets), ``grid``'s index along
    ``axes[a]`` being ``offsets[a] + signs[a]`` times ``on``'s along ``a``; None when its
    voxel centres are not ``on``'s (another spacing or orientation, within ``atol``; a
    shift by part of a voxel, more than ``shift_atol``: float32 headers hold a few
    thousandths of one) or the two boxes do not overlap."""
    try:  # on's index -> grid's index
        turn = np.linalg.solve(_itk_index_affine(*grid[1:]), _itk_index_affine(*on[1:]))
    except np.linalg.LinAlgError:
        return None
    axes = np.argmax(np.abs(turn[:3, :3]), axis=0)
    signs = np.sign(turn[axes, range(3)]).astype(int)
    ideal = np.zeros((3, 3))
    ideal[axes, range(3)] = signs
    offsets = turn[axes, 3]
    if sorted(axes) != [0, 1, 2] or not np.allclose(turn[:3, :3], ideal, atol=atol) or not np.allclose(
            offsets, np.round(offsets), atol=shift_atol):
        return None
    offsets = np.round(offsets).astype(int)
    for a in range(3):  # the part of grid's axis that on's axis a covers meets grid's box
        low, high = sorted((offsets[a], offsets[a] + signs[a] * (int(on[0][a]) - 1)))
        if high < 0 or low > int(grid[0][axes[a]]) - 1:
            return None
    return [int(a) for a in axes], [int(s) for s in signs], [int(o) for o in offsets]


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


#: what people call the slices across each patient axis (x, y, z of LPS, or of RAS)
PLANES = ("sagittal", "coronal", "axial")


def plane_across(normal) -> str:
    """What people call the plane of slices whose normal (in patient space) is ``normal``:
    by the axis it runs along most."""
    return PLANES[int(np.argmax(np.abs(np.asarray(normal, float))))]


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
    """How many voxels of a label hold each value: 0..255, or up to its largest value for a
    label map numbered beyond a byte (FreeSurfer's ``aparc+aseg`` from 1000), which a cast
    to a byte would fold onto others (1002 onto 234). Counted a million voxels at a time (no
    sort of the whole label, and no CT-sized copy of 8-byte integers)."""
    flat = np.asarray(label).reshape(-1)
    top = int(flat.max()) if flat.size and flat.dtype.kind in "iu" and flat.dtype.itemsize > 1 else 0
    size = top + 1 if top > 255 else 256
    if size == 256:
        flat = flat.astype(np.uint8, copy=False)
    counts = np.zeros(size, np.int64)
    for start in range(0, flat.size, 1 << 20):
        counts += np.bincount(flat[start:start + (1 << 20)], minlength=size)
    return counts


def label_values(label: np.ndarray) -> list[int]:
    """The values other than 0 that a label holds, in order."""
    return [int(v) for v in np.flatnonzero(label_counts(label)[1:]) + 1]


def volumes_ml(counts: np.ndarray, spacing) -> dict[int, tuple[int, float]]:
    """Each value other than 0 that :func:`label_counts` found: its voxels and its volume
    in millilitres (``spacing`` in mm)."""
    voxel_ml = float(np.prod(np.asarray(spacing, float))) / 1000.0
    return {int(v): (int(counts[v]), int(counts[v]) * voxel_ml) for v in np.flatnonzero(counts[1:]) + 1}
