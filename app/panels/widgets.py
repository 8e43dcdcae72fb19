"""Small pieces shared by the panels: ``PixelView`` (a pixel-exact image view), ``group`` (a titled group box),
``plain`` (a name shown as text, never rendered as markup, bidirectional controls shown as codes),
``ElidedLabel`` (one line, shortened with "…" and the whole text in its tooltip), ``Plot`` and ``fit_plot_fonts``
(pyqtgraph text that follows the widget's font, so the window's zoom reaches the plots) and ``configure_plots``
(pyqtgraph's look, set once).

No size here is a fixed number of pixels where text is involved: sizes are counted in text lines
(``lines``), so they follow the font when the window is zoomed (``app.panels.presentation``)."""

from __future__ import annotations

import html

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter, QPen
from PySide6.QtWidgets import (QFrame, QGraphicsOpacityEffect, QGroupBox, QLabel, QScrollArea, QSizePolicy,
                               QVBoxLayout, QWidget)

from app.render.images import paint_pixel_exact


TEXT = "#1f2933"
TITLE_SCALE = 1.1  # plot titles are this much larger than the body text


# Invisible characters that reorder the text around them: "photo\u202egnp.exe" would read "photoexe.png".
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c")


def faded(widget: QWidget) -> QGraphicsOpacityEffect:
    """An opacity effect, off until enabled, that greys an out-of-date widget (coloured text included).

    Set it with ``widget.setGraphicsEffect(faded(widget))`` and switch it with ``setEnabled(stale)``."""
    effect = QGraphicsOpacityEffect(widget)
    effect.setOpacity(0.35)
    effect.setEnabled(False)
    return effect


def plain(text: object) -> str:
    """``text`` made safe to put inside rich text (a QLabel or a tooltip): a file or checkpoint name such as
    ``<h1>x<a href=…>.png`` is shown as those characters, never rendered as a heading or a link, and a
    right-to-left override is shown as ⟨U+202E⟩ instead of silently reversing the rest of the name."""
    text = "".join(f"⟨U+{ord(c):04X}⟩" if c in _BIDI_CONTROLS else c for c in str(text))
    return html.escape(text, quote=False).replace("\n", "<br>")


