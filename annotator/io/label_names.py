"""The names a label map file gives its values, read from its header (and, for NIfTI,
written: :func:`add_nifti_label_table`), or from a table beside it.

- NIfTI: a label table in a header extension, as TotalSegmentator's multilabel output and
  Connectome Workbench write it (``<CaretExtension>`` XML: ``<Label Key="5" ...>liver
  </Label>``);
- NRRD: 3D Slicer's segmentation fields (``Segment0_Name``, ``Segment0_LabelValue``, ...;
  segments on several layers numbered as :mod:`annotator.io.slicer_seg` flattens them);
- FreeSurfer's MGH (``aseg.mgz``): a colour table beside it (``*LUT.txt``), else
  FreeSurfer's own in the installation ``FREESURFER_HOME`` names, for the values it holds;
- any label file: a BIDS derivative's ``*_dseg.tsv`` beside it (columns ``index``, ``name``),
  else ITK-SNAP's label description file beside it, else a ``labels.json`` or
  ``dataset.json`` in its folder (nnU-Net's predictions).

A file that names nothing, or whose table cannot be read, gives no names: names are a
help, never a reason to refuse a label map.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from annotator.io.volume import LABEL_TOP

#: a header extension larger than this is not read as a label table
MAX_TABLE_BYTES = 4 * 2**20


def label_names_in(path: str | os.PathLike) -> dict[str, int]:
    """Name -> value of the labels ``path`` names (empty when it names none): in its
    header, else in a BIDS look-up table or ITK-SNAP's label descriptions beside it
    (:func:`_bids_table`, :func:`_itksnap_table`), else in the ``labels.json`` or
    ``dataset.json`` of its folder (:func:`_json_table`)."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            found = _nifti_table(path)
        elif name.endswith((".nrrd", ".nhdr")):
            found = _slicer_segments(path)
        elif name.endswith((".mgz", ".mgh")):
            found = _colour_table(path)
        else:
            found = {}
        return found or _bids_table(path) or _itksnap_table(path) or _json_table(path)
    except (OSError, ValueError, RuntimeError):
        return {}


def names_by_value(labels: dict) -> dict[str, int]:
    """Label name -> value from a ``"labels"`` entry that maps values to names (the
    Decathlon's ``{"1": "liver"}``) or names to values (nnU-Net's ``{"liver": 1}``; a
    region of several values, ``{"tumour": [1, 2]}``, names none of them). Raises
    ``AttributeError``, ``TypeError`` or ``ValueError`` for an entry of neither kind."""
    if all(str(key).strip().isdigit() for key in labels):
        return {str(name).lower(): int(value) for value, name in labels.items() if 0 < int(value) <= LABEL_TOP}
    return {str(name).lower(): int(value) for name, value in labels.items()
            if not isinstance(value, (list, tuple)) and 0 < int(value) <= LABEL_TOP}


def _json_table(path: Path) -> dict[str, int]:
    """The names a ``labels.json`` or ``dataset.json`` in the label's own folder gives (the
    ``dataset.json`` nnU-Net writes beside its predictions); nothing from one that cannot
    be read."""
    import json

    for name in ("labels.json", "dataset.json"):
        try:
            text = _table_text(path.parent / name, errors="strict")
            if text is None:
                continue
            labels = json.loads(text).get("labels")
            return names_by_value(labels) if labels else {}
        except (AttributeError, TypeError, ValueError):
            return {}
    return {}


def _table_text(table: Path, errors: str = "replace") -> str | None:
    """The text of a table file beside a label (None: no plain file there, or one larger
    than :data:`MAX_TABLE_BYTES`)."""
    if not table.is_file() or table.stat().st_size > MAX_TABLE_BYTES:
        return None
    return table.read_text("utf-8", errors)


#: how ITK-SNAP's label description file starts (Segmentation > Export Label Descriptions)
ITKSNAP_HEADER = "ITK-SnAP Label Description File"
_ITKSNAP_ROW = re.compile(r'^\s*(\d+)\s+\d+\s+\d+\s+\d+\s+[\d.]+\s+\d+\s+\d+\s+"(.*)"\s*$')


def _itksnap_table(path: Path) -> dict[str, int]:
    """The names ITK-SNAP's label description file gives (rows ``IDX R G B A VIS MSH
    "name"``; 0, "Clear Label", is the background, and "Label N" names nothing): one of the
    label's own name (``case_seg.txt``), else one in its folder whose name says label
    (``labels.txt``, ``label_descriptions.txt``)."""
    from annotator.io.sniff import image_stem

    own = path.with_name(image_stem(path) + ".txt")
    others = sorted(p for p in path.parent.glob("*.txt") if "label" in p.name.lower() and p != own)
    for table in [own, *others[:8]]:
        text = _table_text(table)
        if text is None or ITKSNAP_HEADER.lower() not in text[:400].lower():
            continue
        named = {}
        for line in text.splitlines():
            row = _ITKSNAP_ROW.match(line)
            name = row.group(2).strip().lower() if row else ""
            if name and 0 < int(row.group(1)) <= LABEL_TOP and not re.fullmatch(r"label \d+", name):  # not a default
                named.setdefault(name, int(row.group(1)))
        return named
    return {}


