"""Images of several files, one per channel, as nnU-Net keeps them: ``imagesTr/la_003_0000.nii.gz``,
``la_003_0001.nii.gz``, ..., each file a channel that the task's ``dataset.json`` names
(``"channel_names": {"0": "T2", "1": "ADC"}``). Each case is one image of the folder, under
the id of its first channel's file: that channel is annotated, and the others are shown
beneath it. Its label (``labelsTr/la_003``) links to it by name.

A folder without such a ``dataset.json``, or a case whose files are not numbered 0000 to
one less than the channels named, is left as it is: each file an image.
"""

from __future__ import annotations

import re
from pathlib import Path

from annotator.io.read import channel_names
from annotator.io.sniff import image_stem

_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<number>\d{4})$")


def group(images: dict[str, Path]) -> tuple[dict[str, Path], dict[str, list[tuple[str, Path]]]]:
    """(the images with each case of several channel files as one, under the id of its
    first channel's file; by that id, each channel's name and file, the first included)."""
    names: dict[Path, list[str] | None] = {}
    cases: dict[tuple[Path, str], dict[int, str]] = {}  # (folder, case) -> channel number -> image id
    for image_id, path in images.items():
        found = _CHANNEL.match(image_stem(path)) if path.is_file() else None
        if found is None:
            continue
        if path.parent not in names:
            listed = channel_names(path)
            names[path.parent] = listed if listed and len(listed) > 1 else None
        if names[path.parent] is not None:
            cases.setdefault((path.parent, found["case"]), {})[int(found["number"])] = image_id
    kept = dict(images)
    channels: dict[str, list[tuple[str, Path]]] = {}
    for (folder, _case), numbers in cases.items():
        listed = names[folder]
        if sorted(numbers) != list(range(len(listed))):
            continue
        first = numbers[0]
        channels[first] = [(listed[n], images[numbers[n]]) for n in range(len(listed))]
        for n in range(1, len(listed)):
            del kept[numbers[n]]
    return kept, channels


def case_name(path: Path) -> str:
    """The case a channel file belongs to (``la_003_0000.nii.gz`` -> ``la_003``)."""
    found = _CHANNEL.match(image_stem(path))
    return found["case"] if found else image_stem(path)
