"""The Evaluate tab: a batch over n bundled samples for a set of attacks and budgets, on a worker.

Shows a table (no defense vs the selected purifier, per attack and ε), the accuracy-vs-ε curve and
the bit-flip histogram of the paper's Figure 3, and exports them as CSV and PNG. A classifier-side
defense (Madry, Adv Tr) is the hardened classifier alone: its column replaces "No defense".

It cannot mislead by default: the threat starts as the adaptive one for the selected defense
(``adaptive_threat``: BPDA through a purifier) until the user picks another; a white-box number on a
purifier carries the same caveat as Explore's honesty panel (``paper_claims.threat_caveat``); every column
is explained under the table and in its header's tooltip.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from app.panels.widgets import Plot, font_pt, plain
from app.state import paper_claims
from app.state.app_state import AppState
from app.state.estimate import describe_duration, progress_line
from app.state.settings import (ATTACK_LABELS, ATTACK_NAMES, CLASSIFIER_DEFENSES, DEFENSEGAN_SEARCH, L2_ATTACKS,
                                PURIFIER_LABELS, THREAT_LABELS, EvaluationRequest, adaptive_threat)
from lqvae.spec.attacks import ATTACKS, SLOW_ATTACKS, THREATS
from lqvae.spec.defenses import HARDENING_SHORT  # the classifier-side defenses' column and legend names

EVAL_ATTACKS = tuple(ATTACKS)  # every attack the engine has; the slow ones start unticked
DEFAULT_TICKED = ("fgsm", "pgd")
COLUMNS = (("attack", "Attack"), ("eps", "ε"), ("n", "n"), ("clean_accuracy", "Clean %"),
           ("undefended_accuracy", "No defense\n%"), ("purified_clean_accuracy", "Purified\nclean %"),
           ("defended_accuracy", "Defended\n%"), ("mean_flips", "Mean bits\nflipped"),
           ("under_6pct", "< 6 %\nflipped"), ("attack_failures", "Failures"), ("seconds", "s"))
FAILURES = ("Failures: images on which the attack found no adversarial example within ε against the model it "
            "attacked (the classifier; under BPDA, purifier + classifier). They are scored on their clean pixels: "
            "that model held on them.")
COLUMN_TIPS = {
    "attack": "The attack (the threat model is the box above the table)",
    "eps": "The budget: largest change of any pixel (L∞); ∞ for the unbounded L2 attacks",
    "n": "How many bundled test images the cell used (small n: a wide error margin)",
    "clean_accuracy": "Accuracy of the classifier on the untouched images",
    "undefended_accuracy": "Accuracy of the classifier alone on the attacked images (no purifier)",
    "purified_clean_accuracy": "Accuracy on the untouched images after purification (the price of the defense)",
    "defended_accuracy": "Accuracy on the attacked images after purification. Under 'White-box on classifier' "
                         "the attack never saw the purifier: not an attack on the defense",
    "mean_flips": "Mean number of the 64 latent bits that the attack flipped (Theorem 1: few)",
    "under_6pct": "Share of images whose code changed in fewer than 6 % of its bits (paper: about 90 %)",
    "attack_failures": FAILURES,
    "seconds": "Seconds this cell took on this machine",
}
LEGEND = ("<b>Clean</b>: classifier on untouched images · <b>No defense</b>: classifier on attacked images · "
          "<b>Purified clean</b>: purifier + classifier on untouched images · <b>Defended</b>: purifier + "
          "classifier on attacked images · <b>Bits</b>: latent bits (of 64) the attack flipped · "
          f"<b>{FAILURES.split(':')[0]}</b>:{plain(FAILURES.split(':', 1)[1])} · <b>s</b>: seconds. "
          "Hover a column header for more.")
PALETTE = ("#2166ac", "#b2182b", "#1b7837", "#762a83", "#e08214")


def row_values(row: dict) -> dict:
    """A result row with the derived columns (mean flips, share under 6 %) filled in."""
    out = dict(row)
    ham = row.get("hamming")
    if ham:
        out["mean_flips"] = float(np.mean(ham))
        out["under_6pct"] = 100.0 * float(np.mean(np.asarray(ham) < 0.06 * 64))
    return out


def fmt(key: str, value) -> str:
    if value is None:
        return "—"
    if key == "eps":
        return f"{value:g}"
    if key == "attack":
        return str(value)
    if isinstance(value, float):
        return f"{value:.1f}" if key != "seconds" else f"{value:.1f}"
    return str(value)


def describe_defense(defense: str, search: str | None) -> str:
    """ "Defense-GAN (search L = 50, R = 2)", "Madry adversarial training (the hardened classifier alone)"."""
    if defense in CLASSIFIER_DEFENSES:
        return f"{CLASSIFIER_DEFENSES[defense]} (the hardened classifier alone)"
    if defense == "none":
        return "no defense"
    text = PURIFIER_LABELS.get(defense, defense)
    if search in DEFENSEGAN_SEARCH:
        steps, restarts = DEFENSEGAN_SEARCH[search]
        text += f" ({search} search: L = {steps}, R = {restarts})"
    return text


class EvaluationPlot(Plot):
    """A plot of the tab whose title, axes, legend and notes all take the widget's font (so the window's zoom
    reaches them, and a new evaluation keeps them at that size): ``note`` and ``mark`` add text items that do."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        self.texts: list[pg.TextItem | pg.InfLineLabel] = []
        super().__init__(title, parent, min_lines=6)

    def fit_fonts(self) -> None:
        super().fit_fonts()
        legend = self.getPlotItem().legend
        if legend is not None:
            legend.opts["labelTextSize"] = font_pt(self)
            for _sample, label in legend.items:
                label.setText(label.text, size=font_pt(self))
            legend.updateSize()
        for item in self.texts:
            item.setFont(self.font())

    def clear(self) -> None:  # noqa: D102 - pyqtgraph's: the text items go with the rest
        self.getPlotItem().clear()
        self.texts.clear()

    def note(self, text: str) -> None:
        """A grey line of text in the plot (e.g. why it is empty)."""
        item = pg.TextItem(text, color="#7b8794")
        item.setFont(self.font())
        self.texts.append(item)
        self.addItem(item)

    def mark(self, x: float, text: str, color: str) -> None:
        """A dashed vertical line at ``x``, labelled ``text`` near its top."""
        line = pg.InfiniteLine(x, angle=90, pen=pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine), label=text,
                               labelOpts={"position": 0.9, "color": color})
        line.label.setFont(self.font())
        self.texts.append(line.label)
        self.addItem(line)


