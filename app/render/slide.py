"""A slide-ready figure of one run: the five images with their predictions, a caption and the honesty line.

Drawn with QPainter from the result's arrays (not a screen grab), in the GUI thread, as PNG (300 dpi), SVG
or PDF. It is sized to be pasted full width into a 16:9 slide: 3000 × 1450 px is 10 × 4.83 in at 300 dpi,
and a 13.33 × 7.5-in slide then keeps about 1 in above it for the slide's title.

Text size: a slide read from the back of a lecture hall wants at least 24 pt on a 13.33-in-wide slide; a
sans-serif's capitals are about 0.7 em, so 24 pt is a cap height of 1.75 % of the slide width, which is the
figure's width when pasted full width. The caption and the honesty line (about five lines; an unusually long
one makes the figure taller, never cut off) are drawn at ``CAPTION_CAP`` = 1.8 % (24 pt on the slide: larger
would shrink the images or push the figure past the slide);
the tile titles and confidences at 2 % (27 pt), the predicted classes, the figure's message, at
``PREDICTION_CAP`` = 2.5 % (34 pt; a long class name is shrunk to its tile's width, never below ``MIN_CAP``).

``install(window)`` adds File → Save figure… (Ctrl+Shift+S).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QMarginsF, QPointF, QRectF, QSize, QSizeF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QKeySequence, QPageSize, QPainter, QPdfWriter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QFileDialog

from app.render.images import BAD, GOOD, NEUTRAL, diverging_rgb, gray_qimage, rgb_qimage
from app.state import paper_claims
from app.state.results import Results, load_results, matching
from app.state.settings import (ATTACK_LABELS, DATASET_LABELS, THREAT_LABELS, AnalysisRequest, defense_label)
from lqvae.spec.results import Analysis

WIDTH, HEIGHT = 3000, 1450  # px at DPI: 10 × 4.83 in (taller only if a long caption needs it)
DPI = 300
DOTS_PER_METER = round(DPI / 0.0254)  # 11811
CAPTION_CAP = 0.018  # cap height of the caption and honesty lines, as a share of the width (see the docstring)
PREDICTION_CAP = 0.025  # ... of the predictions under the tiles
TITLE_CAP = 0.020  # ... of the tile titles and the confidences
MIN_CAP = 0.018  # the smallest any text gets (24 pt on the slide)
TILE = 28 * 12  # px: whole multiples of the 28-px images (1.5 in on the slide)
MARGIN = 40.0
CAP_PER_EM = 0.7  # a sans-serif's cap height per em, to pick pixel sizes (the test measures the real one)
INK, MUTED, CAVEAT = QColor("#1f2933"), QColor("#52606d"), QColor("#7a4b00")
LEGEND = "perturbation: red = pixel made brighter, blue = darker"  # the colours of app.render.images.diverging_rgb
FORMATS = {".png": "PNG, 300 dpi", ".svg": "SVG", ".pdf": "PDF"}
NOTHING_TO_SAVE = "Nothing to save yet: run an attack first (the figure shows the five images of one run)."


@dataclass(frozen=True)
class Tile:
    title: str
    image: QImage | None  # None: nothing there (``text`` says why)
    text: str  # the predicted class, the perturbation's size, or why the tile is empty
    detail: str  # the prediction's confidence ("98 %"), or ""
    color: QColor


@dataclass(frozen=True)
class Figure:
    tiles: tuple[Tile, ...]
    caption: str  # attack, threat, defense, ε, dataset, classifier, the image
    honesty: str  # one image, not a population; the measured population number if known; the threat's caveat


def _prediction(probs: np.ndarray | None, names: list[str], label: int | None) -> tuple[str, str, QColor]:
    """(class name, "98 %", green if it is the true class, red if not, grey when the truth is unknown)."""
    if probs is None:
        return "", "", NEUTRAL
    k = int(np.argmax(probs))
    name = names[k] if 0 <= k < len(names) else str(k)
    color = NEUTRAL if label is None else (GOOD if k == label else BAD)
    return name, f"{100 * float(probs[k]):.0f} %", color


def build_figure(request: AnalysisRequest, result: Analysis, class_names: list[str],
                 population: str = "") -> Figure:
    """The figure's content from one run (``population``: the measured number over many images, if known)."""
    label = request.image.label
    hardened = request.models.hardening is not None
    tiles = []
    for slot, title, probs in (("original", "Original", result.probs_original),
                               ("adversarial", "Adversarial", result.probs_adversarial),
                               ("perturbation", "Perturbation (amplified)", None),
                               ("purified_adversarial", "Purified adversarial", result.probs_purified_adversarial),
                               ("purified_original", "Purified original", result.probs_purified_original)):
        missing = result.placeholder(slot, hardened=hardened)
        if missing:
            tiles.append(Tile(title, None, missing, "", NEUTRAL))
        elif slot == "perturbation":
            delta = np.asarray(result.adversarial) - np.asarray(result.original)
            sizes = [f"{norm} {value:.2f}" for norm, value in (("L∞", result.linf), ("L2", result.l2))
                     if value is not None]
            if request.attack is not None and request.attack.norm == "L2":
                sizes.reverse()  # the attack's own norm first, large
            sizes += ["", ""]
            tiles.append(Tile(title, rgb_qimage(diverging_rgb(delta)), sizes[0], sizes[1], MUTED))
        else:
            name, confidence, color = _prediction(probs, class_names, label)
            tiles.append(Tile(title, gray_qimage(getattr(result, slot)), name, confidence, color))
    text = caption(request, class_names)
    if not result.placeholder("perturbation", hardened=hardened):
        text += f" · {LEGEND}"
    return Figure(tuple(tiles), text, honesty(request, result, population))


