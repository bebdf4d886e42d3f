"""Docks that fit a laptop's screen (1366×768): their contents scroll instead of making
the window taller than the screen, their combo boxes shrink to the dock's width
instead of widening it to their longest item (which they show whole when opened), and a
long path takes one line, shortened in its middle. A wheel turned over a combo box or a
spin box scrolls the dock unless that box has the focus."""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtWidgets import QComboBox, QFrame, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

#: characters a combo box shows at least before it elides its text
COMBO_CHARS = 14
#: the least height of a dock's page, in pixels
MIN_HEIGHT = 120


class _Page(QScrollArea):
    """Scrolls up and down only: as wide as its page needs, as short as a few lines."""

    def __init__(self):
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setWidget(QWidget())
        self.widget().installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        # a row shown or hidden, or rows changed while the dock was hidden: it may need another width
        if event.type() in (QEvent.LayoutRequest, QEvent.Show):
            self.updateGeometry()
        return super().eventFilter(watched, event)

    def minimumSizeHint(self) -> QSize:
        return QSize(self._width(), MIN_HEIGHT)

    def sizeHint(self) -> QSize:  # the whole page (QScrollArea's own stops at 24 lines)
        return QSize(self._width(), self.widget().sizeHint().height())

    def _width(self) -> int:
        bar = self.verticalScrollBar()  # a style sheet may make it, and the frame, wider
        return (self.widget().minimumSizeHint().width() + max(bar.sizeHint().width(), bar.isVisible() and bar.width())
                + 2 * self.frameWidth())


def scrolling_layout(dock: QWidget) -> QVBoxLayout:
    """The layout to fill ``dock`` with: on a page that scrolls vertically when the dock
    is shorter than its contents."""
    area = _Page()
    page = area.widget()
    outer = QVBoxLayout(dock)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)
    return QVBoxLayout(page)


class _Steady(QObject):
    """Passes a wheel event over a box without the focus on to what holds it."""

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Wheel and not watched.hasFocus():
            event.ignore()  # filtered and ignored: Qt hands it to the parent (the page scrolls)
            return True
        return super().eventFilter(watched, event)


_STEADY = _Steady()


def steady(*boxes: QWidget) -> None:
    """``boxes`` (combo or spin boxes) change with the wheel only once clicked or tabbed
    into: a person scrolling the dock with the wheel over the Method box changed the
    method (Qt's default)."""
    for box in boxes:
        box.setFocusPolicy(Qt.StrongFocus)  # the wheel alone gives no focus
        box.installEventFilter(_STEADY)


def compact(*combos: QComboBox, chars: int = COMBO_CHARS) -> None:
    """``combos`` no wider than ``chars`` characters need; the chosen item's text is
    elided, the open list shows every item whole."""
    for combo in combos:
        combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(chars)
        combo.view().setTextElideMode(Qt.ElideNone)


class OneLine(QLabel):
    """A label of one line whatever its width: a text too long for it is shortened in
    the middle ("/home/…/study_3"), and shown whole in its tooltip."""

    def __init__(self, text: str = ""):
        super().__init__()
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.setTextFormat(Qt.PlainText)
        self.whole = ""
        self.setWhole(text)

    def setWhole(self, text: str) -> None:
        self.whole = text
        self._fit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def minimumSizeHint(self) -> QSize:
        return QSize(self.fontMetrics().horizontalAdvance("/…/" + "x" * 8), self.fontMetrics().height())

    def sizeHint(self) -> QSize:  # its dock's width is not the text's to choose
        return self.minimumSizeHint()

    def _fit(self) -> None:
        shown = self.fontMetrics().elidedText(self.whole, Qt.ElideMiddle, max(self.width(), 1))
        self.setText(shown)
        self.setToolTip(self.whole if shown != self.whole else "")
