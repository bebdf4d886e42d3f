"""Edit the label presets (value, name, colour); they are saved in the user settings."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QColorDialog, QDialog, QDialogButtonBox, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
    QTableWidgetItem, QVBoxLayout,
)

from annotator.annotation.labels import palette_colour
from annotator.io.volume import LABEL_TOP
from annotator.settings import LabelPreset


class PresetsDialog(QDialog):
    def __init__(self, presets: list[LabelPreset], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Label presets")
        self.setMinimumWidth(440)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["value", "name", "colour"])
        self.table.verticalHeader().hide()  # the value numbers the rows
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        header.setSectionResizeMode(2, QHeaderView.Fixed)
        header.resizeSection(2, 120)
        self.table.itemChanged.connect(self._show_colour)
        self.table.cellDoubleClicked.connect(lambda row, col: self.pick_colour(row) if col == 2 else None)
        for p in presets:
            self._add_row(p.value, p.name, p.color)
        add, remove = QPushButton("Add"), QPushButton("Remove")
        add.clicked.connect(self._add_next)
        remove.clicked.connect(lambda: self.table.removeRow(self.table.currentRow()))
        self.message = QLabel("")
        self.message.setStyleSheet("color: #ff6b6b")
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self._check_and_accept)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(row)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.presets: list[LabelPreset] = list(presets)

    def _add_row(self, value: int, name: str, color: str) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        for col, text in enumerate((str(value), name, color)):
            item = QTableWidgetItem(text)
            if col == 2:  # picked in a colour dialog (a double-click), not typed
                item.setFlags(item.flags() & ~Qt.ItemIsEditable)
                item.setToolTip("double-click to pick a colour")
            self.table.setItem(row, col, item)

    def _show_colour(self, item: QTableWidgetItem) -> None:
        """The colour cell shows its colour (a swatch), or none while the text is not one."""
        if item.column() != 2:
            return
        colour = QColor(item.text().strip())
        swatch = QPixmap(14, 14)
        swatch.fill(colour)
        self.table.blockSignals(True)
        item.setIcon(QIcon(swatch) if colour.isValid() else QIcon())
        self.table.blockSignals(False)

    def pick_colour(self, row: int) -> None:
        """Choose the colour of ``row`` in a colour dialog."""
        item = self.table.item(row, 2)
        colour = QColorDialog.getColor(QColor(item.text().strip()), self, "Label colour")
        if colour.isValid():
            item.setText(colour.name())

    def _add_next(self) -> None:
        cells = (self.table.item(row, 0) for row in range(self.table.rowCount()))  # valid rows or not
        used = {int(cell.text()) for cell in cells if cell is not None and cell.text().strip().isdigit()}
        value = next(v for v in range(1, LABEL_TOP + 1) if v not in used)
        self._add_row(value, f"label {value}", palette_colour(value))

    def read_rows(self) -> list[LabelPreset] | None:
        """The table as presets; None (with a message) when a row is not valid."""
        presets, seen = [], set()
        for row in range(self.table.rowCount()):
            value, name, color = (self.table.item(row, c).text().strip() if self.table.item(row, c) else ""
                                  for c in range(3))
            if not value.isdigit() or not 1 <= int(value) <= LABEL_TOP or int(value) in seen:
                self.message.setText(f"row {row + 1}: value must be a new whole number from 1 to {LABEL_TOP}")
                return None
            if not name:
                self.message.setText(f"row {row + 1}: the name is empty")
                return None
            if name.casefold() in {p.name.casefold() for p in presets}:  # two 'liver's: which is which?
                self.message.setText(f"row {row + 1}: another label is named '{name}' already")
                return None
            if not QColor(color).isValid():
                self.message.setText(f"row {row + 1}: '{color}' is not a colour (e.g. #e6194b or red)")
                return None
            seen.add(int(value))
            presets.append(LabelPreset(int(value), name, QColor(color).name()))
        if not presets:
            self.message.setText("keep at least one label")
            return None
        return presets

    def _check_and_accept(self) -> None:
        presets = self.read_rows()
        if presets is not None:
            self.presets = presets
            self.accept()
