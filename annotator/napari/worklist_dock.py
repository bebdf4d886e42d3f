"""The Worklist dock: the session's datastore (a folder, or a server it connects to), its
images with status, label versions and score, uploads waiting for the server, and the
progress of a download.

**Score** ranks the unlabeled images by the chosen strategy (annotator.active) in the
background: the score column fills as scores arrive, and when the ranking ends the list
is sorted by score, highest (label first) on top. The order shown (sorted, filtered) is
the order "Next" follows.
"""

from __future__ import annotations

import time

import napari
from qtpy.QtCore import Qt
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QAbstractItemView, QComboBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QProgressBar,
    QPushButton, QStyle, QTableWidget, QTableWidgetItem, QToolButton, QVBoxLayout, QWidget,
)

from annotator.active.strategies import STRATEGIES
from annotator.datastore.uploads import SIGN_IN_AGAIN
from annotator.napari.fit import OneLine, compact, steady
from annotator.napari.markup import WARNING, coloured
from annotator.napari.workspace import follow, workspace_for

COLUMNS = ["image", "status", "labels", "score"]
ID_ROLE = Qt.UserRole + 1  # the image id behind a row (the name shown may differ: a server's series)
STATUS_COLOURS = {"unlabeled": "#9aa0a6", "in_progress": "#f4b400", "labeled": "#0f9d58",
                  "upload_pending": "#4285f4", "upload_failed": "#db4437"}


def _when(timestamp) -> str:
    if not isinstance(timestamp, (int, float)):
        return "soon"
    seconds = max(0, int(timestamp - time.time()))
    return f"next try in {seconds} s" if seconds < 120 else f"next try in {seconds // 60} min"


class _SortItem(QTableWidgetItem):
    """Sorts by a hidden key (numbers as numbers, blanks last)."""

    def __lt__(self, other):
        mine, theirs = self.data(Qt.UserRole), other.data(Qt.UserRole)
        if mine is None or theirs is None:
            if mine is None and theirs is None:
                return False
            table = self.tableWidget()
            descending = table is not None and table.horizontalHeader().sortIndicatorOrder() == Qt.DescendingOrder
            return (mine is None) == descending  # a blank is last in either order
        return mine < theirs


def _cells(record) -> list[tuple[str, object, str, str]]:
    """(text, sort key, tooltip, colour) of each column of a record's row: image, status,
    labels, score. Blank keys sort last whichever way a column is sorted."""
    score = record.score
    versions = record.versions_shown() + (["label map"] if record.label_maps else [])  # a server's have none
    status_tip = ""
    if record.info.get("labelled_on_server"):
        status_tip = ("Labelled on the server (a DICOM SEG or RT Structure Set, from another workstation): "
                      "it opens with that label")
    if record.info.get("newer_on_server"):
        status_tip = ("A newer label of it came to the server from another workstation: it opens with that one "
                      "(the one accepted here stays as its earlier version)")
    if record.info.get("upload_error"):
        status_tip = f"Not sent yet: {record.info['upload_error']}\n" + (
            SIGN_IN_AGAIN if record.info.get("upload_refused")
            else f"Retried automatically ({_when(record.info.get('upload_next_try'))}).")
    return [
        (record.name, record.name, record.id if record.name != record.id else "", ""),
        (record.status.value, record.status.value, status_tip, STATUS_COLOURS[record.status.value]),
        ("newer on the server" if record.info.get("newer_on_server") else ", ".join(versions), len(record.versions),
         _versions_tip(record), ""),
        ("" if score is None else f"{score:.3f}", score,
         _score_tip(record.info.get("active")), ""),
    ]


def _versions_tip(record) -> str:
    """The labels cell's tooltip: the label maps found beside the image; the versions kept
    here when the cell says only that a newer label is on the server (all of them there
    squeezed the image names out of a dock 400 pixels wide)."""
    tips = [f"Kept here: {', '.join(record.versions)}"] if record.info.get("newer_on_server") else []
    return "\n".join(tips + (["Found beside it: " + ", ".join(record.label_maps)] if record.label_maps else []))


