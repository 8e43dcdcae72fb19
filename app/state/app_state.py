"""The one state object the panels observe. No widgets, no torch: plain settings, results, signals.

Panels take an ``AppState`` in ``__init__``, draw from it and subscribe to its signals; user actions
call its setters or its request methods (``request_run``, ``request_open`` ...), which emit intent
signals the ``Controller`` acts on. The state never knows a widget.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from lqvae.spec import attacks as _attacks, datasets as _datasets, defenses as _defenses

# The facts shared with the engine come from lqvae.spec (torch-free; the app never keeps its own copy).
DATASETS = _datasets.DATASETS
DATASET_LABELS = _datasets.DATASET_LABELS
DEFAULT_CLASS_NAMES = {d: list(names) for d, names in _datasets.CLASS_NAMES.items()}  # the engine's CLASS_NAMES
short_name = _datasets.short_name

ATTACK_LABELS = {name: a.label for name, a in _attacks.ATTACKS.items()}
THREAT_LABELS = {name: t.label for name, t in _attacks.THREATS.items()}
L2_ATTACKS = _attacks.L2_ATTACKS  # deepfool_linf is measured in L-inf
ITERATIVE = {name: a.live_steps for name, a in _attacks.ATTACKS.items() if a.live_steps}  # live preset steps
SLOW_ATTACKS = _attacks.SLOW_ATTACKS
UNTARGETED_ONLY = _attacks.UNTARGETED_ONLY

PURIFIER_LABELS = _defenses.PURIFIER_LABELS  # in the Defense box's order (see purifier_order)
CLASSIFIER_DEFENSES = _defenses.HARDENING_LABELS  # checkpoint classifier_<base>_<key> beside classifier_<base>
DEFENSEGAN_SEARCH = _defenses.DEFENSEGAN_SEARCH  # (L gradient steps, R random restarts): live and the authors'
purifier_order = _defenses.purifier_order
split_classifier = _defenses.split_classifier
classifier_name = _defenses.hardened_name


@dataclass(frozen=True)
class ModelSettings:
    dataset: str = "mnist"
    classifier: str = "A"  # a checkpoint name: "A", or a hardened "A_madry"
    device: str = "auto"

    @property
    def base(self) -> str:
        return split_classifier(self.classifier)[0]

    @property
    def hardening(self) -> str | None:
        """The classifier-side defense (a CLASSIFIER_DEFENSES key), None for a plain classifier."""
        return split_classifier(self.classifier)[1]


@dataclass(frozen=True)
class AttackSettings:
    """What the attack panel shows; ``to_spec_kwargs`` maps it onto the engine's ``AttackSpec``."""

    enabled: bool = True
    attack: str = "fgsm"
    eps_linf: float = 0.3  # budget of the L-inf attacks
    eps_l2: float | None = None  # budget of the L2 attacks; None = unbounded (minimal perturbation)
    steps: int | None = None  # None: the preset's number
    preset: str = "live"
    targeted: bool = False
    target: int = 0
    threat: str = "whitebox"
    substitute: str = "B"
    eot_samples: int = 8
    restarts: int = 1
    seed: int = 0

    @property
    def norm(self) -> str:
        return "L2" if self.attack in L2_ATTACKS else "L∞"

    @property
    def eps(self) -> float | None:
        """The budget in this attack's norm (None: unbounded, for the minimization attacks)."""
        return self.eps_l2 if self.attack in L2_ATTACKS else self.eps_linf

    @property
    def eps_text(self) -> str:
        return "∞" if self.eps is None else f"{self.eps:g}"

    @property
    def is_slow(self) -> bool:
        """Slow attacks run on demand (Run button) with a progress bar; fast ones follow the slider."""
        return _attacks.is_slow(self.attack, self.threat, self.preset, self.steps)

    def to_spec_kwargs(self) -> dict[str, Any]:
        return dict(attack=self.attack, eps=None if self.eps is None else float(self.eps), steps=self.steps,
                    preset=self.preset, targeted=bool(self.targeted and self.attack not in UNTARGETED_ONLY),
                    target=int(self.target) if self.targeted else None, threat=self.threat,
                    eot_samples=int(self.eot_samples), restarts=int(self.restarts), seed=int(self.seed))

    def label(self) -> str:
        name = ATTACK_LABELS.get(self.attack, self.attack).split(" (")[0]
        return f"{name} {self.norm} ε={self.eps_text}" + ("" if self.threat == "whitebox" else f" · {self.threat}")


