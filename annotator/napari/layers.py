"""Volumes as napari layers: geometry, names, colours.

All Annotator layers of one image share the image's affine, so a layer's data
coordinates are voxel indices ``(z, y, x)`` of the volume, and what napari shows is in
patient millimetres with the right spacing and orientation (LPS for an axial image; the
axes of another are ordered and signed as :mod:`annotator.napari.planes` says).
"""

from __future__ import annotations

import numpy as np
from napari.utils.colormaps import DirectLabelColormap

from annotator.annotation.labels import palette_colour
from annotator.errors import AnnotatorError
from annotator.io.read import replace_non_finite
from annotator.io.volume import LABEL_TOP, Volume, intensity_range, label_dtype
from annotator.napari.planes import frame
from annotator.settings import LabelPreset

IMAGE, SEGMENTATION, FOREGROUND, BACKGROUND, SCRIBBLES = (
    "image", "segmentation", "foreground clicks", "background clicks", "scribbles")
#: the layers the annotation of an image adds beside it
ANNOTATION_LAYERS = (SEGMENTATION, FOREGROUND, BACKGROUND, SCRIBBLES)
#: the layer showing the image's voxels within the range Flood and Clip use, while it is set
RANGE = "within range"
#: Metadata key under which an image layer carries its Volume.
VOLUME_KEY = "annotator_volume"
#: Metadata key of a label map layer (a segmentation found beside the image): its id
LABEL_MAP_KEY = "annotator_label_map"
#: Metadata key of a label layer: the Volume it labels (what the writer saves it with)
LABEL_OF_KEY = "annotator_label_of"


def affine(volume: Volume) -> np.ndarray:
    """4x4 affine from array index ``(z, y, x)`` to the world the image's layers are shown
    in: patient coordinates (LPS, z-y-x order) in the image's own frame
    (:func:`annotator.napari.planes.frame`; LPS itself for an axial image).

    An oblique image (slices tilted from the patient's axes, as brain MR often is) is
    shown on its own grid, as a PACS shows its slices: each array axis along the world
    axis it leans to, at its spacing, the image's centre where the patient position puts
    it. napari shows a layer's slice without its tilt but maps a click or a stroke through
    the tilt: on a 280 x 320 x 22 MR tilted 11 degrees, a click at the top of the slice
    seen landed three slices from one at its bottom."""
    turn = np.eye(4)
    turn[:3, :3] = frame(volume)
    exact = turn @ volume.index_affine()[[2, 1, 0, 3]]  # patient rows in z-y-x order, then turned
    linear = exact[:3, :3]
    straight = np.diag(np.sign(np.diag(linear)) * np.linalg.norm(linear, axis=0))
    centre = (np.asarray(volume.shape, float) - 1) / 2
    shown = np.eye(4)
    shown[:3, :3] = straight
    shown[:3, 3] = linear @ centre + exact[:3, 3] - straight @ centre
    return shown


#: the least and most size of a click's marker on the screen, in pixels, however far the
#: view is zoomed
CLICK_PIXELS = (9, 40)


def click_size(shape) -> float:
    """A click's marker in voxels: about a fortieth of the image's width, so that it is seen
    the same on a 512 x 512 CT slice as on a 35 x 51 hippocampus crop (a size from the
    smallest axis made it one screen pixel on a 20-slice CT)."""
    return max(1.0, max(shape) / 40)


def brush_size(shape, fraction: int) -> int:
    """A brush about ``1/fraction`` of an image's slice wide, in voxels (at least one)."""
    return max(1, round(min(shape[1:]) / fraction))


