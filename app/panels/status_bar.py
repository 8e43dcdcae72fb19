"""The status bar: device, loaded checkpoints, latency of the last attack and purification, messages."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from app.state.app_state import AppState
from app.state.settings import defense_label


class StatusBar(QStatusBar):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.device = QLabel("device: —")
        self.models = QLabel("models: loading…")
        self.timing = QLabel("")
        self.engine = QLabel("")
        for w in (self.engine, self.device, self.models, self.timing):
            self.addPermanentWidget(w)
        self.device.setToolTip("Where torch runs")
        self.timing.setToolTip("Attack and purification time of the last run, as measured by the engine; "
                               "'total' is request to result on this machine")
        state.modelsChanged.connect(self._on_models)
        state.engineInfoChanged.connect(self._on_engine)
        state.statusChanged.connect(self._on_timings)
        state.message.connect(lambda level, text: self.showMessage(text, 8000))
        state.analysisStarted.connect(self._on_started)
        state.resultChanged.connect(lambda *_: self.clearMessage())

    def _on_started(self, request) -> None:
        """Say what is running; a Defense-GAN analysis is mostly its latent search."""
        d = request.defense
        what = "attacking" if request.attack is not None else "analysing"
        if self.state.purifier_kind(d.purifier) == "defensegan":
            steps, restarts = d.search_steps_restarts
            self.showMessage(f"{what}; Defense-GAN is searching its latent space (L = {steps} steps × R = {restarts} "
                             "restarts per image)…", 0)
        else:
            self.showMessage(f"{what} ({defense_label(request.models, d)})…", 0)

    def _on_engine(self, info) -> None:
        self.engine.setText(f"engine: {info.engine_source}")
        self.engine.setToolTip(info.engine_note or "the engine's analysis call")

    def _on_models(self, info) -> None:
        if info is None:
            self.models.setText("models: loading…")
            return
        self.device.setText(f"device: {info.device}")
        names = [v.split(" (")[0].removesuffix(".safetensors") for v in info.loaded.values()]
        missing = [k for k in info.errors]
        text = f"{info.dataset}: " + (", ".join(names) if names else "no models")
        if missing:
            text += f" (missing: {', '.join(missing)})"
        self.models.setText(text)

    def _on_timings(self, t: dict) -> None:
        parts = [f"attack {t['attack_ms']:.0f} ms" if t.get("attack_ms") else "",
                 f"purify {t['purify_ms']:.1f} ms" if t.get("purify_ms") else "",
                 f"total {t['total_ms']:.0f} ms" if t.get("total_ms") else ""]
        self.timing.setText(" · ".join(p for p in parts if p))
