"""Keyboard shortcuts of the annotation dock, bound on the viewer."""

from __future__ import annotations

#: action -> (keys as shown to the person, what it does)
SHORTCUTS = {
    "fg": ("Alt+1", "add foreground clicks"),
    "bg": ("Alt+2", "add background clicks"),
    "scribble_fg": ("Alt+3", "paint foreground scribbles"),
    "scribble_bg": ("Alt+4", "paint background scribbles"),
    "run": ("Alt+R", "run scribbles"),
    "automatic": ("Alt+S", "segment automatically (DeepEdit)"),
    "undo": ("Alt+Z", "undo the last engine step"),
    "redo": ("Alt+Shift+Z", "redo"),
    "clear": ("Alt+C", "clear marks and label"),
    "accept": ("Alt+A", "accept (save as final)"),
    "next": ("Alt+N", "next unlabeled image"),
}


def bind_keys(viewer, dock) -> None:
    """Bind every shortcut to the dock button of the same action."""
    for action, (keys, _what) in SHORTCUTS.items():
        napari_keys = keys.replace("+", "-")
        button = dock.buttons[action]
        viewer.bind_key(napari_keys, lambda _viewer, b=button: b.click(), overwrite=True)
