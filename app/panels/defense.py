"""The defense: none, a purifier found in the checkpoint folder, or a classifier-side defense (a hardened
classifier found beside the plain one); the purification mode, and Defense-GAN's search setting.

A purifier-side choice sets ``DefenseSettings.purifier`` and the plain classifier; a classifier-side one
sets the classifier to ``<base>_<key>`` (``A_madry``) and no purifier. The combo is drawn from the state,
so a classifier chosen elsewhere (a restored history entry) shows here too.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QFormLayout, QHBoxLayout, QLabel, QRadioButton, QSpinBox,
                               QWidget)

from app.state.app_state import AppState
from app.state.settings import CLASSIFIER_DEFENSES, DEFENSEGAN_SEARCH, PURIFIER_LABELS, classifier_name, purifier_order

__all__ = ["PURIFIER_LABELS", "DefensePanel"]

NONE_TIP = "The classifier alone, no defense."
PURIFIER_TIPS = {
    "lqvae": "The paper's LQ-VAE: the encoder's μ is quantized to 64 bits and the decoder rebuilds the image from "
             "them before the classifier sees it.",
    "lqvae_robust": "Beyond the paper: this dataset's LQ-VAE fine-tuned two more epochs on inputs with uniform "
                    "noise (±0.3); no adversarial example was used.",
    "lqvae_adv": "Beyond the paper, and not the paper's method: this dataset's LQ-VAE robust fine-tuned further "
                 "on adversarial examples (half of each batch: PGD-3 at ε∞ = 0.3 against classifier A, and end to "
                 "end through purifier + classifier A with BPDA), a quarter ±0.3 noise and a quarter clean images, "
                 "with clean reconstruction targets and a term keeping the clean image's bits. Trained on "
                 "adversarial examples (as in the paper's remark on fine-tuning with Madry adversaries), so it is "
                 "labelled apart; adaptive BPDA PGD still breaks it.",
    "vae": "Ablation: the same network trained without quantization, so the decoder sees the continuous μ. Shows "
           "what the bits add; it has no bit code.",
    "defensegan": "Defense-GAN (Samangouei et al.): replaces the image by the nearest output G(z) of a GAN, found by "
                  "R random starts × L gradient steps on ‖G(z) − x‖². Slow: the authors' L = {}, R = {} take "
                  "seconds per image here. No bit code.".format(*DEFENSEGAN_SEARCH["paper"]),
}
HARDENING_TIPS = {
    "madry": "Classifier-side: classifier {base} fine-tuned on PGD adversarial examples (Madry et al.), no purifier. "
             "Our fine-tune is short{note}, so its robustness is partial and it costs clean accuracy.",
    "advtr": "Classifier-side: classifier {base} fine-tuned on half clean, half FGSM examples, no purifier. FGSM "
             "training resists FGSM far better than iterative attacks such as PGD{note}.",
}
MODE_NOTES = {
    None: "No purifier: the mode applies to purifiers only.",
    "hardened": "A hardened classifier has no purifier, so no purification mode.",
    "vae": "The engine's analysis runs the VAE as one image → image map (z = μ): no sampling here.",
    "defensegan": "Defense-GAN has no σ to sample: its randomness is the R random restarts (seeded, so repeatable).",
}
SEARCH_TIP = ("How hard Defense-GAN searches for z: R random starts × L gradient steps. live: fast enough to follow "
              "the settings. paper: the authors' setting, seconds per image, so analyses run only when Run is "
              "pressed.")

Entry = tuple[str | None, str | None]  # (purifier, classifier-side defense); (None, None) is no defense


class DefensePanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.entries: list[Entry] = []
        self._filled_for: tuple = ()  # (engine info, base, entries) the combo was last filled for
        self.purifier = QComboBox()  # the defense: purifiers, then the hardened classifiers of this base
        self.purifier.setToolTip("Purifier-side defenses clean the image before the classifier sees it; "
                                 "classifier-side ones replace the classifier by an adversarially trained one.")
        self.det, self.sto = QRadioButton("deterministic"), QRadioButton("stochastic")
        self.det.setToolTip("z = μ: the same image always gives the same code (what Theorem 1 reasons about).")
        self.sto.setToolTip("z ~ N(μ, σ²) as in training, several samples; the purified image is their mean and "
                            "the charts show the spread.")
        group = QButtonGroup(self)
        group.addButton(self.det)
        group.addButton(self.sto)
        self.samples = QSpinBox(minimum=2, maximum=64, value=state.defense.n_samples)
        self.samples.setToolTip("Number of stochastic samples")
        self.search = QComboBox()
        for name, (steps, restarts) in DEFENSEGAN_SEARCH.items():
            slow = ", slow: press Run" if name == "paper" else ""
            self.search.addItem(f"{name} (L = {steps}, R = {restarts}{slow})", name)
        self.search.setToolTip(SEARCH_TIP)
        for combo in (self.purifier, self.search):  # long labels must not widen the left column
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(16)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color:#52606d")
        modes = QHBoxLayout()
        modes.addWidget(self.det)
        modes.addWidget(self.sto)
        modes.addWidget(self.samples)
        modes.addStretch(1)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(4, 4, 4, 4)
        self.form.addRow("Defense", self.purifier)
        self.form.addRow("Mode", modes)
        self.form.addRow("Search", self.search)
        self.form.addRow(self.note)
        self.purifier.currentIndexChanged.connect(self._chosen)
        self.det.toggled.connect(lambda on: on and state.set_defense(mode="deterministic"))
        self.sto.toggled.connect(lambda on: on and state.set_defense(mode="stochastic"))
        self.samples.valueChanged.connect(lambda v: state.set_defense(n_samples=v))
        self.search.currentIndexChanged.connect(lambda: state.set_defense(search=self.search.currentData()))
        state.engineInfoChanged.connect(lambda _info: self._sync())
        state.defenseSettingsChanged.connect(lambda _d: self._sync())
        state.modelSettingsChanged.connect(lambda _m: self._sync())
        self._sync()

    # ------------------------------------------------------------------ user -> state
    def _chosen(self) -> None:
        i = self.purifier.currentData()
        if i is None:
            return
        purifier, hardening = self.entries[i]
        s = self.state
        changes: dict[str, object] = {"purifier": purifier}
        if s.purifier_kind(purifier) not in (None, "lqvae"):
            changes["mode"] = "deterministic"  # the only mode the engine runs for it
        s.set_defense(**changes)
        s.set_models(classifier=classifier_name(s.models.base, hardening))

    # ------------------------------------------------------------------ state -> widgets
    def _fill(self) -> None:
        info, base = self.state.engine, self.state.models.base
        hardened = [k for k in CLASSIFIER_DEFENSES if info is not None and classifier_name(base, k) in info.classifiers]
        entries: list[Entry] = [(None, None)] + [(p, None) for p in purifier_order(info.purifiers if info else [])]
        entries += [(None, k) for k in hardened]
        if self._filled_for and self._filled_for[0] is info and self._filled_for[1:] == (base, entries):
            return  # unchanged: never refill the combo from inside its own signal
        self._filled_for, self.entries = (info, base, entries), entries
        tips = info.classifier_notes if info else {}
        self.purifier.blockSignals(True)
        self.purifier.clear()
        for i, (purifier, hardening) in enumerate(entries):
            if hardening and not entries[i - 1][1]:
                self.purifier.insertSeparator(self.purifier.count())
            if hardening:
                note = tips.get(classifier_name(base, hardening), "")
                text, tip = CLASSIFIER_DEFENSES[hardening], HARDENING_TIPS[hardening].format(
                    base=base, note=f" ({note})" if note else "")
            elif purifier:
                text, tip = PURIFIER_LABELS.get(purifier, purifier), PURIFIER_TIPS.get(purifier, purifier)
            else:
                text, tip = "none (classifier alone)", NONE_TIP
            self.purifier.addItem(text, i)
            self.purifier.setItemData(self.purifier.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.purifier.blockSignals(False)

    def _sync(self) -> None:
        self._fill()
        s = self.state
        d, hardening = s.defense, s.models.hardening
        entry: Entry = (d.purifier, None) if d.purifier else (None, hardening)
        if entry in self.entries:
            _set_quietly(self.purifier, self.purifier.findData(self.entries.index(entry)))
        kind = s.purifier_kind(d.purifier)
        sampling = kind == "lqvae"
        self.det.setEnabled(kind is not None)
        self.sto.setEnabled(sampling)
        button = self.sto if (sampling and d.mode == "stochastic") else self.det
        if not button.isChecked():
            button.blockSignals(True)
            button.setChecked(True)
            button.blockSignals(False)
        self.samples.setEnabled(sampling and d.mode == "stochastic")
        if self.samples.value() != d.n_samples:
            self.samples.setValue(d.n_samples)
        self.form.setRowVisible(self.search, kind == "defensegan")
        _set_quietly(self.search, self.search.findData(d.search))
        reason = "hardened" if kind is None and hardening else kind
        self.note.setText(MODE_NOTES.get(reason, ""))
        self.form.setRowVisible(self.note, bool(self.note.text()))


def _set_quietly(combo: QComboBox, i: int) -> None:
    if i >= 0 and i != combo.currentIndex():
        combo.blockSignals(True)
        combo.setCurrentIndex(i)
        combo.blockSignals(False)
