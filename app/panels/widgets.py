"""Small pieces shared by the panels: ``PixelView`` (a pixel-exact image view), ``group`` (a titled group box),
``plain`` (a name shown as text, never rendered as markup, bidirectional controls shown as codes) and
``configure_plots`` (pyqtgraph's look, set once)."""

from __future__ import annotations

import html

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QGraphicsOpacityEffect, QGroupBox, QSizePolicy, QVBoxLayout, QWidget

from app.render.images import paint_pixel_exact


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
    """Shows a small image scaled up with nearest neighbour, framed in a verdict colour."""

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

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return width

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


def group(title: str, *widgets: QWidget, tooltip: str = "") -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(6, 6, 6, 6)
    for w in widgets:
        layout.addWidget(w)
    if tooltip:
        box.setToolTip(tooltip)
    return box


def configure_plots() -> None:
    """pyqtgraph defaults for the app and the figures: white background, dark text, antialiasing."""
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True, background="w", foreground="#323f4b")
