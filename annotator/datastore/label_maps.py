"""Label maps among a folder's images: told apart from the images to annotate, and linked
to the image each one labels.

A file is a label map when
- its name or a folder above it says so (a word such as ``seg``, ``label``, ``mask``, or
  one ending so: ``example_seg.nii.gz``, ``case_label.nrrd``, ``ct_totalseg.nii.gz``,
  ``labels/case.nii.gz``, ``labelsTr/case.nii.gz``)
  and its pixel type is an integer type, or a floating-point type holding few whole
  numbers (some data sets store labels as float); a name that only ends in such a word
  (``brainmask``) is not enough for a small file whose values are an image's (FreeSurfer's
  ``brainmask.mgz`` is the skull-stripped T1), or
- its pixel type is an integer type and it holds few values (at most
  :data:`MAX_VALUES`) or is piecewise constant (:func:`_looks_like_labels`: FreeSurfer's
  ``aseg.mgz`` holds some forty values); only files under :data:`SMALL_FILE` bytes are
  read to look at their values (a compressed label map is small, a CT is not), or
- it is a DICOM SEG file (found with the DICOM folders:
  :mod:`annotator.datastore.dicom_folders`).

A DICOM SEG is linked to the image of the series it segments. Another label map is linked
to an image when its name, once the label words are taken out, names exactly one image
(``example_seg_mr`` → ``example_mr_sm``), else to the one image on the same grid (size,
spacing, origin); where several images share that grid, the name decides between them
(most words in common, then fewest other words: ``labelsTr/case_1`` → ``imagesTr/case_1``
rather than ``imagesTr/case_1_t2``), and where it does not, the map labels each of them
(FreeSurfer's ``aseg.mgz`` lies on the grid of ``T1.mgz``, ``brainmask.mgz``, ``norm.mgz``
...). A label map that matches no image stays unlinked.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from annotator.datastore.remembered import Remembered, file_stamp
from annotator.io.read import quiet_c_stderr, read_image_file, read_information
from annotator.io.sniff import image_stem, is_image_file, looks_like_dicom
from annotator.io.slicer_seg import is_segmentation
from annotator.io.volume import lattice_map

LABEL_WORDS = {"seg", "segs", "segmentation", "segmentations", "label", "labels", "labelmap", "labelmaps",
               "mask", "masks", "gt", "groundtruth", "annotation", "annotations",
               "labelstr", "labelsts"}  # the last two: the Decathlon's and nnU-Net's label folders
#: an integer image with at most this many values is a label map whatever its name
MAX_VALUES = 32
#: ... and one with at most this many (a label's values are 1 to 255) when piecewise
#: constant: at least this share of its neighbouring voxels off the background equal (the
#: label maps of the data here 0.988–1.0, their images 0.02–0.07, their CTs in 8 bits of a
#: brain, soft-tissue, lung or bone window 0.03–0.17; a brain MR of the data
#: here in 8 bits with the brightest 40 % of its head set to one value, as FreeSurfer's
#: T1.mgz sets white matter to 110, 0.46; a CT whose air is clipped to one value has
#: thousands of values)
MAX_LABEL_VALUES = 256
PIECEWISE = 0.8
SMALL_FILE = 16 * 2**20
#: what the files' values said, by file (:mod:`annotator.datastore.remembered`), and the
#: version of the rules above it was found by (raised when they change)
CACHE_NAME = "label-maps.json"
RULES = 1
_INTEGER_TYPES = {"8-bit unsigned integer", "8-bit signed integer", "16-bit unsigned integer",
                  "16-bit signed integer", "32-bit unsigned integer", "32-bit signed integer",
                  "64-bit unsigned integer", "64-bit signed integer"}


def words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


#: a word ending so is a label word too (``totalseg``, ``brainmask``, ``liverlabel``)
LABEL_ENDINGS = ("seg", "label", "labels", "mask", "masks")


def label_word(word: str) -> bool:
    return word in LABEL_WORDS or word.endswith(LABEL_ENDINGS)


def _named_like_label(image_id: str) -> bool:
    return any(label_word(w) for w in words(image_id))


def _named_as_label(image_id: str) -> bool:
    """Whether a word of the name (or of a folder above) is a label word itself, not only
    ends as one."""
    return any(w in LABEL_WORDS for w in words(image_id))


def mask_name(map_id: str, image_id: str, label: np.ndarray) -> dict[str, int]:
    """Name -> value of a mask (one structure, value 1) that names no labels itself, from
    its file's name where that names something other than its image:
    ``segmentations/liver.nii.gz`` beside ``ct.nii.gz`` (TotalSegmentator writes a file per
    structure), ``liver_seg.nrrd`` → ``{"liver": 1}``; ``case_seg`` and ``labelsTr/case``
    name their image ``case``, and ``mask`` or ``mask_2`` nothing: empty."""
    own = _own_words(map_id)
    if all(w.isdigit() for w in own) or set(own) & set(words(image_id)) or label.max() != 1:
        return {}
    return {"_".join(own): 1}


def _own_words(map_id: str) -> list[str]:
    """The words of a label map's file name that are no label words."""
    return [w for w in words(map_id.rsplit("/", 1)[-1]) if not label_word(w)]


