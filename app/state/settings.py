"""What the state holds, as frozen values: the settings, the requests the workers get, what the engine found.

No widgets, no torch, no signals (those are :class:`app.state.app_state.AppState`'s). The facts shared with
the engine come from :mod:`lqvae.spec`; the app never keeps its own copy.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from lqvae.spec import attacks as _attacks, datasets as _datasets, defenses as _defenses
from lqvae.spec.results import Analysis

# The facts shared with the engine come from lqvae.spec (torch-free; the app never keeps its own copy).
DATASETS = _datasets.DATASETS
DATASET_LABELS = _datasets.DATASET_LABELS
DEFAULT_CLASS_NAMES = {d: list(names) for d, names in _datasets.CLASS_NAMES.items()}  # the engine's CLASS_NAMES
short_name = _datasets.short_name

ATTACK_LABELS = {name: a.label for name, a in _attacks.ATTACKS.items()}
ATTACK_NAMES = {name: label.split(" (")[0] for name, label in ATTACK_LABELS.items()}  # "PGD", "Carlini-Wagner L2"
THREAT_LABELS = {name: t.label for name, t in _attacks.THREATS.items()}
THREAT_SHORT = {"whitebox": "white-box", "blackbox": "black-box", "bpda": "BPDA", "bpda_eot": "BPDA+EOT"}
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
        name = ATTACK_NAMES.get(self.attack, self.attack)
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


def adaptive_threat(purifier: str | None) -> str:
    """The threat that attacks the defense itself: end to end (BPDA) through a purifier; without one, white-box
    (on a hardened classifier the white-box attack is the adaptive one). Evaluations start from it."""
    if not purifier:
        return "whitebox"
    return next(t for t in _attacks.END_TO_END if not _attacks.THREATS[t].stochastic)


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


@dataclass(frozen=True)
class EvaluationRequest:
    """One Evaluate-tab batch: one row per (attack, ε) cell on ``n`` bundled samples (all classes in turn).

    The tab fills in what it shows (attacks, budgets, threat, n); the controller completes the request with
    the selected models, defense and the engine's samples (:meth:`with_models`); the adapter builds one
    ``AttackSpec`` per cell. Models are loaded fresh for it, not shared with the live analysis.
    """

    n: int
    attacks: tuple[str, ...]
    eps: tuple[float, ...]  # L-inf budgets; the L2 attacks run once, unbounded
    threat: str = "whitebox"
    preset: str = "live"
    models: ModelSettings = field(default_factory=ModelSettings)
    defense: DefenseSettings = field(default_factory=DefenseSettings)
    substitute: str = "B"  # the black-box threat's substitute classifier
    images: np.ndarray | None = field(default=None, repr=False)  # (N, 28, 28) uint8, the bundled samples
    labels: np.ndarray | None = field(default=None, repr=False)  # (N,)

    @property
    def defense_name(self) -> str:
        """The rows' name of what defends: the purifier, a classifier-side defense ("madry"), or "none"."""
        return self.defense.purifier or self.models.hardening or "none"

    @property
    def cells(self) -> list[tuple[str, float | None]]:
        """(attack, ε) in row order; ε None for the L2 attacks (one unbounded row each)."""
        return [(a, e) for a in self.attacks for e in ((None,) if a in L2_ATTACKS else self.eps)]

    def with_models(self, models: ModelSettings, defense: DefenseSettings, substitute: str, images: np.ndarray,
                    labels: np.ndarray) -> EvaluationRequest:
        return dataclasses.replace(self, models=models, defense=defense, substitute=substitute, images=images,
                                   labels=labels)


# ------------------------------------------------------------------ "next fooled": a search over the samples
MAX_FOOL_SEARCH = 100  # samples one search tries at most (each a normal analysis at the live preset)


def is_fooled(result: Analysis, label: int | None) -> bool:
    """The attack fooled what defends (the verdict of the image row's last tile: the defended prediction, or the
    classifier's without a purifier) on an image the classifier got right before the attack."""
    preds = result.predictions
    return bool(preds) and preds[0] == label and result.survived(label) is False


def fool_candidates(order: Sequence[int], start: int | None, *, include_start: bool,
                    limit: int = MAX_FOOL_SEARCH) -> tuple[int, ...]:
    """The sample indices a search tries, in order: ``order`` (the samples passing the class filter) from
    ``start`` onward (after it, unless ``include_start``), wrapping around, at most ``limit``."""
    order = [int(i) for i in order]
    if start is None or not order:
        first = 0
    elif start in order:
        first = order.index(start) + (0 if include_start else 1)
    else:  # a sample outside the filter: from the first one past it
        first = next((k for k, i in enumerate(order) if i > start), 0)
    rotated = [i for i in order[first:] + order[:first] if include_start or i != start]
    return tuple(rotated[:limit])


@dataclass(frozen=True)
class FoolSearch:
    """Find the first of ``indices`` (bundled samples) that ``request``'s attack fools; ``request`` carries the
    settings, its image is replaced by each sample in turn."""

    request: AnalysisRequest
    indices: tuple[int, ...]
    images: np.ndarray = field(repr=False)  # (N, 28, 28) uint8, the bundled samples
    labels: np.ndarray = field(repr=False)  # (N,)


@dataclass(frozen=True)
class FoolFound:
    """What a search found: the sample, the request it ran (its image that sample) and the analysis; ``index``
    None when none of the ``tried`` samples was fooled."""

    index: int | None
    tried: int
    request: AnalysisRequest | None = None
    result: Analysis | None = None


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
