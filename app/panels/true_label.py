"""The "True label" box of a drawn or loaded image (a bundled sample brings its own label)."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from app.state.app_state import AppState
from app.state.settings import InputImage


class TrueLabelBox(QWidget):
    """"True label: unknown / 0 / 1 …" for a drawn or loaded image: with it the tiles say right or wrong.

    Shows the current image's label; choosing one calls ``state.set_label`` (the analysis runs again, since
    the attack aims away from the true class). Disabled for a bundled sample, whose label is known."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.combo = QComboBox()
        self.combo.setToolTip("What the image truly shows. Unknown: the tiles cannot say whether a prediction is "
                              "right; choose the class to have them judged.")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("True label"))
        layout.addWidget(self.combo, 1)
        self._fill()
        self.combo.currentIndexChanged.connect(self._chosen)
        state.engineInfoChanged.connect(lambda _info: self._fill())
        state.modelSettingsChanged.connect(lambda _m: self._fill())
        state.imageChanged.connect(self._show)

    def _fill(self) -> None:
        texts = [f"{k}: {name}" for k, name in enumerate(self.state.class_names())]
        if [self.combo.itemText(i) for i in range(1, self.combo.count())] == texts:
            return  # the same classes: keep the choice
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem("unknown", None)
        for k, text in enumerate(texts):
            self.combo.addItem(text, k)
        self.combo.blockSignals(False)
        self._show(self.state.image)

    def _show(self, image: InputImage | None) -> None:
        self.combo.blockSignals(True)
        label = None if image is None else image.label
        i = self.combo.findData(label) if label is not None else 0
        self.combo.setCurrentIndex(max(i, 0))
        self.combo.blockSignals(False)
        self.setEnabled(image is not None and image.sample_index is None)

    def _chosen(self, index: int) -> None:
        self.state.set_label(self.combo.itemData(index))
