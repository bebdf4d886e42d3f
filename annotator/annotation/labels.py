"""The labels offered for annotating: the person's presets, named as the data names its
labels, and a colour for every value a label may hold (no GUI here)."""

from __future__ import annotations

import colorsys

from annotator.settings import LabelPreset, default_presets

#: colours of labels that no preset colours, by value
PALETTE = ["#e6194b", "#ffe119", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6"]


def palette_colour(value: int) -> str:
    """A colour for label ``value``: the palette's first, then hues a golden angle apart
    (neighbouring values, often neighbouring structures, differ)."""
    value = int(value)
    if 1 <= value <= len(PALETTE):
        return PALETTE[value - 1]
    red, green, blue = colorsys.hsv_to_rgb((value * 0.381966) % 1.0, 0.75, 0.95)
    return "#{:02x}{:02x}{:02x}".format(round(red * 255), round(green * 255), round(blue * 255))


def palette_rgb(value: int) -> tuple[float, float, float]:
    """:func:`palette_colour` as red, green, blue from 0 to 1 (as label files store colours)."""
    hex_colour = palette_colour(value)
    return tuple(int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))


def offered_labels(presets: list[LabelPreset], names: dict[str, int] | None) -> list[LabelPreset]:
    """The labels to annotate with: the person's ``presets``, with the ``names`` (name ->
    value) a data set gives its labels (its ``labels.json``, a server's SEGs). A data set's name takes the
    place of a default name (``1: structure`` becomes ``1: anterior``) and keeps the
    preset's colour; a name the person gave stays; default presets the data set does not
    name are left out."""
    if not names:
        return list(presets)
    defaults = {p.value: p.name for p in default_presets()}
    mine = {p.value: p for p in presets}
    named = {int(v): n for n, v in names.items()}
    out = []
    for value, name in named.items():
        preset = mine.get(value)
        if preset is None:
            out.append(LabelPreset(value, name, palette_colour(value)))
        elif preset.name == defaults.get(value):
            out.append(LabelPreset(value, name, preset.color))
        else:
            out.append(preset)
    out += [p for p in presets if p.value not in named and p.name != defaults.get(p.value)]
    return sorted(out, key=lambda p: p.value)


def format_ml(ml: float) -> str:
    """A volume for a person: mL with three significant digits, mm³ below 0.1 mL."""
    if ml == 0:
        return "0 mL"
    if ml < 0.1:
        return f"{ml * 1000:.3g} mm³"
    return f"{ml:.3g} mL" if ml < 1000 else f"{ml:,.0f} mL"
