"""The attack: which one, its budget ε, steps, targeted or not, and the threat model; Run and Cancel.

Fast attacks re-run as the slider moves (the controller debounces); slow ones (``lqvae.spec.attacks.is_slow``:
C&W, the decision-based attacks, EOT, the paper preset) run when Run is pressed and show a progress bar with
a Cancel button. The attacks, threats, presets and their tooltips come from :mod:`lqvae.spec.attacks`.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtWidgets import (QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QSlider, QSpinBox, QWidget)

from app.panels.widgets import lines
from app.state.app_state import AppState
from app.state.settings import ATTACK_LABELS, ITERATIVE, L2_ATTACKS, THREAT_LABELS, UNTARGETED_ONLY
from lqvae.spec.attacks import ATTACKS, MINIMIZATION, PRESET_NAMES, THREATS

ATTACK_TIPS = {name: a.description for name, a in ATTACKS.items()}
THREAT_TIPS = {name: t.description for name, t in THREATS.items()}


def _names(attacks) -> str:
    """"DeepFool, C&W and Boundary" from attack keys (labels without their parenthesis, one per family)."""
    names = list(dict.fromkeys(ATTACK_LABELS[a].split(" (")[0].split(" L")[0] for a in attacks))
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


EPS_TIP = ("ε is the attacker's budget. L∞: no pixel may change by more than ε (pixels are in [0, 1]; the paper "
           "uses 0.3). L2: the Euclidean length of the whole change; ∞ lets a minimal attack "
           f"({_names(MINIMIZATION)}) use whatever it needs and reports what it used.")
L2_INF = 101  # slider position meaning "unbounded"
PRESET_TEXT = {"live": "live (fast)", "paper": "paper (slow)"}
MINIMAL_TEXT = "L2, minimal"
MINIMAL_TIP = ("No L2 budget: the attack looks for the smallest change that fools the classifier and reports "
               "its size under the perturbation tile.")


class AttackPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.enabled = QCheckBox("Attack")
        self.enabled.setToolTip("Untick to see the clean image and its purification only.")
        self.attack = QComboBox()
        for name, text in ATTACK_LABELS.items():
            self.attack.addItem(text, name)
            self.attack.setItemData(self.attack.count() - 1, ATTACK_TIPS[name], Qt.ItemDataRole.ToolTipRole)
        self.threat = QComboBox()
        for name, text in THREAT_LABELS.items():
            self.threat.addItem(text, name)
            self.threat.setItemData(self.threat.count() - 1, THREAT_TIPS[name], Qt.ItemDataRole.ToolTipRole)
        self.substitute = QComboBox()
        self.substitute.setToolTip("The classifier the black-box attack is computed on (trained separately).")
        self.preset = QComboBox()
        for name in PRESET_NAMES:
            self.preset.addItem(PRESET_TEXT.get(name, name), name)
        self.preset.setToolTip("How strong the attack is. live (fast): few steps, fast enough to follow the ε "
                               "slider on one image; paper (slow): the strength used for the result tables.")
        self.eps = QSlider(Qt.Orientation.Horizontal)
        self.eps.setMinimumWidth(160)
        self.eps_label = QLabel("")
        for w in (self.eps, self.eps_label):
            w.setToolTip(EPS_TIP)
        self.steps = QSpinBox(minimum=0, maximum=10000, specialValueText="preset")
        self.steps.setToolTip("Iterations of an iterative attack (0 = the preset's number).")
        self.targeted = QCheckBox("Targeted")
        self.targeted.setToolTip("Aim for a chosen class instead of any wrong class (not available for "
                                 f"{_names(UNTARGETED_ONLY)}).")
        self.target = QComboBox()
        self.target.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # "0: T-shirt/top", whole
        self.run = QPushButton("Run")
        self.run.setToolTip("Run the attack now (Ctrl+R / F5)")
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop the running attack (Esc); it stops within a second.")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        self.progress.setFormat("%p%")
        self.progress.setMaximumWidth(200)
        self._show_progress = QTimer(self, singleShot=True, interval=250)  # no flicker for fast runs
        self._show_progress.timeout.connect(lambda: self.progress.setVisible(self.state.busy))
        self.hint = QLabel("")
        self.hint.setStyleSheet("color:#52606d")

        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        rows = ([self.enabled, self.attack, QLabel("Threat"), self.threat, QLabel("Substitute"), self.substitute],
                [QLabel("Preset"), self.preset, QLabel("Steps"), self.steps, self.targeted, self.target],
                [QLabel("ε"), self.eps, self.eps_label, self.run, self.cancel, self.progress, self.hint])
        for r, widgets in enumerate(rows):
            box = QHBoxLayout()
            for w in widgets:
                box.addWidget(w)
            box.addStretch(1)
            grid.addLayout(box, r, 0)

        self.enabled.toggled.connect(lambda on: state.set_attack(enabled=on))
        self.attack.currentIndexChanged.connect(lambda: state.set_attack(attack=self.attack.currentData()))
        self.threat.currentIndexChanged.connect(lambda: state.set_attack(threat=self.threat.currentData()))
        self.substitute.currentIndexChanged.connect(self._substitute_chosen)
        self.preset.currentIndexChanged.connect(lambda: state.set_attack(preset=self.preset.currentData()))
        self.eps.valueChanged.connect(self._eps_moved)
        self.steps.valueChanged.connect(lambda v: state.set_attack(steps=v or None))
        self.targeted.toggled.connect(lambda on: state.set_attack(targeted=on))
        self.target.currentIndexChanged.connect(lambda i: i >= 0 and state.set_attack(target=i))
        self.run.clicked.connect(lambda: state.request_run(False))
        self.cancel.clicked.connect(state.request_cancel)
        state.attackSettingsChanged.connect(self._sync)
        state.defenseSettingsChanged.connect(lambda _d: self._sync(state.attack))  # the hint depends on it
        state.engineInfoChanged.connect(self._on_engine)
        state.modelSettingsChanged.connect(lambda _m: self._fill_targets())
        state.busyChanged.connect(self._on_busy)
        state.analysisStarted.connect(lambda _r: self._set_progress(0.0, "starting"))
        state.analysisProgress.connect(self._set_progress)
        self._fill_targets()
        self._sync(state.attack)
        self._on_busy(False)
        self._fit_font()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_font()

    def _fit_font(self) -> None:
        """The ε readout keeps the width of its longest text, so the slider never moves under the mouse."""
        fm = self.eps_label.fontMetrics()
        self.eps_label.setMinimumWidth(max(fm.horizontalAdvance(t) for t in (MINIMAL_TEXT, "L∞ ≤ 0.000")) + 4)
        # the spin box measures its special text once; "preset (40)" is set later, so make room for it here
        self.steps.setMinimumWidth(self.steps.fontMetrics().horizontalAdvance("preset (1000)") + lines(self, 2))

    # ------------------------------------------------------------------ user -> state
    def _substitute_chosen(self) -> None:
        name = self.substitute.currentData()
        if name:
            self.state.set_attack(substitute=name)

    def _eps_moved(self, value: int) -> None:
        if self.state.attack.attack in L2_ATTACKS:
            self.state.set_attack(eps_l2=None if value >= L2_INF else value / 10)
        else:
            self.state.set_attack(eps_linf=value / 200)

    # ------------------------------------------------------------------ state -> widgets
    def _fill_targets(self) -> None:
        self.target.blockSignals(True)
        self.target.clear()
        for k, name in enumerate(self.state.class_names()):
            self.target.addItem(f"{k}: {name}")
        self.target.setCurrentIndex(self.state.attack.target)
        self.target.blockSignals(False)

    def _on_engine(self, info) -> None:
        self.substitute.blockSignals(True)
        self.substitute.clear()
        for name in self.state.base_classifiers():  # the paper's substitutes are plain classifiers
            self.substitute.addItem(name, name)
        self.substitute.blockSignals(False)
        self._fill_targets()
        self._sync(self.state.attack)

    def _sync(self, a) -> None:
        def put(combo: QComboBox, value) -> None:
            i = combo.findData(value)
            if i >= 0 and i != combo.currentIndex():
                combo.blockSignals(True)
                combo.setCurrentIndex(i)
                combo.blockSignals(False)

        for w in (self.enabled, self.eps, self.steps, self.targeted, self.target):
            w.blockSignals(True)
        self.enabled.setChecked(a.enabled)
        put(self.attack, a.attack)
        put(self.threat, a.threat)
        put(self.substitute, a.substitute)
        put(self.preset, a.preset)
        if a.attack in L2_ATTACKS:
            self.eps.setRange(1, L2_INF)
            self.eps.setValue(L2_INF if a.eps_l2 is None else round(a.eps_l2 * 10))
            self.eps_label.setText(MINIMAL_TEXT if a.eps_l2 is None else f"L2 ≤ {a.eps_l2:.1f}")
            self.eps_label.setToolTip(MINIMAL_TIP if a.eps_l2 is None else EPS_TIP)
        else:
            self.eps.setRange(1, 100)
            self.eps.setValue(round(a.eps_linf * 200))
            self.eps_label.setText(f"L∞ ≤ {a.eps_linf:.3f}")
            self.eps_label.setToolTip(EPS_TIP)
        self.steps.setValue(a.steps or 0)
        engine = self.state.engine
        steps = (engine.presets.get(a.preset, {}) if engine is not None and engine.presets else ITERATIVE)
        self.steps.setEnabled(a.attack in steps)
        self.steps.setSpecialValueText(f"preset ({steps[a.attack]})" if a.attack in steps else "—")
        self.targeted.setChecked(a.targeted)
        self.targeted.setEnabled(a.attack not in UNTARGETED_ONLY)
        self.target.setEnabled(a.targeted and a.attack not in UNTARGETED_ONLY)
        self.target.setCurrentIndex(a.target)
        for w in (self.enabled, self.eps, self.steps, self.targeted, self.target):
            w.blockSignals(False)
        self.substitute.setEnabled(a.threat in THREATS and THREATS[a.threat].needs_substitute)
        self.attack.setToolTip(ATTACK_TIPS.get(a.attack, ""))
        self.threat.setToolTip(THREAT_TIPS.get(a.threat, ""))
        slow = self.state.attack_is_slow() or self.state.defense_is_slow()
        self.hint.setText("slow: press Run" if slow else "re-runs as you move ε")

    def _on_busy(self, busy: bool) -> None:
        self.cancel.setEnabled(busy)
        if busy:
            self._show_progress.start()
        else:
            self._show_progress.stop()
            self.progress.setVisible(False)
            self.progress.setValue(0)

    def _set_progress(self, fraction: float, text: str) -> None:
        """The bar shows the share done only (it is small); what runs is its tooltip, and the status bar says it
        in full with the time left."""
        self.progress.setValue(int(fraction * 100))
        self.progress.setToolTip(f"{text}: {int(fraction * 100)} %" if text else "")
