"""What to attack with, how hard and under which threat model (:class:`AttackSpec`), and what came out
(:class:`AttackResult`). The attacks' facts (norms, presets, targeting) come from :mod:`lqvae.spec.attacks`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lqvae.io import validate as check
from lqvae.io.validate import InputError
from lqvae.spec.attacks import ATTACKS, BPDA_BACKWARDS, EOT_MIN_STEPS, PRESET_NAMES, THREATS


@dataclass(frozen=True)
class AttackSpec:
    """What to attack with, how hard, and under which threat model.

    Every field is checked on construction (:class:`lqvae.io.validate.InputError` names the field); what
    depends on the models (target < K, an L2 eps within the image's size, a purifier for BPDA, a
    substitute for blackbox) is checked by :func:`attack_setup` when the attack runs.

    Args:
        attack: a key of :data:`lqvae.spec.attacks.ATTACKS` (``deepfool`` is L2 DeepFool, ``boundary`` is
            foolbox's BoundaryAttack started from an L-inf PGD point, ``hsj`` is HopSkipJump).
        eps: L-inf budget for L-inf attacks (in (0, 1]), L2 budget for L2 attacks; None = the preset's
            (0.3 for the L-inf attacks, unbounded for the minimization attacks).
        steps: iterations (PGD/BIM steps, DeepFool max steps, C&W steps per binary-search step,
            Boundary and HopSkipJump steps), 1 to ``validate.MAX_STEPS``; None = the preset's. Ignored by FGSM.
        preset: ``"live"`` (one image, interactive) or ``"paper"`` (the tables' strength).
        targeted: aim for class ``target`` instead of any wrong class (not DeepFool, not HopSkipJump).
        target: the target class when ``targeted``.
        threat: a key of :data:`lqvae.spec.attacks.THREATS`.
        bpda_backward: backward of H for the end-to-end threats: ``"bpda"`` (dH~/dz) or
            ``"straight_through"`` (identity).
        eot_samples: stochastic draws averaged per model call for ``bpda_eot``.
        restarts: attack repeats (random starts), the first success is kept.
        seed: seed of foolbox's random starts and the stochastic purifier's draws.
    """

    attack: str = "fgsm"
    eps: float | None = None
    steps: int | None = None
    preset: str = "live"
    targeted: bool = False
    target: int | None = None
    threat: str = "whitebox"
    bpda_backward: str = "bpda"
    eot_samples: int = 8
    restarts: int = 1
    seed: int = 0

    def __post_init__(self) -> None:  # every field checked here; what needs the models: attack_setup
        check.choice(self.attack, "spec.attack", tuple(ATTACKS))
        check.choice(self.threat, "spec.threat", tuple(THREATS))
        check.choice(self.preset, "spec.preset", PRESET_NAMES)
        check.choice(self.bpda_backward, "spec.bpda_backward", BPDA_BACKWARDS)
        if self.eps is not None:
            eps = check.real(self.eps, "spec.eps")
            if not eps > 0:
                raise InputError(f"spec.eps: expected eps > 0 or None (preset default), got {self.eps}")
            if self.norm == "linf" and eps > 1:
                raise InputError(f"spec.eps: expected an L-inf budget in (0, 1] (pixels are in [0, 1]), got {eps}")
        if self.steps is not None:
            check.integer(self.steps, "spec.steps", low=1, high=check.MAX_STEPS)
        check.integer(self.eot_samples, "spec.eot_samples", low=1, high=check.MAX_SAMPLES)
        check.integer(self.restarts, "spec.restarts", low=1, high=check.MAX_RESTARTS)
        check.integer(self.seed, "spec.seed", low=0, high=2**63 - 1)
        if not isinstance(self.targeted, (bool, np.bool_)):
            raise InputError(f"spec.targeted: expected True or False, got {self.targeted!r}")
        if self.targeted and self.target is None:
            raise InputError("spec.target: targeted=True needs target=<class index>; set target or use targeted=False")
        if self.targeted:
            check.label(self.target, "spec.target")
        if self.targeted and not ATTACKS[self.attack].targetable:
            raise InputError(f"spec.targeted: {ATTACKS[self.attack].untargeted_why}")

    @property
    def norm(self) -> str:
        """``"linf"`` or ``"l2"``: the norm ``eps`` is measured in."""
        return ATTACKS[self.attack].norm


@dataclass
class AttackResult:
    """Outcome of :func:`lqvae.attacks.runners.run_attack` for a batch of B images (plain numpy).

    ``adversarial`` is foolbox's clipped output and equals the input where the attack failed;
    ``success`` is judged against the model that was attacked (for ``bpda_eot`` on fresh draws);
    ``messages[i]`` is ``""`` for an image that went fine, else why it failed.
    """

    adversarial: np.ndarray  # (B, C, H, W) float32 in [0, 1]
    success: np.ndarray  # (B,) bool
    failed: np.ndarray  # (B,) bool
    linf: np.ndarray  # (B,) float32
    l2: np.ndarray  # (B,) float32
    seconds: float
    messages: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # the resolved settings (see attack_params)


def attack_params(spec: AttackSpec) -> dict[str, Any]:
    """The settings ``spec`` resolves to: its preset's, overridden by ``eps``/``steps``, plus EOT's minimum."""
    info, threat = ATTACKS[spec.attack], THREATS[spec.threat]
    params = info.preset(spec.preset)
    if spec.eps is not None:
        params["eps"] = float(spec.eps)
    if spec.steps is not None and "steps" in params:  # single-step attacks (FGSM) ignore steps
        params["steps"] = int(spec.steps)
    if threat.stochastic and spec.preset == "paper" and info.eot_min_steps and spec.steps is None:
        params["steps"] = max(params["steps"], EOT_MIN_STEPS)
    params.update(attack=spec.attack, norm=spec.norm, threat=spec.threat, preset=spec.preset,
                  restarts=spec.restarts, targeted=spec.targeted)
    if threat.end_to_end:
        params["bpda_backward"] = spec.bpda_backward
    if threat.stochastic:
        params["eot_samples"] = spec.eot_samples
    return params


def attack_setup(spec: AttackSpec, *, purifier: Any, substitute: Any,
                 num_classes: int | None, pixels: int | None, own_labels: list[int] | None = None) -> None:
    """What ``spec`` needs beyond its own fields (checked in ``AttackSpec.__post_init__``).

    Args:
        purifier, substitute: the models passed beside the spec.
        num_classes: the classifier's K (None = unknown, the target is not range-checked).
        pixels: C * H * W of the images, bounding an L2 eps (None = unknown).
        own_labels: the class of a single-image analysis, to refuse a target equal to it.
    """
    if not isinstance(spec, AttackSpec):
        raise InputError(f"spec: expected an lqvae.attacks.runners.AttackSpec or None, got {type(spec).__name__}")
    threat = THREATS[spec.threat]
    if threat.needs_substitute and substitute is None:
        raise InputError(f"spec.threat {spec.threat!r} attacks a substitute classifier: pass substitute=<classifier> "
                         "(e.g. classifier B when defending A)")
    if threat.needs_purifier and purifier is None:
        raise InputError(f"spec.threat {spec.threat!r} attacks purifier and classifier end to end: pass "
                         "purifier=<LQVAE>, or use threat 'whitebox' for the classifier alone")
    if spec.eps is not None and spec.norm == "l2" and pixels is not None and spec.eps > math.sqrt(pixels):
        raise InputError(f"spec.eps: expected an L2 budget <= {math.sqrt(pixels):.4g} (the largest L2 distance "
                         f"between two images of {pixels} pixels in [0, 1]), got {spec.eps}; use eps=None for "
                         "unbounded")
    if spec.targeted:
        check.label(spec.target, "spec.target", num_classes=num_classes)
        for y in own_labels or []:
            if y == spec.target:
                raise InputError(f"spec.target: the target class {spec.target} is the image's own class {y}; a "
                                 "targeted attack must aim at another class (or use targeted=False)")


__all__ = ["AttackSpec", "AttackResult", "attack_params", "attack_setup"]
