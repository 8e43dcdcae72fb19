"""Arrays -> QImages, in the GUI thread: grey images, the diverging perturbation map, thumbnails."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap

GOOD = QColor("#1b8a3a")
BAD = QColor("#c62828")
NEUTRAL = QColor("#607080")
ACCENT = QColor("#ef6c00")
BRIGHTER = QColor(178, 24, 43)  # the perturbation map: a pixel the attack made brighter (full red) ...
DARKER = QColor(33, 102, 172)  # ... and darker (full blue); white is unchanged


def _plane(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img, np.float32)
    return a.reshape(a.shape[-2], a.shape[-1]) if a.ndim == 3 else a


def gray_qimage(img: np.ndarray) -> QImage:
    """(H, W) or (1, H, W) float in [0, 1] -> an 8-bit grey QImage (owns its pixels)."""
    a = np.ascontiguousarray((np.clip(_plane(img), 0, 1) * 255 + 0.5).astype(np.uint8))
    h, w = a.shape
    return QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


def diverging_rgb(delta: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Perturbation -> (H, W, 3) uint8: blue where pixels got darker, red where lighter, white unchanged.

    ``vmax`` maps to full colour (default: the largest |delta|, i.e. amplified to the full range).
    """
    d = _plane(delta)
    vmax = float(np.abs(d).max()) if vmax is None else float(vmax)
    t = np.clip(d / vmax, -1, 1) if vmax > 0 else np.zeros_like(d)
    blue, red = np.array(DARKER.getRgb()[:3], float), np.array(BRIGHTER.getRgb()[:3], float)
    white = np.array([247, 247, 247.0])
    pos, neg = np.clip(t, 0, 1)[..., None], np.clip(-t, 0, 1)[..., None]
    rgb = white * (1 - pos - neg) + red * pos + blue * neg
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def rgb_qimage(rgb: np.ndarray) -> QImage:
    a = np.ascontiguousarray(rgb, np.uint8)
    h, w, _ = a.shape
    return QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def pixel_exact(image: QImage, size: int) -> QPixmap:
    """Nearest-neighbour upscale to ``size`` px on the longer side (whole multiples when possible)."""
    factor = max(1, size // max(image.width(), image.height()))
    return QPixmap.fromImage(image.scaled(image.width() * factor, image.height() * factor,
                                          Qt.AspectRatioMode.KeepAspectRatio,
                                          Qt.TransformationMode.FastTransformation))


def paint_pixel_exact(painter: QPainter, image: QImage, target: QRectF) -> QRectF:
    """Draw ``image`` into the largest square of ``target`` with nearest-neighbour scaling; returns where."""
    side = min(target.width(), target.height())
    rect = QRectF(target.center().x() - side / 2, target.center().y() - side / 2, side, side)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
    painter.drawImage(rect, image)
    return rect


def thumbnail(img: np.ndarray, size: int = 56, border: QColor | None = None) -> QPixmap:
    pm = pixel_exact(gray_qimage(img), size)
    if border is not None:
        painter = QPainter(pm)
        pen = painter.pen()
        pen.setColor(border)
        pen.setWidth(4)
        painter.setPen(pen)
        painter.drawRect(1, 1, pm.width() - 3, pm.height() - 3)
        painter.end()
    return pm


def verdict_color(pred: int | None, label: int | None) -> QColor:
    if pred is None or label is None:
        return NEUTRAL
    return GOOD if pred == label else BAD
