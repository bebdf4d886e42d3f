"""Labels as DICOM Segmentation objects (highdicom), and back, on their source series.

Written SEGs are BINARY, one segment per label value present, frames of empty slices
left out, source images sorted along the slice normal (highdicom does not sort). An
empty label is one segment with no voxels (its frames kept, all empty): "nothing there"
is an answer, and on a server it replaces a label sent before. Each
segment gets the SNOMED CT codes its name spells in DICOM's lists, and a side for a
paired organ (:mod:`annotator.io.seg_codes`); a name that spells none is an "Anatomical
Structure" of type "Tissue", with a warning, never a wrong organ. SEMIAUTOMATIC with the
algorithm named when a model contributed, MANUAL otherwise. Reading gives a label array
on the source series' grid, so SEG -> label -> SEG keeps every voxel.

A SEG numbers its segments 1..K, so a label that holds only value 2 is sent as segment 1.
Each segment written here therefore says its label value in its Segment Description
("label value 2"), and reading puts it back there. A SEG made elsewhere has no such
line: its segments take the values their names have in what the reader already knows,
else their numbers.
"""

from __future__ import annotations

import copy
import os
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

import annotator
from annotator.errors import InputError
from annotator.io.overlaps import Part, one_label
from annotator.io.seg_codes import segment_codes
from annotator.io.sniff import looks_like_dicom
from annotator.io.volume import LABEL_TOP, Volume, label_dtype, label_values

#: Patient and study attributes a SEG copies from its sources (type 2: may be empty, not absent)
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "StudyID", "AccessionNumber")

#: how a segment's Segment Description names the label value it came from
_VALUE_LINE = "label value {}"
_VALUE_PATTERN = re.compile(r"^label value (\d{1,5})$")


