"""Input, three ways: draw, browse the bundled samples, or open a file; one tab each. A drawing or a file has
no true label until the user gives one (``app.panels.true_label``); a sample brings its own."""

from __future__ import annotations

from PySide6.QtWidgets import QTabWidget, QWidget

from app.panels.draw import DrawPanel
from app.panels.file import FilePanel
from app.panels.samples import SamplesPanel
from app.state.app_state import AppState


class InputPanel(QTabWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.samples = SamplesPanel(state)
        self.draw = DrawPanel(state)
        self.file = FilePanel(state)
        self.addTab(self.samples, "Samples")
        self.addTab(self.draw, "Draw")
        self.addTab(self.file, "File")
        self.setTabToolTip(0, "Bundled test images with their true labels")
        self.setTabToolTip(1, "Draw a digit; it is framed the way MNIST was made")
        self.setTabToolTip(2, "Open an image file (also: drop a file on the window)")
        state.fileLoaded.connect(lambda _f: self.setCurrentWidget(self.file))