@lru_cache(maxsize=4096)
def _header(path: str, mtime: float) -> tuple | None:
    """(pixel type, size, spacing, origin, direction) of an image file from its header, or
    None; of a 4-D file, its volumes' (what a label of it is drawn on)."""
    import SimpleITK as sitk

    try:
        reader = read_information(path)
    except RuntimeError:
        return None
    direction = reader.GetDirection()
    dimension = reader.GetDimension()
    if dimension > 3:  # the 3-D part of a 4-D file's direction
        direction = [direction[r * dimension + c] for r in range(3) for c in range(3)]
    return (sitk.GetPixelIDValueAsString(reader.GetPixelID()), tuple(reader.GetSize()[:3]),
            tuple(reader.GetSpacing()[:3]), tuple(reader.GetOrigin()[:3]), tuple(direction))


def header(path: Path) -> tuple | None:
    try:
        return _header(str(path), path.stat().st_mtime) if path.is_file() else None
    except OSError:
        return None


def referenced(path: Path) -> tuple[str, set[str]] | None:
    """The SeriesInstanceUID a DICOM SEG or RTSTRUCT file labels and the SOP Instance UIDs
    of its images (None: not a readable one)."""
    from annotator.io import rtstruct
    from annotator.io.dicom import read_dataset
    from annotator.io.seg import referenced_instances

    try:
        ds = read_dataset(path, stop_before_pixels=True,
                          specific_tags=["Modality", "ReferencedSeriesSequence", "ReferencedFrameOfReferenceSequence"])
        if ds.get("Modality") == "RTSTRUCT":
            found = rtstruct.referenced_series(ds)
            return (found, rtstruct.referenced_instances(ds)) if found else None
        if ds.get("Modality") != "SEG":
            return None
        return str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID), referenced_instances(ds)
    except Exception:  # noqa: BLE001 - a damaged header: no link by it
        return None


def _acquisition(path: Path, instances: set[str], candidates: list[str], images: dict[str, Path],
                 series: dict[str, str]) -> str:
    """Of the images that are acquisitions of one series (largest first), the one whose
    slices the SEG ``path`` refers to most (of the volumes of one multi-frame image, whose
    frames; the largest when it names none of them)."""
    from annotator.io.dicom import read_dataset, scan_folder
    from annotator.io.seg import referenced_frames

    scans: dict[Path, dict[str, tuple[set[str], set[tuple[str, int]]]]] = {}
    overlap = []
    frames: set[tuple[str, int]] | None = None
    for image_id in candidates:
        folder = images[image_id]
        if folder not in scans:
            try:
                listing = scan_folder(folder, below=False).series
            except Exception:  # noqa: BLE001 - an unreadable folder: no overlap found there
                listing = []
            scans[folder] = {info.key: ({str(f.dataset.get("SOPInstanceUID", "")) for f in info.files},
                                        {(str(f.dataset.get("SOPInstanceUID", "")), n) for f in info.files
                                         for n in info.frames}) for info in listing}
        uids, mine = scans[folder].get(series[image_id], (set(), set()))
        if mine and frames is None:
            try:
                frames = referenced_frames(read_dataset(path, stop_before_pixels=True))
            except Exception:  # noqa: BLE001 - a damaged SEG: its instances alone decide
                frames = set()
        overlap.append((len(instances & uids), len((frames or set()) & mine)))
    return candidates[max(range(len(candidates)), key=lambda i: overlap[i])]