def make_accuracy_plot() -> EvaluationPlot:
    w = EvaluationPlot("Accuracy vs ε (L∞ attacks)")
    w.setLabel("bottom", "ε (L∞)")
    w.getAxis("bottom").enableAutoSIPrefix(False)
    w.setLabel("left", "accuracy %")
    w.setYRange(0, 100)
    w.addLegend(offset=(-4, 4), labelTextSize=font_pt(w), labelTextColor="#1f2933")
    w.showGrid(x=True, y=True, alpha=0.2)
    w.fit_fonts()  # the axis labels just added
    return w


def make_histogram_plot() -> EvaluationPlot:
    w = EvaluationPlot("Bits flipped per image (paper Figure 3)")
    w.setLabel("bottom", "Hamming distance (of 64 bits)")
    w.setLabel("left", "images")
    w.fit_fonts()
    return w


def draw_accuracy(plot: EvaluationPlot, rows: list[dict]) -> None:
    plot.clear()
    undefended = HARDENING_SHORT.get(rows[0].get("defense", "") if rows else "", "no defense")
    if plot.plotItem.legend is not None:
        plot.plotItem.legend.clear()
    attacks = [a for a in dict.fromkeys(r["attack"] for r in rows) if a not in L2_ATTACKS]
    for i, attack in enumerate(attacks):
        pts = sorted((r["eps"], r) for r in rows if r["attack"] == attack and r.get("eps") is not None)
        if not pts:
            continue
        xs = np.array([0.0] + [e for e, _ in pts])
        color = PALETTE[i % len(PALETTE)]
        first = pts[0][1]
        for key, style, suffix, start in (("undefended_accuracy", Qt.PenStyle.DashLine, undefended,
                                           "clean_accuracy"),
                                          ("defended_accuracy", Qt.PenStyle.SolidLine, "defended",
                                           "purified_clean_accuracy")):
            ys = [first.get(start)] + [r.get(key) for _, r in pts]
            if any(y is None for y in ys):
                continue
            plot.plot(xs, np.array(ys, float), pen=pg.mkPen(color, width=2, style=style), symbol="o",
                      symbolSize=6, symbolBrush=color, name=f"{ATTACK_NAMES.get(attack, attack)} {suffix}")


