"""The main window: places the panels and wires shortcuts, drops and export. No torch, no logic.

Every panel takes the ``AppState`` and observes it; the ``Controller`` turns the state's intents into
worker jobs. Call ``start()`` after ``show()`` so the window is up before the engine loads.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QMainWindow, QSplitter, QTabWidget, QVBoxLayout, QWidget

from app.panels.attack import AttackPanel
from app.panels.bits import BitsPanel
from app.panels import cases
from app.engine.controller import Controller
from app.panels.defense import DefensePanel
from app.panels.evaluate_tab import EvaluateTab
from app.render.export import export
from app.render import slide
from app.panels.history import HistoryStrip
from app.panels.honesty import HonestyPanel
from app.panels.image_row import ImageRow
from app.panels.input import InputPanel
from app.panels import lesson
from app.panels.message_bar import MessageBar
from app.panels.models import ModelsPanel
from app.panels import presentation
from app.panels.probabilities import ProbabilityPanel
from app.state.app_state import AppState
from app.panels.status_bar import StatusBar
from app.panels.widgets import ScrollPage, configure_plots, group

TABS = ("explore", "evaluate")


PREFERRED_SIZE = (1600, 1000)  # px: the window's size on a screen that has room for it


def fit_to_screen(window: QMainWindow) -> None:
    """Cut the window to the screen it opens on (a real screen; the offscreen one is a fixed 800x800)."""
    screen = window.screen()
    if screen is not None:
        window.resize(fitted_size(screen.availableGeometry().size()))


def fitted_size(available: QSize | None) -> QSize:
    """The preferred window size, cut to the screen's available area (a 1280x800 projector must see it all)."""
    w, h = PREFERRED_SIZE
    if available is None or available.isEmpty():
        return QSize(w, h)
    return QSize(min(w, available.width()), min(h, available.height()))