@dataclass(frozen=True)
class DefenseSettings:
    purifier: str | None = "lqvae"  # None: no defense
    mode: str = "deterministic"
    n_samples: int = 8
    search: str = "live"  # Defense-GAN's latent search, a DEFENSEGAN_SEARCH key

    @property
    def search_steps_restarts(self) -> tuple[int, int]:
        return DEFENSEGAN_SEARCH[self.search]


def defense_label(models: ModelSettings, defense: DefenseSettings) -> str:
    """What defends the classifier: the purifier, a classifier-side defense, or nothing."""
    if defense.purifier:
        return PURIFIER_LABELS.get(defense.purifier, defense.purifier)
    return CLASSIFIER_DEFENSES[models.hardening] if models.hardening else "no defense"


@dataclass(frozen=True)
class InputImage:
    pixels: np.ndarray  # (28, 28) float32 in [0, 1], ink high
    label: int | None = None  # the true class when known (samples)
    source: str = ""  # "sample 12", "drawing", "digit.png"
    dataset: str = ""  # the dataset whose models the image was prepared for

    @property
    def sample_index(self) -> int | None:
        """The bundled sample's index for ``source`` "sample 12"; None for a drawing or a file (a file may well
        be called "sample 7.png")."""
        m = re.fullmatch(r"sample (\d+)", self.source)
        return int(m.group(1)) if m else None


@dataclass(frozen=True)
class AnalysisRequest:
    """A snapshot of everything one engine call needs; workers get this, never the state."""

    id: int
    image: InputImage
    models: ModelSettings
    attack: AttackSettings | None  # None: clean analysis only
    defense: DefenseSettings
    time: float = field(default_factory=time.monotonic)


@dataclass
class EngineInfo:
    """What the first worker found: the engine, the checkpoints and the samples of one dataset."""

    dataset: str
    class_names: list[str]
    classifiers: list[str] = field(default_factory=list)
    purifiers: list[str] = field(default_factory=list)
    purifier_kinds: dict[str, str] = field(default_factory=dict)  # name -> "lqvae", "vae" or "defensegan"
    classifier_notes: dict[str, str] = field(default_factory=dict)  # hardened name -> how it was trained
    checkpoint_errors: dict[str, str] = field(default_factory=dict)
    checkpoint_dir: str = ""
    samples: tuple[np.ndarray, np.ndarray] | None = None  # (N, 28, 28) uint8, (N,) labels
    samples_error: str = ""
    presets: dict[str, dict[str, int]] = field(default_factory=dict)  # preset -> attack -> steps (engine's)
    engine_source: str = ""  # "lqvae.evaluate.analysis"
    engine_note: str = ""
    cuda_available: bool = False


@dataclass
class ModelsInfo:
    """Result of loading the selected models on a worker."""

    dataset: str
    device: str
    loaded: dict[str, str] = field(default_factory=dict)  # role -> "classifier_A.safetensors (1.2 M params)"
    errors: dict[str, str] = field(default_factory=dict)  # role -> message
    seconds: float = 0.0
    eta: float | None = None  # the purifier's quantization threshold (for the z plot)

    @property
    def ok(self) -> bool:
        return "classifier" in self.loaded