def draw_histogram(plot: EvaluationPlot, hamming: list[int] | None, title: str = "") -> None:
    plot.clear()
    if not hamming:
        plot.note("no bit statistics (no purifier?)")
        return
    counts = np.bincount(np.asarray(hamming, int), minlength=65)
    plot.addItem(pg.BarGraphItem(x=np.arange(len(counts)), height=counts, width=0.85, brush="#486581", pen=None))
    plot.mark(0.06 * 64, "6 %", "#ef6c00")
    plot.setXRange(-0.5, max(10, int(np.max(hamming)) + 1.5))
    under = 100 * np.mean(np.asarray(hamming) < 0.06 * 64)
    plot.set_title(f"Bits flipped per image{' · ' + title if title else ''}<br>"  # two lines: it fits a narrow plot
                   f"{under:.0f} % under 6 % (paper: ~90 %)")


class EvaluateTab(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.rows: list[dict] = []
        self.n = QSpinBox(minimum=5, maximum=1000, value=100, singleStep=50)
        self.n.setToolTip("Number of bundled test samples, taken from every class in turn")
        self.attack_boxes = {a: QCheckBox(ATTACK_NAMES.get(a, a)) for a in EVAL_ATTACKS}
        for a, box in self.attack_boxes.items():
            box.setChecked(a in DEFAULT_TICKED and a not in SLOW_ATTACKS)
            box.setToolTip(ATTACK_LABELS[a] + (" — unbounded L2, one row" if a in L2_ATTACKS else "")
                           + (" — slow" if a in SLOW_ATTACKS else ""))
        self.eps = QLineEdit("0.05, 0.1, 0.2, 0.3")
        self.eps.setToolTip("L∞ budgets, comma separated (L2 attacks run unbounded, once)")
        self.threat = QComboBox()
        for name, text in THREAT_LABELS.items():
            if not THREATS[name].stochastic:  # EOT's averaged draws are for one image at a time
                self.threat.addItem(text, name)
                self.threat.setItemData(self.threat.count() - 1, THREATS[name].description,
                                        Qt.ItemDataRole.ToolTipRole)
        self.threat.setToolTip("Starts as the adaptive attack on the selected defense (BPDA through a purifier); "
                               "'White-box on classifier' is not an attack on the defense")
        self._threat_chosen = False  # the user picked a threat: stop following the defense
        self.caveat = QLabel("")
        self.caveat.setWordWrap(True)
        self.caveat.setStyleSheet("color:#7a4b00")
        self.run = QPushButton("Run evaluation")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setFormat("%p%")
        self.progress.setFixedWidth(140)
        self.progress_text = QLabel("")  # beside the bar, in full: what runs, share done, time left
        self.progress_text.setStyleSheet("color:#52606d")
        self._progress = ("", 0.0, time.monotonic())  # text, fraction, start of the run
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self._set_headers(None)
        self.legend = QLabel(LEGEND)
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setStyleSheet("color:#52606d")
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.itemSelectionChanged.connect(self._row_selected)
        self.acc_plot, self.hist_plot = make_accuracy_plot(), make_histogram_plot()
        self.export_csv, self.export_png = QPushButton("Export CSV…"), QPushButton("Export PNG…")
        for b in (self.export_csv, self.export_png):
            b.setEnabled(False)

        attacks = QHBoxLayout()  # a row of its own: every attack of the spec, whatever their number
        attacks.addWidget(QLabel("Attacks"))
        for box in self.attack_boxes.values():
            attacks.addWidget(box)
        attacks.addStretch(1)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("n"))
        controls.addWidget(self.n)
        controls.addWidget(QLabel("ε"))
        controls.addWidget(self.eps)
        controls.addWidget(self.threat)
        controls.addWidget(self.run)
        controls.addWidget(self.cancel)
        running = QHBoxLayout()
        running.addWidget(self.progress)
        running.addWidget(self.progress_text, 1)
        exports = QHBoxLayout()
        exports.addWidget(self.note, 1)
        exports.addWidget(self.export_csv)
        exports.addWidget(self.export_png)
        plots = QGridLayout()
        plots.addWidget(self.acc_plot, 0, 0)
        plots.addWidget(self.hist_plot, 0, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(attacks)
        layout.addLayout(controls)
        layout.addLayout(running)
        layout.addWidget(self.caveat)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.legend)
        layout.addLayout(plots, 3)
        layout.addLayout(exports)

        self.run.clicked.connect(self.start)
        self.cancel.clicked.connect(state.evaluationCancelRequested)
        self.export_csv.clicked.connect(lambda: self.save_csv())
        self.export_png.clicked.connect(lambda: self.save_png())
        state.evaluationStarted.connect(self._on_started)
        state.evaluationProgress.connect(self._on_progress)
        state.evaluationRemaining.connect(self._on_remaining)
        self.threat.activated.connect(self._threat_picked)  # the user's pick only, not ours
        self.threat.currentIndexChanged.connect(lambda _i: self._show_caveat())
        state.defenseSettingsChanged.connect(lambda _d: self._follow_defense())
        self._follow_defense()
        state.evaluationFinished.connect(self.show_rows)
        state.evaluationFailed.connect(self._on_failed)

    # ------------------------------------------------------------------ the threat and its caveat
    def _follow_defense(self) -> None:
        """Select the adaptive threat for the defense, unless the user picked one (BPDA needs a purifier, so
        without one the pick falls back to white-box, the adaptive attack on a hardened classifier)."""
        purifier = self.state.defense.purifier
        current = self.threat.currentData()
        if not self._threat_chosen or (not purifier and THREATS[current].end_to_end):
            self.threat.setCurrentIndex(self.threat.findData(adaptive_threat(purifier)))
        self._show_caveat()

    def _threat_picked(self, _index: int) -> None:
        self._threat_chosen = True

    def _show_caveat(self) -> None:
        """The caveat for the threat about to run, or for the rows shown if they were measured under another."""
        text = paper_claims.threat_caveat(self.state.defense.purifier, self.threat.currentData())
        if not text and self.rows:
            threat, defense = self.rows[0].get("threat", ""), self.rows[0].get("defense")
            shown = paper_claims.threat_caveat(defense if defense in PURIFIER_LABELS else None, threat)
            text = f"The rows below were measured under “{THREAT_LABELS[threat]}”. {shown}" if shown else None
        self.caveat.setText(text or "")
        self.caveat.setVisible(bool(text))

    def _set_headers(self, hardened: str | None) -> None:
        for j, (key, text) in enumerate(COLUMNS):
            label = f"{hardened}\nclassifier %" if key == "undefended_accuracy" and hardened else text
            item = QTableWidgetItem(label)
            item.setToolTip(COLUMN_TIPS[key])
            self.table.setHorizontalHeaderItem(j, item)

    def request(self) -> EvaluationRequest:
        """What the tab asks for; the controller adds the selected models, defense and the samples."""
        eps = []
        for part in self.eps.text().replace(";", ",").split(","):
            try:
                value = float(part)
            except ValueError:
                continue
            if 0 < value <= 1:
                eps.append(value)
        return EvaluationRequest(n=self.n.value(),
                                 attacks=tuple(a for a, b in self.attack_boxes.items() if b.isChecked()),
                                 eps=tuple(sorted(set(eps))) or (0.3,), threat=self.threat.currentData(),
                                 preset="live")

    def start(self) -> None:
        request = self.request()
        if not request.attacks:
            self.note.setText("Tick at least one attack.")
            return
        self.state.request_evaluation(request)

    def _on_started(self) -> None:
        self.run.setEnabled(False)
        self.cancel.setEnabled(True)
        self.progress.setValue(0)
        self._progress = ("", 0.0, time.monotonic())
        self.progress_text.setText("starting…")
        slow = (" Defense-GAN searches every image (and, under BPDA, at every attack step): expect minutes."
                if self.state.purifier_kind(self.state.defense.purifier) == "defensegan" else "")
        self.note.setText("Running on a worker; the rest of the app stays usable." + slow)

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 100))
        self._progress = (text, fraction, self._progress[2])

    def _on_remaining(self, seconds: float) -> None:
        text, fraction, started = self._progress
        line = progress_line(text, fraction, seconds if seconds >= 0 else None, time.monotonic() - started)
        self.progress_text.setText(line or text)
        self.progress_text.setToolTip(line or text)

    def _on_failed(self, message: str) -> None:
        self.run.setEnabled(True)
        self.cancel.setEnabled(False)
        self.progress_text.setText("")
        self.note.setText(f"<span style='color:#c62828'>Evaluation stopped: {plain(message)}</span>")

    def show_rows(self, rows: list[dict]) -> None:
        ran = self.cancel.isEnabled()  # rows of a run that started here (not rows shown from elsewhere)
        self.run.setEnabled(True)
        self.cancel.setEnabled(False)
        self.progress.setValue(100)
        self.progress_text.setText(f"done in {describe_duration(time.monotonic() - self._progress[2])}" if ran else "")
        self.rows = [row_values(r) for r in rows]
        defense = self.rows[0].get("defense", "none") if self.rows else "none"
        self._set_headers(HARDENING_SHORT.get(defense))
        self._show_caveat()
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            for j, (key, _) in enumerate(COLUMNS):
                item = QTableWidgetItem(fmt(key, row.get(key)))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        draw_accuracy(self.acc_plot, self.rows)
        with_bits = [i for i, r in enumerate(self.rows) if r.get("hamming")]
        if with_bits:
            self.table.selectRow(with_bits[-1])
        else:
            draw_histogram(self.hist_plot, None)
        for b in (self.export_csv, self.export_png):
            b.setEnabled(bool(self.rows))
        n = self.rows[0].get("n") if self.rows else 0
        threat = THREAT_LABELS.get(self.rows[0].get("threat", ""), "") if self.rows else ""
        self.note.setText(f"{len(self.rows)} cells on n = {n} bundled samples (live preset, {threat}), "
                          f"{describe_defense(defense, self.rows[0].get('search') if self.rows else None)}. "
                          "For the tables use python -m lqvae.evaluate; small n has a wide error margin.")

    def _row_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self.rows):
            r = self.rows[rows[0].row()]
            eps = "∞" if r.get("eps") is None else f"{r['eps']:g}"
            draw_histogram(self.hist_plot, r.get("hamming"), f"{ATTACK_NAMES.get(r['attack'], r['attack'])} ε={eps}")

    def save_csv(self, path: str | None = None) -> Path | None:
        path = path or QFileDialog.getSaveFileName(self, "Export table", "evaluation.csv", "CSV (*.csv)")[0]
        if not path:
            return None
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow([k for k, _ in COLUMNS])
            for row in self.rows:
                writer.writerow(["" if row.get(k) is None else row.get(k) for k, _ in COLUMNS])
        return Path(path)

    def save_png(self, path: str | None = None) -> Path | None:
        path = path or QFileDialog.getSaveFileName(self, "Export figures", "evaluation.png", "PNG (*.png)")[0]
        if not path:
            return None
        if not self.grab().save(path, "PNG"):
            self.note.setText(f"<span style='color:#c62828'>Could not write {plain(path)}</span>")
            return None
        return Path(path)
