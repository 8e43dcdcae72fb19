"""An attack on the quantizer itself: push each mu_j across its threshold +-eta towards a target code.

The LQ-VAE's defense is that a small input change rarely flips a bit of H(mu) (Theorem 1). This attack
goes for the bits directly: for a target code t (bit j is +1 where |mu_j| <= eta), it minimises the
margin loss on mu

    sum_j  relu(|mu_j| - (eta - kappa))   where t_j = +1 (pull mu_j inside the band),
           relu((eta + kappa) - |mu_j|)   where t_j = -1 (push it out),

with signed-gradient steps in the L-inf ball. The gradient is the encoder's own (no surrogate for H is
involved); success is the REAL purified prediction g(H(mu)) -> classifier. The target of an image is the
code of the nearest (Hamming) image of another class that the defense classifies correctly
(:func:`nearest_other_codes`), as in the independent evaluation of issue 18.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from lqvae.attacks.apgd import Found, FirstHit, project

Encode = Callable[[Tensor], Tensor]  # images (B, C, H, W) -> mu (B, M)
ClassifyCode = Callable[[Tensor], Tensor]  # mu (B, M) -> logits of the real purified prediction


def code_bits(mu: Tensor, eta: float) -> Tensor:
    """The code as booleans (B, M): True where H(mu) = +1, i.e. |mu| <= eta."""
    return mu.abs() <= eta


def nearest_other_codes(codes: Tensor, labels: Tensor, usable: Tensor) -> tuple[Tensor, Tensor]:
    """For every image, the code of the nearest usable image of another class.

    Args:
        codes: (N, M) bool codes.
        labels: (N,) classes.
        usable: (N,) bool, images whose code may be a target (e.g. those the defense classifies correctly).

    Returns:
        (targets (N, M) bool, has_target (N,) bool); ties go to the lower index.
    """
    a = codes.float()
    same = a @ a.T + (1 - a) @ (1 - a).T  # (N, N) agreeing bits
    dist = codes.shape[1] - same
    bad = (labels[:, None] == labels[None, :]) | ~usable[None, :]
    dist = dist.masked_fill(bad, float("inf"))
    nearest = dist.argmin(1)
    return codes[nearest], torch.isfinite(dist.gather(1, nearest[:, None]).squeeze(1))


def bits_loss(mu: Tensor, target: Tensor, eta: float, kappa: float) -> Tensor:
    """Per image (B,): how far mu is from having code ``target`` with margin ``kappa``."""
    inside = torch.relu(mu.abs() - (eta - kappa))
    outside = torch.relu((eta + kappa) - mu.abs())
    return torch.where(target, inside, outside).sum(1)


@dataclass(frozen=True, kw_only=True)
class LatentAttack:
    """Signed-gradient descent of :func:`bits_loss` in the L-inf ball.

    Args:
        eps: L-inf budget.
        steps: iterations.
        stepsize: absolute step.
        kappa: margin past the threshold, in mu units.
    """

    eps: float
    steps: int = 100
    stepsize: float = 0.01
    kappa: float = 0.05

    def __call__(self, encode: Encode, x: Tensor, y: Tensor, target: Tensor, *, eta: float,
                 classify: ClassifyCode | None = None) -> Found:
        """Attack ``x`` (labels ``y``) towards the codes ``target`` (B, M) bool.

        ``classify`` gives the real purified logits from mu, checked at every step (the first
        misclassified iterate is kept); without it the last iterate is returned, unjudged (success False).
        """
        xa, best = x.clone(), FirstHit(x)
        for _ in range(self.steps):
            xr = xa.detach().requires_grad_(True)
            with torch.enable_grad():
                mu = encode(xr)
                (grad,) = torch.autograd.grad(bits_loss(mu, target, eta, self.kappa).sum(), xr)
            if classify is not None:
                with torch.no_grad():
                    best.see(xa, classify(mu.detach()), y)
            xa = project(xa - self.stepsize * grad.sign(), x, self.eps)
        if classify is not None:
            with torch.no_grad():
                best.see(xa, classify(encode(xa)), y)
        return best.result(xa)


__all__ = ["LatentAttack", "code_bits", "nearest_other_codes", "bits_loss"]
