"""Browse the bundled test images (resources/samples/<dataset>.npz): previous / next / random, by class, and
"Next fooled" (Shift+N): the next sample the selected attack fools, searched on a worker by the controller."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from app.render.images import NEUTRAL, gray_qimage
from app.state.app_state import AppState
from app.state.settings import MAX_FOOL_SEARCH, fool_candidates
from app.panels.widgets import PixelView


class SamplesPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.images: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        self.order = np.zeros(0, int)  # indices passing the class filter
        self.pos = 0
        self.rng = np.random.default_rng()
        self.view = PixelView(120)
        self.view.setMaximumSize(168, 168)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.info.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.filter = QComboBox()
        self.filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # its items come later
        self.filter.setToolTip("Show only test images of one class.")
        self.index = QSpinBox(minimum=0, maximum=0)
        self.index.setToolTip("Index of the sample within the bundled file.")
        self.prev, self.next, self.random = QPushButton("◀ Previous"), QPushButton("Next ▶"), QPushButton("Random")
        self.prev.setToolTip("Previous sample (Left arrow / P)")
        self.next.setToolTip("Next sample (Right arrow / N)")
        self.fooled = QPushButton("Next fooled ▶▶")
        self.fooled.setToolTip(f"The next sample (in this class filter) that the selected attack, threat and defense "
                               f"fool, tried one by one on up to {MAX_FOOL_SEARCH} samples (Shift+N; Esc stops it)")
        self.fooled.clicked.connect(self.next_fooled)
        self.prev.clicked.connect(lambda: self.step(-1))
        self.next.clicked.connect(lambda: self.step(1))
        self.random.clicked.connect(self.pick_random)
        self.filter.currentIndexChanged.connect(self._refilter)
        self.index.editingFinished.connect(lambda: self.select(self.index.value()))
        grid = QGridLayout()
        grid.addWidget(QLabel("Class"), 0, 0)
        grid.addWidget(self.filter, 0, 1)
        grid.addWidget(QLabel("Index"), 0, 2)
        grid.addWidget(self.index, 0, 3)
        grid.addWidget(self.prev, 1, 0, 1, 2)
        grid.addWidget(self.next, 1, 2, 1, 2)
        grid.addWidget(self.random, 2, 0, 1, 2)
        grid.addWidget(self.fooled, 2, 2, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.view, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.info)
        layout.addLayout(grid)
        layout.addStretch(1)
        state.engineInfoChanged.connect(self._on_engine)
        state.imageChanged.connect(self._on_image)
        self._enable(False)
        self.info.setText("Loading the bundled samples…")

    def _enable(self, on: bool) -> None:
        for w in (self.filter, self.index, self.prev, self.next, self.random, self.fooled):
            w.setEnabled(on)

    def _on_engine(self, info) -> None:
        self.filter.blockSignals(True)
        self.filter.clear()
        self.filter.addItem("all classes", None)
        for k, name in enumerate(info.class_names):
            self.filter.addItem(f"{k}: {name}", k)
        self.filter.blockSignals(False)
        if info.samples is None:
            self.images = self.labels = None
            self.order = np.zeros(0, int)
            self._enable(False)
            self.view.set_image(None, None, "no samples")
            self.info.setText(f"<span style='color:#c62828'>{info.samples_error}</span>")
            return
        self.images, self.labels = info.samples
        self.index.setMaximum(len(self.images) - 1)
        self._enable(True)
        self._refilter(select=False)

    def _refilter(self, *_args, select: bool = True) -> None:
        if self.labels is None:
            return
        k = self.filter.currentData()
        self.order = np.arange(len(self.labels)) if k is None else np.flatnonzero(self.labels == k)
        self.pos = 0
        if select and len(self.order):
            self.select(int(self.order[0]))

    def select(self, index: int) -> None:
        if self.images is None or not 0 <= index < len(self.images):
            return
        hits = np.flatnonzero(self.order == index)
        if len(hits):
            self.pos = int(hits[0])
        self.state.set_image(self.images[index] / 255.0, int(self.labels[index]), f"sample {index}")

    def step(self, delta: int) -> None:
        if len(self.order):
            self.pos = (self.pos + delta) % len(self.order)
            self.select(int(self.order[self.pos]))

    def pick_random(self) -> None:
        if len(self.order):
            self.pos = int(self.rng.integers(len(self.order)))
            self.select(int(self.order[self.pos]))

    def next_fooled(self) -> None:
        """Ask for the next sample after the shown one (within the class filter) that the attack fools."""
        if len(self.order):
            image = self.state.image
            start = image.sample_index if image is not None else None
            self.state.request_next_fooled(fool_candidates(self.order, start, include_start=False))

    def _on_image(self, image) -> None:
        index = image.sample_index
        if index is None:
            return
        hits = np.flatnonzero(self.order == index)
        if len(hits):  # shown from elsewhere (a search, the command line): N continues from it
            self.pos = int(hits[0])
        self.index.blockSignals(True)
        self.index.setValue(index)
        self.index.blockSignals(False)
        self.view.set_image(gray_qimage(image.pixels), NEUTRAL)
        names = self.state.class_names()
        label = "" if image.label is None else f" · true: {image.label} ({names[image.label]})"
        self.info.setText(f"sample {index} of {0 if self.images is None else len(self.images)}{label}")