def _equal_neighbours(array: np.ndarray, background) -> float:
    """The share of neighbouring voxel pairs (along each axis) of equal value, of the pairs
    whose two voxels both differ from ``background``: near 1 for a label map, whose
    structures are each one value; a few hundredths for an image's tissue, where noise
    sets neighbours apart. Of an image of more than 2^24 voxels, every few slices, within
    each."""
    step = max(1, array.size >> 24)
    array = array[::step]
    off = array != background
    equal = pairs = 0
    for axis in range(0 if step == 1 else 1, array.ndim):
        later = tuple(slice(1, None) if a == axis else slice(None) for a in range(array.ndim))
        earlier = tuple(slice(None, -1) if a == axis else slice(None) for a in range(array.ndim))
        both = off[later] & off[earlier]
        pairs += int(np.count_nonzero(both))
        equal += int(np.count_nonzero(both & (array[later] == array[earlier])))
    return equal / pairs if pairs else 1.0


def _looks_like_labels(path: Path, whole: bool = False, cache: Remembered | None = None) -> bool:
    """Whether the image holds at most :data:`MAX_VALUES` values (every second voxel
    counted), or at most :data:`MAX_LABEL_VALUES` and is piecewise constant (of its
    neighbouring voxels off the background, at least :data:`PIECEWISE` equal); with
    ``whole``, also only whole numbers. Each file is read whole for it (a FreeSurfer
    subject's twenty-odd volumes take seconds), so what was found is kept in ``cache``
    until the file changes."""
    import SimpleITK as sitk

    try:
        key, stamp = f"{path.resolve()}{'|whole' if whole else ''}", [RULES, *file_stamp(path)]
    except OSError:
        return False
    if cache is not None and isinstance(kept := cache.get(key, stamp), bool):
        return kept
    try:
        with quiet_c_stderr():
            array = sitk.GetArrayFromImage(read_image_file(path))
    except RuntimeError:
        return False  # not kept: a file being written is read again
    values, counts = np.unique(array[::2, ::2, ::2] if array.ndim == 3 else array, return_counts=True)
    if whole and not np.all(np.isfinite(values) & (values == np.round(values))):
        found = False
    elif len(values) <= MAX_VALUES:
        found = True
    else:  # the commonest value is the background, around the structures
        found = len(values) <= MAX_LABEL_VALUES and _equal_neighbours(array, values[np.argmax(counts)]) >= PIECEWISE
    if cache is not None:
        cache.put(key, stamp, found)
    return found


def is_label_map(image_id: str, path: Path, cache: Remembered | None = None) -> bool:
    """Whether the image file ``path`` of the folder's image ``image_id`` is a label map
    (the module's rules); ``cache`` keeps what its values said."""
    if path.is_dir():  # a DICOM folder: its SEG files are label maps of their own
        return False
    found = header(path)
    if found is None:
        return False
    pixel, small = found[0], path.stat().st_size < SMALL_FILE
    if path.name.lower().endswith(".nrrd") and _named_like_label(image_id):
        pixel = pixel.removeprefix("vector of ")  # 3D Slicer's segmentation of overlapping segments: a layer each
    if pixel not in _INTEGER_TYPES:
        return (pixel in ("32-bit float", "64-bit float") and _named_like_label(image_id) and small
                and _looks_like_labels(path, whole=True, cache=cache))
    if _named_as_label(image_id):
        return True
    # a name that only ends as a label word says less (``brainmask``): a small file's values decide
    return _looks_like_labels(path, cache=cache) if small else _named_like_label(image_id)


def split(found: dict[str, Path], progress=None) -> tuple[dict[str, Path], dict[str, Path]]:
    """(images to annotate, label maps) of a folder's images by id; ``progress(text,
    fraction)`` hears every 20 images (it may raise to stop). What a file's values said is
    remembered between runs (:data:`CACHE_NAME`)."""
    images, maps = {}, {}
    cache = Remembered(CACHE_NAME)
    try:
        for done, (image_id, path) in enumerate(found.items()):
            if progress is not None and done % 20 == 0 and len(found) > 20:
                progress(f"looking at the headers of {len(found)} images: {done} done", done / len(found))
            (maps if is_label_map(image_id, path, cache) else images)[image_id] = path
    finally:  # what was read before a stop is kept too
        cache.save()
    return images, maps


def _geometry(path: Path, series: str | None = None) -> tuple | None:
    """(size, spacing, origin, direction) of an image's voxel grid, from its header (of a
    DICOM folder, from its series), or None."""
    if path.is_dir():
        try:
            from annotator.io.read import read_volume

            v = read_volume(path, series)
        except Exception:  # noqa: BLE001 - an unreadable series matches nothing
            return None
        return v.size, v.spacing, v.origin, v.direction
    found = header(path)
    return None if found is None or len(found[4]) != 9 else found[1:]


