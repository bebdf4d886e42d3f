"""How the Annotator window opens what the person hands it outside its own buttons.

- **Drops**: files and folders dropped on the window (the image or a dock) open for
  annotation, as the command line's PATH does: an image file, a DICOM series (its folder,
  or one or all of its files), or a folder of images (into the Worklist). napari's own
  drop adds layers only, and first asks which reader to use: its built-in reader also
  takes every file and folder, and reads a DICOM folder with no geometry. Its ways stay on
  the modifier keys its status line names: Alt (choose a reader), Shift (stack files as
  one layer).
- **napari's File > Open**: the formats the Annotator reader takes, and folders, are read
  by it without the question (:func:`prefer_our_reader`), unless the person has chosen
  another reader for them.

Only the standalone window does this; in napari, the plugin leaves napari's ways as they are.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

from qtpy.QtCore import QEvent, QObject, Qt

from annotator.napari import PLUGIN

#: what the status line says while files are dragged over the window
DRAG_STATUS = "Drop to open for annotation (hold Alt to choose a napari reader, Shift to stack files as layers)"


def ours(modifiers) -> bool:
    """Whether a drop with these keyboard modifiers is the app's (none of napari's keys held)."""
    return not modifiers & (Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ShiftModifier)


def dropped_paths(mime) -> list[Path]:
    """The local files and folders of a drag (web addresses are left to napari)."""
    if mime is None or not mime.hasUrls():
        return []
    urls = mime.urls()
    if not all(url.isLocalFile() for url in urls):
        return []
    return [Path(url.toLocalFile()) for url in urls]


def what_opens(paths: list[Path]) -> tuple[Path, str]:
    """(the path to open, a note for the person or ""): one image at a time, so of several
    dropped items the first, unless they are the files of one DICOM series (any of them
    opens the series)."""
    from annotator.io.sniff import looks_like_dicom

    first = paths[0]
    if len(paths) == 1:
        return first, ""
    one_series = all(p.is_file() and p.parent == first.parent for p in paths) and looks_like_dicom(first)
    if one_series:
        return first, ""
    return first, (f"{len(paths)} items were dropped; '{first.name}' is open. To go through several images, "
                   "open their folder (drop the folder, or Worklist > Open folder...)")


class DropOpens(QObject):
    """Event filter on the viewer's canvas area and on the window around it (the docks):
    drags of local paths are taken, and a drop calls ``open_path(viewer, path)``."""

    def __init__(self, viewer, open_path):
        qt_viewer, window = viewer.window._qt_viewer, viewer.window._qt_window
        super().__init__(window)
        self._viewer = weakref.ref(viewer)  # the window owns this filter: no cycle through it
        self._open = open_path
        window.setAcceptDrops(True)  # the docks take no drops: a drop on them reaches the window
        for widget in (qt_viewer, window):
            widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            return False
        paths = dropped_paths(event.mimeData())
        viewer = self._viewer()
        if not paths or not ours(event.modifiers()) or viewer is None:
            return False  # napari's drop
        event.acceptProposedAction()
        if kind == QEvent.Type.Drop:
            path, note = what_opens(paths)
            self._open(viewer, str(path))
            if note:
                import napari

                napari.utils.notifications.show_info(note)
        else:
            viewer.status = DRAG_STATUS
        return True


def prefer_our_reader() -> None:
    """napari's reader preferences (``extension2reader``) extended by the Annotator reader's
    file patterns and folders (napari matches a folder's path with a separator at its end),
    where no reader is chosen for them yet."""
    from napari.settings import get_settings
    from npe2 import PluginManager

    manifest = PluginManager.instance().get_manifest(PLUGIN)
    patterns = [p for reader in manifest.contributions.readers for p in reader.filename_patterns]
    if any(reader.accepts_directories for reader in manifest.contributions.readers):
        patterns.append("*" + os.sep)
    settings = get_settings().plugins
    added = {p: PLUGIN for p in patterns if p not in settings.extension2reader}
    if added:
        settings.extension2reader = {**settings.extension2reader, **added}
