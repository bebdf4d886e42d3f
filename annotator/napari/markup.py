"""Messages on the docks' labels: in colour, their text shown as written (a message naming
``<folder>#<n>`` or a shape in brackets is never taken for markup), and a long file name
free to wrap after its underscores and dots, so that it never widens its dock."""

from __future__ import annotations

import html
import re

ERROR, WARNING, GOOD = "#ff6b6b", "#ffb347", "#0f9d58"

#: a word at least this long may wrap after an underscore or dot
LONG_WORD = 24
_LONG = re.compile(r"\S{%d,}" % LONG_WORD)
_BREAK = "\u200b"  # zero-width space: a place to wrap, not shown


def coloured(message: str, colour: str | None = None) -> str:
    """Text for a word-wrapped QLabel: ``message`` (in ``colour``: rich text), its long
    words breakable."""
    message = _LONG.sub(lambda m: re.sub(r"([_.])", r"\1" + _BREAK, m.group()), message)
    return f"<span style='color:{colour}'>{html.escape(message)}</span>" if colour else message