def _grid(geometry: tuple) -> tuple:
    """The grid of points an image's voxels lie on, however they are stored (rows flipped,
    axes in another order: the same key, as :func:`annotator.io.read.read_label` reads
    such a label onto the image): each index axis as (the patient axis it runs along,
    voxels, spacing), sorted, and the lowest corner of the voxel centres, rounded."""
    size, spacing, origin, direction = geometry
    matrix = np.reshape(direction, (3, 3)) * np.asarray(spacing, float)
    axes = sorted((int(np.argmax(np.abs(matrix[:, i]))), int(size[i]), round(float(spacing[i]), 4)) for i in range(3))
    corners = [np.asarray(origin, float) + matrix @ np.array([c[0] * (size[0] - 1), c[1] * (size[1] - 1),
                                                                c[2] * (size[2] - 1)])
               for c in np.ndindex(2, 2, 2)]
    return tuple(axes), tuple(round(float(v), 2) for v in np.min(corners, axis=0))


def _fits(path: Path, label: tuple | None, image: tuple | None) -> bool:
    """Whether the label at ``path``, of grid ``label``, lies on the voxels of the image of
    grid ``image`` as :func:`annotator.io.read.read_label` takes it: the same grid however
    stored, or for a 3D Slicer segmentation a part of it (saved cropped to its segments)."""
    if label is None or image is None:
        return False
    if _grid(label) == _grid(image):
        return True
    return lattice_map(label, image) is not None and is_segmentation(path)


def read_map(path: Path, map_id: str, image_id: str, image, known: dict[str, int] | None = None):
    """(label on ``image``'s grid, name -> value) of the label map ``map_id`` of ``image_id``
    at ``path``: the names its file gives (:func:`annotator.io.label_file.read_label_file`),
    else for a mask the name of its file (:func:`mask_name`)."""
    from annotator.io.label_file import read_label_file

    label, names = read_label_file(path, image, known)
    return label, names or mask_name(map_id, image_id, label)


#: label maps of one image that lie in a folder of their own are one label map when there
#: are at least this many (TotalSegmentator writes a mask per structure: 117 files)
GROUP_FILES = 2


def structure_name(map_id: str, image_id: str) -> str:
    """The structure a mask's file names, apart from its image and label words
    (``segmentations/kidney_left`` of ``ct``: ``kidney_left``); empty where it names none
    (``labels/case1_seg`` of ``case1``, ``mask_2``)."""
    taken = set(words(image_id))
    own = [w for w in _own_words(map_id) if w not in taken]
    return "" if all(w.isdigit() for w in own) else "_".join(own)


def groups(links: dict[str, list[str]], maps: dict[str, Path],
           images: dict[str, Path]) -> dict[str, dict[str, list[str]]]:
    """Image id -> {id of a folder of its masks: the ids of the label maps in it}: a folder
    that holds at least :data:`GROUP_FILES` label maps of the image, each naming a
    structure of its own (:func:`structure_name`), and no image to annotate, nor a label
    map of another image or a DICOM file among them (TotalSegmentator's ``segmentations/``
    beside its CT: one label map of 117 structures, not 117 of one). The folder's id is
    its part of the maps' ids (``segmentations``)."""
    holding = {(p if p.is_dir() else p.parent).resolve() for p in images.values()}
    by_folder: dict[Path, list[str]] = {}
    for map_id, path in maps.items():
        if links.get(map_id):  # one that labels no image is shown nowhere
            by_folder.setdefault(path.parent.resolve(), []).append(map_id)
    found: dict[str, dict[str, list[str]]] = {}
    for folder, members in by_folder.items():
        owners = {tuple(links[m]) for m in members}
        if folder in holding or len(members) < GROUP_FILES or owners != {tuple(links[members[0]][:1])}:
            continue  # beside images, too few, or of several images (or each of several)
        [(owner,)] = owners
        names = [structure_name(m, owner) for m in members]
        if not all(names) or len(set(names)) < len(names) or any(looks_like_dicom(maps[m]) for m in members):
            continue
        group_id = members[0].rpartition("/")[0]
        while group_id in maps or group_id in images:
            group_id += "+"
        found.setdefault(owner, {})[group_id] = sorted(members)
    return found