def sorted_sources(datasets: list) -> list:
    """Source images sorted along their slice normal (the order of :class:`Volume` slices)."""
    if len(datasets) < 2:  # one multi-frame image orders its own frames
        return list(datasets)
    iop = np.asarray(datasets[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    return sorted(datasets, key=lambda ds: float(np.asarray(ds.ImagePositionPatient, float) @ normal))


def label_to_seg(label: np.ndarray, sources: list, names: dict[int, str], algorithm: str | None = None,
                 creator: str = "", series_number: int = 9001, frames: tuple[int, ...] = ()):
    """A highdicom Segmentation of ``label`` ((z, y, x) on the sorted ``sources``' grid).

    ``names``: label value -> segment label; ``algorithm``: the model that contributed
    (SEMIAUTOMATIC), or None for a person's work alone (MANUAL); ``frames``: for one
    multi-frame source, the frame (from 1) of each of the label's slices (one of the
    volumes it holds), default all its frames along the slice normal.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from annotator.io.dicom import frame_count
    from annotator.io.multiframe import frame_order, keep_frames

    sources = sorted_sources(sources)
    for ds in sources:  # type 2 attributes a SEG copies: present, if empty, as the standard allows
        for keyword in _TYPE2_COPIED:
            if keyword not in ds:
                setattr(ds, keyword, "")
    slices = len(frames) or sum(frame_count(ds) for ds in sources)
    if label.shape != (slices, int(sources[0].Rows), int(sources[0].Columns)):
        raise InputError(f"label of shape {label.shape} (z,y,x) does not fit the series "
                         f"({slices} slices of {sources[0].Rows}x{sources[0].Columns})")
    renumber = None
    if len(sources) == 1 and frame_count(sources[0]) > 1:  # made on the label's frames, in its order, ...
        renumber = list(frames) or frame_order(sources[0], "the source image")[1]
        sources = [copy.deepcopy(sources[0])]
        keep_frames(sources[0], renumber)
    values = label_values(label)
    empty = not values
    if empty:  # "nothing there": one segment without voxels (a SEG holds at least one), every frame kept
        values = [min((int(v) for v in names), default=1)]
    descriptions = []
    for number, value in enumerate(values, start=1):
        coded = segment_codes(names.get(value, f"label {value}"))
        kwargs = {"algorithm_type": hd.seg.SegmentAlgorithmTypeValues.MANUAL}
        if algorithm:
            kwargs = {"algorithm_type": hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
                      "algorithm_identification": hd.AlgorithmIdentificationSequence(
                          name=algorithm, version=annotator.__version__,
                          family=codes.cid7162.ArtificialIntelligence)}
        description = hd.seg.SegmentDescription(
            segment_number=number, segment_label=names.get(value, f"label {value}")[:64],
            segmented_property_category=coded.category, segmented_property_type=coded.kind, **kwargs)
        if coded.side is not None:
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                hd.sr.CodedConcept.from_code(coded.side)]
        description.SegmentDescription = _VALUE_LINE.format(value)
        descriptions.append(description)
    numbered = np.zeros(max(values) + 1, label_dtype(len(values)))
    numbered[values] = np.arange(1, len(values) + 1)
    masks = numbered[label]  # each voxel its segment's number: highdicom's label-map input, one byte a voxel
    with warnings.catch_warnings():  # about the sources' patient names, which are not ours to change
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name.*")
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=masks, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=series_number,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Annotator",
            manufacturer_model_name="annotator3d", software_versions=annotator.__version__,
            device_serial_number="none", content_creator_name=creator or None, omit_empty_frames=not empty,
            series_description="Annotator segmentation", specific_character_set="ISO_IR 192")
    if renumber is not None:  # ... then referring to them by their numbers in the source
        for group in seg.PerFrameFunctionalGroupsSequence:
            for derivation in group.get("DerivationImageSequence", []):
                for item in derivation.get("SourceImageSequence", []):
                    item.ReferencedFrameNumber = renumber[int(item.ReferencedFrameNumber) - 1]
        seg = hd.seg.Segmentation.from_dataset(seg, copy=False)  # its index of frames, made again
    return seg


def series_seg(label: np.ndarray, image: Volume, names: dict[int, str],
               algorithm: str | None = None, deflated: bool = False) -> tuple[str, bytes]:
    """(SOP Instance UID, file bytes) of the SEG of ``label`` on ``image``, read from the
    DICOM files in its source folder: the instances it was read from (one acquisition of
    a series that holds several refers to its own). ``deflated``: in the Deflated Explicit
    VR Little Endian transfer syntax (zlib), for a server: a BINARY SEG's frames, one bit a
    voxel, cannot be compressed otherwise without a JPEG 2000 codec, and a CT's organs come
    to tens of MB uncompressed (the example CT's 31 structures on 20 slices: 17.3 MB,
    deflated 49 kB); a server gives it uncompressed to a viewer that does not ask for it
    as stored (Orthanc does)."""
    import io

    from pydicom.uid import DeflatedExplicitVRLittleEndian

    seg = label_to_seg(label, source_headers(image, "a DICOM SEG"), names, algorithm=algorithm,
                       frames=image.source.frames)
    if deflated:
        seg.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    return str(seg.SOPInstanceUID), buffer.getvalue()


def inflated(data: bytes) -> bytes | None:
    """The DICOM file ``data`` in Explicit VR Little Endian when it is deflated (for a
    server that does not take the Deflated transfer syntax); None when it is not, or
    cannot be read (a damaged file is refused as it is)."""
    import io

    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - pydicom raises many types on damaged files
        return None
    if dataset.file_meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return None
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def source_headers(image: Volume, what: str) -> list:
    """The headers of the DICOM instances ``image`` was read from (in its source folder or
    file), for ``what`` refers to them ("a DICOM SEG")."""
    from annotator.io.dicom import read_dataset

    if not image.source.sop_uids:
        raise InputError(f"{image.name}: {what} refers to the DICOM images it segments, and this image was not "
                         "read from DICOM; save its label as NIfTI (.nii.gz)")
    if not all(image.source.sop_uids):
        raise InputError(f"{image.name}: its DICOM files carry no SOP Instance UID (removed by an anonymiser?), so "
                         f"{what} cannot refer to them; save its label as NIfTI (.nii.gz)")
    where, mine = Path(image.source.path), set(image.source.sop_uids)
    files = [where] if where.is_file() else sorted(p for p in where.iterdir() if p.is_file() and looks_like_dicom(p))
    sources = [ds for ds in (read_dataset(p, stop_before_pixels=True) for p in files)
               if str(ds.get("SOPInstanceUID", "")) in mine]
    if not sources:
        raise InputError(f"{image.name}: none of the DICOM files it was read from is in {image.source.path}")
    if not all(str(ds.get("FrameOfReferenceUID", "")).strip() for ds in sources):
        raise InputError(f"{image.name}: its DICOM files carry no Frame of Reference UID (removed by an anonymiser?), "
                         f"which {what} must share with them; save its label as NIfTI (.nii.gz)")
    return sources


#: the fraction (probability or occupancy) of a FRACTIONAL SEG's segment from which a voxel
#: is taken to be in it
FRACTION = 0.5


def seg_to_label(seg, volume: Volume, known: dict[str, int] | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """The label of a SEG on its source series ``volume`` (read from DICOM, so its
    ``source.sop_uids`` are the slices in order, and for a multi-frame image its
    ``source.frames``), and the segment names by value. Of a FRACTIONAL SEG (a model's
    probabilities), each voxel is in the segment of the highest fraction there, if that
    is at least :data:`FRACTION`; where the segments of a BINARY one overlap, the smaller
    is kept, and that goes to ``volume.warnings`` (:mod:`annotator.io.overlaps`).

    Each segment gets the label value its Segment Description records (SEGs written
    here), else the value its name has in ``known`` (name -> value, lower-case names:
    what the reader has seen before), else its number where that is free, else the
    lowest free value.
    """
    import highdicom as hd

    if not isinstance(seg, hd.seg.Segmentation):
        seg = hd.seg.Segmentation.from_dataset(seg)
    uids = list(volume.source.sop_uids)
    if not uids or len(uids) != volume.shape[0]:
        raise InputError(f"{volume.name}: not read from DICOM slices, so a SEG cannot be placed on it")
    if not referenced_instances(seg) & set(uids):
        raise InputError(f"the SEG {seg.SOPInstanceUID} refers to another series than {volume.name}")
    # segment 0 of a LABELMAP SEG is its background
    numbers = [int(d.SegmentNumber) for d in seg.SegmentSequence if int(d.SegmentNumber) > 0]

    def pixels(**options) -> np.ndarray:
        options.setdefault("skip_overlap_checks", True)
        options.update(ignore_spatial_locations=True)
        if volume.source.frames:  # slices of one multi-frame image
            return seg.get_pixels_by_source_frame(source_sop_instance_uid=uids[0],
                                                  source_frame_numbers=list(volume.source.frames),
                                                  assert_missing_frames_are_empty=True, **options)
        return seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, **options)

    names = segment_names(seg.SegmentSequence)
    recorded = {}
    for item in seg.SegmentSequence:
        found = _VALUE_PATTERN.match(str(item.get("SegmentDescription", "")).strip())
        if found and 0 < int(found.group(1)) <= LABEL_TOP and int(item.SegmentNumber) in names:
            recorded[int(item.SegmentNumber)] = int(found.group(1))
    target = segment_values(names, recorded, known or {})
    named = {target[n]: name for n, name in names.items()}
    dtype = label_dtype(max(target.values(), default=0))
    if str(seg.get("SegmentationType", "")) != "FRACTIONAL":
        try:  # segments that do not overlap (the common case): all at once
            segments = pixels(segment_numbers=numbers, combine_segments=True, relabel=False,
                              skip_overlap_checks=False, dtype=np.uint16)
        except RuntimeError as exc:  # they overlap: one at a time, the smaller kept where two do
            if "overlap" not in str(exc):
                raise
            seg = hd.seg.Segmentation.from_dataset(seg, copy=True)  # the failed query left its frame index locked
            parts = [Part(target[n], names[n], np.flatnonzero(pixels(segment_numbers=[n], combine_segments=False,
                                                                     dtype=np.uint8)[..., 0])) for n in numbers]
            label, said = one_label(volume.shape, parts, f"the SEG {seg.SOPInstanceUID}")
            volume.warnings.extend(said)
            return label, named
        lut = np.zeros(max([*numbers, 0]) + 1, dtype)
        for number, value in target.items():
            lut[number] = value
        return lut[segments], named
    segments, best = np.zeros(volume.shape, dtype), np.full(volume.shape, FRACTION, np.float32)
    for number in numbers:  # probabilities: each voxel the segment most likely there, where that is at least even odds
        fraction = pixels(segment_numbers=[number], combine_segments=False, dtype=np.float32)[..., 0]
        more = (fraction > best) | ((fraction == best) & (segments == 0))  # a tie: the first segment
        segments[more], best[more] = target[number], fraction[more]
    return segments, named


def referenced_instances(seg) -> set[str]:
    """The SOP Instance UIDs of the images a SEG says it segments."""
    return {str(item.get("ReferencedSOPInstanceUID", "")) for series in seg.get("ReferencedSeriesSequence") or []
            for item in series.get("ReferencedInstanceSequence") or []}


def referenced_frames(seg) -> set[tuple[str, int]]:
    """(SOP Instance UID, frame number) of each frame of a multi-frame image that a SEG's
    frames say they were derived from (empty when it names no frames)."""
    from pydicom.multival import MultiValue

    found = set()
    for group in seg.get("PerFrameFunctionalGroupsSequence") or []:
        for derivation in group.get("DerivationImageSequence") or []:
            for item in derivation.get("SourceImageSequence") or []:
                numbers = item.get("ReferencedFrameNumber")
                if numbers is None:
                    continue
                for number in numbers if isinstance(numbers, (list, tuple, MultiValue)) else [numbers]:
                    found.add((str(item.get("ReferencedSOPInstanceUID", "")), int(number)))
    return found


def refers_to(seg, image: Volume) -> bool:
    """Whether a SEG segments ``image``: some of its instances, and of one of the volumes
    of a multi-frame image, some of its frames (when the SEG names frames)."""
    if not referenced_instances(seg) & set(image.source.sop_uids):
        return False
    frames = referenced_frames(seg) if image.source.frames else set()
    return not frames or bool(frames & set(zip(image.source.sop_uids, image.source.frames)))


def segment_names(items) -> dict[int, str]:
    """Segment number -> name: its Segment Label, told apart from others of the same label
    by the side its type's modifier gives (a left and a right "Kidney"), else by its
    number (:func:`distinct_names`)."""
    names, sides = {}, {}
    for item in items:
        number = int(item.SegmentNumber)
        if number > 0:
            names[number] = str(item.get("SegmentLabel", "")).strip() or f"segment {number}"
            kinds = item.get("SegmentedPropertyTypeCodeSequence", [])
            sides[number] = " ".join(str(m.CodeMeaning).lower() for kind in kinds
                                     for m in kind.get("SegmentedPropertyTypeModifierCodeSequence", []))
    return distinct_names(names, sides)


def distinct_names(names: dict[int, str], qualifiers: dict[int, str] | None = None) -> dict[int, str]:
    """Number -> name, where several share a name (case aside: three segments or structures
    labelled "Lesion" in a viewer) that name with its qualifier after it, where it has one,
    and then, where they still do, its number: each keeps a name of its own in the Label
    list."""
    qualifiers = qualifiers or {}
    for tell_apart in (lambda n, name: f"{name} {qualifiers[n]}" if qualifiers.get(n) else name,
                       lambda n, name: f"{name} {n}"):
        shared = Counter(name.lower() for name in names.values())
        names = {n: tell_apart(n, name) if shared[name.lower()] > 1 else name for n, name in names.items()}
    return names


def segment_values(names: dict[int, str], recorded: dict[int, int], known: dict[str, int]) -> dict[int, int]:
    """Segment number -> label value: the ``recorded`` value, else the value the segment's
    name has in ``known`` (name -> value), else its number where free, else the lowest
    free value; no two segments share a value."""
    known = {k.lower(): v for k, v in known.items()}
    target: dict[int, int] = {}
    for number, value in recorded.items():
        if number in names and value not in target.values():
            target[number] = value
    for number, name in names.items():
        value = known.get(name.lower())
        if number not in target and value is not None and value not in target.values():
            target[number] = value
    taken = set(target.values())
    for number in sorted(set(names) - set(target)):  # a segment's number is at most 65535, as a label's value
        value = number if number not in taken else min(set(range(1, len(taken) + 2)) - taken)
        target[number] = value
        taken.add(value)
    return target


def write_seg(path: str | os.PathLike, seg) -> Path:
    from annotator.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return path
