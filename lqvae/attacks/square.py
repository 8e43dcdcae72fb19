"""Square attack, L-inf (Andriushchenko et al. 2020): score-based, it queries the model's logits and never
its gradient, so a defense that only masks gradients does not stop it. In the suite it is the
masked-gradient check (Carlini et al. 2019: a score-based attack must not beat the gradient-based ones).

Random search: start from vertical stripes of +-eps, then per query redraw one square window of the
perturbation to +-eps per channel and keep it when the margin loss improves. The window's share of the
image shrinks on the paper's schedule (``p_init`` halved at fixed fractions of the query budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lqvae.attacks.apgd import Found, Model, project
from lqvae.attacks.losses import margin


def square_share(p_init: float, it: int, queries: int) -> float:
    """The paper's schedule: ``p_init`` halved at 10, 50, 200, 500, 1k, 2k, 4k, 6k, 8k of 10k queries."""
    t = int(it / queries * 10_000)
    for k, edge in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)):
        if t <= edge:
            return p_init / 2**k
    return p_init / 2**9


def _signs(*shape: int, device: torch.device) -> Tensor:
    return torch.randint(0, 2, shape, device=device).float() * 2 - 1


@dataclass(frozen=True, kw_only=True)
class SquareLinf:
    """L-inf Square attack, untargeted, margin loss.

    Args:
        eps: L-inf budget.
        queries: model queries per image (the first is the stripes start).
        p_init: initial share of the image a window covers (0.8 for MNIST in the paper, 0.05 for ImageNet).
    """

    eps: float
    queries: int = 1000
    p_init: float = 0.8

    @torch.no_grad()
    def __call__(self, model: Model, x: Tensor, y: Tensor) -> Found:
        b, c, h, w = x.shape
        xa = project(x + self.eps * _signs(b, c, 1, w, device=x.device), x, self.eps)
        score = margin(model(xa), y)  # > 0: misclassified
        for it in range(self.queries - 1):
            todo = (score <= 0).nonzero().squeeze(1)
            if not len(todo):
                break
            side = min(max(int(round(math.sqrt(square_share(self.p_init, it, self.queries) * h * w))), 1), h - 1)
            top = int(torch.randint(0, h - side + 1, (1,)))
            left = int(torch.randint(0, w - side + 1, (1,)))
            xs = x[todo]
            delta = xa[todo] - xs
            delta[:, :, top:top + side, left:left + side] = self.eps * _signs(len(todo), c, 1, 1, device=x.device)
            cand = project(xs + delta, xs, self.eps)
            new = margin(model(cand), y[todo])
            better = new > score[todo]
            xa[todo[better]], score[todo[better]] = cand[better], new[better]
        return Found(xa, score > 0)


__all__ = ["SquareLinf", "square_share"]
