"""Dataset, classifier and device, and what the checkpoint folder holds (or lacks)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from app.state.app_state import AppState
from app.state.settings import CLASSIFIER_DEFENSES, DATASET_LABELS, DATASETS, classifier_name
from app.panels.widgets import plain

CLASSIFIER_TIPS = {"A": "Classifier A: two conv layers + dense (paper appendix)",
                   "B": "Classifier B: dropout + three conv layers",
                   "C": "Classifier C: fully connected only"}


class ModelsPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.dataset = QComboBox()
        for name in DATASETS:
            self.dataset.addItem(DATASET_LABELS[name], name)
        self.dataset.setToolTip("Which dataset's models and samples to use.")
        self.classifier = QComboBox()
        self.classifier.setToolTip("The classifier's architecture (listed from the checkpoint folder). Its "
                                   "adversarially trained versions are chosen in the Defense panel.")
        self.device = QComboBox()
        for name, text in (("auto", "auto"), ("cpu", "CPU"), ("cuda", "CUDA")):
            self.device.addItem(text, name)
        self.device.setToolTip("Where torch runs: auto = CUDA when available, else CPU.")
        self.status = QLabel("Starting the engine…")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Dataset", self.dataset)
        form.addRow("Classifier", self.classifier)
        form.addRow("Device", self.device)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.status)
        self.dataset.currentIndexChanged.connect(lambda: state.set_models(dataset=self.dataset.currentData()))
        self.classifier.currentIndexChanged.connect(self._classifier_chosen)
        self.device.currentIndexChanged.connect(lambda: state.set_models(device=self.device.currentData()))
        state.engineInfoChanged.connect(self._on_engine)
        state.modelsChanged.connect(self._on_models)
        state.modelSettingsChanged.connect(self._sync)
        self._sync(state.models)

    def _classifier_chosen(self) -> None:
        """A new architecture keeps the classifier-side defense when its hardened version exists."""
        base = self.classifier.currentData()
        if not base:
            return
        s = self.state
        hardening = s.models.hardening
        name = classifier_name(base, hardening)
        if hardening and (s.engine is None or name not in s.engine.classifiers):
            s.notify(f"No {CLASSIFIER_DEFENSES[hardening]} checkpoint (classifier_{name}) for classifier {base}: "
                     f"using the plain classifier {base}, no defense.", "warning")
            name = base
        s.set_models(classifier=name)

    def _sync(self, models) -> None:
        for combo, value in ((self.dataset, models.dataset), (self.device, models.device),
                             (self.classifier, models.base)):
            i = combo.findData(value)
            if i >= 0 and i != combo.currentIndex():
                combo.blockSignals(True)
                combo.setCurrentIndex(i)
                combo.blockSignals(False)

    def _on_engine(self, info) -> None:
        self.classifier.blockSignals(True)
        self.classifier.clear()
        for name in self.state.base_classifiers():
            self.classifier.addItem(name, name)
            self.classifier.setItemData(self.classifier.count() - 1, CLASSIFIER_TIPS.get(name[:1], name),
                                        Qt.ItemDataRole.ToolTipRole)
        if not self.classifier.count():
            self.classifier.addItem("— none found —", None)
        self.classifier.blockSignals(False)
        cuda = self.device.model().item(self.device.findData("cuda"))
        cuda.setEnabled(info.cuda_available)
        cuda.setToolTip("" if info.cuda_available else "CUDA is not available on this machine")
        self._sync(self.state.models)
        self._show_status()

    def _on_models(self, info) -> None:
        self._show_status()

    def _show_status(self) -> None:
        info, loaded = self.state.engine, self.state.models_info
        if info is None:
            return
        lines = []
        if not info.classifiers and not info.purifiers:
            lines.append(f"<span style='color:#c62828'><b>No checkpoints</b> in {plain(info.checkpoint_dir)}. "
                         "Train them (see checkpoints/README.md); until then nothing can be classified.</span>")
        for name, err in info.checkpoint_errors.items():  # refused files; every other model keeps working
            lines.append(f"<span style='color:#c62828'>✗ refused {plain(name)}: {plain(err)}</span>")
        if loaded is None:
            lines.append("Loading models…")
        else:
            for role, what in loaded.loaded.items():
                lines.append(f"✓ {role}: {plain(what)}")
            for role, err in loaded.errors.items():
                lines.append(f"<span style='color:#c62828'>✗ {role}: {plain(err)}</span>")
            if loaded.loaded:
                lines.append(f"<span style='color:#52606d'>on {loaded.device}, loaded in {loaded.seconds:.2f} s</span>")
        self.status.setText("<br>".join(lines))