def first_view(shape, labels) -> tuple[int, int, int]:
    """The voxel an image opens at: on the first of ``labels`` that holds anything, the
    slice (first array axis) where it has the most voxels, at their middle, so that a
    labelled image opens on its structure; else the image's middle."""
    for label in labels:
        per_slice = np.count_nonzero(label.reshape(label.shape[0], -1), axis=1) if label is not None else [0]
        if not np.any(per_slice):
            continue
        z = int(np.argmax(per_slice))
        rows, columns = np.nonzero(label[z])
        return z, int(np.median(rows)), int(np.median(columns))
    return tuple(int(n) // 2 for n in shape)


#: CT display windows, name -> (level, width) in HU
CT_WINDOWS = {"soft tissue": (40.0, 400.0), "lung": (-600.0, 1500.0), "bone": (400.0, 1800.0),
              "brain": (40.0, 80.0)}
#: every window a person can choose: the header's (when the image has one), the CT ones,
#: the image's 0.5-99.5 percentiles, its full range
WINDOWS = ("header", *CT_WINDOWS, "percentiles", "full range")


def default_window(volume: Volume) -> str:
    """How an image opens: the window its DICOM header gives, where it shows the image,
    else soft tissue for a CT, else its percentiles (MR and others)."""
    if volume.window is not None and _shows(volume):
        return "header"
    return "soft tissue" if volume.modality == "CT" else "percentiles"


def _shows(volume: Volume) -> bool:
    """Whether the header's window shows the image: it meets the image's intensities, and
    they spread over a quarter of it at least. A window kept from before an image was
    cropped or rescaled can lie beside its intensities or be many times wider (the picture
    black or flat)."""
    level, width = volume.window
    lo, hi = _percentiles(volume)
    return lo < level + width / 2 and hi > level - width / 2 and hi - lo >= width / 4


def _percentiles(volume: Volume) -> tuple[float, float]:
    """The image's 0.5-99.5 percentiles, its padding left out (a CT's -3024 outside the
    field of view would grey the picture)."""
    lo, hi = intensity_range(volume.array)
    return lo, hi if hi > lo else lo + 1


def window_limits(volume: Volume, name: str | None = None) -> tuple[float, float]:
    """Contrast limits (low, high) of the window ``name`` (default: :func:`default_window`)."""
    name = name or default_window(volume)
    if name == "header" and volume.window is None:
        name = "soft tissue" if volume.modality == "CT" else "percentiles"
    if name == "header" or name in CT_WINDOWS:
        level, width = volume.window if name == "header" else CT_WINDOWS[name]
        return level - width / 2, level + width / 2
    if name == "full range" and volume.array.size:
        lo, hi = np.nanmin(volume.array), np.nanmax(volume.array)
        return float(lo), float(hi if hi > lo else lo + 1)
    return _percentiles(volume)


def set_window(layer, volume: Volume, name: str | None = None) -> None:
    """Show ``layer`` (the image) through the window ``name``."""
    show_limits(layer, *window_limits(volume, name))


def show_limits(layer, lo: float, hi: float) -> None:
    """Show ``layer`` (the image) with contrast limits ``lo``, ``hi`` (its slider's range
    grown to hold them)."""
    low, high = layer.contrast_limits_range
    layer.contrast_limits_range = (min(low, lo), max(high, hi))
    layer.contrast_limits = (lo, hi)


def placement(layer) -> np.ndarray:
    """4x4 matrix from a layer's array index (z, y, x) to the world: its whole transform
    (scale, translate, rotate and shear, then its affine)."""
    from napari.utils.transforms import Affine

    own = Affine(scale=layer.scale, translate=layer.translate, rotate=layer.rotate, shear=layer.shear)
    return layer.affine.compose(own).affine_matrix


def layer_volume(layer) -> Volume:
    """The volume an image layer opened some other way shows (plugin use: a sample, another
    reader, an array): its voxels (the finest level of a multiscale layer) placed by the
    layer's whole transform (scale, translate, rotate and affine), so that the annotation's
    layers fall on it. Raises :class:`AnnotatorError` for an image that is not one 3-D
    grey-level volume."""
    if layer.rgb:
        raise AnnotatorError(f"layer '{layer.name}' is a colour (RGB) image; Annotator needs a 3-D grey-level image")
    data = np.asarray(layer.data[0] if layer.multiscale else layer.data)
    if data.ndim != 3:
        raise AnnotatorError(f"layer '{layer.name}' is {data.ndim}-D; Annotator needs a 3-D image")
    if data.dtype.kind not in "biuf":  # a mask shown as an image is taken as 0 and 1 (Volume)
        raise AnnotatorError(f"layer '{layer.name}' holds {data.dtype} values; Annotator needs real numbers")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        data = data.copy()  # its NaNs are filled in the volume's copy; the layer keeps its own
    whole = placement(layer)
    linear = whole[:3, :3][::-1, ::-1]  # index (x, y, z) -> world (x, y, z), as a Volume holds it
    spacing = np.linalg.norm(linear, axis=0)
    direction = linear / np.where(spacing > 0, spacing, 1)
    if np.any(spacing <= 0) or not np.allclose(direction.T @ direction, np.eye(3), atol=1e-6):
        raise AnnotatorError(f"layer '{layer.name}' is sheared or flattened by its transform; "
                             "Annotator needs an image on a rectangular grid")
    volume = Volume(data, tuple(float(s) for s in spacing), tuple(float(t) for t in whole[:3, 3][::-1]),
                    tuple(float(v) for v in direction.ravel()), name=layer.name)
    replace_non_finite(volume, f"layer '{layer.name}'")
    return volume


def place_like_annotation(layer, volume: Volume) -> bool:
    """Show an image layer as the annotation's layers of ``volume`` are shown (on its own
    grid, turned to the patient's axes: :func:`affine`); whether that moved it (a layer
    rotated or flipped by its transform)."""
    shown = affine(volume)
    if np.allclose(placement(layer), shown, atol=1e-6):
        return False
    layer.scale, layer.translate, layer.rotate, layer.shear = (1, 1, 1), (0, 0, 0), np.eye(3), (0, 0, 0)
    layer.affine = shown
    return True


def image_layer_data(volume: Volume) -> tuple:
    """A napari LayerData tuple for the image, carrying the Volume in its metadata, in the
    window it opens with (:func:`default_window`)."""
    lo, hi = window_limits(volume)
    return (volume.array, {"name": volume.name or IMAGE, "affine": affine(volume),
                           "contrast_limits": (float(lo), float(hi)), "metadata": {VOLUME_KEY: volume}}, "image")


def label_layer_data(label: np.ndarray, volume: Volume, names: dict[int, str], name: str) -> tuple | None:
    """A napari LayerData tuple showing ``label`` (whole-number values) as a Labels layer
    named ``name`` on the grid of ``volume`` (what it labels: the writer saves it on that
    grid), its values named by ``names`` (value -> name) and coloured as the app colours
    labels; None when its values are not whole numbers from 0 to 65535."""
    if label.dtype.kind == "f":
        if not (np.all(np.isfinite(label)) and np.all(label == np.round(label))):
            return None
    elif label.dtype.kind not in "iub":
        return None
    if label.size and (label.min() < 0 or label.max() > LABEL_TOP):
        return None
    data = label.astype(label_dtype(int(label.max()) if label.size else 0), copy=False)
    return (data, {"name": name, "affine": affine(volume), "opacity": 0.5,
                   "colormap": label_colormap([], np.unique(data)), "features": label_features(names),
                   "metadata": {LABEL_OF_KEY: volume}}, "labels")


def refresh_box(layer, box) -> None:
    """Redraw the part ``box`` (array slices) of a Labels layer whose data changed there in
    place: in a 2-D view only that rectangle of the slice shown, as napari does for its own
    brush (a whole-layer refresh of a 512×512 CT slice takes about 0.1 s). Anything else
    (no box, a 3-D view, data that is not a NumPy array, a napari whose internals
    differ) gets the whole refresh."""
    if box is None or layer._slice_input.ndisplay != 2 or not isinstance(layer.data, np.ndarray):
        layer.refresh()
        return
    try:
        shown = layer._slice_input.displayed
        point = layer._get_pt_not_disp()  # the index of the slice shown, per axis not displayed
        if any(not box[axis].start <= index < box[axis].stop for axis, index in point.items()):
            return  # the change is not on the slice shown: it is drawn when that slice is
        region = tuple(box[axis] for axis in shown)
        image = layer._slice.image
        if layer.contour == 0:
            image.view[region] = layer.colormap._data_to_texture(image.raw[region])
        layer._updated_slice = tuple(box)
        layer._partial_labels_refresh()
    except (AttributeError, KeyError, TypeError, IndexError, ValueError):
        layer.refresh()


def label_colormap(presets: list[LabelPreset], values=range(1, 256)) -> DirectLabelColormap:
    """The presets' colours; every other value of a label (uint8; or ``values``) a palette
    colour, so that a label map used as the label, with values no preset has, stays visible."""
    colors = {None: "transparent", 0: "transparent"}
    colors.update({int(v): palette_colour(int(v)) for v in values if v})
    colors.update({p.value: p.color for p in presets})
    return DirectLabelColormap(color_dict=colors)


def label_features(names: dict[int, str]):
    """A Labels layer's feature table naming its values (value -> name): napari shows the
    name beside the value under the pointer."""
    import pandas as pd

    rows = {0: "background", **{int(v): str(n) for v, n in names.items() if int(v) > 0}}
    return pd.DataFrame({"index": list(rows), "name": list(rows.values())})


def preset_features(presets: list[LabelPreset]):
    """:func:`label_features` naming each preset's value (the label layer's)."""
    return label_features({p.value: p.name for p in presets})


def range_colormap() -> DirectLabelColormap:
    return DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", 1: "#ffd400"})


def scribble_colormap() -> DirectLabelColormap:
    return DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", 1: "#00e000",
                                           2: "#ff00ff"})


