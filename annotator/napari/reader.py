"""npe2 reader: NIfTI, NRRD, MHA, MGZ files, DICOM folders and files (a multi-frame image, or a
slice: its series), with spacing and orientation.

A folder opens every DICOM image series in it and below, and a 4-D file each of its
volumes (time points, channels), each a layer in patient coordinates: the largest (the
file's first volume) on top and shown, the others hidden beneath it in the layer list
(tick one to see it). A 4-D file of more than 8 volumes (a time series) is one 4-D
layer, its first axis on a slider. A series that cannot be read is left out with a warning naming
it; the others still open. A folder of image files, or a data set (``images/`` beside
``labels/``), is not opened as layers: the reader says to open it in the Worklist, which
takes its images one by one. A label map (a file of a few whole-number values, or of
piecewise constant ones, or one named like a label: ``case_seg.nii.gz``; as
:func:`annotator.datastore.label_maps.is_label_map` tells) opens as a Labels layer on its
grid, its values named as the file names them, so that it falls on its image opened beside
it; a DICOM SEG or RT Structure Set opens so over its series, once that is open (or with
it, when the series lies in the file's folder or below it).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from annotator.datastore.label_maps import is_label_map, labels_image, referenced
from annotator.datastore.places import Kind, classify, find_images
from annotator.errors import AnnotatorError, InputError
from annotator.io import read_all
from annotator.io.read import MAX_COMPANIONS
from annotator.io.sniff import image_stem, looks_like_dicom
from annotator.napari.layers import VOLUME_KEY, image_layer_data, label_layer_data


def get_reader(path):
    """The reader for ``path``, or None when it is not ours."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    kind = classify(path)
    if kind in (Kind.IMAGE_FILE, Kind.DICOM_SERIES):
        return read_layers
    if kind == Kind.DATASET:
        return refuse_image_folder
    if kind == Kind.FOLDER:
        found = find_images(path).values()
        if any(p.is_dir() for p in found):
            return read_layers  # a study folder: its series below
        if found:  # napari would say only that no reader took it
            return refuse_image_folder
    return None


def refuse_image_folder(path) -> list[tuple]:
    """A folder of image files is a data set to annotate one image at a time, not a stack of
    layers: say where it opens."""
    if isinstance(path, list):
        path = path[0]
    raise InputError(f"'{Path(path).name}' is a folder of images, not one image: open it in the "
                     "Annotator Worklist (its Open folder... button) to annotate its images one by one, "
                     "or open one of its files")


def read_layers(path) -> list[tuple]:
    """Layer data for every volume ``path`` holds (errors carry the core's message naming
    the problem)."""
    if isinstance(path, list):
        path = path[0]
    if Path(path).is_file() and looks_like_dicom(Path(path)) and referenced(Path(path)) is not None:
        return segmentation_layers(Path(path))
    if Path(path).is_file() and is_label_map(image_stem(Path(path)), Path(path)):
        found = label_map_layer(Path(path))
        if found is not None:
            return [found]
    volumes, problems = read_all(path)
    if not volumes:
        more = f" (and {len(problems) - 1} other series)" if len(problems) > 1 else ""
        raise InputError(problems[0] + more)
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    if len(volumes) > MAX_COMPANIONS and len({(v.source.path, v.source.series_uid, v.shape) for v in volumes}) == 1:
        return [time_series_layer(volumes)]  # the volumes of one file or series: time points, b-values
    layers = [image_layer_data(volume) for volume in reversed(volumes)]  # the largest last: on top
    for _data, kwargs, _kind in layers[:-1]:
        kwargs["visible"] = False
    return layers


def label_map_layer(path: Path) -> tuple | None:
    """A label map file as a Labels layer on its own grid (None: a 4-D file, or values
    that are no label's; it opens as an image)."""
    from annotator.io.label_names import label_names_in
    from annotator.io.read import read_label_volume

    try:
        volume = read_label_volume(path)
    except AnnotatorError:
        return None
    for warning in volume.warnings:  # overlapping segments
        warnings.warn(warning, stacklevel=2)
    return label_layer_data(volume.array, volume, {v: n for n, v in label_names_in(path).items()}, volume.name)


#: a SEG's folder searched for its series only when it holds no more files than this (a
#: SEG saved in a home or downloads folder: the reader says to open the series instead)
MAX_FILES_BESIDE = 5000


def segmentation_layers(path: Path) -> list[tuple]:
    """A DICOM SEG or RT Structure Set as a Labels layer over the image layer of the series
    it labels (opened before by this reader, which knows the series' slices; else found in
    the file's folder or below it, and opened with it), its segments named as the file
    names them."""
    import napari

    from annotator.io.label_file import read_label_file

    viewer = napari.current_viewer()
    images = [layer.metadata[VOLUME_KEY] for layer in (viewer.layers if viewer is not None else [])
              if isinstance(layer, napari.layers.Image) and layer.metadata.get(VOLUME_KEY) is not None]
    image = next((volume for volume in reversed(images) if labels_image(path, volume)), None)
    layers = []
    if image is None:
        image = series_beside(path)
        layers.append(image_layer_data(image))
    before = len(image.warnings)
    label, names = read_label_file(path, image)
    for warning in image.warnings[before:]:  # outlines that could not be placed
        warnings.warn(warning, stacklevel=2)
    return layers + [label_layer_data(label, image, {v: n for n, v in names.items()}, image_stem(path))]


def series_beside(path: Path):
    """The series the SEG or RT Structure Set ``path`` labels (which is not open), read from
    the file's folder or below it (a PACS export keeps them together); InputError saying
    what to open when it is not there, or the folder is too large to search."""
    import os

    from annotator.io.dicom import read_info, scan_folder

    refused = (f"{path.name} is a DICOM segmentation of a series that is not open, and {{}}: open the series it "
               "refers to first (its folder, or one of its files), then this file, which opens over it")
    folder = path.parent
    count = 0
    for _root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        count += len(names)
        if count > MAX_FILES_BESIDE:
            raise InputError(refused.format(f"its folder holds too many files (over {MAX_FILES_BESIDE}) to look "
                                            "for it there"))
    found = referenced(path)
    for info in scan_folder(folder).series if found is not None else []:
        if info.series_uid == found[0]:
            image = read_info(info, folder)
            if labels_image(path, image):
                return image
    raise InputError(refused.format("it is not in the file's folder"))


def time_series_layer(volumes: list) -> tuple:
    """The volumes of a 4-D file or a DICOM series of many (a time series) as one 4-D
    layer, a slider for its first axis: napari's way, where a layer each would be hundreds."""
    import numpy as np

    first = volumes[0]
    data, kwargs, kind = image_layer_data(first)
    matrix = np.eye(5)
    matrix[1:, 1:] = kwargs["affine"]
    del kwargs["metadata"]  # not one volume to annotate: Annotate selected image layer says so
    kwargs.update(name=image_stem(Path(first.source.path)), affine=matrix)
    return np.stack([v.array for v in volumes]), kwargs, kind