def caption(request: AnalysisRequest, class_names: list[str]) -> str:
    """"PGD (Madry) L∞ ε = 0.3 · Adaptive BPDA · defense: LQ-VAE (paper) · MNIST, classifier A · sample 3 (true
    class 7)"."""
    m, a, image = request.models, request.attack, request.image
    attack = "no attack" if a is None else (f"{ATTACK_LABELS.get(a.attack, a.attack)} {a.norm} ε = {a.eps_text}"
                                            f"{' (' + str(a.steps) + ' steps)' if a.steps else ''} · "
                                            f"{THREAT_LABELS.get(a.threat, a.threat)}")
    truth = ""
    if image.label is not None:
        name = class_names[image.label] if 0 <= image.label < len(class_names) else str(image.label)
        truth = f" (true class {name})".replace(" ", "\u00a0")  # kept on one line
    return (f"{attack} · defense: {defense_label(m, request.defense)} · {DATASET_LABELS.get(m.dataset, m.dataset)}, "
            f"classifier {m.classifier} · {image.source or 'image'}{truth}")


def honesty(request: AnalysisRequest, result: Analysis, population: str = "") -> str:
    """One image is not a population: the verdict for it, the measured number over many, the threat's caveat."""
    survived = result.survived(request.image.label)
    verdict = ("" if survived is None else "this image survived the attack" if survived else
               "this image was fooled")
    parts = [f"One image, not a population{': ' + verdict if verdict else ''}.",
             population or "Over many images: not measured yet."]
    a = request.attack
    caveat = paper_claims.threat_caveat(request.defense.purifier, a.threat) if a is not None else None
    if caveat:
        parts.append(caveat)
    return " ".join(parts)


def population_text(results: Results, request: AnalysisRequest) -> str:
    """"Over n = 1000 images, ε 0.3: 91.3 % accurate under this attack." from the evaluation's records."""
    a, m = request.attack, request.models
    if a is None:
        return ""
    hits = matching(results, dataset=m.dataset, classifier=m.classifier, purifier=request.defense.purifier,
                    attack=a.attack, threat=a.threat, eps=a.eps, substitute=a.substitute)
    if not hits:
        return ""
    r = hits[0]
    at = f", ε {r['eps']:g}" if r.get("eps") is not None else ""
    n = f"n\u00a0=\u00a0{r.get('n') or '?'}"  # no line break inside a number
    return f"Over {n} images{at}: {float(r['attacked_accuracy']):.1f}\u00a0% accurate under this attack."


# ----------------------------------------------------------------------------- drawing
def _font(cap_share: float, *, bold: bool = False) -> QFont:
    """A sans-serif font whose capitals are about ``cap_share`` of the figure's width."""
    font = QFont("DejaVu Sans")
    font.setStyleHint(QFont.StyleHint.SansSerif)
    font.setPixelSize(max(1, round(cap_share * WIDTH / CAP_PER_EM)))
    font.setBold(bold)
    return font


