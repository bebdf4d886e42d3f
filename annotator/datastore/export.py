"""The labelled images of a datastore as a data set for training elsewhere, in nnU-Net's
raw layout (which MONAI and most tools read too)::

    OUT/imagesTr/<case>_0000.nii.gz   the image annotated (with ``channels``: it and its
                                      companions, _0000, _0001 ... in the order of the
                                      volumes of its 4-D file, of the case's channel files,
                                      or of the series' acquisitions by name: the same for
                                      every case, whichever of them was annotated)
    OUT/labelsTr/<case>.nii.gz        its final label, values made consecutive (1, 2, ...)
    OUT/dataset.json                  channel_names, labels {"background": 0, name: value},
                                      numTraining, file_ending; "annotator": where each case came from

Images and labels keep their geometry (spacing, origin, orientation). Cases are named
after the image ids (``series/s1`` -> ``series_s1``; nnU-Net's channel ending ``_0000``
taken off). Nothing is written over: the folder must be new or empty.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from annotator.datastore.base import Datastore
from annotator.errors import AnnotatorError, InputError
from annotator.io.atomic import atomic_write_text
from annotator.io.volume import Volume
from annotator.io.write import write_label, write_volume

FILE_ENDING = ".nii.gz"


def case_names(image_ids: list[str]) -> dict[str, str]:
    """A file-name-safe, unique case name per image id."""
    names: dict[str, str] = {}
    for image_id in image_ids:
        base = re.sub(r"_0000$", "", re.sub(r"[^A-Za-z0-9.-]+", "_", image_id).strip("_")) or "case"
        name, n = base, 1
        while name in names.values():
            n += 1
            name = f"{base}_{n}"
        names[image_id] = name
    return names


def _bracketed(volume: Volume) -> str | None:
    """What the volume's name says in brackets at its end ("T2", "echo 2"), if anything."""
    found = re.search(r"\(([^()]+)\)\s*$", volume.name)
    return found.group(1) if found else None


def channel_name(volume: Volume) -> str:
    """What a channel is called: "CT" for a CT (nnU-Net normalises it by that name), else
    what the volume's name says in brackets ("T2", "echo 2"), else its modality."""
    if volume.modality == "CT":
        return "CT"
    return _bracketed(volume) or (volume.modality if volume.modality != "unknown" else "image")


def channel_order(volume: Volume) -> tuple:
    """Where a volume goes among the channels of a case: by its place in its 4-D file, else
    by its nnU-Net channel file's number, else by what its name says in brackets (its
    acquisition), numbers in it compared as numbers ("echo 2" before "echo 10", "TE 9.5"
    before "TE 10")."""
    if volume.source.volume is not None:
        return (0, volume.source.volume)
    found = re.search(r"_(\d{4})\.[^/\\]+$", volume.source.path)
    if found:
        return (0, int(found.group(1)))
    parts = re.split(r"(\d+(?:\.\d+)?)", _bracketed(volume) or volume.name)
    return (1, *((0, float(t), "") if i % 2 else (1, 0.0, t) for i, t in enumerate(parts)))


def export_nnunet(store: Datastore, out: str | Path, channels: bool = False, progress=None) -> dict:
    """Write every image of ``store`` that has a final label, and the label, into ``out``
    (see the module); with ``channels``, each image's companions as further channels.
    ``progress(text, fraction)`` hears each case. Returns what dataset.json holds.
    A case whose channels differ in number from the first case's, or that cannot be read,
    is left out and named in ``"left_out"``."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a folder that holds files" if out.is_dir() else "a file"
        raise InputError(f"{out}: {what}; export into a new folder (nothing is written over)")
    ids = store.training_ids()
    if not ids:
        raise InputError(f"{store.name}: no image has a final label to export")
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(exist_ok=True)
    cases, names = case_names(ids), {}
    written: dict[str, str] = {}
    values: set[int] = set()  # the label values written
    channel_names: list[str] | None = None
    left_out: dict[str, str] = {}
    for done, image_id in enumerate(ids):
        if progress is not None:
            progress(f"exporting {image_id} ({done + 1} of {len(ids)})", done / len(ids))
        try:
            image = store.open_image(image_id)
            label = store.label(image_id, image)
            volumes = sorted([image, *store.companions(image_id, image)], key=channel_order) if channels else [image]
        except AnnotatorError as exc:
            left_out[image_id] = str(exc)
            continue
        if label is None:
            continue
        if channel_names is None:
            channel_names = [channel_name(v) for v in volumes]
        if len(volumes) != len(channel_names):
            left_out[image_id] = f"{len(volumes)} channels where the first case has {len(channel_names)}"
            continue
        case = cases[image_id]
        for number, volume in enumerate(volumes):
            write_volume(out / "imagesTr" / f"{case}_{number:04d}{FILE_ENDING}", volume)
        write_label(out / "labelsTr" / f"{case}{FILE_ENDING}", label, image)
        values.update(np.unique(label).tolist())
        for value, name in store.names_of(image_id).items():
            names.setdefault(int(value), str(name))
        written[case] = image_id
    if not written:
        raise InputError(f"{store.name}: none of the {len(ids)} labelled images could be exported: "
                         + "; ".join(f"{i}: {why}" for i, why in list(left_out.items())[:3]))
    labels = _consecutive(out / "labelsTr", list(written), values, names)
    described = {
        "name": store.name, "description": f"exported by Annotator from {store.place}",
        "channel_names": {str(i): n for i, n in enumerate(channel_names or [])},
        "labels": labels, "numTraining": len(written), "file_ending": FILE_ENDING,
        "annotator": {"cases": written, "left_out": left_out},
    }
    atomic_write_text(out / "dataset.json", json.dumps(described, indent=1))
    if progress is not None:
        progress(f"exported {len(written)} cases to {out}", 1.0)
    return described


def _consecutive(folder: Path, cases: list[str], found: set[int], names: dict[int, str]) -> dict[str, int]:
    """Make the label values ``found`` in the cases' label files 1, 2, ... (nnU-Net wants
    no gaps), rewriting the files only where a value changes; the labels' names by their
    new value."""
    from annotator.io.read import read_volume

    values = sorted(v for v in found if v > 0)
    new = {old: i for i, old in enumerate(values, start=1)}
    if any(old != i for old, i in new.items()):
        lookup = np.zeros(max(values) + 1, np.uint16)
        for old, i in new.items():
            lookup[old] = i
        for case in cases:
            path = folder / f"{case}{FILE_ENDING}"
            label = read_volume(path)  # its voxels are the label, its grid the image's
            write_label(path, lookup[label.array], label)
    labels = {"background": 0}
    for old, i in new.items():
        name = names.get(old) or f"label {old}"
        labels[name if name not in labels else f"{name} ({old})"] = i
    return labels
