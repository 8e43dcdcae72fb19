"""The defense: none, or a purifier found in the checkpoint folder, deterministic or stochastic."""

from __future__ import annotations

from PySide6.QtWidgets import QButtonGroup, QComboBox, QFormLayout, QHBoxLayout, QRadioButton, QSpinBox, QWidget

from app.state import AppState

PURIFIER_LABELS = {"lqvae": "LQ-VAE (paper)", "lqvae_robust": "LQ-VAE robust", "vae": "VAE (no quantization)",
                   "defensegan": "Defense-GAN"}


class DefensePanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.purifier = QComboBox()
        self.purifier.setToolTip("Purifiers found in the checkpoint folder. A purifier maps the image to 64 bits and "
                                 "decodes them again before the classifier sees it.")
        self.det, self.sto = QRadioButton("deterministic"), QRadioButton("stochastic")
        self.det.setToolTip("z = μ: the same image always gives the same code (what Theorem 1 reasons about).")
        self.sto.setToolTip("z ~ N(μ, σ²) as in training, several samples; the purified image is their mean and "
                            "the charts show the spread.")
        group = QButtonGroup(self)
        group.addButton(self.det)
        group.addButton(self.sto)
        self.samples = QSpinBox(minimum=2, maximum=64, value=state.defense.n_samples)
        self.samples.setToolTip("Number of stochastic samples")
        modes = QHBoxLayout()
        modes.addWidget(self.det)
        modes.addWidget(self.sto)
        modes.addWidget(self.samples)
        form = QFormLayout(self)
        form.setContentsMargins(4, 4, 4, 4)
        form.addRow("Purifier", self.purifier)
        form.addRow("Mode", modes)
        self.purifier.currentIndexChanged.connect(
            lambda: state.set_defense(purifier=self.purifier.currentData() or None))
        self.det.toggled.connect(lambda on: on and state.set_defense(mode="deterministic"))
        self.sto.toggled.connect(lambda on: on and state.set_defense(mode="stochastic"))
        self.samples.valueChanged.connect(lambda v: state.set_defense(n_samples=v))
        state.engineInfoChanged.connect(self._on_engine)
        state.defenseSettingsChanged.connect(self._sync)
        self._fill([])
        self._sync(state.defense)

    def _fill(self, purifiers: list[str]) -> None:
        self.purifier.blockSignals(True)
        self.purifier.clear()
        self.purifier.addItem("none (classifier alone)", "")
        for name in purifiers:
            self.purifier.addItem(PURIFIER_LABELS.get(name, name), name)
        self.purifier.blockSignals(False)

    def _on_engine(self, info) -> None:
        self._fill(info.purifiers)
        self._sync(self.state.defense)

    def _sync(self, defense) -> None:
        i = self.purifier.findData(defense.purifier or "")
        if i >= 0 and i != self.purifier.currentIndex():
            self.purifier.blockSignals(True)
            self.purifier.setCurrentIndex(i)
            self.purifier.blockSignals(False)
        button = self.sto if defense.mode == "stochastic" else self.det
        if not button.isChecked():
            button.setChecked(True)
        self.samples.setEnabled(defense.mode == "stochastic")
        if self.samples.value() != defense.n_samples:
            self.samples.setValue(defense.n_samples)
