"""Draw a digit: a 280x280 canvas (brush size, eraser, undo, clear) turned into an MNIST-style 28x28.

The canvas keeps white ink on black, like the datasets. After every stroke the drawing goes through
``app.input.preprocess.mnist_frame`` (crop, scale the longer side to 20 px, centre of mass at the centre)
and the 28x28 result becomes the app's image. Its true label ("True label" box) is kept while the same
drawing grows and forgotten when the canvas is cleared.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QKeySequence, QPainter, QPen, QShortcut
from PySide6.QtWidgets import (QCheckBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider,
                               QVBoxLayout, QWidget)

from app.input.preprocess import FRAMING, mnist_frame
from app.render.images import NEUTRAL, gray_qimage
from app.state.app_state import AppState
from app.panels.true_label import TrueLabelBox
from app.panels.widgets import PixelView

CANVAS = 280
UNDO_DEPTH = 30


class DrawCanvas(QWidget):
    """A fixed 280x280 grey canvas; emits ``strokeFinished`` after each stroke, undo and clear."""

    strokeFinished = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image = QImage(CANVAS, CANVAS, QImage.Format.Format_Grayscale8)
        self.image.fill(0)
        self.brush = 20
        self.eraser = False
        self._undo: list[QImage] = []
        self._last: QPointF | None = None
        self.setFixedSize(CANVAS, CANVAS)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(CANVAS, CANVAS)

    # ------------------------------------------------------------ programmatic API (also used by tests)
    def array(self) -> np.ndarray:
        """The canvas as (280, 280) float32 ink in [0, 1]."""
        ptr = self.image.constBits()
        arr = np.frombuffer(ptr, np.uint8, count=self.image.sizeInBytes()).reshape(CANVAS, self.image.bytesPerLine())
        return arr[:, :CANVAS].astype(np.float32) / 255.0

    def is_blank(self) -> bool:
        return not self.array().any()

    def begin_stroke(self) -> None:
        self._undo.append(self.image.copy())
        del self._undo[:-UNDO_DEPTH]

    def draw_line(self, a: QPointF, b: QPointF) -> None:
        p = QPainter(self.image)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setPen(QPen(QColor(0, 0, 0) if self.eraser else QColor(255, 255, 255), self.brush,
                      Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin))
        p.drawLine(a, b)
        p.end()
        self.update()

    def stroke(self, points: list[tuple[float, float]], width: int | None = None) -> None:
        """Draw a whole stroke through ``points`` (canvas pixels) as one undo step."""
        if width is not None:
            self.brush = int(width)
        self.begin_stroke()
        pts = [QPointF(x, y) for x, y in points]
        for a, b in zip(pts, pts[1:] or pts):
            self.draw_line(a, b)
        self.strokeFinished.emit()

    def undo(self) -> None:
        if self._undo:
            self.image = self._undo.pop()
            self.update()
            self.strokeFinished.emit()

    def clear(self) -> None:
        if not self.is_blank():
            self.begin_stroke()
        self.image.fill(0)
        self.update()
        self.strokeFinished.emit()

    # ------------------------------------------------------------ mouse
    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.begin_stroke()
            self._last = event.position()
            self.draw_line(self._last, self._last)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._last is not None:
            pos = event.position()
            self.draw_line(self._last, pos)
            self._last = pos

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._last is not None:
            self._last = None
            self.strokeFinished.emit()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.drawImage(0, 0, self.image)
        p.setPen(QPen(QColor("#3e4c59"), 1, Qt.PenStyle.DotLine))  # the 20 px box MNIST digits fill
        p.drawRect(40, 40, 200, 200)
        p.end()


class DrawPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.canvas = DrawCanvas()
        self.canvas.setToolTip("Draw a digit with the mouse (white ink on black, like MNIST). It is cropped, "
                               "scaled to 20 px and centred by its centre of mass, as MNIST was made.")
        self.preview = PixelView(84)
        self.preview.setFixedSize(90, 90)
        self.preview.setToolTip("The 28×28 image the classifier gets from your drawing.")
        self.size = QSlider(Qt.Orientation.Horizontal, minimum=6, maximum=40, value=self.canvas.brush)
        self.size.setToolTip("Brush width in canvas pixels (the canvas is 10× the 28×28 image).")
        self.size.valueChanged.connect(lambda v: setattr(self.canvas, "brush", v))
        self.eraser = QCheckBox("Eraser")
        self.eraser.toggled.connect(lambda on: setattr(self.canvas, "eraser", on))
        undo, clear = QPushButton("Undo"), QPushButton("Clear")
        undo.setToolTip("Undo the last stroke (Ctrl+Z)")
        undo.clicked.connect(self.canvas.undo)
        clear.clicked.connect(self.canvas.clear)
        QShortcut(QKeySequence.StandardKey.Undo, self, self.canvas.undo)
        self.canvas.strokeFinished.connect(self._on_stroke)
        self.label = TrueLabelBox(state)
        self._new_drawing = True  # the next stroke starts a drawing with no label yet

        tools = QGridLayout()
        tools.addWidget(QLabel("Brush"), 0, 0)
        tools.addWidget(self.size, 0, 1)
        tools.addWidget(self.eraser, 1, 0)
        buttons = QHBoxLayout()
        buttons.addWidget(undo)
        buttons.addWidget(clear)
        tools.addLayout(buttons, 1, 1)
        side = QVBoxLayout()
        side.addWidget(QLabel("28×28:"))
        side.addWidget(self.preview)
        side.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.canvas)
        top.addLayout(side)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(tools)
        layout.addWidget(self.label)
        layout.addStretch(1)

    def processed(self) -> np.ndarray:
        return mnist_frame(self.canvas.array(), FRAMING.get(self.state.models.dataset, FRAMING["mnist"]))

    def _on_stroke(self) -> None:
        img = self.processed()
        self.preview.set_image(gray_qimage(img), NEUTRAL)
        if not img.any():
            self._new_drawing = True
            return  # a blank canvas is not a useful input; keep the previous image
        current = self.state.image
        label = None if self._new_drawing or current is None or current.source != "drawing" else current.label
        self._new_drawing = False
        self.state.set_image(img, label, "drawing")