class MainWindow(QMainWindow):
    def __init__(self, state: AppState | None = None, controller: Controller | None = None) -> None:
        super().__init__()
        self.setWindowTitle("LQ-VAE Studio — attack, purify, watch the bits flip")
        self.state = state or AppState(self)
        self.controller = controller or Controller(self.state, self)
        s = self.state
        configure_plots()

        self.messages = MessageBar(s)
        self.models = ModelsPanel(s)
        self.inputs = InputPanel(s)
        self.defense = DefensePanel(s)
        self.attack = AttackPanel(s)
        self.images = ImageRow(s)
        self.probs = ProbabilityPanel(s)
        self.bits = BitsPanel(s)
        self.honesty = HonestyPanel(s)
        self.history = HistoryStrip(s)
        self.evaluate = EvaluateTab(s)
        self.setStatusBar(StatusBar(s))

        left = QWidget()
        col = QVBoxLayout(left)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(group("Models", self.models))
        col.addWidget(group("Defense", self.defense))
        col.addWidget(group("Input", self.inputs), 1)
        col.addWidget(group("History", self.history))
        scroll = ScrollPage(left)

        explore = QWidget()
        ex = QVBoxLayout(explore)
        ex.setContentsMargins(4, 4, 4, 4)
        ex.addWidget(self.images, 5)
        ex.addWidget(group("Predictions", self.probs), 4)
        lower = QHBoxLayout()
        lower.addWidget(group("Latent bits", self.bits), 3)
        lower.addWidget(group("Honesty", self.honesty, tooltip="Honesty: measured vs claimed — the accuracy measured "
                              "over many test images beside the paper's claim"), 1)
        ex.addLayout(lower, 5)
        self.tabs = QTabWidget()
        self.tabs.addTab(ScrollPage(explore), "Explore")  # below its minimum size it scrolls, never overlaps
        self.tabs.addTab(self.evaluate, "Evaluate")
        self.tabs.setTabToolTip(1, "Batch evaluation over the bundled samples (Ctrl+2)")

        right = QWidget()
        rc = QVBoxLayout(right)
        rc.setContentsMargins(0, 0, 0, 0)
        rc.addWidget(group("Attack", self.attack))
        rc.addWidget(self.tabs, 1)
        split = QSplitter()
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(6, 6, 6, 0)
        outer.addWidget(self.messages)
        outer.addWidget(split, 1)
        self.setCentralWidget(central)
        self.resize(*PREFERRED_SIZE)  # main.py cuts it to the screen (fit_to_screen); --screenshot keeps it
        self.setAcceptDrops(True)

        self.history.exportClicked.connect(self.export_current)
        self._shortcuts()
        self._menus()

    def _menus(self) -> None:
        """The menu bar: File, View, Help. Features add their actions in ``install(window)`` functions."""
        bar = self.menuBar()
        self.menu_file = bar.addMenu("&File")
        self.menu_view = bar.addMenu("&View")
        self.menu_help = bar.addMenu("&Help")
        self.menu_file.addAction("Open image…", QKeySequence.StandardKey.Open, self.inputs.file.choose)
        self.menu_file.addAction("Export result (PNG + JSON)…", QKeySequence("Ctrl+E"), lambda: self.export_current())
        # feature hooks: one line each, each in its own module (keep this list in this order)
        presentation.install(self)  # View → zoom (Ctrl+= / Ctrl+- / Ctrl+0), full screen (F11), presentation (F10)
        lesson.install(self)  # Help → Lesson (F1), the panels' "?" help, Page Down / Page Up
        slide.install(self)  # File → Save figure… (Ctrl+Shift+S): the run for a slide, PNG 300 dpi / SVG / PDF
        cases.install(self)  # File → Open case… (an exported PNG + JSON, run again)
        self.menu_file.addSeparator()
        self.menu_file.addAction("Quit", QKeySequence("Ctrl+Q"), self.close)

    def _shortcuts(self) -> None:
        s, samples = self.state, self.inputs.samples
        keys = [("Ctrl+R", lambda: s.request_run(False)),
                ("F5", lambda: s.request_run(False)), ("Esc", s.request_cancel), ("N", lambda: samples.step(1)), ("Shift+N", samples.next_fooled),
                ("P", lambda: samples.step(-1)), ("Ctrl+Right", lambda: samples.step(1)),
                ("Ctrl+Left", lambda: samples.step(-1)),
                ("Ctrl+1", lambda: self.tabs.setCurrentIndex(0)), ("Ctrl+2", lambda: self.tabs.setCurrentIndex(1))]
        for key, slot in keys:
            QShortcut(QKeySequence(key), self, slot)

    def start(self) -> None:
        """Boot the engine and load the models on workers (call after ``show()``)."""
        self.controller.start()

    def show_tab(self, name: str) -> None:
        self.tabs.setCurrentIndex(TABS.index(name))

    def export_current(self, path: str | None = None) -> tuple[Path, Path] | None:
        s = self.state
        if s.result is None:
            s.notify("Nothing to export yet: run an attack first.", "warning")
            return None
        path = path or QFileDialog.getSaveFileName(self, "Export result", "lqvae-result.png", "PNG (*.png)")[0]
        if not path:
            return None
        try:
            out = export(path, self.images.grab(), s.request, s.result, s.class_names())
        except OSError as exc:
            s.notify(f"Export failed: {exc}", "error")
            return None
        s.notify(f"Exported {out[0]} and {out[1].name}", "info")
        return out

    # drag and drop: any local file is offered to the loader, which refuses what it cannot use
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            path = urls[0].toLocalFile()
            if path.lower().endswith(".json"):  # an exported case
                cases.open_case(self.state, path)
            else:
                self.state.request_open(path)
            event.acceptProposedAction()
        else:
            self.state.notify("Only local files can be dropped here.", "warning")

    def closeEvent(self, event) -> None:  # noqa: N802
        self.controller.shutdown()
        super().closeEvent(event)
