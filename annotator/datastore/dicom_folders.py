"""The DICOM series of a folder's DICOM folders, each an image of the folder, and their
DICOM SEG and RTSTRUCT files, each a label map, remembered between runs.

Which series (and acquisitions of one) a DICOM folder holds is known only from the
header of every file in it: about 0.35 ms a file, half a minute for 100,000 files. What
was found is kept in the user cache folder (:data:`CACHE_NAME`,
:mod:`annotator.datastore.remembered`), per DICOM folder with a stamp of it: the
folder's modification time and its files' count, total size and newest modification
time (a file added, removed, renamed or rewritten changes it). A folder whose stamp is
unchanged is not read again, unless it was listed by a version that told series apart
otherwise (:data:`LISTING`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from annotator.datastore.places import holds_dicom_files
from annotator.datastore.remembered import Remembered

CACHE_NAME = "dicom-folders.json"
#: how the series of a folder, and their label files, are told apart (raised when that
#: changes: a listing made before is read again; 2: the volumes of one multi-frame file,
#: the planes of a localizer; 3: RT Structure Sets with the SEG files; 4: radiographs,
#: colour pictures and reports are no images)
LISTING = 4
#: folders remembered at most (the least recently listed are forgotten first)
LIMIT = 20_000


class Series(NamedTuple):
    """The DICOM series (or acquisition of one) an image of a folder is."""

    key: str  # what names it to read_volume: its SeriesInstanceUID (and part)
    title: str  # modality and description (and part), for people
    number: str  # its SeriesNumber, as written


def _stamp(folder: Path) -> list[int]:
    """What changes when a file of ``folder`` is added, removed, renamed or rewritten."""
    count = size = newest = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file():
                info = entry.stat()
                count, size, newest = count + 1, size + info.st_size, max(newest, info.st_mtime_ns)
    return [folder.stat().st_mtime_ns, count, size, newest]


def _read(folder: Path) -> tuple[list[Series], list[str], bool]:
    """The image series in ``folder``'s own files, largest first, its DICOM SEG and
    RTSTRUCT files, and whether it holds nothing to annotate (a report, an X-ray)."""
    from annotator.io.dicom import scan_folder

    scan = scan_folder(folder, below=False)
    listed = []
    for info in scan.series:
        title = " ".join(t for t in (info.modality, info.description) if t)
        listed.append(Series(info.key, ", ".join(t for t in (title, info.part) if t), info.number))
    return listed, sorted(p.name for p in scan.label_files), scan.nothing_to_annotate


class _Listing:
    """The DICOM folders of a datastore's folder, read or taken from the cache."""

    def __init__(self, progress=None):
        self.progress = progress
        self.cache = Remembered(CACHE_NAME, LIMIT)

    def folder(self, path: Path, name: str) -> tuple[list[Series], list[str], bool]:
        """(image series, SEG and RTSTRUCT file names, nothing to annotate) of the DICOM
        files directly in ``path``."""
        place, stamp = str(path.resolve()), [LISTING, *_stamp(path)]
        try:
            kept = self.cache.get(place, stamp)
            return [Series(*s) for s in kept["series"]], [str(n) for n in kept["segs"]], bool(kept["nothing"])
        except (KeyError, TypeError):
            pass
        if self.progress is not None:
            self.progress(f"reading the DICOM headers in {name}", -1.0)
        found = _read(path)
        self.cache.put(place, stamp, {"series": [list(s) for s in found[0]], "segs": found[1], "nothing": found[2]})
        return found

    def save(self) -> None:
        self.cache.save()


def split_series(images: dict[str, Path], progress=None, pinned: dict[str, str] | None = None,
                 root: Path | None = None) -> tuple[dict[str, Path], dict[str, Series], dict[str, Path]]:
    """A folder's images with each DICOM folder's image series (and each acquisition of a
    series that holds several: echoes, time points) as an image of its own, the series of
    each DICOM folder's image by id, and the DICOM SEG and RTSTRUCT files of the DICOM folders (and of
    ``root``, the folder itself) by id, as label maps.

    A folder's largest series keeps the folder's id (what a folder of one series always
    had); another series is ``<folder id>#<its SeriesNumber>`` (its place in the folder's
    listing, largest first, where the number is missing or shared). ``pinned`` (id ->
    series key: the series that labels were saved on) keeps those ids on their series,
    whatever joins the folder later. A SEG file is ``<folder id>/<its name without
    .dcm>``. Only the files directly in a folder count: a folder below it is an image of
    its own. A folder of DICOM objects that are no images to annotate (reports, radiographs,
    colour pictures) is no image, nor is one of SEG files only; one whose files cannot be
    read stays, to say so when it is opened. ``progress(text, -1)`` hears each folder whose
    headers are read (it may raise to stop).
    """
    pinned = pinned or {}
    listing = _Listing(progress)
    split: dict[str, Path] = {}
    series: dict[str, Series] = {}
    segs: dict[str, Path] = {}

    def add_segs(prefix: str, folder: Path, names: list[str]) -> None:
        for name in names:
            key = prefix + (name[:-4] if name.lower().endswith(".dcm") else name)
            while key in images or key in split or key in segs:
                key += "+"
            segs[key] = folder / name

    if root is not None and holds_dicom_files(root, limit=None):  # a SEG beside NIfTI files, say
        add_segs("", root, listing.folder(root, root.name)[1])
    for image_id, path in images.items():
        split[image_id] = path
        if not path.is_dir():
            continue
        found, seg_names, nothing = listing.folder(path, image_id)
        if nothing:  # reports, radiographs: no row that cannot open
            del split[image_id]
            continue
        add_segs(f"{image_id}/", path, seg_names)
        keys = {one.key for one in found}
        pins = {key: i for i, key in pinned.items() if key in keys and (i == image_id or i.startswith(image_id + "#"))}
        numbers = [s.number for s in found]
        free = image_id not in pins.values()  # the folder's own id: for the largest unpinned series
        for i, one in enumerate(found):
            key = pins.get(one.key)
            if key is None and free:
                key, free = image_id, False
            elif key is None:
                number = one.number if one.number and numbers.count(one.number) == 1 else str(i + 1)
                key = f"{image_id}#{number}"
                while key in images or key in split or key in pins.values():  # taken
                    key += "+"
            split[key] = path
            series[key] = one
        if (found or seg_names) and image_id not in series:  # no series of its own, or all pinned elsewhere
            del split[image_id]
    listing.save()
    return split, series, segs
