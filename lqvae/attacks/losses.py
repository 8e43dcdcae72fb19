"""Per-image attack losses on logits (B, K), each larger when the image is closer to adversarial.

* ``ce``: cross-entropy of the true class;
* ``cw``: the CW margin max_{j != y} z_j - z_y (Carlini & Wagner 2017), positive once misclassified;
* ``dlr_t``: the targeted Difference of Logits Ratio of Croce & Hein (2020),
  -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), invariant to the logits' scale (needs K >= 4).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

Loss = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]  # (logits, labels, targets) -> (B,)


def ce(logits: Tensor, y: Tensor, target: Tensor | None = None) -> Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """max_{j != y} z_j - z_y (B,): > 0 exactly when the image is misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return other - true


def cw(logits: Tensor, y: Tensor, target: Tensor | None = None) -> Tensor:
    return margin(logits, y)


def dlr_t(logits: Tensor, y: Tensor, target: Tensor | None = None) -> Tensor:
    if target is None:
        raise ValueError("the targeted DLR loss needs target classes")
    if logits.shape[1] < 4:
        raise ValueError(f"the targeted DLR loss needs at least 4 classes, got {logits.shape[1]}")
    top = logits.sort(1, descending=True).values
    zy, zt = logits.gather(1, y[:, None]).squeeze(1), logits.gather(1, target[:, None]).squeeze(1)
    return -(zy - zt) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


LOSSES: dict[str, Loss] = {"ce": ce, "cw": cw, "dlr_t": dlr_t}


def loss_fn(name: str) -> Loss:
    if name not in LOSSES:
        raise ValueError(f"expected a loss in {tuple(LOSSES)}, got {name!r}")
    return LOSSES[name]


def input_grad(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, loss: Loss,
               target: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(per-image loss, logits, gradient of the summed loss w.r.t. x), all detached."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        values = loss(logits, y, target)
        (grad,) = torch.autograd.grad(values.sum(), x)
    return values.detach(), logits.detach(), grad.detach()


__all__ = ["LOSSES", "Loss", "ce", "cw", "dlr_t", "margin", "loss_fn", "input_grad"]