def read_group(members: dict[str, Path], image_id: str, image, known: dict[str, int] | None = None):
    """(label on ``image``'s grid, name -> value) of a folder of masks (:func:`groups`):
    each file a structure named by its file (each value of a file of several, by the names
    the file gives them or its own name and the value), valued as ``known`` (name ->
    value) names it, else in the files' order; where masks overlap, the smaller is kept
    (said on ``image``, as a mask that cannot be read is). The files are read on up to 8
    cores (a CT's 117 masks take longer than the CT), each structure's voxels kept, not
    its file's array."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from annotator.errors import AnnotatorError
    from annotator.io.label_file import read_label_file
    from annotator.io.overlaps import Part, one_label
    from annotator.io.seg import segment_values
    from annotator.io.volume import label_values

    def structures(item: tuple[str, Path]) -> list[tuple[str, np.ndarray]]:
        map_id, path = item
        try:
            label, named = read_label_file(path, image)
        except AnnotatorError as exc:  # one damaged mask costs its structure, not the others
            image.warnings.append(f"{map_id} left out: {exc}")
            return []
        top = int(label.max()) if label.size else 0
        held = label_values(label) if top > 1 else [1] * top
        own = {v: n for n, v in named.items()}
        name = structure_name(map_id, image_id)
        return [(own.get(v) or (name if len(held) == 1 else f"{name}_{v}"), np.flatnonzero(label == v)) for v in held]

    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:  # the readers leave the GIL
        pieces = [piece for found in pool.map(structures, sorted(members.items())) for piece in found]
    numbered = {k + 1: title for k, (title, _) in enumerate(pieces)}
    values = segment_values(numbered, {}, known or {})
    parts = [Part(values[k + 1], title, voxels) for k, (title, voxels) in enumerate(pieces)]
    label, said = one_label(tuple(image.shape), parts, image_id)
    image.warnings.extend(said)
    return label, {part.name.lower(): part.value for part in parts}


def labels_image(path: Path, image) -> bool:
    """Whether the file at ``path`` is a label of ``image`` (a :class:`Volume`): a label map
    (:func:`is_label_map`) on its grid, however stored, or a DICOM SEG or RT Structure Set
    of its slices."""
    path = Path(path)
    if not path.is_file():
        return False
    if looks_like_dicom(path):
        found = referenced(path)
        if found is None:
            return False
        series, instances = found
        return bool(instances & set(image.source.sop_uids)) if instances else series == image.source.series_uid
    if not is_image_file(path) or not is_label_map(image_stem(path), path):
        return False
    return _fits(path, _geometry(path), (image.size, image.spacing, image.origin, image.direction))


def link(images: dict[str, Path], maps: dict[str, Path], series: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Label map id -> the ids of the images it labels: one, or those of one grid that its
    name does not tell apart (none: no image matches); ``series``: which series of its
    folder a DICOM folder's image is (its key), by id."""
    series = series or {}
    image_words = {i: set(words(i)) for i in images}
    links: dict[str, list[str]] = {}
    geometry: dict[str, tuple | None] = {}

    def grid(image_id: str) -> tuple | None:
        if image_id not in geometry:
            geometry[image_id] = _geometry(images[image_id], series.get(image_id))
        return geometry[image_id]

    by_uid: dict[str, list[str]] = {}
    for image_id, key in series.items():  # the acquisitions of a series that holds several, largest first
        by_uid.setdefault(key.split("/")[0], []).append(image_id)
    for map_id, path in maps.items():
        seg = referenced(path) if path.is_file() and looks_like_dicom(path) else None
        if seg is not None:  # a DICOM SEG: the series (and acquisition) it segments, if here
            candidates = by_uid.get(seg[0], [])
            links[map_id] = ([_acquisition(path, seg[1], candidates, images, series)] if len(candidates) > 1
                             else candidates)
            continue
        wanted = {w for w in words(map_id) if not label_word(w)}
        by_name = [i for i, w in image_words.items() if wanted and wanted <= w]
        if len(by_name) == 1:
            links[map_id] = by_name
            continue
        mine = _geometry(path)
        pool = by_name or list(images)
        same = [i for i in pool if mine is not None and grid(i) is not None and _grid(grid(i)) == _grid(mine)]
        if not same:  # on no image's grid as it is: on a part of one (a Slicer segmentation saved cropped)
            same = [i for i in pool if _fits(path, mine, grid(i))]
        if len(same) > 1:  # the name decides: most words in common, then fewest other words
            fit = lambda i: (-len(wanted & image_words[i]), len(image_words[i] - wanted))  # noqa: E731
            same.sort(key=fit)
            same = [i for i in same if fit(i) == fit(same[0])]
        links[map_id] = same
    return links
