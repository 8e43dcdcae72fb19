"""Every attack and threat model, written once: names, labels, norms, presets, cost.

Plain Python, no torch: the engine (:mod:`lqvae.attacks`) builds and runs the attacks from these
entries, the evaluation CLI takes its ``--attack``/``--threat`` choices from them, and the app draws its
boxes and its "slow -> run on demand" rule from them. Adding an attack is one :class:`AttackInfo` in
``ATTACKS`` here plus one builder in :mod:`lqvae.attacks.foolbox_attacks` (a test checks the two agree).

Presets: ``live`` is fast enough for the app on one image; ``paper`` is the strength used for the
result tables. Minimization attacks (C&W, DeepFool, Boundary, HopSkipJump) have ``eps=None`` in their
presets: unbounded (as in the paper, via cleverhans), the achieved L2 is what they report; with ``eps``
set, foolbox clips the perturbation to that budget and success is judged on the clipped image. Step
sizes are absolute (in pixel units for L-inf; tanh-space Adam step for C&W).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, Mapping

Norm = Literal["linf", "l2"]
Cost = Literal["fast", "slow"]

PRESET_NAMES = ("live", "paper")
BPDA_BACKWARDS = ("bpda", "straight_through")  # backward of H: dH~/dz (the stronger one) or the identity
EOT_MIN_STEPS = 100  # bpda_eot, paper preset: at least this many steps for the attacks with eot_min_steps
EOT_CHECK_SAMPLES = 32  # fresh draws for re-checking bpda_eot success
BOUNDARY_START_EPS = (0.3, 0.6, 1.0)  # L-inf PGD starts tried in turn for Boundary

# The app's rule for attacks it runs on demand (Run button, progress bar) instead of following the slider.
SLOW_STEPS = 100  # more steps than this is slow, whatever the attack
SLOW_END_TO_END_STEPS = 40  # ... and more than this through the purifier (bpda)


@dataclass(frozen=True)
class AttackInfo:
    """One attack: what the app shows, what the engine runs.

    Args:
        name: the key in ``ATTACKS`` (``AttackSpec.attack``, ``--attack``).
        label: shown in the app's attack box.
        norm: ``"linf"`` or ``"l2"``, the norm its ``eps`` and its result are measured in.
        minimization: a minimization attack (unbounded by default, ``eps`` None in its presets) rather than
            one that spends a fixed budget.
        targetable: whether it can aim at a target class.
        gradient: whether its search needs the model's gradient (False: decision-based, labels only;
            Boundary's L-inf PGD starting points still do).
        cost: ``"slow"`` attacks run on demand in the app.
        presets: ``{"live": {...}, "paper": {...}}``, the settings its builder reads.
        eot_min_steps: under ``bpda_eot`` with the paper preset, at least ``EOT_MIN_STEPS`` steps.
        untargeted_why: the error shown when a targeted run is asked of an untargetable attack.
        description: one or two sentences for tooltips.
    """

    name: str
    label: str
    norm: Norm
    presets: Mapping[str, Mapping[str, Any]]
    minimization: bool = False
    targetable: bool = True
    gradient: bool = True
    cost: Cost = "fast"
    eot_min_steps: bool = False
    untargeted_why: str = ""
    description: str = ""

    def preset(self, name: str) -> dict[str, Any]:
        """A fresh copy of preset ``name``'s settings."""
        return dict(self.presets[name])

    @property
    def live_steps(self) -> int | None:
        """Steps of the live preset (None for single-step attacks)."""
        return self.presets["live"].get("steps")


@dataclass(frozen=True)
class ThreatInfo:
    """One threat model (paper Tables 1-7, plus the adaptive EOT attack).

    Args:
        name: the key in ``THREATS``.
        label: shown in the app's threat box.
        end_to_end: the attack's gradient goes through purifier and classifier (BPDA).
        needs_purifier: an LQ-VAE purifier must be passed.
        needs_substitute: a substitute classifier must be passed (transfer attack).
        stochastic: each model call averages stochastic purifications (EOT).
        description: one or two sentences for tooltips.
    """

    name: str
    label: str
    end_to_end: bool = False
    needs_purifier: bool = False
    needs_substitute: bool = False
    stochastic: bool = False
    description: str = ""


_DEEPFOOL_LIVE = {"eps": None, "steps": 50, "candidates": 3, "overshoot": 0.02}
_DEEPFOOL_PAPER = {"eps": None, "steps": 50, "candidates": 10, "overshoot": 0.02}  # cleverhans defaults
_DEEPFOOL_WHY = "foolbox's DeepFool is untargeted only; use pgd, bim or cw for a targeted attack"
_HSJ_WHY = ("HopSkipJump starts from blended uniform noise, which is not of the target class; use boundary, pgd, "
            "bim or cw for a targeted attack")


