"""Messages in colour on the docks' status lines, their text shown as written (a message
naming ``<folder>#<n>`` or a shape in brackets is never taken for markup)."""

from __future__ import annotations

import html

ERROR, WARNING, GOOD = "#ff6b6b", "#ffb347", "#0f9d58"


def coloured(message: str, colour: str | None) -> str:
    """Rich text for a QLabel: ``message`` in ``colour`` (for None: the message as it is)."""
    return f"<span style='color:{colour}'>{html.escape(message)}</span>" if colour else message
