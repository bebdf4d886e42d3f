"""Keyboard shortcuts, bound on the viewer's window to the workspace's actions (whatever
docks are open, whichever widget has the focus).

None is a key napari takes first: the mnemonics of its menus (Alt+F, V, L, P, W, H, D) and
the shortcuts of its own actions (Alt+S, Alt+C: screenshots; Alt+T: tracing).
"""

from __future__ import annotations

#: action -> (keys as shown to the person, what it does)
SHORTCUTS = {
    "fg": ("Alt+1", "add foreground clicks"),
    "bg": ("Alt+2", "add background clicks"),
    "scribble_fg": ("Alt+3", "paint foreground scribbles"),
    "scribble_bg": ("Alt+4", "paint background scribbles"),
    "run": ("Alt+R", "run scribbles"),
    "automatic": ("Alt+G", "segment automatically (DeepEdit)"),
    "undo": ("Alt+Z", "undo the last change (an engine step, tidying, a brush stroke)"),
    "redo": ("Alt+Shift+Z", "redo"),
    "clear": ("Alt+X", "clear the marks and the chosen label (the others stay)"),
    "clear_all": ("Alt+Shift+X", "clear the marks and every label"),
    "fill_holes": ("Alt+I", "fill the chosen label's holes (on each slice of the view)"),
    "keep_largest": ("Alt+K", "keep only the chosen label's largest connected part"),
    "fill_between": ("Alt+Shift+I", "fill the slices of the view between those the chosen label is drawn on"),
    "smooth": ("Alt+J", "smooth the chosen label's surface: spikes and stray voxels go, notches fill, its volume and thin vessels stay"),
    "grow": ("Alt+=", "grow the chosen label by the margin beside Grow: the background within it joins the label"),
    "shrink": ("Alt+-", "shrink the chosen label by the margin beside Grow"),
    "flood": ("Alt+Y", "flood the chosen label through the tissue within the range beside Flood (connected to it)"),
    "clip": ("Alt+Shift+Y", "clip the chosen label to the range beside Flood: its voxels outside it go"),
    "accept": ("Alt+A", "accept (save as final)"),
    "next": ("Alt+N", "next unlabeled image"),
    "reload": ("F5", "list the folder's or server's images again (files or series added since it opened)"),
    "next_label": ("Alt+B", "next label (the Label list)"),
    "next_volume": ("Alt+M", "show the image's next volume (channel, echo, time point)"),
    "next_plane": ("Alt+E", "view the next plane: axial, coronal, sagittal"),
    "outline": ("Alt+O", "show the label filled or as outlines (the image under it in view)"),
    "window_soft tissue": ("Alt+5", "CT window: soft tissue (W 400, L 40)"),
    "window_lung": ("Alt+6", "CT window: lung (W 1500, L -600)"),
    "window_bone": ("Alt+7", "CT window: bone (W 1800, L 400)"),
    "window_brain": ("Alt+8", "CT window: brain (W 80, L 40)"),
    "window_full range": ("Alt+9", "the image's full intensity range"),
    "window_header": ("Alt+0", "the window the image opened with (its header's, or the default)"),
}


def bind_keys(viewer, workspace) -> list:
    """Every shortcut as a shortcut of the viewer's window, bound to the workspace action of
    the same name: it works whichever widget of the window (or of a dock floated from it)
    has the focus. Bound on the viewer (napari's ``bind_key``), a shortcut reached its action
    only through napari's canvas: after choosing a label in a combo box, Alt+1 went to the
    combo, and into a text field or a spin box it typed "1". Returns the shortcuts."""
    from qtpy.QtCore import Qt
    from qtpy.QtGui import QKeySequence
    from qtpy.QtWidgets import QShortcut

    window = viewer.window._qt_window
    actions = workspace.actions()
    shortcuts = []
    for action, (keys, _what) in SHORTCUTS.items():
        shortcut = QShortcut(QKeySequence(keys), window)
        shortcut.setContext(Qt.WindowShortcut)
        shortcut.activated.connect(actions[action])
        shortcuts.append(shortcut)
    return shortcuts
