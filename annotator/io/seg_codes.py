"""The SNOMED CT codes a DICOM SEG gives a segment, found from its label's name.

A segment says what it is with a category and a type code (and, for a paired organ, a
side). The types come from DICOM's own lists, as pydicom carries them, never typed by
hand: CID 7151 (segmentation property types: anatomy, and some findings), CID 7159
(lesion types, whose category is "Morphologically Abnormal Structure") and CID 7166
(tissue types). A name matches a type when its words, as people write them
(``kidney_left``, ``Left atrium``, ``vertebrae_L1``, ``lung_lower_lobe_right``,
``liver tumour``), spell one; a lesion named with its organ (``kidney cyst``) is the
lesion. A name that matches nothing (``structure``, ``label 3``) gets the generic
"Anatomical Structure" of type "Tissue", with a warning: never a wrong organ.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

#: words people write for what DICOM's lists spell otherwise ("" leaves a word out: a
#: urinary bladder is DICOM's Bladder)
_WORDS = {"tumour": "neoplasm", "tumor": "neoplasm", "cancer": "neoplasm", "carcinoma": "neoplasm",
          "oedema": "edema", "haemorrhage": "hemorrhage", "hematoma": "hemorrhage", "bowel": "intestine",
          "clavicula": "clavicle", "vena": "vein", "grey": "gray", "fat": "adipose tissue",
          "vessel": "blood vessel", "brainstem": "brain stem", "csf": "cerebrospinal fluid", "urinary": ""}
#: a last word a type may go without (thyroid gland: Thyroid)
_TAILS = ("gland",)
_SIDES = {"left": "Left", "right": "Right"}
#: a vertebra's level: C1..C7, T1..T12, L1..L5, S1
_LEVEL = re.compile(r"^[ctls]\d{1,2}$")


@dataclass(frozen=True)
class SegmentCodes:
    category: object  # pydicom Code
    kind: object  # the segmented property type
    side: object | None = None  # a modifier of the type (left or right), or None


@lru_cache(maxsize=1)
def _types() -> dict[str, tuple[object, object]]:
    """CamelCase name -> (category, type) over DICOM's lists, lesions first."""
    from pydicom.sr.codedict import codes

    found = {}
    for cid, category in ((codes.cid7159, codes.cid7150.MorphologicallyAbnormalStructure),
                          (codes.cid7151, codes.cid7150.AnatomicalStructure),
                          (codes.cid7166, codes.cid7150.Tissue)):
        for name in cid.dir():
            found.setdefault(name, (category, getattr(cid, name)))
    return found


def _words(name: str, synonyms: bool) -> list[str]:
    """The words of ``name``, lower case; with ``synonyms``, as DICOM's lists spell them."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)  # LeftAtrium -> Left Atrium
    words = []
    for word in re.split(r"[^A-Za-z0-9]+", spaced.lower()):
        words += (_WORDS.get(word, word) if synonyms else word).split()
    return words


def _singular(word: str) -> list[str]:
    forms = [word]
    if word.endswith("ae"):
        forms.append(word[:-1])  # vertebrae
    if word.endswith("ies"):
        forms.append(word[:-3] + "y")
    if word.endswith("s") and not word.endswith("ss"):
        forms.append(word[:-1])
    return forms


def _spellings(words: list[str]) -> list[str]:
    """CamelCase spellings of ``words`` (the last one also singular, or with Tissue after it)."""
    if not words:
        return []
    head = "".join(w.capitalize() for w in words[:-1])
    out = []
    for last in _singular(words[-1]):
        out += [head + last.capitalize(), head + last.capitalize() + "Tissue"]
    return out


def _candidates(words: list[str]) -> list[tuple[str, bool]]:
    """(CamelCase spelling, whether it holds the name's side) in the order tried."""
    sides = [_SIDES[w] for w in words if w in _SIDES]
    levels = [w.upper() for w in words if _LEVEL.match(w)]
    rest = [w for w in words if w not in _SIDES and not w.isdigit() and not _LEVEL.match(w)]
    out = [(s, True) for s in _spellings(words)] if sides else []  # left atrium
    if len(levels) == 1 and (not rest or _singular(rest[-1])[-1] == "vertebra"):  # L1, vertebrae_L1
        out.append((f"{levels[0]}Vertebra", False))
    out += [(s, False) for s in _spellings(rest)]
    if len(rest) > 1 and rest[-1] in _TAILS:
        out += [(s, False) for s in _spellings(rest[:-1])]
    if len(rest) > 1:  # lung lower lobe -> lower lobe of (right) lung
        of = "".join(w.capitalize() for w in rest[1:]) + "Of"
        out += [(of + side + spelling, True) for side in sides for spelling in _spellings(rest[:1])]
        out += [(of + spelling, False) for spelling in _spellings(rest[:1])]
    return out


def segment_codes(name: str, warn: bool = True) -> SegmentCodes:
    """The codes of a segment named ``name``; a name that matches no type gets generic
    ones and (``warn``) a warning."""
    from pydicom.sr.codedict import codes

    types = _types()
    words = _words(name, synonyms=True)
    sides = [_SIDES[w] for w in words if w in _SIDES]
    for spelling, holds_side in _candidates(_words(name, synonyms=False)) + _candidates(words):
        if spelling in types:
            category, kind = types[spelling]
            side = getattr(codes.SCT, sides[0]) if len(sides) == 1 and not holds_side else None
            return SegmentCodes(category, kind, side)
    lesions = [w for w in words if w.capitalize() in types
               and types[w.capitalize()][0] == codes.cid7150.MorphologicallyAbnormalStructure]
    if lesions:  # kidney cyst, liver tumour: the lesion
        return SegmentCodes(*types[lesions[-1].capitalize()])
    if warn:
        warnings.warn(f"label '{name}' has no SNOMED code here: sent as a generic anatomical structure (tissue)",
                      stacklevel=3)
    return SegmentCodes(codes.cid7150.AnatomicalStructure, codes.SCT.Tissue)


def is_anatomy(name: str) -> bool:
    """Whether ``name`` spells a structure of the body in DICOM's lists (an organ, a bone,
    a vessel), not a lesion or a tissue, nor a name that spells nothing: what an RT
    Structure Set calls an ORGAN."""
    from pydicom.sr.codedict import codes

    coded = segment_codes(name, warn=False)
    return coded.category == codes.cid7150.AnatomicalStructure and coded.kind != codes.SCT.Tissue
