"""The strongest-attack suite, written once (torch-free): its settings, its members, its sanity checks and
the 95 % Wilson interval every number is printed with (issue 18).

A defense's robust accuracy "under the suite" is the per-image worst case: an image counts as robust only
if it is classified correctly when clean and every member of the suite fails on it. The members
(:func:`suite_members`) are the strong L-inf attacks of Croce & Hein (2020) and Carlini et al. (2019):

* ``apgd_ce`` -- APGD with cross-entropy, ``apgd_restarts`` random starts;
* ``apgd_t`` -- APGD-T with the targeted DLR loss, one run per runner-up class (``apgd_targets`` of them);
* ``pgd_ce`` / ``pgd_cw`` -- PGD (step ``pgd_stepsize``) with cross-entropy and with the CW margin loss,
  ``pgd_restarts`` starts (a restart only for the images still robust);
* ``fgsm`` -- one step, for the "iterative beats single-step" check;
* ``square`` -- Square (Andriushchenko et al. 2020), score-based, no gradient: the masked-gradient check;
* ``latent`` -- (binary LQ-VAE only) pushes each mu_j across its threshold +-eta towards the code of the
  nearest correctly purified image of another class, then the real purified prediction is checked;
* ``transfer`` -- (purifiers only) PGD on the classifier alone, then purified: the grey-box attack, for
  the "white-box beats transfer" check.

Through a purifier every gradient member runs once per backward of H in ``surrogates`` (``"sigmoid"``: the
narrow 2 sigmoid((eta - |z|)/T) - 1, ``"bpda"``: H~, ``"straight_through"``: identity) and, for the
stochastic mode, with EOT over ``eot_samples`` draws per model call. Two diagnostic members do not count
in the worst case: PGD with ``few_steps`` steps (more steps must not raise accuracy) and PGD at
``large_eps`` (accuracy must fall towards 0 as the budget grows).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Method = Literal["fgsm", "pgd", "apgd", "apgd_t", "square", "latent", "transfer"]
Role = Literal["attack", "few_steps", "large_eps"]
SURROGATES = ("sigmoid", "bpda", "straight_through")  # backwards of H a purifier's gradient members go through
GRADIENT_METHODS: tuple[Method, ...] = ("fgsm", "pgd", "apgd", "apgd_t")
Z95 = 1.959963984540054  # two-sided 95 % normal quantile


@dataclass(frozen=True)
class SuiteSettings:
    """How hard the suite attacks; every member reads its budget from here.

    Args:
        eps: L-inf budget in [0, 1] pixel units of every member that counts.
        pgd_steps: PGD steps per start.
        pgd_stepsize: PGD's absolute step (0.025: larger than Madry's 0.01, it lowered numbers in issue 18).
        pgd_restarts: PGD starts; each restart attacks only the images still robust.
        apgd_steps: APGD and APGD-T iterations per run.
        apgd_restarts: APGD-CE random starts.
        apgd_targets: APGD-T target classes (the runner-up classes of the clean logits, in order).
        square_queries: Square's queries per image.
        square_p_init: Square's initial share of pixels per square (0.8 for MNIST in the paper).
        latent_steps: steps of the attack on the quantizer.
        latent_stepsize: its absolute L-inf step.
        latent_margin: kappa, how far past a threshold (in mu units) a bit is pushed.
        surrogates: backwards of H tried through a purifier (a subset of ``SURROGATES``); the diagnostic
            members use the first.
        sigmoid_temperature: T of the ``"sigmoid"`` backward.
        eot_samples: stochastic draws averaged per model call for the stochastic mode (EOT).
        check_samples: fresh draws that judge the stochastic mode's predictions.
        few_steps: steps of the diagnostic short PGD (the "more steps" check; at most ``pgd_steps``).
        large_eps: budget of the diagnostic PGD for the "accuracy -> 0" check.
        large_eps_ceiling: the most accuracy (percent) that check accepts at ``large_eps``.
        tolerance: share of n by which a stronger attack may trail a weaker one before a check fails
            (at least one image).
        chunk_size: images per chunk (each chunk and member seeded alone; cancel between chunks).
        seed: seed of every random start and draw.
    """

    eps: float = 0.3
    pgd_steps: int = 100
    pgd_stepsize: float = 0.025
    pgd_restarts: int = 5
    apgd_steps: int = 100
    apgd_restarts: int = 3
    apgd_targets: int = 3
    square_queries: int = 1000
    square_p_init: float = 0.8
    latent_steps: int = 100
    latent_stepsize: float = 0.01
    latent_margin: float = 0.05
    surrogates: tuple[str, ...] = SURROGATES
    sigmoid_temperature: float = 0.05
    eot_samples: int = 16
    check_samples: int = 32
    few_steps: int = 10
    large_eps: float = 1.0
    large_eps_ceiling: float = 10.0
    tolerance: float = 0.02
    chunk_size: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.eps <= 1 or not 0 < self.large_eps <= 1:
            raise ValueError(f"expected eps and large_eps in (0, 1] (pixels are in [0, 1]), got {self.eps}, "
                             f"{self.large_eps}")
        counts = {k: getattr(self, k) for k in ("pgd_steps", "pgd_restarts", "apgd_steps", "apgd_restarts",
                                                 "apgd_targets", "square_queries", "latent_steps", "eot_samples",
                                                 "check_samples", "few_steps", "chunk_size")}
        for key, value in counts.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SuiteSettings.{key}: expected an integer >= 1, got {value!r}")
        bad = [s for s in self.surrogates if s not in SURROGATES]
        if bad or not self.surrogates:
            raise ValueError(f"SuiteSettings.surrogates: expected a non-empty subset of {SURROGATES}, got "
                             f"{self.surrogates!r}")
        if not self.sigmoid_temperature > 0:
            raise ValueError(f"SuiteSettings.sigmoid_temperature: expected T > 0, got {self.sigmoid_temperature}")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"SuiteSettings.tolerance: expected a share of n in [0, 1), got {self.tolerance}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["surrogates"] = list(self.surrogates)
        return out


@dataclass(frozen=True)
class SuiteMember:
    """One attack of the suite.

    Args:
        name: unique key, e.g. ``"apgd_ce@sigmoid"``.
        method: which attack runs (see the module doc).
        loss: ``"ce"``, ``"cw"`` (margin), ``"dlr_t"`` (targeted DLR), ``"margin"`` (Square's score) or
            ``"bits"`` (the quantizer attack's margin on mu).
        eps: its L-inf budget.
        steps: iterations (queries for Square).
        restarts: random starts (target classes for APGD-T).
        surrogate: backward of H for end-to-end members (None: the classifier alone or no gradient through H).
        stepsize: absolute L-inf step of PGD, FGSM and the quantizer attack (None: the method's own rule).
        role: ``"attack"`` counts in the worst case; ``"few_steps"`` and ``"large_eps"`` are diagnostics.
    """

    name: str
    method: Method
    loss: str
    eps: float
    steps: int
    restarts: int = 1
    surrogate: str | None = None
    stepsize: float | None = None
    role: Role = "attack"

    @property
    def counts(self) -> bool:
        return self.role == "attack"

    @property
    def gradient(self) -> bool:
        """Whether it follows the attacked model's gradient (Square does not; the latent attack follows mu's)."""
        return self.method in GRADIENT_METHODS or self.method == "transfer"


def suite_members(s: SuiteSettings, *, purifier: bool, quantized: bool) -> tuple[SuiteMember, ...]:
    """The members run against one defense.

    Args:
        s: the settings.
        purifier: the defense purifies before the classifier (adds the surrogates and ``transfer``).
        quantized: the purifier has binary codes (adds ``latent``; several surrogates only matter then).
    """
    # several backwards of H only where there is an H (the VAE's and Defense-GAN's gradient is exact)
    surrogates: tuple[str | None, ...] = s.surrogates if purifier and quantized else (None,)

    def pgd(name: str, loss: str, eps: float, steps: int, restarts: int, sur: str | None,
            role: Role = "attack") -> SuiteMember:  # Madry's 2.5 eps / steps when it is larger than pgd_stepsize
        return SuiteMember(name, "pgd", loss, eps, steps, restarts, sur, max(s.pgd_stepsize, 2.5 * eps / steps), role)

    out: list[SuiteMember] = []
    for sur in surrogates:
        tag = f"@{sur}" if sur else ""
        out += [SuiteMember(f"fgsm{tag}", "fgsm", "ce", s.eps, 1, surrogate=sur, stepsize=s.eps),
                pgd(f"pgd_ce{tag}", "ce", s.eps, s.pgd_steps, s.pgd_restarts, sur),
                pgd(f"pgd_cw{tag}", "cw", s.eps, s.pgd_steps, s.pgd_restarts, sur),
                SuiteMember(f"apgd_ce{tag}", "apgd", "ce", s.eps, s.apgd_steps, s.apgd_restarts, sur),
                SuiteMember(f"apgd_t{tag}", "apgd_t", "dlr_t", s.eps, s.apgd_steps, s.apgd_targets, sur)]
    out.append(SuiteMember("square", "square", "margin", s.eps, s.square_queries))
    if purifier:
        out.append(SuiteMember("transfer", "transfer", "ce", s.eps, s.pgd_steps, 1, None,
                               pgd("transfer", "ce", s.eps, s.pgd_steps, 1, None).stepsize))
    if purifier and quantized:
        out.append(SuiteMember("latent", "latent", "bits", s.eps, s.latent_steps, stepsize=s.latent_stepsize))
    first = surrogates[0]
    tag = f"@{first}" if first else ""
    few = min(s.few_steps, s.pgd_steps)
    out += [pgd(f"pgd_ce_{few}steps{tag}", "ce", s.eps, few, 1, first, "few_steps"),
            pgd(f"pgd_ce_eps{s.large_eps:g}{tag}", "ce", s.large_eps, s.pgd_steps, 1, first, "large_eps")]
    return tuple(out)


def unit_seed(seed: int, chunk: int, member: str) -> int:
    """The seed of one member on one chunk: depends on nothing else (not on the order units run in)."""
    return ((seed * 1_000_003 + chunk) * 1_000_033 + zlib.crc32(member.encode())) % 2**63


# ----------------------------------------------------------------------------- numbers with n and an interval
def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n, in percent ((0, 100) when n = 0)."""
    if not 0 <= k <= n:
        raise ValueError(f"expected 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 100.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


@dataclass(frozen=True)
class Estimate:
    """k of n images, as a percentage with its 95 % Wilson interval."""

    k: int
    n: int

    @property
    def percent(self) -> float:
        return 100 * self.k / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)

    def text(self) -> str:
        lo, hi = self.interval
        return f"{self.percent:.1f} % (n = {self.n}, 95 % CI {lo:.1f}-{hi:.1f})"

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.interval
        return {"k": self.k, "n": self.n, "percent": self.percent, "ci95": [lo, hi]}


# ----------------------------------------------------------------------------- Carlini et al. (2019)
CHECKS = {
    "iterative_beats_single_step": "an iterative attack is at least as strong as one step (FGSM)",
    "whitebox_beats_transfer": "the attack through the defense is at least as strong as one transferred to it",
    "more_steps_help": "more steps and restarts do not raise accuracy (the full PGD vs a short one)",
    "unbounded_reaches_zero": "accuracy falls towards 0 as the budget grows (PGD at a large eps)",
    "score_not_stronger": "a score-based attack (Square) is not stronger than the gradient-based ones",
}


@dataclass(frozen=True)
class SanityCheck:
    """One check of Carlini et al. (2019) on one defense's suite result.

    Args:
        name: a key of ``CHECKS``.
        passed: True / False, or None when it does not apply (e.g. no transfer attack for a classifier).
        numbers: the accuracies (percent) and counts it compared.
        detail: one sentence for a reader.
    """

    name: str
    passed: bool | None
    numbers: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "numbers": self.numbers, "detail": self.detail}


__all__ = ["SURROGATES", "GRADIENT_METHODS", "SuiteSettings", "SuiteMember", "suite_members", "unit_seed",
           "wilson_interval", "Estimate", "CHECKS", "SanityCheck"]
