"""Training inputs for the robust purifiers (issue 7): clean, randomly perturbed and adversarial rows.

A batch of B clean images is split into rows the encoder sees differently; every reconstruction
target stays the clean image:

* with ``sources`` (adversarial training, labelled apart from the paper's method): half the batch is
  replaced by L-inf attacks at ``eps``, shared equally among the sources, a quarter gets uniform noise
  of ``input_noise`` (when > 0) and the rest stays clean;
* without sources (the ``lqvae_robust`` lever, no attack): half the batch gets the uniform noise.

Sources: ``"classifier"`` attacks the classifier alone (the grey-box attacker's examples, the paper's
Madry remark), ``"pipeline"`` attacks purifier + classifier end to end with BPDA through H (the
adaptive attacker's examples). ``steps=1`` is FGSM; more steps is PGD with a random start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lqvae.core.models import LQVAE, Defended

ADV_SOURCES = ("classifier", "pipeline")


def pgd_linf(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *, eps: float, steps: int,
             step_size: float, random_start: bool = True) -> Tensor:
    """L-inf PGD on the cross-entropy (Madry et al.), inside [0, 1]; ``steps=1`` without a random
    start and ``step_size=eps`` is FGSM. The model's train/eval mode is the caller's."""
    x = x.detach()
    adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1) if random_start else x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(adv), y), adv)
        adv = torch.min(torch.max(adv.detach() + step_size * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return adv.detach()


def linf_attack(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *, eps: float, steps: int) -> Tensor:
    """FGSM for ``steps == 1``; else PGD with a random start and step 2.5 * eps / steps."""
    if steps == 1:
        return pgd_linf(model, x, y, eps=eps, steps=1, step_size=eps, random_start=False)
    return pgd_linf(model, x, y, eps=eps, steps=steps, step_size=2.5 * eps / steps)


@dataclass(frozen=True)
class AdvInputs:
    """How the encoder's inputs are made from a clean batch.

    Args:
        sources: attacks whose examples replace half the batch, a subset of ``ADV_SOURCES``; empty
            for no adversarial rows.
        eps: L-inf budget of those attacks.
        steps: 1 = FGSM, more = PGD with a random start.
        input_noise: uniform noise amplitude for the noise rows (0 = none).
    """

    sources: tuple[str, ...] = ()
    eps: float = 0.3
    steps: int = 1
    input_noise: float = 0.0

    def __post_init__(self) -> None:
        unknown = [s for s in self.sources if s not in ADV_SOURCES]
        if unknown:
            raise ValueError(f"unknown adversarial source(s) {unknown}; expected a subset of {ADV_SOURCES}")
        if len(set(self.sources)) != len(self.sources):
            raise ValueError(f"adversarial sources repeat: {self.sources}")
        if not 0 < self.eps <= 1:
            raise ValueError(f"expected 0 < eps <= 1, got {self.eps}")
        if self.steps < 1:
            raise ValueError(f"expected steps >= 1, got {self.steps}")
        if self.input_noise < 0:
            raise ValueError(f"expected input_noise >= 0, got {self.input_noise}")

    @classmethod
    def parse(cls, spec: str, **kwargs: float | int) -> "AdvInputs":
        """``"none"``, ``"classifier"``, ``"pipeline"`` or ``"classifier,pipeline"``."""
        sources = () if spec in ("", "none") else tuple(s.strip() for s in spec.split(","))
        return cls(sources=sources, **kwargs)  # type: ignore[arg-type]


def adversarial_rows(purifier: LQVAE, classifier: nn.Module, x: Tensor, y: Tensor, *, source: str,
                     eps: float, steps: int) -> Tensor:
    """Attack examples of one source; the purifier's grad mode is restored afterwards (BPDA during the attack)."""
    if source not in ADV_SOURCES:
        raise ValueError(f"unknown adversarial source {source!r}; expected one of {ADV_SOURCES}")
    if source == "classifier":
        return linf_attack(classifier, x, y, eps=eps, steps=steps)
    previous = purifier.quantizer.grad_mode
    purifier.set_grad_mode("bpda")
    try:
        return linf_attack(Defended(purifier, classifier), x, y, eps=eps, steps=steps)
    finally:
        purifier.set_grad_mode(previous)


def training_inputs(spec: AdvInputs, purifier: LQVAE, classifier: nn.Module | None, x: Tensor,
                    y: Tensor) -> tuple[Tensor, Tensor]:
    """(x_in, perturbed): the encoder's inputs for clean batch ``x`` and the (B,) mask of changed rows.

    Row order follows ``x``: the first rows are the adversarial ones (sources in order), then noise,
    then clean (batches are shuffled already).
    """
    b = x.shape[0]
    parts: list[Tensor] = []
    start = 0
    if spec.sources:
        if classifier is None:
            raise ValueError("adversarial training inputs need a classifier to attack (--adv-classifier)")
        share = (b // 2) // len(spec.sources)
        for source in spec.sources:
            rows = slice(start, start + share)
            parts.append(adversarial_rows(purifier, classifier, x[rows], y[rows], source=source, eps=spec.eps,
                                          steps=spec.steps))
            start += share
    n_noise = 0
    if spec.input_noise > 0:
        n_noise = b // 4 if spec.sources else b // 2
        noisy = x[start:start + n_noise]
        parts.append((noisy + torch.empty_like(noisy).uniform_(-spec.input_noise, spec.input_noise)).clamp(0, 1))
    perturbed = torch.zeros(b, dtype=torch.bool, device=x.device)
    perturbed[:start + n_noise] = True
    parts.append(x[start + n_noise:])
    return torch.cat(parts), perturbed


@torch.no_grad()
def _predict(model: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    return model(x).argmax(1)


def quick_robustness(purifier: LQVAE, classifier: nn.Module, x: Tensor, y: Tensor, *, eps: float = 0.3,
                     batch_size: int = 250) -> dict[str, float]:
    """Per-epoch progress figures on a few test images (FGSM only; the evaluation CLI gives the real ones):
    grey-box FGSM (on the classifier, then purified) and BPDA FGSM (end to end), accuracy in percent."""
    grey = bpda = 0
    defended = Defended(purifier, classifier)
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        adv = adversarial_rows(purifier, classifier, xb, yb, source="classifier", eps=eps, steps=1)
        grey += int((_predict(defended, adv) == yb).sum())
        adv = adversarial_rows(purifier, classifier, xb, yb, source="pipeline", eps=eps, steps=1)
        bpda += int((_predict(defended, adv) == yb).sum())
    n = max(1, len(x))
    return {f"greybox_fgsm_{len(x)}": 100.0 * grey / n, f"bpda_fgsm_{len(x)}": 100.0 * bpda / n}


__all__ = ["ADV_SOURCES", "AdvInputs", "adversarial_rows", "linf_attack", "pgd_linf", "quick_robustness",
           "training_inputs"]