def cap_height(cap_share: float, *, bold: bool = False) -> float:
    """The real cap height in px of the font drawn at ``cap_share`` (what the figure's readability rests on)."""
    return QFontMetricsF(_font(cap_share, bold=bold)).capHeight()


def fitted(text: str, cap_share: float, width: float, *, bold: bool = False) -> QFont:
    """The font for ``text`` at ``cap_share``, shrunk to ``width`` if it is wider, but not below ``MIN_CAP``."""
    font = _font(cap_share, bold=bold)
    wide = QFontMetricsF(font).horizontalAdvance(text)
    return font if wide <= width else _font(max(MIN_CAP, cap_share * width / wide), bold=bold)


def tile_box(i: int, count: int = 5) -> QRectF:
    """Where tile ``i`` of ``count`` is drawn: below two lines of title, centred in its share of the width."""
    slot = (WIDTH - 2 * MARGIN) / count
    top = MARGIN + 2 * QFontMetricsF(_font(TITLE_CAP)).lineSpacing() + 10
    return QRectF(MARGIN + i * slot + (slot - TILE) / 2, top, TILE, TILE)


def _lines() -> tuple[float, float]:
    """Line spacing of the small text (titles, confidences) and of the predicted classes."""
    return (QFontMetricsF(_font(TITLE_CAP)).lineSpacing(),
            QFontMetricsF(_font(PREDICTION_CAP, bold=True)).lineSpacing())


def text_blocks(figure: Figure) -> list[tuple[QRectF, str, QColor]]:
    """Where the caption and the honesty line go, wrapped to the width, under the tiles and their predictions."""
    line, big_line = _lines()
    y = tile_box(0, len(figure.tiles)).bottom() + 10 + big_line + line + 30
    metrics = QFontMetricsF(_font(CAPTION_CAP))
    blocks = []
    for text, color in ((figure.caption, INK), (figure.honesty, CAVEAT)):
        height = metrics.boundingRect(QRectF(MARGIN, 0, WIDTH - 2 * MARGIN, 1e6), int(Qt.TextFlag.TextWordWrap),
                                      text).height()
        blocks.append((QRectF(MARGIN, y, WIDTH - 2 * MARGIN, height + 4), text, color))
        y += height + 4
    return blocks


def figure_height(figure: Figure) -> int:
    """HEIGHT, or taller when an unusually long caption needs it: text is never cut off."""
    return max(HEIGHT, math.ceil(text_blocks(figure)[-1][0].bottom() + MARGIN / 2))


def paint(painter: QPainter, figure: Figure) -> float:
    """Draw ``figure`` on a WIDTH × ``figure_height`` canvas (the painter's device, in px); returns where the
    text ends."""
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)  # the pixels as pixels
    painter.fillRect(QRectF(0, 0, WIDTH, figure_height(figure)), QColor("white"))
    slot = (WIDTH - 2 * MARGIN) / len(figure.tiles)
    small = _font(TITLE_CAP)
    line, big_line = _lines()
    centred, wrap = Qt.AlignmentFlag.AlignHCenter, Qt.TextFlag.TextWordWrap
    for i, tile in enumerate(figure.tiles):
        x, box = MARGIN + i * slot, tile_box(i, len(figure.tiles))  # two lines of title: "Purified adversarial" wraps
        painter.setFont(small)
        painter.setPen(INK)
        painter.drawText(QRectF(x, MARGIN, slot, 2 * line), int(centred | Qt.AlignmentFlag.AlignBottom) | int(wrap),
                         tile.title)
        if tile.image is not None:
            painter.drawImage(box, tile.image)
        else:
            painter.fillRect(box, QColor("#eef1f4"))
        painter.setPen(QColor("#9aa5b1"))
        painter.drawRect(box)
        painter.setPen(tile.color)
        painter.setFont(fitted(tile.text, PREDICTION_CAP if tile.image is not None else TITLE_CAP, slot - 60,
                               bold=tile.image is not None))
        painter.drawText(QRectF(x, box.bottom() + 10, slot, big_line), int(centred), tile.text)
        painter.setFont(small)
        painter.drawText(QRectF(x, box.bottom() + 10 + big_line, slot, line), int(centred), tile.detail)
    blocks = text_blocks(figure)
    y = blocks[0][0].top() - 12
    painter.setPen(QColor("#cbd2d9"))
    painter.drawLine(QPointF(MARGIN, y), QPointF(WIDTH - MARGIN, y))
    painter.setFont(_font(CAPTION_CAP))
    for rect, text, color in blocks:
        painter.setPen(color)
        y = painter.boundingRect(rect, int(wrap), text).bottom()  # as drawn on this device
        painter.drawText(rect, int(wrap), text)
    return y


