"""The one state object the panels observe. No widgets, no torch: plain settings, results, signals.

Panels take an ``AppState`` in ``__init__``, draw from it and subscribe to its signals; user actions
call its setters or its request methods (``request_run``, ``request_open`` ...), which emit intent
signals the ``Controller`` acts on. The state never knows a widget. The values it holds are the frozen
dataclasses of :mod:`app.state.settings`.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, replace
from typing import Any, Iterator

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.state.settings import (DEFAULT_CLASS_NAMES, AnalysisRequest, AttackSettings, DefenseSettings, EngineInfo,
                                EvaluationRequest, InputImage, ModelSettings, ModelsInfo, split_classifier)
from app.state.history_store import MAX_ENTRIES, HistoryEntry
from lqvae.spec.attacks import THREATS
from lqvae.spec.results import Analysis


class AppState(QObject):
    """Settings, the current image and result, history; signals for each."""

    # settings and data
    modelSettingsChanged = Signal(object)  # ModelSettings
    attackSettingsChanged = Signal(object)  # AttackSettings
    defenseSettingsChanged = Signal(object)  # DefenseSettings
    imageChanged = Signal(object)  # InputImage
    engineInfoChanged = Signal(object)  # EngineInfo
    modelsChanged = Signal(object)  # ModelsInfo (None while loading)
    # analysis
    analysisStarted = Signal(object)  # AnalysisRequest
    analysisProgress = Signal(float, str)
    resultChanged = Signal(object, object)  # AnalysisRequest, Analysis
    resultCleared = Signal()  # the shown result no longer matches the models (dataset changed)
    resultStaleChanged = Signal(bool)  # True: the shown result was computed for other settings than the selected
    analysisFailed = Signal(str)
    busyChanged = Signal(bool)
    historyChanged = Signal()
    # evaluation tab
    evaluationStarted = Signal()
    evaluationProgress = Signal(float, str)
    analysisRemaining = Signal(float)  # seconds left of the running analysis (-1: unknown), after each progress
    evaluationRemaining = Signal(float)  # the same for the running evaluation
    evaluationFinished = Signal(object)  # list of row dicts
    evaluationFailed = Signal(str)
    # intents (the controller acts on them)
    runRequested = Signal(bool)  # auto: True when triggered by a change rather than the Run button
    cancelRequested = Signal()
    nextFooledRequested = Signal(object)  # tuple of bundled sample indices: show the first the attack fools
    openRequested = Signal(str)  # a file path
    evaluateRequested = Signal(object)  # EvaluationRequest (the tab's part; the controller adds the models)
    evaluationCancelRequested = Signal()
    fileLoaded = Signal(object)  # app.input.image_io.LoadedImage
    fileFailed = Signal(str)
    # feedback
    message = Signal(str, str)  # level ("info", "warning", "error"), text
    statusChanged = Signal(dict)  # {"attack_ms":..., "purify_ms":..., "total_ms":...}

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.models = ModelSettings()
        self.attack = AttackSettings()
        self.defense = DefenseSettings()
        self.image: InputImage | None = None
        self.engine: EngineInfo | None = None
        self.models_info: ModelsInfo | None = None
        self.request: AnalysisRequest | None = None
        self.result: Analysis | None = None
        self.history: list[HistoryEntry] = []
        self.busy = False
        self.stale = False  # the shown result was computed for other settings (see result_is_current)
        self.stale_reason = ""  # why the run for the selected settings was refused ("" if it was not)
        self.timings: dict[str, float] = {}
        self._next_id = 0
        self._quiet = 0  # depth of nested quiet() blocks

    # ---------------------------------------------------------------- settings
    def class_names(self) -> list[str]:
        return self.names_for(self.models.dataset)

    def names_for(self, dataset: str) -> list[str]:
        """The class names of ``dataset`` (the engine's when it has booted that data set)."""
        if self.engine is not None and self.engine.dataset == dataset:
            return self.engine.class_names
        return DEFAULT_CLASS_NAMES[dataset]

    def purifier_kind(self, name: str | None) -> str | None:
        """The engine's kind of a purifier: "lqvae" (has a bit code), "vae" or "defensegan"; None for none."""
        if not name:
            return None
        return (self.engine.purifier_kinds if self.engine is not None else {}).get(name, name)

    def base_classifiers(self) -> list[str]:
        """The classifiers of the engine without a classifier-side defense (the Models panel's choices)."""
        names = self.engine.classifiers if self.engine is not None else []
        return [n for n in names if split_classifier(n)[1] is None]

    def adaptive_is_whitebox(self) -> bool:
        """The adaptive (end-to-end) threat is selected on a classifier-side defense (Madry, Adv Tr) without a
        purifier: the classifier is the whole defense, so the adaptive attack on it is the white-box attack."""
        a = self.attack
        return a.enabled and THREATS[a.threat].end_to_end and self.defense.purifier is None and bool(
            self.models.hardening)

    def effective_attack(self) -> AttackSettings | None:
        """The attack as it runs (None when off): the selected one, white-box when ``adaptive_is_whitebox``."""
        if not self.attack.enabled:
            return None
        return replace(self.attack, threat="whitebox") if self.adaptive_is_whitebox() else self.attack

    def attack_is_slow(self) -> bool:
        """The attack runs on demand: slow in itself, or BPDA through Defense-GAN (a search every step)."""
        a = self.effective_attack()
        searching = self.purifier_kind(self.defense.purifier) == "defensegan"
        return a is not None and (a.is_slow or (searching and THREATS[a.threat].end_to_end))

    def defense_is_slow(self) -> bool:
        """Every analysis is slow (Defense-GAN with the paper's search): nothing runs until Run is pressed."""
        return self.purifier_kind(self.defense.purifier) == "defensegan" and self.defense.search == "paper"

    def set_models(self, **changes: Any) -> None:
        new = replace(self.models, **changes)
        if new != self.models:
            self.models = new
            self.modelSettingsChanged.emit(new)
            self._settings_changed()

    def set_attack(self, **changes: Any) -> None:
        new = replace(self.attack, **changes)
        if new != self.attack:
            self.attack = new
            self.attackSettingsChanged.emit(new)
            self._settings_changed()

    def set_defense(self, **changes: Any) -> None:
        new = replace(self.defense, **changes)
        if new != self.defense:
            self.defense = new
            self.defenseSettingsChanged.emit(new)
            self._settings_changed()

    def set_image(self, pixels: np.ndarray, label: int | None = None, source: str = "") -> None:
        pixels = np.clip(np.asarray(pixels, np.float32).reshape(28, 28), 0.0, 1.0)
        self.image = InputImage(pixels, label, source, self.models.dataset)
        self.imageChanged.emit(self.image)
        self._settings_changed()

    def set_label(self, label: int | None) -> None:
        """Say what the current image truly shows (None: unknown), e.g. for a drawing or a file."""
        if self.image is None or label == self.image.label:
            return
        if label is not None and not 0 <= label < len(self.names_for(self.image.dataset or self.models.dataset)):
            raise ValueError(f"set_label: {label} is not a class of {self.image.dataset or self.models.dataset}")
        self.image = replace(self.image, label=label)
        self.imageChanged.emit(self.image)
        self._settings_changed()

    def set_engine_info(self, info: EngineInfo) -> None:
        self.engine = info
        self.engineInfoChanged.emit(info)

    def set_models_info(self, info: ModelsInfo | None) -> None:
        self.models_info = info
        self.modelsChanged.emit(info)

    # ---------------------------------------------------------------- analysis
    def make_request(self, *, with_attack: bool = True) -> AnalysisRequest | None:
        if self.image is None:
            return None
        self._next_id += 1
        attack = self.effective_attack() if with_attack else None
        return AnalysisRequest(self._next_id, self.image, self.models, attack, self.defense)

    def set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self.busyChanged.emit(busy)

    def set_result(self, request: AnalysisRequest, result: Analysis, *, record: bool = True) -> None:
        self.request, self.result = request, result
        if record and request.attack is not None:
            entry = HistoryEntry.of(request, result, self.names_for(request.models.dataset))
            saved = next((i for i, e in enumerate(self.history) if e.result is None and e.same_run(request)), None)
            if saved is None:  # a new run; a saved entry run again is filled in where it is
                self.history.append(entry)
                del self.history[:-MAX_ENTRIES]
            else:
                self.history[saved] = entry
            self.historyChanged.emit()
        self.resultChanged.emit(request, result)
        self._refresh_stale(always=True)  # the panels just drew it: tell them at once whether it is current

    def clear_result(self) -> None:
        self.request, self.result = None, None
        self.resultCleared.emit()
        self._refresh_stale()

    # ---------------------------------------------------------------- is the shown result current?
    def result_is_current(self) -> bool:
        """The one rule: the shown result was computed for the selected image (the same object), models
        (dataset, classifier), defense (purifier, mode, samples, search) and attack (as it runs: kind,
        threat, ε, target ...). A clean-only result (no attack) claims nothing about the attack, so only
        the rest must match. Nothing shown is never out of date."""
        req = self.request
        if req is None or self.result is None:
            return True
        return (req.image is self.image and req.models == self.models and req.defense == self.defense
                and (req.attack is None or req.attack == self.effective_attack()))

    def refuse(self, reason: str) -> None:
        """The run for the selected settings was refused: say why, and keep the shown result marked out of date
        with the reason until the settings change or a run succeeds."""
        self.notify(reason, "warning")
        self.stale_reason = reason
        self._refresh_stale(always=True)

    def stale_text(self, *, reason: bool = False) -> str:
        """The label an out-of-date panel shows ("" when the result is current)."""
        if not self.stale:
            return ""
        if reason and self.stale_reason:
            return f"Out of date — not run: {self.stale_reason}"
        return "Out of date — press Run"

    def _settings_changed(self) -> None:
        self.stale_reason = ""  # a refusal was about the previous settings
        self._refresh_stale()

    def _refresh_stale(self, *, always: bool = False) -> None:
        stale = not self.result_is_current()
        if not stale:
            self.stale_reason = ""
        if always or stale != self.stale:
            self.stale = stale
            self.resultStaleChanged.emit(stale)

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Changes made inside are shown but start no analysis (napari's ``events.blocker_all()`` idea).

        Every signal still goes out, so the panels redraw; the controller schedules no run for them, and a
        model load they cause does not run afterwards. Ends (nested blocks: the outermost) even on an exception.
        """
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    @property
    def is_quiet(self) -> bool:
        """Inside :meth:`quiet`: the changes now arriving restore a shown result, they ask for no new one."""
        return self._quiet > 0

    # ---------------------------------------------------------------- history
    def add_history(self, entries: list[HistoryEntry]) -> None:
        """Put saved entries (an earlier session's) before this session's; the newest ``MAX_ENTRIES`` stay."""
        self.history[:0] = entries
        del self.history[:-MAX_ENTRIES]
        self.historyChanged.emit()

    def clear_history(self) -> None:
        self.history.clear()
        self.historyChanged.emit()

    def restore(self, index: int) -> None:
        """Show a history entry again: its image, settings and result, without re-running. An entry of an
        earlier session has no result in memory: it is run again with its settings (``rerun``)."""
        entry = self.history[index]
        req = entry.request
        if entry.result is None:
            self.rerun(req)
            return
        with self.quiet():
            self.models, self.defense = req.models, req.defense
            self.attack = req.attack or self.attack
            self.image = req.image
            self.modelSettingsChanged.emit(self.models)
            self.attackSettingsChanged.emit(self.attack)
            self.defenseSettingsChanged.emit(self.defense)
            self.imageChanged.emit(self.image)
            self.stale_reason = ""
            self.set_result(req, entry.result, record=False)

    def rerun(self, request: AnalysisRequest) -> None:
        """Select a saved run's data set, classifier, defense, attack and image, and run it (a history entry of an
        earlier session, a case file). The device stays this machine's choice."""
        self.set_models(dataset=request.models.dataset, classifier=request.models.classifier)
        self.set_defense(**asdict(request.defense))
        if request.attack is None:
            self.set_attack(enabled=False)
        else:
            self.set_attack(**asdict(request.attack))
        image = request.image
        self.set_image(image.pixels, image.label, image.source)
        self.request_run(False)

    # ---------------------------------------------------------------- intents
    def request_run(self, auto: bool = False) -> None:
        self.runRequested.emit(auto)

    def request_cancel(self) -> None:
        self.cancelRequested.emit()

    def request_next_fooled(self, indices: tuple[int, ...]) -> None:
        """Show the first of these bundled samples that the selected attack fools (searched on a worker)."""
        self.nextFooledRequested.emit(tuple(indices))

    def request_open(self, path: str) -> None:
        self.openRequested.emit(str(path))

    def request_evaluation(self, request: EvaluationRequest) -> None:
        self.evaluateRequested.emit(request)

    def notify(self, text: str, level: str = "info") -> None:
        self.message.emit(level, text)

    def set_timings(self, **values: float) -> None:
        self.timings.update(values)
        self.statusChanged.emit(dict(self.timings))


__all__ = ["AppState"]
