"""The Evaluate tab: a batch over n bundled samples for a set of attacks and budgets, on a worker.

Shows a table (no defense vs the selected purifier, per attack and ε), the accuracy-vs-ε curve and
the bit-flip histogram of the paper's Figure 3, and exports them as CSV and PNG. A classifier-side
defense (Madry, Adv Tr) is the hardened classifier alone: its column replaces "No defense".
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from app.panels.widgets import plain
from app.state.app_state import AppState
from app.state.settings import (ATTACK_LABELS, CLASSIFIER_DEFENSES, DEFENSEGAN_SEARCH, L2_ATTACKS, PURIFIER_LABELS,
                                THREAT_LABELS, EvaluationRequest)
from lqvae.spec.attacks import ATTACKS, SLOW_ATTACKS, THREATS
from lqvae.spec.defenses import HARDENING_SHORT  # the classifier-side defenses' column and legend names

EVAL_ATTACKS = tuple(ATTACKS)  # every attack the engine has; the slow ones start unticked
DEFAULT_TICKED = ("fgsm", "pgd")
COLUMNS = (("attack", "Attack"), ("eps", "ε"), ("n", "n"), ("clean_accuracy", "Clean %"),
           ("undefended_accuracy", "No defense\n%"), ("purified_clean_accuracy", "Purified\nclean %"),
           ("defended_accuracy", "Defended\n%"), ("mean_flips", "Mean bits\nflipped"),
           ("under_6pct", "< 6 %\nflipped"), ("attack_failures", "Failures"), ("seconds", "s"))
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


def make_accuracy_plot() -> pg.PlotWidget:
    w = pg.PlotWidget(background="w")
    w.setTitle("Accuracy vs ε (L∞ attacks)", color="#1f2933", size="10pt")
    w.setLabel("bottom", "ε (L∞)")
    w.getAxis("bottom").enableAutoSIPrefix(False)
    w.setLabel("left", "accuracy %")
    w.setYRange(0, 100)
    w.addLegend(offset=(-4, 4), labelTextSize="8pt", labelTextColor="#1f2933")
    w.showGrid(x=True, y=True, alpha=0.2)
    return w


def make_histogram_plot() -> pg.PlotWidget:
    w = pg.PlotWidget(background="w")
    w.setTitle("Bits flipped per image (paper Figure 3)", color="#1f2933", size="10pt")
    w.setLabel("bottom", "Hamming distance (of 64 bits)")
    w.setLabel("left", "images")
    return w


def draw_accuracy(plot: pg.PlotWidget, rows: list[dict]) -> None:
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
                      symbolSize=6, symbolBrush=color, name=f"{attack.upper()} {suffix}")


def draw_histogram(plot: pg.PlotWidget, hamming: list[int] | None, title: str = "") -> None:
    plot.clear()
    if not hamming:
        plot.addItem(pg.TextItem("no bit statistics (no purifier?)", color="#7b8794"))
        return
    counts = np.bincount(np.asarray(hamming, int), minlength=65)
    plot.addItem(pg.BarGraphItem(x=np.arange(len(counts)), height=counts, width=0.85, brush="#486581", pen=None))
    plot.addItem(pg.InfiniteLine(0.06 * 64, angle=90, pen=pg.mkPen("#ef6c00", width=2, style=Qt.PenStyle.DashLine),
                                 label="6 %", labelOpts={"position": 0.9, "color": "#ef6c00"}))
    plot.setXRange(-0.5, max(10, int(np.max(hamming)) + 1.5))
    under = 100 * np.mean(np.asarray(hamming) < 0.06 * 64)
    plot.setTitle(f"Bits flipped per image{' · ' + title if title else ''} · {under:.0f} % under 6 % "
                  "(paper: ~90 %)", color="#1f2933", size="10pt")


class EvaluateTab(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.rows: list[dict] = []
        self.n = QSpinBox(minimum=5, maximum=1000, value=100, singleStep=50)
        self.n.setToolTip("Number of bundled test samples, taken from every class in turn")
        self.attack_boxes = {a: QCheckBox(a.upper()) for a in EVAL_ATTACKS}
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
        self.run = QPushButton("Run evaluation")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([t for _, t in COLUMNS])
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
        controls.addWidget(self.progress)
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
        layout.addWidget(self.table, 2)
        layout.addLayout(plots, 3)
        layout.addLayout(exports)

        self.run.clicked.connect(self.start)
        self.cancel.clicked.connect(state.evaluationCancelRequested)
        self.export_csv.clicked.connect(lambda: self.save_csv())
        self.export_png.clicked.connect(lambda: self.save_png())
        state.evaluationStarted.connect(self._on_started)
        state.evaluationProgress.connect(self._on_progress)
        state.evaluationFinished.connect(self.show_rows)
        state.evaluationFailed.connect(self._on_failed)

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
        slow = (" Defense-GAN searches every image (and, under BPDA, at every attack step): expect minutes."
                if self.state.purifier_kind(self.state.defense.purifier) == "defensegan" else "")
        self.note.setText("Running on a worker; the rest of the app stays usable." + slow)

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 100))
        self.progress.setFormat(f"{text} %p%")

    def _on_failed(self, message: str) -> None:
        self.run.setEnabled(True)
        self.cancel.setEnabled(False)
        self.note.setText(f"<span style='color:#c62828'>Evaluation stopped: {plain(message)}</span>")

    def show_rows(self, rows: list[dict]) -> None:
        self.run.setEnabled(True)
        self.cancel.setEnabled(False)
        self.progress.setValue(100)
        self.rows = [row_values(r) for r in rows]
        defense = self.rows[0].get("defense", "none") if self.rows else "none"
        hardened = HARDENING_SHORT.get(defense)
        self.table.setHorizontalHeaderLabels([f"{hardened}\nclassifier %" if key == "undefended_accuracy" and hardened
                                              else text for key, text in COLUMNS])
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
        self.note.setText(f"{len(self.rows)} cells on n = {n} bundled samples (live preset), "
                          f"{describe_defense(defense, self.rows[0].get('search') if self.rows else None)}. "
                          "For the tables use python -m lqvae.evaluate; small n has a wide error margin.")

    def _row_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self.rows):
            r = self.rows[rows[0].row()]
            eps = "∞" if r.get("eps") is None else f"{r['eps']:g}"
            draw_histogram(self.hist_plot, r.get("hamming"), f"{r['attack'].upper()} ε={eps}")

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