def stroke(item, label: np.ndarray):
    """(box, what it held before, what it holds after) of one paint stroke on a label
    layer whose data is ``label``, from napari's record of the stroke (the history item
    its paint event carries: masked atoms of a box, or index arrays with their old and
    new values), whether or not the stroke is written into ``label`` yet; None when it
    changed nothing."""
    atoms = []  # (box, mask or index arrays, old values, new values), in the stroke's order
    for atom in item:
        if hasattr(atom, "slice_key"):
            box = tuple(slice(*s.indices(n)[:2]) for s, n in zip(atom.slice_key, label.shape))
            atoms.append((box, atom.mask, atom.old_values, atom.new_value))
        elif len(atom[0]) == label.ndim and np.size(atom[0][0]):
            box = tuple(slice(int(np.min(i)), int(np.max(i)) + 1) for i in atom[0])
            atoms.append((box, tuple(np.asarray(i) - b.start for i, b in zip(atom[0], box)), atom[1], atom[2]))
    if not atoms:
        return None
    whole = tuple(slice(min(a[0][d].start for a in atoms), max(a[0][d].stop for a in atoms))
                  for d in range(label.ndim))
    after = np.array(label[whole])

    def write(target, box, where, values):
        region = target[tuple(slice(s.start - w.start, s.stop - w.start) for s, w in zip(box, whole))]
        region[... if where is None else where] = values

    for box, where, _old, new in atoms:
        write(after, box, where, new)
    before = after.copy()
    for box, where, old, _new in reversed(atoms):
        write(before, box, where, old)
    return whole, before, after
