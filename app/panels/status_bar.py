"""The status bar: device, loaded checkpoints, latency of the last attack and purification, messages.

A message never is cut off silently: it takes the room the permanent fields leave and, when longer, ends in
"…" with the whole message in its tooltip (``ElidedLabel``); ``currentMessage()`` is always the whole text."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from app.panels.widgets import ElidedLabel
from app.state.app_state import AppState
from app.state.estimate import progress_line
from app.state.settings import defense_label


class StatusBar(QStatusBar):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.message = ElidedLabel()
        self.addWidget(self.message, 1)
        self._expire = QTimer(self, singleShot=True)
        self._expire.timeout.connect(self.clearMessage)
        self.device = QLabel("device: —")
        self.models = ElidedLabel("models: loading…")
        self.timing = QLabel("")
        self.progress = QLabel("")  # the running analysis in full: the Attack panel's bar is too small for it
        self.progress.setToolTip("The running attack: share done and the time left at the pace measured so far")
        self._progress = ("", 0.0, time.monotonic())  # text, fraction, start of the run
        self.addPermanentWidget(self.progress)
        self.engine = ElidedLabel("")
        for w in (self.engine, self.device, self.models, self.timing):
            self.addPermanentWidget(w)  # the engine and the models shorten first (ElidedLabel), then the message
        self.device.setToolTip("Where torch runs")
        self.timing.setToolTip("Attack and purification time of the last run, as measured by the engine; "
                               "'total' is request to result on this machine")
        state.modelsChanged.connect(self._on_models)
        state.engineInfoChanged.connect(self._on_engine)
        state.statusChanged.connect(self._on_timings)
        state.message.connect(lambda level, text: self.showMessage(text, 8000))
        state.analysisStarted.connect(self._on_started)
        state.analysisProgress.connect(self._on_progress)
        state.analysisRemaining.connect(self._on_remaining)
        state.busyChanged.connect(lambda busy: busy or self.progress.setText(""))
        state.resultChanged.connect(lambda *_: self.clearMessage())

    def _on_progress(self, fraction: float, text: str) -> None:
        self._progress = (text, fraction, self._progress[2])

    def _on_remaining(self, seconds: float) -> None:
        text, fraction, started = self._progress
        self.progress.setText(progress_line(text, fraction, seconds if seconds >= 0 else None,
                                            time.monotonic() - started))

    def showMessage(self, text: str, timeout: int = 0) -> None:  # noqa: N802 - QStatusBar's API
        """Show ``text`` (elided with a tooltip if it does not fit) for ``timeout`` ms, 0 = until replaced."""
        self.message.set_text(text)
        if timeout > 0:
            self._expire.start(timeout)
        else:
            self._expire.stop()

    def clearMessage(self) -> None:  # noqa: N802
        self._expire.stop()
        self.message.set_text("")

    def currentMessage(self) -> str:  # noqa: N802
        return self.message.full_text()

    def _on_started(self, request) -> None:
        """Say what is running; a Defense-GAN analysis is mostly its latent search."""
        self._progress = ("", 0.0, time.monotonic())
        d = request.defense
        what = "attacking" if request.attack is not None else "analysing"
        if self.state.purifier_kind(d.purifier) == "defensegan":
            steps, restarts = d.search_steps_restarts
            self.showMessage(f"{what}; Defense-GAN is searching its latent space (L = {steps} steps × R = {restarts} "
                             "restarts per image)…", 0)
        else:
            self.showMessage(f"{what} ({defense_label(request.models, d)})…", 0)

    def _on_engine(self, info) -> None:
        self.engine.set_text(f"engine: {info.engine_source}", info.engine_note or "the engine's analysis call")

    def _on_models(self, info) -> None:
        if info is None:
            self.models.set_text("models: loading…")
            return
        self.device.setText(f"device: {info.device}")
        names = [v.split(" (")[0].removesuffix(".safetensors") for v in info.loaded.values()]
        missing = [k for k in info.errors]
        text = f"{info.dataset}: " + (", ".join(names) if names else "no models")
        if missing:
            text += f" (missing: {', '.join(missing)})"
        self.models.set_text(text)

    def _on_timings(self, t: dict) -> None:
        parts = [f"attack {t['attack_ms']:.0f} ms" if t.get("attack_ms") else "",
                 f"purify {t['purify_ms']:.1f} ms" if t.get("purify_ms") else "",
                 f"total {t['total_ms']:.0f} ms" if t.get("total_ms") else ""]
        self.timing.setText(" · ".join(p for p in parts if p))