@dataclass
class HistoryEntry:
    request: AnalysisRequest
    result: Any  # the engine's Analysis


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
    analysisFailed = Signal(str)
    busyChanged = Signal(bool)
    historyChanged = Signal()
    # evaluation tab
    evaluationStarted = Signal()
    evaluationProgress = Signal(float, str)
    evaluationFinished = Signal(object)  # list of row dicts
    evaluationFailed = Signal(str)
    # intents (the controller acts on them)
    runRequested = Signal(bool)  # auto: True when triggered by a change rather than the Run button
    cancelRequested = Signal()
    openRequested = Signal(str)  # a file path
    evaluateRequested = Signal(object)  # dict of evaluation settings
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
        self.result: Any = None
        self.history: list[HistoryEntry] = []
        self.busy = False
        self.timings: dict[str, float] = {}
        self._next_id = 0

    # ---------------------------------------------------------------- settings
    def class_names(self) -> list[str]:
        if self.engine is not None and self.engine.dataset == self.models.dataset:
            return self.engine.class_names
        return DEFAULT_CLASS_NAMES[self.models.dataset]

    def purifier_kind(self, name: str | None) -> str | None:
        """The engine's kind of a purifier: "lqvae" (has a bit code), "vae" or "defensegan"; None for none."""
        if not name:
            return None
        return (self.engine.purifier_kinds if self.engine is not None else {}).get(name, name)

    def base_classifiers(self) -> list[str]:
        """The classifiers of the engine without a classifier-side defense (the Models panel's choices)."""
        names = self.engine.classifiers if self.engine is not None else []
        return [n for n in names if split_classifier(n)[1] is None]

    def attack_is_slow(self) -> bool:
        """The attack runs on demand: slow in itself, or BPDA through Defense-GAN (a search every step)."""
        a = self.attack
        searching = self.purifier_kind(self.defense.purifier) == "defensegan"
        return a.enabled and (a.is_slow or (searching and a.threat in ("bpda", "bpda_eot")))

    def defense_is_slow(self) -> bool:
        """Every analysis is slow (Defense-GAN with the paper's search): nothing runs until Run is pressed."""
        return self.purifier_kind(self.defense.purifier) == "defensegan" and self.defense.search == "paper"

    def set_models(self, **changes: Any) -> None:
        new = replace(self.models, **changes)
        if new != self.models:
            self.models = new
            self.modelSettingsChanged.emit(new)

    def set_attack(self, **changes: Any) -> None:
        new = replace(self.attack, **changes)
        if new != self.attack:
            self.attack = new
            self.attackSettingsChanged.emit(new)

    def set_defense(self, **changes: Any) -> None:
        new = replace(self.defense, **changes)
        if new != self.defense:
            self.defense = new
            self.defenseSettingsChanged.emit(new)

    def set_image(self, pixels: np.ndarray, label: int | None = None, source: str = "") -> None:
        pixels = np.clip(np.asarray(pixels, np.float32).reshape(28, 28), 0.0, 1.0)
        self.image = InputImage(pixels, label, source, self.models.dataset)
        self.imageChanged.emit(self.image)

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
        attack = self.attack if (with_attack and self.attack.enabled) else None
        return AnalysisRequest(self._next_id, self.image, self.models, attack, self.defense)

    def set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self.busyChanged.emit(busy)

    def set_result(self, request: AnalysisRequest, result: Any, *, record: bool = True) -> None:
        self.request, self.result = request, result
        if record and request.attack is not None:
            self.history.append(HistoryEntry(request, result))
            del self.history[:-50]
            self.historyChanged.emit()
        self.resultChanged.emit(request, result)

    def clear_result(self) -> None:
        self.request, self.result = None, None
        self.resultCleared.emit()

    def restore(self, index: int) -> None:
        """Show a history entry again: its image, settings and result, without re-running."""
        entry = self.history[index]
        req = entry.request
        self.restoring = True  # the controller does not re-run for the changes below
        try:
            self.models, self.defense = req.models, req.defense
            self.attack = req.attack or self.attack
            self.image = req.image
            self.modelSettingsChanged.emit(self.models)
            self.attackSettingsChanged.emit(self.attack)
            self.defenseSettingsChanged.emit(self.defense)
            self.imageChanged.emit(self.image)
            self.set_result(req, entry.result, record=False)
        finally:
            self.restoring = False

    restoring = False

    # ---------------------------------------------------------------- intents
    def request_run(self, auto: bool = False) -> None:
        self.runRequested.emit(auto)

    def request_cancel(self) -> None:
        self.cancelRequested.emit()

    def request_open(self, path: str) -> None:
        self.openRequested.emit(str(path))

    def notify(self, text: str, level: str = "info") -> None:
        self.message.emit(level, text)

    def set_timings(self, **values: float) -> None:
        self.timings.update(values)
        self.statusChanged.emit(dict(self.timings))


def as_dict(obj: Any) -> Any:
    """A dataclass (or nested containers) as JSON-ready data; arrays become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): as_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_dict(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
