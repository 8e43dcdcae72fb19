"""Class probabilities as pyqtgraph bar charts: original, adversarial, purified adversarial.

The predicted class is coloured (green if it is the true class, red if not), the true class is
marked with a green triangle under its bar and a targeted attack's target with an orange one. In
stochastic mode the purified chart shows the spread over the samples as min-max error bars.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QWidget

from app.render.images import ACCENT, BAD, GOOD
from app.panels.widgets import Plot, lines
from app.state.app_state import AppState
from app.state.settings import short_name
from lqvae.spec.results import Analysis

CHARTS = (("probs_original", "Original"), ("probs_adversarial", "Adversarial"),
          ("probs_purified_adversarial", "Purified adversarial"))
BAR_GREY = pg.mkColor("#9aa5b1")


class ProbabilityChart(Plot):
    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        self.markers = pg.ScatterPlotItem(size=11, pxMode=True)
        self.empty = pg.TextItem("", color="#7b8794", anchor=(0.5, 0.5))
        super().__init__(title, parent, min_lines=7)
        self.title = title
        self.setYRange(0, 1.05, padding=0)
        self.getAxis("left").setTicks([[(0, "0"), (0.5, ".5"), (1, "1")]])
        self.bars: pg.BarGraphItem | None = None
        self.errors: pg.ErrorBarItem | None = None
        self.addItem(self.markers)
        self.addItem(self.empty)

    def fit_fonts(self) -> None:
        super().fit_fonts()
        self.empty.setFont(self.font())
        self.markers.setSize(lines(self, 0.7))  # the class triangles grow with the tick labels they point at

    def set_stale(self, stale: bool) -> None:
        """Fade the bars of an out-of-date result and say so in the title (same height: nothing moves)."""
        self.getPlotItem().getViewBox().setOpacity(0.3 if stale else 1.0)
        title, color = (f"{self.title} — out of date", ACCENT.name()) if stale else (self.title, "#1f2933")
        self.set_title(title, color)

    def set_classes(self, names: list[str]) -> None:
        self.getAxis("bottom").setTicks([[(i, short_name(n)) for i, n in enumerate(names)]])
        self.setXRange(-0.6, len(names) - 0.4, padding=0)
        self.empty.setPos((len(names) - 1) / 2, 0.5)

    def plot_probs(self, probs: np.ndarray | None, label: int | None, target: int | None,
             spread: np.ndarray | None = None, empty_text: str = "") -> None:
        if self.bars is not None:
            self.removeItem(self.bars)
            self.bars = None
        if self.errors is not None:
            self.removeItem(self.errors)
            self.errors = None
        self.markers.setData([])
        self.empty.setText("" if probs is not None else empty_text)
        if probs is None:
            return
        probs = np.asarray(probs, float)
        k = int(np.argmax(probs))
        brushes = [BAR_GREY] * len(probs)
        brushes[k] = GOOD if label is None or k == label else BAD
        self.bars = pg.BarGraphItem(x=np.arange(len(probs)), height=probs, width=0.7, brushes=brushes,
                                    pen=pg.mkPen(None))
        self.addItem(self.bars)
        spots = []
        if label is not None:
            spots.append({"pos": (label, -0.0), "symbol": "t1", "brush": GOOD, "pen": None})
        if target is not None:
            spots.append({"pos": (target, -0.0), "symbol": "t1", "brush": pg.mkColor("#ef6c00"), "pen": None})
        self.markers.setData(spots)
        if spread is not None and len(spread) > 1:
            lo, hi = spread.min(0), spread.max(0)
            self.errors = pg.ErrorBarItem(x=np.arange(len(probs)), y=probs, top=hi - probs, bottom=probs - lo,
                                          beam=0.25, pen=pg.mkPen("#1f2933", width=1.5))
            self.addItem(self.errors)
        self.setYRange(-0.06, 1.05, padding=0)


class ProbabilityPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.charts = {key: ProbabilityChart(title) for key, title in CHARTS}
        for chart in self.charts.values():
            layout.addWidget(chart)
        self.setToolTip("Softmax probabilities of the classifier. Green triangle: true class; orange: the target "
                        "of a targeted attack. Error bars (stochastic defense): min-max over the samples.")
        self._classes()
        state.engineInfoChanged.connect(lambda _i: self._classes())
        state.modelSettingsChanged.connect(lambda _m: self._classes())
        state.resultChanged.connect(self.show_result)
        state.resultCleared.connect(self._classes)
        state.resultStaleChanged.connect(self._on_stale)
        self.stale = False

    def _on_stale(self, stale: bool) -> None:
        self.stale = stale
        for chart in self.charts.values():
            chart.set_stale(stale)

    def _classes(self) -> None:
        for chart in self.charts.values():
            chart.set_classes(self.state.class_names())
            chart.plot_probs(None, None, None, empty_text="")

    def show_result(self, request, result: Analysis) -> None:
        label = request.image.label
        target = request.attack.target if request.attack is not None and request.attack.targeted else None
        spread = result.stochastic_probs if request.defense.mode == "stochastic" else None
        hardened = bool(request.models.hardening)
        probs = {"probs_original": result.probs_original, "probs_adversarial": result.probs_adversarial,
                 "probs_purified_adversarial": result.probs_purified_adversarial}
        for key, chart in self.charts.items():
            chart.plot_probs(probs[key], label, target, spread=spread if key == "probs_purified_adversarial" else None,
                             empty_text=result.placeholder(key, hardened=hardened))
