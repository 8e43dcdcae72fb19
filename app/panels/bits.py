"""The latent bits: clean and adversarial codes as grids, the continuous z per dimension, Theorem 1.

A bit is +1 when |z_i| <= eta and -1 otherwise (eq. 2 of the paper). The grids show the 64 bits of
H(mu) for the clean and the adversarial image with the flipped ones outlined; the plot shows mu per
dimension for both with the +-eta thresholds, so one sees which coordinates crossed a threshold.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QScrollArea, QSizePolicy, QWidget

from app.panels.widgets import Plot, faded, lines
from app.state.app_state import AppState
from app.state.settings import CLASSIFIER_DEFENSES, PURIFIER_LABELS, split_classifier
from lqvae.spec.datasets import ETA_MEDIAN
from lqvae.spec.results import FLIP_SHARE, Analysis, Theorem1

PLUS, MINUS, FLIP = QColor("#243b53"), QColor("#e4e7eb"), QColor("#ef6c00")
CLEAN_PEN, ADV_PEN = "#2166ac", "#b2182b"
NO_CODE = {"vae": "it decodes the continuous μ, unquantized", "defensegan": "its code is a continuous GAN latent z"}


def no_bits_text(purifier: str | None, classifier: str, kind: str | None) -> str:
    """Why a defense shows no latent bits ("" when it has a bit code)."""
    hardening = split_classifier(classifier)[1]
    if purifier is None and hardening:
        return f"{CLASSIFIER_DEFENSES[hardening]} hardens the classifier itself: no purifier, no latent bits."
    if purifier is None:
        return "No purifier selected: no latent bits."
    if kind == "lqvae":
        return ""
    why = NO_CODE.get(kind or "", "it maps images to images without quantizing")
    return f"{PURIFIER_LABELS.get(purifier, purifier)} has no bit code ({why}): only its images and predictions."


class BitGrid(QWidget):
    """A square grid of +-1 bits (dark = +1, light = -1); ``flipped`` cells get an orange outline."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bits: np.ndarray | None = None
        self.flipped: np.ndarray | None = None
        self.setMinimumSize(72, 72)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(120, 120)

    def set_bits(self, bits: np.ndarray | None, flipped: np.ndarray | None = None) -> None:
        self.bits = None if bits is None else np.asarray(bits).reshape(-1)
        self.flipped = None if flipped is None else np.asarray(flipped, bool).reshape(-1)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        side = min(self.width(), self.height()) - 4
        x0, y0 = (self.width() - side) / 2, (self.height() - side) / 2
        if self.bits is None:
            p.fillRect(QRectF(x0, y0, side, side), QColor("#f3f4f6"))
            p.end()
            return
        n = len(self.bits)
        cols = math.ceil(math.sqrt(n))
        cell = side / cols
        for i, b in enumerate(self.bits):
            r = QRectF(x0 + (i % cols) * cell, y0 + (i // cols) * cell, cell, cell).adjusted(1, 1, -1, -1)
            p.fillRect(r, PLUS if b > 0 else MINUS)
            if self.flipped is not None and self.flipped[i]:
                p.setPen(QPen(FLIP, max(2.0, cell / 6)))
                p.drawRect(r.adjusted(1, 1, -1, -1))
        p.end()


class BitsPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.clean, self.adv = BitGrid(), BitGrid()
        self.clean.setToolTip("H(μ) of the clean image: dark = +1 (|μ_i| ≤ η), light = −1. Orange outline: the "
                              "bit flips under the attack.")
        self.adv.setToolTip("H(μ) of the adversarial image. Every flipped bit changes the code the decoder sees; "
                            "Theorem 1 argues few bits flip because the encoder is Lipschitz-constrained.")
        self.hamming = QLabel("")
        self.hamming.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hamming.setWordWrap(True)  # the no-bits explanations are a sentence long
        self.zplot = self._make_zplot()
        self.theorem = QLabel("")
        self.theorem.setWordWrap(True)
        self.theorem.setTextFormat(Qt.TextFormat.RichText)
        self.theorem.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.theorem_area = QScrollArea()  # a long readout scrolls instead of being cut off
        self.theorem_area.setWidget(self.theorem)
        self.theorem_area.setWidgetResizable(True)
        self.theorem_area.setFrameShape(QFrame.Shape.NoFrame)
        self.theorem_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.theorem.setToolTip(
            "Theorem 1: a coordinate z ~ N(0, 1) moved by |δz| flips its bit with probability "
            "p = Φ(η+|δz|) − Φ(η−|δz|). 'Measured' gives each dimension its own p_i from this image's actual "
            "|δz_i|, so the number of flips is Poisson-binomial; 'bound' uses |δz| ≤ K·‖δ‖₂ with this "
            "perturbation's L2 size, as the theorem states; 'paper's plug-in' uses |δz| = K·ε∞ = 0.1 × ε as the "
            "paper does, although the bound needs the L2 size.")
        self.compact = False  # the presentation layout: the grids only, no μ plot and no Theorem 1 text
        self._plot_wanted = True
        self.grid = grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self._heads = [QLabel("<b>Clean bits</b>"), QLabel("<b>Adversarial bits</b>")]
        for col, head in enumerate(self._heads):
            grid.addWidget(head, 0, col, Qt.AlignmentFlag.AlignCenter)
        grid.addWidget(self.clean, 1, 0)
        grid.addWidget(self.adv, 1, 1)
        grid.addWidget(self.hamming, 2, 0, 1, 2)
        grid.addWidget(self.zplot, 0, 2, 3, 1)
        grid.addWidget(self.theorem_area, 0, 3, 4, 1)
        self._stretch()
        # out of date: the grids, the μ plot and Theorem 1 fade, a reserved line says so (nothing moves)
        self.stale = False
        self.stale_note = QLabel("")
        self.stale_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stale_note.setStyleSheet(f"color:{FLIP.name()}; font-weight:bold;")
        grid.addWidget(self.stale_note, 3, 0, 1, 2)
        self._fades = []
        for w in (self.clean, self.adv, self.hamming, self.theorem):
            effect = faded(w)
            w.setGraphicsEffect(effect)
            self._fades.append(effect)
        self._fit_font()
        self.clear()
        state.resultChanged.connect(self.show_result)
        state.resultCleared.connect(self.clear)
        state.resultStaleChanged.connect(self._on_stale)
        state.defenseSettingsChanged.connect(lambda _d: self._on_selection())
        state.modelSettingsChanged.connect(lambda _m: self._on_selection())

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_font()

    def _stretch(self) -> None:
        """The two grids share alike (as wide as the wider heading); μ and Theorem 1 take the rest, if shown."""
        for col, stretch in enumerate((1, 1, 0, 0) if self.compact else (2, 2, 5, 3)):
            self.grid.setColumnStretch(col, stretch)

    def _fit_font(self) -> None:
        widest = max(head.sizeHint().width() for head in self._heads)
        for col in (0, 1):
            self.grid.setColumnMinimumWidth(col, widest)
        self.stale_note.setFixedHeight(lines(self.stale_note, 1) + 4)
        self.theorem_area.setMinimumWidth(lines(self, 10))

    def _make_zplot(self) -> Plot:
        w = Plot(f"μ: <span style='color:{CLEAN_PEN}'>● clean</span> "
                 f"<span style='color:{ADV_PEN}'>✕ adv.</span> - - ±η", min_lines=8)
        w.getAxis("bottom").setLabel("dimension")
        w.fit_fonts()
        self.eta_lines = [pg.InfiniteLine(angle=0, pen=pg.mkPen("#7b8794", style=Qt.PenStyle.DashLine))
                          for _ in range(2)]
        for line in self.eta_lines:
            w.addItem(line)
        self.moves = pg.PlotDataItem(pen=pg.mkPen(QColor(FLIP), width=2), connect="pairs")
        self.clean_pts = pg.ScatterPlotItem(size=6, brush=pg.mkBrush(CLEAN_PEN), pen=None, name="clean μ")
        self.adv_pts = pg.ScatterPlotItem(size=6, symbol="x", brush=pg.mkBrush(ADV_PEN), pen=pg.mkPen(ADV_PEN),
                                          name="adversarial μ")
        for item in (self.moves, self.clean_pts, self.adv_pts):
            w.addItem(item)
        w.setToolTip("Dots: μ_i of the clean image; crosses: of the adversarial one. Dashed: ±η. A bit is +1 "
                     "inside the band and −1 outside, so a coordinate crossing a dashed line flips its bit "
                     "(orange segments).")
        return w

    def clear(self, text: str = "") -> None:
        self.clean.set_bits(None)
        self.adv.set_bits(None)
        self.hamming.setText(text)
        self.clean_pts.setData([])
        self.adv_pts.setData([])
        self.moves.setData([], [])
        self.theorem.setText("")
        self._show_plot(not text)  # an explanation instead of bits: no empty μ axes beside it

    def set_compact(self, on: bool) -> None:
        """Grids and Hamming distance only (presentation), or everything."""
        self.compact = on
        self._stretch()
        self.theorem_area.setVisible(not on)
        self._show_plot(self._plot_wanted)

    def _show_plot(self, wanted: bool) -> None:
        self._plot_wanted = wanted
        self.zplot.setVisible(wanted and not self.compact)

    def _on_stale(self, stale: bool) -> None:
        self.stale = stale
        for effect in self._fades:
            effect.setEnabled(stale)
        self.zplot.getPlotItem().getViewBox().setOpacity(0.3 if stale else 1.0)
        self.stale_note.setText(self.state.stale_text())

    def _on_selection(self) -> None:
        """A defense without bits was chosen: drop the previous defense's bits now, not at the next result."""
        s = self.state
        text = no_bits_text(s.defense.purifier, s.models.classifier, s.purifier_kind(s.defense.purifier))
        if text and not s.is_quiet:  # a restored entry brings its own result
            self.clear(text)

    def show_result(self, request, result: Analysis) -> None:
        b0, b1 = result.bits_original, result.bits_adversarial
        if not result.has_bits:
            d = request.defense
            self.clear(no_bits_text(d.purifier, request.models.classifier, self.state.purifier_kind(d.purifier)))
            return
        self._show_plot(True)
        eta = _eta(result, self.state)
        for line, y in zip(self.eta_lines, (eta, -eta)):
            line.setPos(y)
        z0 = np.asarray(result.z_original, float).reshape(-1)
        dims = np.arange(len(z0))
        self.zplot.setXRange(-1, len(z0), padding=0)
        self.clean_pts.setData(dims, z0)
        if b1 is None:
            self.clean.set_bits(b0)
            self.adv.set_bits(None)
            self.adv_pts.setData([])
            self.moves.setData([], [])
            self.hamming.setText(f"{len(b0)} bits; run an attack to see which flip")
            self.theorem.setText("")
            return
        flipped = np.asarray(b0).reshape(-1) != np.asarray(b1).reshape(-1)
        self.clean.set_bits(b0, flipped)
        self.adv.set_bits(b1, flipped)
        m = len(flipped)
        hd = int(result.hamming) if result.hamming is not None else int(flipped.sum())
        self.hamming.setText(f"<b>Hamming distance: {hd} of {m} bits ({100 * hd / m:.1f}\u00a0%)</b>")
        z1 = np.asarray(result.z_adversarial, float).reshape(-1)
        self.adv_pts.setData(dims, z1)
        idx = np.flatnonzero(flipped)
        xs = np.repeat(idx, 2).astype(float)
        ys = np.column_stack([z0[idx], z1[idx]]).reshape(-1)
        self.moves.setData(xs, ys)
        self.theorem.setText(theorem_text(result.theorem1))


def _eta(result: Analysis, state: AppState) -> float:
    if result.theorem1 is not None:
        return result.theorem1.eta
    info = state.models_info
    return float(info.eta if info is not None and info.eta else ETA_MEDIAN)


def theorem_text(t: Theorem1 | None) -> str:
    """The Theorem 1 readout as rich text: prediction from the measured per-coordinate latent shift, the
    theorem's bound with the perturbation's L2 size, the paper's plug-in (|δz| = K·ε∞), and what happened."""
    if t is None:
        return "<b>Theorem 1</b><br>no prediction for this result"
    observed, m = f"{t.observed_flips:g}", t.latent_dim
    lines = ["<b>Theorem 1</b> — predicted vs observed flips", f"Observed: <b>{observed}</b> of {m} bits flipped"]
    if t.p_flip is not None and t.expected_flips is not None:
        top = f", max {t.shift_max:.3g})" if t.shift_max is not None else ")"
        at_least = t.prob_at_least_observed
        lines.append(f"From the measured |δz_i| per dimension (mean {t.shift_mean:.3g}{top}: "
                     f"mean p = {t.p_flip:.3g}/bit, expect <b>{t.expected_flips:.1f}</b> flips; P(exactly {observed}) = {_prob(t.prob_observed)}"
                     + (f", P(≥ {observed}) = {_prob(at_least)}" if at_least is not None else ""))
    if t.bound is not None:
        r = t.bound
        lines.append(f"Bound with this perturbation's ‖δ‖₂ = {t.l2 or 0.0:.3g} (|δz| ≤ K·‖δ‖₂ = {r.delta_z:.3g}): "
                     f"expect {r.expected_flips:.1f} flips, P(exactly {observed}) = {_prob(r.prob_observed)}")
    if t.paper_plugin is not None:
        r = t.paper_plugin
        lines.append(f"Paper's plug-in (|δz| = K·ε∞ = {r.delta_z:.3g}, an L∞ size in an L2 bound): expect "
                     f"{r.expected_flips:.2f} flips, P(exactly {observed}) = {_prob(r.prob_observed)}")
    if t.observed_flips >= FLIP_SHARE * m:
        lines.append("<span style='color:#c62828'>≥ 6 % of the bits flipped; the paper's Figure 3 has ~90 % of "
                     "adversaries below that.</span>")
    return "<br>".join(lines)


def _prob(p) -> str:
    if p is None:
        return "—"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"
