"""One builder per attack: the foolbox 3.3.4 attack object for an :class:`AttackSpec` and its settings.

``BUILDERS`` maps every key of :data:`lqvae.spec.attacks.ATTACKS` to a function ``(spec, params) -> Built``:
the foolbox attack, how many model calls one batch needs (for progress; an upper bound for the attacks
that stop early) and, for the attacks foolbox must start from adversarial points, how to find them.
Adding an attack: an ``AttackInfo`` in :mod:`lqvae.spec.attacks` (name, label, norm, presets ...) and one
``@builder("name")`` function here; ``tests/engine/test_spec.py`` checks the two lists agree.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import foolbox as fb
import torch
from torch import Tensor

from lqvae.spec.attacks import ATTACKS, BOUNDARY_START_EPS

if TYPE_CHECKING:
    from lqvae.attacks.settings import AttackSpec

Params = dict[str, Any]
Note = Callable[[int, str], None]  # (image index in the batch, why it failed)
# (params, fmodel, images, criterion, note) -> (starting points, found mask); images without one get a note
StartFinder = Callable[[Params, fb.PyTorchModel, Tensor, fb.criteria.Criterion, Note], tuple[Tensor, Tensor]]


class Built(NamedTuple):
    attack: fb.attacks.Attack
    calls: int  # model calls for one batch (an upper bound for early-stopping attacks), without restarts
    starts: StartFinder | None = None  # adversarial starting points, for attacks foolbox cannot start itself


Builder = Callable[["AttackSpec", Params], Built]
BUILDERS: dict[str, Builder] = {}


def builder(name: str) -> Callable[[Builder], Builder]:
    """Register the builder of attack ``name`` (which must have an entry in ``lqvae.spec.attacks.ATTACKS``)."""
    if name not in ATTACKS:
        raise KeyError(f"attack {name!r} has no entry in lqvae.spec.attacks.ATTACKS; add its AttackInfo there first")

    def register(fn: Builder) -> Builder:
        BUILDERS[name] = fn
        return fn
    return register


# ----------------------------------------------------------------------------- gradient-based
@builder("fgsm")
def _fgsm(spec: AttackSpec, p: Params) -> Built:
    if spec.targeted:  # foolbox's FGSM refuses targeted criteria; one BIM step of size eps is the same update
        return Built(fb.attacks.LinfBasicIterativeAttack(abs_stepsize=p["eps"], steps=1, random_start=False), 1)
    return Built(fb.attacks.LinfFastGradientAttack(random_start=False), 1)


@builder("bim")
def _bim(spec: AttackSpec, p: Params) -> Built:
    return Built(fb.attacks.LinfBasicIterativeAttack(abs_stepsize=p["stepsize"], steps=p["steps"], random_start=False),
                 p["steps"])


@builder("pgd")
def _pgd(spec: AttackSpec, p: Params) -> Built:
    return Built(fb.attacks.LinfProjectedGradientDescentAttack(abs_stepsize=p["stepsize"], steps=p["steps"],
                                                               random_start=True), p["steps"])


def _deepfool_calls(p: Params) -> int:
    return p["steps"] * (p["candidates"] - 1) // 2  # DeepFool stops early; half the worst case


@builder("deepfool")
def _deepfool(spec: AttackSpec, p: Params) -> Built:
    return Built(fb.attacks.L2DeepFoolAttack(steps=p["steps"], candidates=p["candidates"], overshoot=p["overshoot"]),
                 _deepfool_calls(p))


@builder("deepfool_linf")
def _deepfool_linf(spec: AttackSpec, p: Params) -> Built:
    return Built(fb.attacks.LinfDeepFoolAttack(steps=p["steps"], candidates=p["candidates"], overshoot=p["overshoot"]),
                 _deepfool_calls(p))


@builder("cw")
def _cw(spec: AttackSpec, p: Params) -> Built:
    atk = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=p["binary_search_steps"], steps=p["steps"],
                                           stepsize=p["stepsize"], confidence=p["confidence"],
                                           initial_const=p["initial_const"], abort_early=p["abort_early"])
    return Built(atk, p["binary_search_steps"] * p["steps"] // 2)


# ----------------------------------------------------------------------------- decision-based
def _pgd_starts(p: Params, fmodel: fb.PyTorchModel, x: Tensor, criterion: fb.criteria.Criterion,
                note: Note) -> tuple[Tensor, Tensor]:
    """L-inf PGD points at growing eps (``BOUNDARY_START_EPS``) as Boundary's adversarial starts."""
    start, found = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for eps in BOUNDARY_START_EPS:
        todo = ~found
        if not todo.any():
            break
        pgd = fb.attacks.LinfProjectedGradientDescentAttack(abs_stepsize=eps / 10, steps=p["start_steps"])
        _, adv, ok = pgd(fmodel, x[todo], subset_criterion(criterion, todo), epsilons=eps)
        idx = todo.nonzero().squeeze(1)
        start[idx[ok]] = adv[ok]
        found[idx[ok]] = True
    for i in (~found).nonzero().squeeze(1).tolist():
        note(i, f"no adversarial starting point: L-inf PGD failed up to eps {BOUNDARY_START_EPS[-1]}")
    return start, found


