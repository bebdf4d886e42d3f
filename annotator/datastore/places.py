"""What a path is, decided in one place: an image file, a DICOM series folder, a dataset
folder (``images/`` + ``labels/``), or a folder of images; and which images a folder holds.
The series of each DICOM folder: :mod:`annotator.datastore.dicom_folders`.

Symlinks: a linked image file is read through its link; a linked folder is not entered
when a folder is searched for images (no loops, no images from elsewhere). Label files
are never read or written through a link that leaves the labels folder.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

from annotator.io.sniff import IMAGE_SUFFIXES, image_stem, is_dicomdir, is_image_file, looks_like_dicom
from annotator.words import count


class Kind(str, Enum):
    IMAGE_FILE = "image file"
    DICOM_SERIES = "DICOM series"
    DATASET = "dataset folder"
    FOLDER = "folder"
    MISSING = "missing"


#: file endings that are never DICOM: images read otherwise, and what lies beside series
NOT_DICOM = (*IMAGE_SUFFIXES, ".txt", ".md", ".json", ".csv", ".xml", ".html", ".pdf", ".png", ".jpg", ".jpeg",
             ".gif", ".bmp", ".tif", ".tiff", ".zip", ".gz", ".py", ".log", ".ini", ".yaml", ".yml", ".raw", ".zraw")


def holds_dicom_files(folder: Path, limit: int | None = 5, slices: bool = False) -> bool:
    """Whether one of the first ``limit`` visible files directly in ``folder`` (all of
    them for None; files named as images or documents, :data:`NOT_DICOM`, are not
    looked at) is DICOM; with ``slices``, a DICOM image (its header is read: a SEG, a
    report or another object without slices does not count, nor towards ``limit``). A
    ``DICOMDIR`` (the index at the top of a CD or USB export, its series in folders
    below) does not count: it holds no image."""
    checked = 0
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return False
    for entry in entries:
        if (entry.name.startswith(".") or not entry.is_file() or is_dicomdir(Path(entry.path))
                or entry.name.lower().endswith(NOT_DICOM)):  # named as something else: not counted
            continue
        if looks_like_dicom(Path(entry.path)):
            if not slices:
                return True
            from annotator.io.dicom import holds_slices

            if holds_slices(Path(entry.path)):
                return True
            continue
        checked += 1
        if limit is not None and checked >= limit:
            break
    return False


def is_dataset(folder: Path) -> bool:
    """``images/`` and ``labels/`` side by side, and the labels are not a label store's."""
    return (folder / "images").is_dir() and (folder / "labels").is_dir() and not (folder / "labels" / "final").is_dir()


def classify(path: str | os.PathLike) -> Kind:
    path = Path(path)
    if path.is_file():
        return Kind.IMAGE_FILE if is_image_file(path) or looks_like_dicom(path) else Kind.MISSING
    if not path.is_dir():
        return Kind.MISSING
    if is_dataset(path):
        return Kind.DATASET
    if holds_dicom_files(path, slices=True) and not _holds_image_files(path):
        return Kind.DICOM_SERIES
    return Kind.FOLDER


def _holds_image_files(folder: Path) -> bool:
    """Whether image files other than DICOM lie directly in ``folder`` (then it is a folder
    of images that also holds DICOM files, such as SEG objects, not one series)."""
    try:
        return any(is_image_file(Path(e.path)) for e in os.scandir(folder) if e.is_file() and not e.name.startswith("."))
    except OSError:
        return False


def find_images(folder: Path, skip: Path | None = None, progress=None) -> dict[str, Path]:
    """The images below ``folder`` by id: image files and DICOM series folders.

    An id is the path relative to ``folder`` without the image ending; where two images
    would share it (``case.nii.gz`` and ``case.nrrd``, a series folder ``s1`` and
    ``s1.nii.gz``) the files keep their full names. Hidden entries, ``skip`` (the
    labels folder) and linked folders are not searched. ``progress(text, -1)`` hears how
    the search goes every 50 folders (a home folder can take minutes; it may raise to stop).
    """
    found: list[tuple[str, Path]] = []
    skip = skip.resolve() if skip is not None else None
    for searched, (root, dirs, names) in enumerate(os.walk(folder)):
        if progress is not None and searched % 50 == 0:
            n = len(found)
            progress(f"searching {folder.name or folder}: {count(n, 'image')} in {count(searched, 'folder')} so far", -1.0)
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (root_path / d).is_symlink()
                         and (skip is None or (root_path / d).resolve() != skip))
        files = [root_path / n for n in sorted(names) if not n.startswith(".")]
        for path in files:
            if is_image_file(path):
                found.append(((path.parent / image_stem(path)).relative_to(folder).as_posix(), path))
        if root_path != folder and holds_dicom_files(root_path):
            found.append((root_path.relative_to(folder).as_posix(), root_path))
    counts: dict[str, int] = {}
    for key, _ in found:
        counts[key] = counts.get(key, 0) + 1
    images = {}
    for key, path in found:
        if counts[key] > 1 and path.is_file():
            key = path.relative_to(folder).as_posix()
        images[key] = path
    return dict(sorted(images.items()))

