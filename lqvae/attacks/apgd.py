"""L-inf gradient attacks of our own, for the strongest-attack suite: PGD with a choice of loss, and APGD /
APGD-T (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", Algorithm 1), compact and in the style of foolbox (settings in a keyword-only
constructor, data at call time, images in [0, 1]).

Each attack takes ``model`` (images -> logits; for a defense, purifier -> classifier composed, see
:mod:`lqvae.attacks.models`) and returns :class:`Found`: the adversarial image per input (the first
iterate the model misclassified; the last iterate where none was) and whether one was found. A restart
attacks only the images still robust. Random starts draw from torch's global generator: seed it (the
suite does, per chunk and member) for repeatable results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import Tensor

from lqvae.attacks.losses import input_grad, loss_fn

Model = Callable[[Tensor], Tensor]


class Found(NamedTuple):
    adversarial: Tensor  # (B, C, H, W) in [0, 1], within eps of the input
    success: Tensor  # (B,) bool, as judged by the attacked model


def project(xa: Tensor, x: Tensor, eps: float) -> Tensor:
    """``xa`` clipped into the L-inf ball of radius eps around ``x`` and into [0, 1]."""
    return torch.min(torch.max(xa, x - eps), x + eps).clamp(0.0, 1.0)


def _restarting(run: Callable[[Tensor, int], Found], x: Tensor, runs: int) -> Found:
    """``run(todo, r)`` for r < runs, each time on the images (indices ``todo``) no earlier run broke."""
    adv, success = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for r in range(runs):
        todo = (~success).nonzero().squeeze(1)
        if not len(todo):
            break
        found = run(todo, r)
        adv[todo], success[todo] = found.adversarial, found.success
    return Found(adv, success)


class FirstHit:
    """The first misclassified iterate of each image."""

    def __init__(self, x: Tensor) -> None:
        self.adv = x.clone()
        self.found = torch.zeros(len(x), dtype=torch.bool, device=x.device)

    def see(self, xa: Tensor, logits: Tensor, y: Tensor) -> None:
        new = (logits.argmax(1) != y) & ~self.found
        self.adv[new] = xa[new]
        self.found |= new

    def result(self, last: Tensor) -> Found:
        return Found(torch.where(self.found[:, None, None, None], self.adv, last), self.found.clone())


@dataclass(frozen=True, kw_only=True)
class PGD:
    """L-inf PGD (Madry et al. 2018) with cross-entropy or the CW margin loss.

    Args:
        eps: L-inf budget.
        steps: signed-gradient steps per start.
        stepsize: absolute step.
        loss: ``"ce"`` or ``"cw"`` (any key of :data:`lqvae.attacks.losses.LOSSES` but the targeted one).
        restarts: starts; each attacks only the images still robust.
        random_start: start uniformly in the ball (False: from the image, e.g. FGSM = 1 step of eps).
        first_hit: return the first iterate the model misclassifies (False: always the last iterate, e.g.
            for a transfer attack, whose own model's verdict is not the one that counts).
    """

    eps: float
    steps: int
    stepsize: float
    loss: str = "ce"
    restarts: int = 1
    random_start: bool = True
    first_hit: bool = True

    def __call__(self, model: Model, x: Tensor, y: Tensor) -> Found:
        return _restarting(lambda todo, r: self._run(model, x[todo], y[todo]), x, self.restarts)

    def _run(self, model: Model, x: Tensor, y: Tensor) -> Found:
        loss = loss_fn(self.loss)
        xa = project(x + self.eps * (2 * torch.rand_like(x) - 1), x, self.eps) if self.random_start else x.clone()
        best = FirstHit(x)
        for _ in range(self.steps):
            _, logits, grad = input_grad(model, xa, y, loss)
            best.see(xa, logits, y)
            xa = project(xa + self.stepsize * grad.sign(), x, self.eps)
        with torch.no_grad():
            logits = model(xa)
        if not self.first_hit:
            return Found(xa, logits.argmax(1) != y)
        best.see(xa, logits, y)
        return best.result(xa)


@dataclass(frozen=True, kw_only=True)
class APGD:
    """APGD (Croce & Hein 2020), L-inf: step size 2 eps halved at checkpoints when progress stalls,
    momentum 0.75, restart from the best point; untargeted with cross-entropy, or APGD-T with the
    targeted DLR loss against the runner-up classes.

    Args:
        eps: L-inf budget.
        steps: iterations per run.
        loss: ``"ce"`` (untargeted) or ``"dlr_t"`` (APGD-T).
        restarts: random starts (``"ce"``) or target classes, the 2nd, 3rd, ... most likely of the clean
            logits (``"dlr_t"``); each run attacks only the images still robust.
        rho: the share of increasing steps below which a checkpoint halves the step.
    """

    eps: float
    steps: int
    loss: str = "ce"
    restarts: int = 1
    rho: float = 0.75

    def __call__(self, model: Model, x: Tensor, y: Tensor) -> Found:
        if self.loss != "dlr_t":
            return _restarting(lambda todo, r: self._run(model, x[todo], y[todo], None), x, self.restarts)
        with torch.no_grad():
            logits = model(x)
        # run r aims image i at its (r + 1)-th most likely other class
        ranked = logits.scatter(1, y[:, None], float("-inf")).argsort(1, descending=True)  # (B, K), y last
        return _restarting(lambda todo, r: self._run(model, x[todo], y[todo], ranked[todo, r]), x,
                           min(self.restarts, logits.shape[1] - 1))

    def _run(self, model: Model, x: Tensor, y: Tensor, target: Tensor | None) -> Found:
        loss = loss_fn(self.loss)
        n = self.steps
        k, k_min, k_decr = max(int(0.22 * n), 1), max(int(0.06 * n), 1), max(int(0.03 * n), 1)
        t = 2 * torch.rand_like(x) - 1
        xa = project(x + self.eps * t / t.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1, 1), x, self.eps)
        value, logits, grad = input_grad(model, xa, y, loss, target)
        best = FirstHit(x)
        best.see(xa, logits, y)
        x_top, loss_top, grad_top = xa.clone(), value.clone(), grad.clone()
        step = torch.full((len(x), 1, 1, 1), 2.0 * self.eps, device=x.device)
        x_old, prev = xa.clone(), value.clone()
        loss_at_check, reduced_at_check = loss_top.clone(), torch.ones(len(x), dtype=torch.bool, device=x.device)
        increases = torch.zeros(len(x), device=x.device)
        since = 0
        for i in range(n):
            a = 0.75 if i > 0 else 1.0
            z = project(xa + step * grad.sign(), x, self.eps)
            xa, x_old = project(xa + a * (z - xa) + (1 - a) * (xa - x_old), x, self.eps), xa
            value, logits, grad = input_grad(model, xa, y, loss, target)
            best.see(xa, logits, y)
            up = value > loss_top
            x_top[up], grad_top[up], loss_top = xa[up], grad[up], torch.where(up, value, loss_top)
            increases += (value > prev).float()
            prev = value
            since += 1
            if since == k:  # a checkpoint: halve the step where progress stalled, go back to the best point
                reduce = (increases <= self.rho * k) | (~reduced_at_check & (loss_at_check >= loss_top))
                step[reduce] /= 2.0
                xa[reduce], grad[reduce] = x_top[reduce], grad_top[reduce]
                reduced_at_check, loss_at_check = reduce, loss_top.clone()
                increases.zero_()
                k, since = max(k - k_decr, k_min), 0
        return best.result(xa)


def fgsm(eps: float) -> PGD:
    """FGSM as one PGD step of size eps from the image."""
    return PGD(eps=eps, steps=1, stepsize=eps, random_start=False)


__all__ = ["Found", "FirstHit", "PGD", "APGD", "fgsm", "project"]