#: FreeSurfer's colour table, in the installation the environment variable names
FREESURFER_LUT = ("FREESURFER_HOME", "FreeSurferColorLUT.txt")
_LUT_ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+\d+\s+\d+\s+\d+\s+\d+\s*(#.*)?$")


def _colour_table(path: Path) -> dict[str, int]:
    """The names a FreeSurfer colour table (rows ``value name R G B A``, ``#`` comments)
    gives the values the MGH label map ``path`` holds: a ``*LUT.txt`` in its folder, else
    FreeSurfer's own, in the installation ``FREESURFER_HOME`` names. Only the values the
    map holds: FreeSurfer's table names some 1,300 structures."""
    import numpy as np

    from annotator.io.mgh import load_mgh

    variable, file_name = FREESURFER_LUT
    tables = sorted(p for p in path.parent.iterdir() if p.name.lower().endswith("lut.txt"))[:8]
    if os.environ.get(variable):
        tables.append(Path(os.environ[variable]) / file_name)
    for table in tables:
        text = _table_text(table)
        rows = [row for row in map(_LUT_ROW.match, (text or "").splitlines()) if row]
        named = {int(row.group(1)): row.group(2).lower() for row in rows if 0 < int(row.group(1)) <= LABEL_TOP}
        if named:
            try:
                held = set(np.unique(np.asarray(load_mgh(path).dataobj)).astype(int).tolist())
            except Exception:  # noqa: BLE001 - a damaged file: its reader says so; no names
                return {}
            return {name: value for value, name in named.items() if value in held}
    return {}


def _bids_table(path: Path) -> dict[str, int]:
    """The names a BIDS derivative's look-up table gives a discrete segmentation's values:
    a tab-separated file with the columns ``index`` and ``name``, of the label's own name
    (``sub-01_desc-aseg_dseg.tsv`` beside ``sub-01_desc-aseg_dseg.nii.gz``), else the nearest
    ``dseg.tsv`` in its folder or up to three above (one table for a data set's
    segmentations, at its root above ``sub-01/anat/``)."""
    from annotator.io.sniff import image_stem

    for table in (path.with_name(image_stem(path) + ".tsv"), *(up / "dseg.tsv" for up in path.parents[:4])):
        text = _table_text(table)
        if text is None:
            continue
        rows = [[cell.strip() for cell in line.split("\t")] for line in text.splitlines() if line.strip()]
        header = [cell.lower() for cell in rows[0]] if rows else []
        if "index" not in header or "name" not in header:
            continue
        index, name, named = header.index("index"), header.index("name"), {}
        for row in rows[1:]:
            if len(row) > max(index, name) and row[index].isdigit() and 0 < int(row[index]) < 65536 and row[name]:
                named.setdefault(row[name].lower(), int(row[index]))
        return named
    return {}


def _nifti_table(path: Path) -> dict[str, int]:
    import nibabel as nib
    from xml.etree import ElementTree

    for extension in nib.load(path).header.extensions:  # the header only; the voxels stay on disk
        content = getattr(extension, "content", None)  # the raw bytes (nibabel 5.3 on), whatever the code
        if content is None:
            content = extension.get_content()
        if not isinstance(content, bytes) or len(content) > MAX_TABLE_BYTES or b"<LabelTable" not in content:
            continue
        try:
            root = ElementTree.fromstring(content.decode("utf-8", "replace").strip().strip("\x00"))
        except ElementTree.ParseError:
            continue
        names = {}
        for label in root.iter("Label"):
            text, key = (label.text or "").strip(), label.get("Key", "")
            if text and key.isdigit() and 0 < int(key) < 65536:
                names.setdefault(text.lower(), int(key))
        if names:
            return names
    return {}


def add_nifti_label_table(path: Path, names: dict[int, str]) -> None:
    """Give the NIfTI file at ``path`` a label table naming its values (value -> name), in
    the header extension TotalSegmentator and Connectome Workbench write (``<CaretExtension>``,
    code 30), each value coloured as the app colours it; its voxels and geometry unchanged.
    Costs a second compression of the file."""
    from xml.sax.saxutils import escape

    import nibabel as nib
    import numpy as np

    from annotator.annotation.labels import palette_rgb

    rows = []
    for value, name in sorted(names.items()):
        red, green, blue = palette_rgb(value)
        rows.append(f'<Label Key="{int(value)}" Red="{red:.4f}" Green="{green:.4f}" Blue="{blue:.4f}" Alpha="1">'
                    f"{escape(str(name))}</Label>")
    table = ('<?xml version="1.0" encoding="UTF-8"?>\n<CaretExtension><VolumeInformation Index="0"><LabelTable>\n'
             + "\n".join(rows) + "\n</LabelTable></VolumeInformation></CaretExtension>\n").encode("utf-8")
    image = nib.load(path)
    voxels = np.asanyarray(image.dataobj.get_unscaled())  # read whole: the file is written over
    header = image.header.copy()
    header.extensions.append(nib.nifti1.Nifti1Extension("caret", table))
    nib.save(nib.Nifti1Image(voxels, image.affine, header), path)


def _slicer_segments(path: Path) -> dict[str, int]:
    from annotator.io import slicer_seg
    from annotator.io.read import read_information

    reader = read_information(path)
    fields = {k: reader.GetMetaData(k) for k in reader.GetMetaDataKeys() if k.startswith("Segment")}
    return slicer_seg.names(fields, reader.GetNumberOfComponents())