@builder("boundary")
def _boundary(spec: AttackSpec, p: Params) -> Built:
    # foolbox's Boundary needs adversarial starting points: L-inf PGD ones (see _pgd_starts)
    return Built(fb.attacks.BoundaryAttack(steps=p["steps"]), p["start_steps"] + int(p["steps"] * 1.1) + 2,
                 _pgd_starts)


HSJ_INIT_CALLS = 80  # blended-noise start (<= 50 blends + a few noise draws) and the first binary search
HSJ_CALLS_PER_STEP = 20  # binary search back to the boundary (~15 for 28 x 28), step-size search, checks


@builder("hsj")
def _hsj(spec: AttackSpec, p: Params) -> Built:
    # Decision-based, labels only; starts from foolbox's blended uniform noise (its default init_attack).
    atk = fb.attacks.HopSkipJumpAttack(
        init_attack=fb.attacks.LinearSearchBlendedUniformNoiseAttack(steps=50), steps=p["steps"],
        initial_gradient_eval_steps=p["initial_gradient_eval_steps"],
        max_gradient_eval_steps=p["max_gradient_eval_steps"], constraint=ATTACKS["hsj"].norm)
    probes = sum(min(int(p["initial_gradient_eval_steps"] * math.sqrt(s + 1)), p["max_gradient_eval_steps"])
                 for s in range(p["steps"]))
    return Built(atk, HSJ_INIT_CALLS + probes + HSJ_CALLS_PER_STEP * p["steps"])


# ----------------------------------------------------------------------------- running one
def build(spec: AttackSpec, params: Params) -> Built:
    """The built attack for ``spec`` (foolbox's ``repeat`` for ``restarts`` > 1)."""
    built = BUILDERS[spec.attack](spec, params)
    return built._replace(attack=built.attack.repeat(spec.restarts)) if spec.restarts > 1 else built


def criterion(spec: AttackSpec, labels: Tensor) -> fb.criteria.Criterion:
    if spec.targeted:
        return fb.criteria.TargetedMisclassification(torch.full_like(labels, int(spec.target)))  # type: ignore[arg-type]
    return fb.criteria.Misclassification(labels)


def subset_criterion(crit: fb.criteria.Criterion, mask: Tensor) -> fb.criteria.Criterion:
    if isinstance(crit, fb.criteria.TargetedMisclassification):
        return fb.criteria.TargetedMisclassification(crit.target_classes.raw[mask])
    return fb.criteria.Misclassification(crit.labels.raw[mask])  # type: ignore[attr-defined]


def run_foolbox(spec: AttackSpec, params: Params, fmodel: fb.PyTorchModel, x: Tensor, labels: Tensor,
                note: Note) -> Tensor:
    """foolbox's clipped adversarials for the batch (images without a starting point keep their input)."""
    built = build(spec, params)
    crit = criterion(spec, labels)
    if built.starts is None:
        _, adv, _ = built.attack(fmodel, x, crit, epsilons=params["eps"])
        return adv
    start, found = built.starts(params, fmodel, x, crit, note)
    out = x.clone()
    if found.any():
        _, adv, _ = built.attack(fmodel, x[found], subset_criterion(crit, found), epsilons=params["eps"],
                                 starting_points=start[found])
        out[found] = adv
    return out


__all__ = ["BUILDERS", "Built", "builder", "build", "criterion", "run_foolbox"]