def render(figure: Figure) -> tuple[QImage, float]:
    """The figure as a 300-dpi QImage, and where its text ends (inside the image, or something is cut off)."""
    image = QImage(WIDTH, figure_height(figure), QImage.Format.Format_RGB32)
    image.setDotsPerMeterX(DOTS_PER_METER)
    image.setDotsPerMeterY(DOTS_PER_METER)
    painter = QPainter(image)
    try:
        bottom = paint(painter, figure)
    finally:
        painter.end()
    return image, bottom


def save(figure: Figure, path: str | Path) -> Path:
    """Write the figure as PNG (300 dpi), SVG or PDF, by ``path``'s suffix (none: .png). Raises ``OSError``
    with a sentence that names the file when it cannot be written."""
    path = Path(path)
    path = path if path.suffix else path.with_name(path.name + ".png")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise OSError(f"Cannot save a figure as {path.suffix!r}: choose .png, .svg or .pdf.")
    try:
        with open(path, "wb"):  # the OS's own reason (no such folder, permission denied) before Qt's silence
            pass
    except OSError as exc:
        raise OSError(f"Could not write {path}: {exc.strerror or exc}.") from exc
    if suffix == ".png":
        if not render(figure)[0].save(str(path), "PNG"):
            raise OSError(f"Could not write {path}.")
        return path
    device: QSvgGenerator | QPdfWriter
    if suffix == ".svg":
        device = QSvgGenerator()
        device.setFileName(str(path))
        device.setSize(QSize(WIDTH, figure_height(figure)))
        device.setViewBox(QRectF(0, 0, WIDTH, figure_height(figure)))
        device.setResolution(DPI)
        device.setTitle("LQ-VAE Studio figure")
        device.setDescription(f"{figure.caption}\n{figure.honesty}")
    else:
        device = QPdfWriter(str(path))
        device.setResolution(DPI)
        device.setPageSize(QPageSize(QSizeF(WIDTH / DPI, figure_height(figure) / DPI), QPageSize.Unit.Inch,
                                     "figure"))
        device.setPageMargins(QMarginsF(0, 0, 0, 0))
        device.setTitle(f"{figure.caption} — {figure.honesty}")
        device.setCreator("LQ-VAE Studio")
    painter = QPainter()
    if not painter.begin(device):
        raise OSError(f"Could not write {path}: Qt could not open it for drawing.")
    try:
        paint(painter, figure)
    finally:
        painter.end()
    return path


# ----------------------------------------------------------------------------- the menu
def save_figure(window: Any, path: str | None = None) -> Path | None:
    """File → Save figure…: the shown run as a slide figure; says why in the message bar when it cannot."""
    s = window.state
    if s.result is None or s.request is None:
        s.notify(NOTHING_TO_SAVE, "warning")
        return None
    if path is None:
        filters = ";;".join(f"{label} (*{suffix})" for suffix, label in FORMATS.items())
        path = QFileDialog.getSaveFileName(window, "Save figure", "lqvae-figure.png", filters)[0]
        if not path:
            return None
    honesty_panel = getattr(window, "honesty", None)
    results = getattr(honesty_panel, "results", None) or load_results()
    figure = build_figure(s.request, s.result, s.class_names(), population_text(results, s.request))
    try:
        out = save(figure, path)
    except OSError as exc:
        s.notify(f"The figure was not saved. {exc}", "error")
        return None
    s.notify(f"Saved the figure as {out}" + (" (showing an earlier run than the settings)" if s.stale else ""),
             "info")
    return out


def install(window: Any) -> None:
    """Add File → Save figure… (Ctrl+Shift+S) to ``window.menu_file``."""
    action = window.menu_file.addAction("Save figure…", QKeySequence("Ctrl+Shift+S"), lambda: save_figure(window))
    action.setToolTip("The five images with their predictions, a caption and the honesty line, for a slide "
                      "(PNG 300 dpi, SVG or PDF)")


__all__ = ["Figure", "Tile", "build_figure", "cap_height", "install", "paint", "population_text", "render", "save",
           "save_figure"]