class WorklistDock(QWidget):
    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.ws = workspace_for(napari_viewer)
        self.session = session = self.ws.session
        self.setObjectName("AnnotatorWorklist")
        self.folder = OneLine("No datastore open")
        self.view_only = QLabel("")  # why the datastore cannot be written, when it cannot
        self.view_only.setWordWrap(True)
        self.view_only.hide()
        choose = QPushButton("Open folder...")
        choose.clicked.connect(self._choose_folder)
        connect = QPushButton("Connect to server...")
        connect.setToolTip("Annotate the series of a DICOMweb server (Orthanc, ...); labels go back as DICOM SEG")
        connect.clicked.connect(lambda: self.connect_server())
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter")
        self.filter.setToolTip("Shows the images whose name or status holds the text; Enter opens the first")
        self.filter.setClearButtonEnabled(True)
        self.filter.setAcceptDrops(False)  # a dropped file opens (the window takes it), not typed in as a filter
        self.filter.textChanged.connect(self._apply_filter)
        self.filter.returnPressed.connect(lambda: self.image_ids() and self.open_image(self.image_ids()[0]))
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(0, Qt.AscendingOrder)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)  # one line a row, a long name shortened in its middle: more rows in view
        self.table.setTextElideMode(Qt.ElideMiddle)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.activated.connect(lambda index: self._open_row(index.row()))  # a double click, or Enter
        self.table.model().layoutChanged.connect(lambda *_: self._set_order())  # after every sort
        self.next = QPushButton("Next")
        self.next.setToolTip("Open the next image that is not labeled yet, in the order shown (Alt+N)")
        self.next.clicked.connect(session.next_image)
        self.summary = QLabel("")
        self.send = QPushButton("Send now")
        self.send.setToolTip("Send the accepted labels that wait for the server now")
        self.send.clicked.connect(lambda: self.session.send_uploads(force=True))
        self.send.hide()
        self.export = QPushButton("Export...")
        self.export.setToolTip("Write the labelled images and their final labels into an empty folder, in nnU-Net's\n"
                               "layout (imagesTr, labelsTr, dataset.json), to train on them elsewhere")
        self.export.clicked.connect(lambda: self.export_to())
        self.strategy = QComboBox()
        for name, text in STRATEGIES.items():
            self.strategy.addItem(name, name)
            self.strategy.setItemData(self.strategy.count() - 1, text, Qt.ToolTipRole)
        self.strategy.setCurrentIndex(max(0, self.strategy.findData(session.settings.strategy)))
        self.strategy.setToolTip("How Score ranks the unlabeled images")
        self.strategy.currentIndexChanged.connect(self._strategy_changed)
        compact(self.strategy, chars=6)  # beside the filter: as wide as "random"
        steady(self.strategy)
        self.score_button = QPushButton("Score")
        self.score_button.setToolTip("Rank the unlabeled images: the ones the model is least sure of first")
        self.score_button.clicked.connect(self._score_or_cancel)
        self.scoring = QProgressBar()
        self.scoring.setObjectName("worklist-scoring")
        self.scoring.setMaximumHeight(14)
        self.scoring.hide()
        self._refreshed = 0.0
        self.download = QProgressBar()
        self.download.setObjectName("worklist-progress")
        self.download.setMaximumHeight(14)
        self.download.hide()

        self.reload = QToolButton()
        self.reload.setIcon(self.style().standardIcon(QStyle.SP_BrowserReload))
        self.reload.setToolTip("List the images again: files or series added since the folder or server opened (F5)")
        self.reload.clicked.connect(session.reload)
        top = QHBoxLayout()
        top.addWidget(self.folder, 1)
        top.addWidget(self.reload)
        top.addWidget(choose)
        top.addWidget(connect)
        bottom = QHBoxLayout()
        bottom.addWidget(self.summary, 1)
        bottom.addWidget(self.send)
        bottom.addWidget(self.export)
        bottom.addWidget(self.next)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.view_only)
        rank_row = QHBoxLayout()  # the filter and the ranking share a row: more of the list in view
        rank_row.addWidget(self.filter, 3)
        rank_row.addWidget(QLabel("Rank by"))
        rank_row.addWidget(self.strategy, 1)
        rank_row.addWidget(self.score_button)
        layout.addLayout(rank_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.scoring)
        layout.addWidget(self.download)
        layout.addLayout(bottom)

        follow(self, (session.datastore_changed, self.refresh), (session.saved, lambda *_: self.refresh()),
               (session.image_opened, lambda _id: self.refresh()), (session.records_changed, self.refresh),
               (session.scoring, self._scoring_progress), (session.scored, self._scored),
               (session.progress, self._progress),
               (session.files_busy, lambda busy: None if busy else self.download.hide()),
               (session.sign_in, self._sign_in))
        self.refresh()

    def showEvent(self, event) -> None:
        if self.window() is not self:  # docked: unsaved work is asked about when the window closes
            self.ws.watch_window(self.window())
        super().showEvent(event)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if folder:
            self.session.open(folder)

    def export_to(self, folder: str | None = None) -> None:
        """Export the labelled images into ``folder`` (asked for when not given)."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Export the labelled images into an empty folder")
        if folder:
            self.session.export(folder)

    def _strategy_changed(self) -> None:
        self.session.settings.strategy = self.strategy.currentData()
        self.session.settings.save()

    def _score_or_cancel(self) -> None:
        if self.session.scoring_now:
            self.session.cancel_scoring()
            return
        self.session.score(self.strategy.currentData())
        if self.session.scoring_now:
            self.score_button.setText("Cancel")
            self.scoring.setRange(0, 0)
            self.scoring.show()

    def _scoring_progress(self, text: str, fraction: float) -> None:
        self.scoring.setRange(0, 100)
        self.scoring.setValue(int(round(100 * max(fraction, 0))))
        self.scoring.setFormat(f"{text}  %p%")
        self.scoring.show()
        if time.monotonic() - self._refreshed > 1.0:  # the scores so far, at most once a second
            self.refresh()

    def _scored(self, _strategy: str) -> None:
        self.score_button.setText("Score")
        self.scoring.hide()
        self.refresh()
        self.table.sortItems(3, Qt.DescendingOrder)  # highest first: what "Next" opens

    def connect_server(self, place: str = "", why: str = ""):
        """The Connect dialog (window-modal), filled in for ``place`` (else the server used
        last), saying ``why`` it is asked for (a server that asks to sign in again); Connect
        opens the server. Returns the dialog."""
        from annotator.napari.connect_dialog import ConnectDialog

        dialog = ConnectDialog(place or self.session.settings.server_url, self)
        if why:
            dialog.say(f"{why}. Sign in again.", False)
        dialog.accepted.connect(lambda: self._connected(dialog))
        dialog.open()
        return dialog

    def _sign_in(self, place: str, why: str) -> None:
        """A server asks to sign in again: its Connect dialog, unless one is open already
        (the window shown: the Worklist may lie in a tab behind the Training dock)."""
        if self.window().isVisible() and not any(w.objectName() == "connect-dialog" and w.isVisible()
                                                 for w in self.findChildren(QWidget)):
            self.connect_server(place, why)

    def _connected(self, dialog) -> None:
        from annotator.datastore.factory import server_url

        settings = self.session.settings
        settings.server_url = dialog.place
        if dialog.ca_bundle.text().strip():
            settings.ca_bundles[server_url(dialog.place)] = dialog.ca_bundle.text().strip()
        else:
            settings.ca_bundles.pop(server_url(dialog.place), None)
        settings.save()
        if not dialog.kept_in_keyring:
            self.session.status.emit("No usable keyring here: the password is kept until the app closes.")
        self.session.open(dialog.place)

    def _progress(self, text: str, fraction: float) -> None:
        """A download (or any file work with a known fraction) shows as a bar here."""
        if fraction < 0:
            return
        self.download.setFormat(f"{text}  %p%")
        self.download.setRange(0, 100)
        self.download.setValue(int(round(100 * fraction)))
        self.download.show()

    def refresh(self) -> None:
        """Show the store's records: rows rebuilt when the images changed, else only the
        cells that changed updated (a worklist of thousands of images refreshes after every
        save and open)."""
        self._refreshed = time.monotonic()
        store = self.session.store
        self.table.setSortingEnabled(False)
        if store is None:
            self.table.setRowCount(0)
            self.summary.setText("")
            self.export.setEnabled(False)
            return
        reason = store.read_only_reason()
        self.folder.setWhole(store.place)
        self.view_only.setText(coloured(f"View only: {reason}", WARNING) if reason else "")
        self.view_only.setVisible(bool(reason))
        try:
            records = store.records()
        except Exception as exc:  # shown, never raised into Qt
            self.session._failed(exc)
            records = []
        rows = {self.table.item(r, 0).data(ID_ROLE): r for r in range(self.table.rowCount())}
        if len(rows) != len(records) or any(record.id not in rows for record in records):
            self.table.setRowCount(0)
            self.table.setRowCount(len(records))
            rows = {record.id: row for row, record in enumerate(records)}
        for record in records:
            row = rows[record.id]
            for col, cell in enumerate(_cells(record)):
                item = self.table.item(row, col)
                if item is None:
                    # names and statuses sort as their text does (in Qt: fast for thousands of rows)
                    item = QTableWidgetItem() if col < 2 else _SortItem()
                    item.setData(ID_ROLE, record.id)
                    self.table.setItem(row, col, item)
                text, key, tip, colour = cell
                if item.text() != text:
                    item.setText(text)
                if item.data(Qt.UserRole) != key:
                    item.setData(Qt.UserRole, key)
                if item.toolTip() != tip:
                    item.setToolTip(tip)
                if colour and item.foreground().color().name() != colour:
                    item.setForeground(QBrush(QColor(colour)))
        self.table.setSortingEnabled(True)
        done = sum(r.status.value == "labeled" for r in records)
        waiting = sum(r.status.value in ("upload_pending", "upload_failed") for r in records)
        self.summary.setText(f"{done} of {len(records)} labeled"
                             + (f", {waiting} waiting to be sent" if waiting else ""))
        self.send.setVisible(bool(waiting))
        self.export.setEnabled(any("final" in r.versions for r in records))  # sent or not
        self._apply_filter()
        self._highlight()
        self._set_order()

    def _set_order(self) -> None:
        """The session's "next image" follows the rows as shown."""
        self.session.order = self.image_ids() or None

    def _apply_filter(self) -> None:
        text = self.filter.text().strip().lower()
        for row in range(self.table.rowCount()):
            cells = " ".join(self.table.item(row, c).text().lower() for c in range(2))
            self.table.setRowHidden(row, bool(text) and text not in cells)
        self._set_order()

    def _highlight(self) -> None:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            current = item.data(ID_ROLE) == self.session.image_id
            font = item.font()
            if font.bold() != current:  # a changed item may be sorted again: only those that change
                font.setBold(current)
                item.setFont(font)
            if current:
                self.table.selectRow(row)
                self.table.scrollToItem(item)

    def image_ids(self) -> list[str]:
        """The ids in the order shown (filtered rows left out)."""
        return [self.table.item(r, 0).data(ID_ROLE) for r in range(self.table.rowCount())
                if not self.table.isRowHidden(r)]

    def _open_row(self, row: int) -> None:
        self.open_image(self.table.item(row, 0).data(ID_ROLE))

    def open_image(self, image_id: str) -> None:
        self.session.open_image(image_id)


def _score_tip(active) -> str:
    """The scores kept for an image, per strategy and label (what ranked it), and why a
    strategy could not score it."""
    scores, skipped = [], []
    for strategy, found in (active if isinstance(active, dict) else {}).items():
        if isinstance(found, dict) and isinstance(found.get("score"), (int, float)):
            per_label = ", ".join(f"{name} {value:.3f}" for name, value in (found.get("per_label") or {}).items()
                                  if isinstance(value, (int, float)))
            scores.append(f"{strategy}: {found['score']:.3f}" + (f" ({per_label})" if per_label else ""))
        elif isinstance(found, dict) and isinstance(found.get("skipped"), str):
            skipped.append(f"{strategy}: not scored: {found['skipped']}")
    return "\n".join([*(["Higher: the model is less sure of this image", *scores] if scores else []), *skipped])