class PixelView(QWidget):
    """Shows a small image scaled up with nearest neighbour, framed in a verdict colour, in the largest square
    its rectangle holds (no height-for-width: a scrolling page would then grow as tall as the tiles are wide)."""

    def __init__(self, min_side: int = 120, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.frame: QColor | None = None
        self.placeholder = ""
        self.stale = False
        self.setMinimumSize(min_side, min_side)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(168, 168)

    def set_image(self, image: QImage | None, frame: QColor | None = None, placeholder: str = "") -> None:
        self.image, self.frame, self.placeholder, self.stale = image, frame, placeholder, False
        self.update()

    def set_stale(self, stale: bool) -> None:
        if stale != self.stale:
            self.stale = stale
            self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(3, 3, -3, -3)
        side = min(r.width(), r.height())
        square = QRectF(r.center().x() - side / 2, r.center().y() - side / 2, side, side)
        if self.image is None:
            p.fillRect(square, QColor("#f3f4f6"))
            p.setPen(QColor("#7b8794"))
            p.drawText(square, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
        else:
            if self.stale:
                p.setOpacity(0.35)
            paint_pixel_exact(p, self.image, square)
            p.setOpacity(1.0)
        if self.frame is not None:
            p.setPen(QPen(self.frame, 4))
            p.drawRect(square.adjusted(-1, -1, 1, 1))
        p.end()


def lines(widget: QWidget, n: float) -> int:
    """The height of ``n`` lines of ``widget``'s text in pixels: fixed heights follow the font (and the zoom)."""
    return round(widget.fontMetrics().lineSpacing() * n)


def font_pt(widget: QWidget, scale: float = 1.0) -> str:
    """``widget``'s font size as a pyqtgraph size string ("9.0pt"), times ``scale``."""
    return f"{widget.font().pointSizeF() * scale:.1f}pt"


class ElidedLabel(QLabel):
    """One line of plain text that may shrink below its width: it then ends in "…" and its tooltip carries the
    whole text (``full_text()``), after ``note``, the tooltip it has when nothing is hidden."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.note = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.set_text(text)

    def full_text(self) -> str:
        return self._full

    def setText(self, text: str) -> None:  # noqa: N802 - QLabel's API: whoever sets the text sets the whole text
        self.set_text(text)

    def set_text(self, text: str, note: str | None = None) -> None:
        self._full = text
        if note is not None:
            self.note = note
        self.updateGeometry()
        self._elide()

    def _elide(self) -> None:
        room = self.contentsRect().width()
        shown = QFontMetrics(self.font()).elidedText(self._full, Qt.TextElideMode.ElideRight, max(1, room))
        QLabel.setText(self, shown)
        hidden = shown != self._full
        self.setToolTip("\n".join(t for t in (self.note, self._full if hidden else "") if t))

    def sizeHint(self) -> QSize:
        m = self.contentsMargins()
        return QSize(QFontMetrics(self.font()).horizontalAdvance(self._full) + m.left() + m.right() + 2,
                     super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(QFontMetrics(self.font()).horizontalAdvance("…") * 3, super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._elide()

    def changeEvent(self, event) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._elide()


class ScrollPage(QScrollArea):
    """A page that fills the scroll area and scrolls only below its minimum height for the area's width
    (word-wrapped labels counted), so a small window scrolls instead of squeezing panels over each other.

    (``setWidgetResizable`` would size the page by its preferred height for that width instead: the page would
    then scroll whenever its size hints add up to more than the window, even with room to spare.)"""

    def __init__(self, page: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidget(page)
        self.setFrameShape(QFrame.Shape.NoFrame)
        page.installEventFilter(self)
        self.viewport().installEventFilter(self)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API: as wide as the page, with room for the scroll bar
        page = self.widget().minimumSizeHint()
        return QSize(page.width() + self.verticalScrollBar().sizeHint().width() + 2, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:  # noqa: N802 - the page's own width (a splitter gives it that, not its minimum)
        page = self.widget().sizeHint()
        return QSize(page.width() + self.verticalScrollBar().sizeHint().width() + 2, super().sizeHint().height())

    def fit(self) -> None:
        page, view = self.widget(), self.viewport()
        layout = page.layout()
        width = max(view.width(), page.minimumSizeHint().width())
        need = (layout.totalMinimumHeightForWidth(width) if layout.hasHeightForWidth()
                else layout.totalMinimumSize().height())
        size = QSize(width, max(view.height(), need))
        if page.size() != size:
            page.resize(size)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.LayoutRequest and obj is self.widget():
            self.updateGeometry()  # the page's minimum width may have changed (the zoom): so has ours
        if event.type() in (QEvent.Type.LayoutRequest, QEvent.Type.Resize):
            self.fit()
        return False


def group(title: str, *widgets: QWidget, tooltip: str = "") -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(6, 6, 6, 6)
    for w in widgets:
        layout.addWidget(w)
    if tooltip:
        box.setToolTip(tooltip)
    return box


def fit_plot_fonts(plot: pg.PlotWidget) -> None:
    """Tick labels, axis labels and the title of ``plot`` in its own font (the window's font, so the zoom reaches
    them); the axes make room for their labels themselves (no fixed widths that would clip a larger font)."""
    font = plot.font()
    item = plot.getPlotItem()
    for side in ("left", "bottom", "right", "top"):
        axis = item.getAxis(side)
        axis.setTickFont(font)
        axis.setStyle(tickTextOffset=max(2, round(font.pointSizeF() / 3)))
        if axis.label.isVisible():
            axis.setLabel(axis.labelText, **{**axis.labelStyle, "font-size": font_pt(plot)})
        axis.textWidth = axis.textHeight = 0  # forget the room the old size needed: it is measured again
        if side in ("left", "right"):
            axis.setWidth(None)
        else:
            axis.setHeight(None)
    title = item.titleLabel
    if title.isVisible() and title.text:
        title.setText(title.text, size=font_pt(plot, TITLE_SCALE))


class Plot(pg.PlotWidget):
    """A still pyqtgraph plot (no mouse, no menu) whose text follows the widget's font: ``set_title`` instead of
    ``setTitle`` keeps the title's size tied to the font."""

    def __init__(self, title: str = "", parent: QWidget | None = None, min_lines: float = 0) -> None:
        super().__init__(parent, background="w")
        self.min_lines = min_lines  # the least height, in lines of text, so it shrinks with the font, never less
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.setMenuEnabled(False)
        self.set_title(title)
        self.fit_fonts()

    def fit_fonts(self) -> None:
        """Called when the font changes (the zoom); a subclass also fits the text items it adds."""
        fit_plot_fonts(self)
        self._fit_title()
        self.setMinimumHeight(lines(self, self.min_lines))

    def set_title(self, text: str, color: str = TEXT) -> None:
        self.setTitle(text or None, color=color, size=font_pt(self, TITLE_SCALE))
        self._fit_title()

    def _fit_title(self) -> None:
        """pyqtgraph gives the title a fixed 30 px row: make it as tall as the title's lines in their font."""
        item = self.getPlotItem()
        label = getattr(item, "titleLabel", None)
        if label is None or not label.isVisible():
            return
        height = label.item.boundingRect().height() + 4
        label.setMaximumHeight(height)
        item.layout.setRowFixedHeight(0, height)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self.fit_fonts()


def configure_plots() -> None:
    """pyqtgraph defaults for the app and the figures: white background, dark text, antialiasing."""
    pg.setConfigOptions(antialias=True, background="w", foreground="#323f4b")