def _presets(live: dict[str, Any], paper: dict[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    return MappingProxyType({"live": MappingProxyType(live), "paper": MappingProxyType(paper)})


# C&W calibration (MNIST test images, classifier A, unbounded; mean / median L2 of the adversarials).
# 32 images, A after 3 epochs: foolbox's 9 x 100 steps at 0.01 from c = 1e-3 fails on 5/32 (median 7.8);
# 9 x 1000 at 0.01: no failures, median 1.562; paper preset (6 x 200 at 0.05 from c = 0.1): 1.581.
# 16 images, A after 12 epochs: 9 x 1000 at 0.01: 1.358 / 1.098; paper preset: 1.372 / 1.139;
# 6 x 400 at 0.05: 1.362 / 1.126; 6 x 200 at 0.1: 1.370 / 1.135. No failures in any: more steps move
# the mean by about 1 %. Live (3 x 100 at 0.1 from c = 1): 1.456 / 1.444 on 32 images, 12-epoch A (4 x 100 at
# 0.05: 1.511 / 1.476), about 1.1 s of CPU for one image.
_ENTRIES = (
    AttackInfo("fgsm", "FGSM", "linf", _presets({"eps": 0.3}, {"eps": 0.3}),
               description="Fast Gradient Sign Method: one step of size ε in the sign of the loss gradient. Fast."),
    AttackInfo("bim", "BIM (iterative FGSM)", "linf", _presets(
        {"eps": 0.3, "steps": 10, "stepsize": 0.05},  # cleverhans defaults (the paper's library)
        {"eps": 0.3, "steps": 80, "stepsize": 1.0 / 255}),  # Kurakin et al.: min(eps*255+4, 1.25*eps*255)
        eot_min_steps=True,
        description="Basic Iterative Method: FGSM repeated in small steps, projected back into the ε-ball."),
    AttackInfo("pgd", "PGD (Madry)", "linf", _presets(
        {"eps": 0.3, "steps": 40, "stepsize": 0.01},  # Madry et al. MNIST, random start
        {"eps": 0.3, "steps": 100, "stepsize": 0.01}),  # Madry et al.'s evaluation setting
        eot_min_steps=True,
        description="Projected Gradient Descent (Madry et al.): BIM from a random start; the standard strong L∞ "
                    "attack."),
    AttackInfo("deepfool", "DeepFool L2", "l2", _presets(_DEEPFOOL_LIVE, _DEEPFOOL_PAPER),
               minimization=True, targetable=False, untargeted_why=_DEEPFOOL_WHY,
               description="DeepFool: walks to the nearest decision boundary in L2; finds small perturbations."),
    AttackInfo("deepfool_linf", "DeepFool L∞", "linf", _presets(_DEEPFOOL_LIVE, _DEEPFOOL_PAPER),
               minimization=True, targetable=False, untargeted_why=_DEEPFOOL_WHY,
               description="DeepFool measured in L∞."),
    AttackInfo("cw", "Carlini-Wagner L2", "l2", _presets(
        {"eps": None, "steps": 100, "binary_search_steps": 3, "stepsize": 0.1, "initial_const": 1.0,
         "confidence": 0.0, "abort_early": True},
        {"eps": None, "steps": 200, "binary_search_steps": 6, "stepsize": 0.05, "initial_const": 0.1,
         "confidence": 0.0, "abort_early": True}),
        minimization=True, cost="slow",
        description="Carlini-Wagner L2: optimises the smallest L2 change that flips the class. Slow; run on demand."),
    AttackInfo("boundary", "Boundary (decision-based)", "l2", _presets(
        {"eps": None, "steps": 300, "start_steps": 20},  # started from an L-inf PGD point (BOUNDARY_START_EPS)
        {"eps": None, "steps": 5000, "start_steps": 40}),
        minimization=True, gradient=False, cost="slow",
        description="Boundary attack: needs only the predicted label (no gradients), starts from an adversarial "
                    "point and walks towards the original. Slow; run on demand."),
    # HopSkipJump (Chen et al. 2019): labels only, started from foolbox's blended-uniform-noise search.
    # Model calls per batch ~ sum over steps of min(initial * sqrt(step + 1), max) gradient probes plus ~20
    # per step for the binary search back to the boundary. Live (about 2,200 calls): 1.6 s of one CPU core for
    # one bundled MNIST sample on shipped classifier A, 5/5 fooled, L2 0.44-3.2 (C&W live: 0.29-2.4). Paper
    # (about 36,000 calls): 26 s for one image, L2 1.08 where live reached 1.41 (C&W live 1.08).
    AttackInfo("hsj", "HopSkipJump (decision-based)", "l2", _presets(
        {"eps": None, "steps": 15, "initial_gradient_eval_steps": 50, "max_gradient_eval_steps": 150},
        {"eps": None, "steps": 64, "initial_gradient_eval_steps": 100, "max_gradient_eval_steps": 10_000}),
        minimization=True, targetable=False, gradient=False, cost="slow", untargeted_why=_HSJ_WHY,
        description="HopSkipJump (Chen et al.): needs only the predicted label; estimates the gradient at the "
                    "decision boundary from label queries and walks towards the original. Slow; run on demand."),
)
ATTACKS: Mapping[str, AttackInfo] = MappingProxyType({a.name: a for a in _ENTRIES})

_THREATS = (
    ThreatInfo("whitebox", "White-box on classifier",
               description="Gradients of the classifier alone; the defense then purifies the result (paper Tables "
                           "1-3). This is NOT an attack on the defense."),
    ThreatInfo("blackbox", "Black-box transfer", needs_substitute=True,
               description="The attack runs on a substitute classifier and the result is transferred (paper "
                           "Tables 4-6)."),
    ThreatInfo("bpda", "Adaptive BPDA", end_to_end=True, needs_purifier=True,
               description="Backward Pass Differentiable Approximation: attack purifier + classifier end to end; the "
                           "hard quantizer H is used forward, its soft version H~ gives the gradient backward (paper "
                           "Table 7)."),
    ThreatInfo("bpda_eot", "Adaptive BPDA + EOT", end_to_end=True, needs_purifier=True, stochastic=True,
               description="BPDA + Expectation over Transformation: averages gradients over several stochastic "
                           "purifications. The adaptive attack a sceptical reviewer asks for; beyond the paper."),
)
THREATS: Mapping[str, ThreatInfo] = MappingProxyType({t.name: t for t in _THREATS})
END_TO_END: tuple[str, ...] = tuple(t.name for t in _THREATS if t.end_to_end)  # ("bpda", "bpda_eot")

NORMS: Mapping[str, Norm] = MappingProxyType({a.name: a.norm for a in _ENTRIES})
L2_ATTACKS: tuple[str, ...] = tuple(a.name for a in _ENTRIES if a.norm == "l2")
UNTARGETED_ONLY: tuple[str, ...] = tuple(a.name for a in _ENTRIES if not a.targetable)
SLOW_ATTACKS: tuple[str, ...] = tuple(a.name for a in _ENTRIES if a.cost == "slow")
MINIMIZATION: tuple[str, ...] = tuple(a.name for a in _ENTRIES if a.minimization)
PRESETS: Mapping[str, Mapping[str, Mapping[str, Any]]] = MappingProxyType(
    {p: MappingProxyType({a.name: a.presets[p] for a in _ENTRIES}) for p in PRESET_NAMES})


def is_slow(attack: str, threat: str, preset: str, steps: int | None = None) -> bool:
    """Whether the app runs this attack on demand (Run button, progress bar) rather than on every slider move.

    Slow: a slow attack, a stochastic threat (EOT), the paper preset, more than ``SLOW_STEPS`` steps, or more
    than ``SLOW_END_TO_END_STEPS`` through the purifier. ``steps`` None = the live preset's (1 if it has none).
    An unknown attack or threat counts as fast here; ``AttackSpec`` refuses it with a clear error.
    """
    info, t = ATTACKS.get(attack), THREATS.get(threat)
    n = steps or (info.live_steps if info else None) or 1
    return ((info is not None and info.cost == "slow") or (t is not None and t.stochastic) or preset == "paper"
            or n > SLOW_STEPS or (t is not None and t.end_to_end and n > SLOW_END_TO_END_STEPS))


__all__ = ["AttackInfo", "ThreatInfo", "ATTACKS", "THREATS", "END_TO_END", "PRESET_NAMES", "PRESETS", "NORMS",
           "MINIMIZATION", "BPDA_BACKWARDS", "EOT_MIN_STEPS", "EOT_CHECK_SAMPLES", "BOUNDARY_START_EPS", "L2_ATTACKS",
           "UNTARGETED_ONLY", "SLOW_ATTACKS", "SLOW_STEPS", "SLOW_END_TO_END_STEPS", "is_slow"]
