"""The module an attack differentiates (or queries) under each threat model, and the mode it runs in.

``whitebox`` attacks the classifier, ``blackbox`` a substitute, ``bpda`` ``Defended(purifier, classifier)``
with the purifier's quantizer in ``grad_mode = spec.bpda_backward`` (forward the hard H, backward dH~/dz
or the identity), and ``bpda_eot`` :class:`EOTDefended`, which averages stochastic purifications.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Callable, Iterator

import torch
from torch import Tensor, nn

from lqvae.core.models import LQVAE, Defended, StochasticPurifier
from lqvae.io.validate import InputError
from lqvae.spec.attacks import THREATS
from lqvae.spec.errors import Cancelled

if TYPE_CHECKING:
    from lqvae.attacks.settings import AttackSpec


class AttackCancelled(Cancelled):
    """Raised inside a model call when ``should_stop()`` returned True."""


class _Guard(nn.Module):
    """Checks ``should_stop`` before and counts every call of the attacked model."""

    def __init__(self, model: nn.Module, should_stop: Callable[[], bool] | None,
                 on_call: Callable[[], None]) -> None:
        super().__init__()
        self.model = model
        self.should_stop = should_stop
        self.on_call = on_call

    def forward(self, x: Tensor) -> Tensor:
        if self.should_stop is not None and self.should_stop():
            raise AttackCancelled("attack cancelled by the caller")
        out = self.model(x)
        self.on_call()
        return out


class EOTDefended(nn.Module):
    """``samples`` stochastic purifications per call, classified; returns log of the mean probability.

    The S draws run as one batch of S x B images; log-mean-probability is a valid logit vector whose
    softmax is the expected class probability of the randomized defense, so cross-entropy on it is
    the loss of the expected prediction and its gradient averages over the draws.
    """

    def __init__(self, purifier: LQVAE, classifier: nn.Module, samples: int) -> None:
        super().__init__()
        self.stochastic = StochasticPurifier(purifier)
        self.classifier = classifier
        self.samples = samples

    def forward(self, x: Tensor) -> Tensor:
        s, b = self.samples, x.shape[0]
        xs = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])  # (S*B, C, H, W)
        logp = torch.log_softmax(self.classifier(self.stochastic(xs)), dim=-1).view(s, b, -1)
        return torch.logsumexp(logp, dim=0) - math.log(s)  # (B, K)


def attacked_model(spec: AttackSpec, *, classifier: nn.Module, purifier: nn.Module | None = None,
                   substitute: nn.Module | None = None) -> nn.Module:
    """The module whose gradients (or decisions) the attack uses under ``spec.threat``.

    The caller sets the purifier's ``grad_mode`` (``run_attack`` does, and restores it).
    """
    threat = THREATS[spec.threat]
    if threat.needs_substitute:
        if substitute is None:
            raise InputError(f"threat {spec.threat!r} attacks a substitute classifier: pass substitute=<nn.Module> "
                             "(e.g. classifier B when defending A)")
        return substitute
    if not threat.end_to_end:
        return classifier
    if purifier is None:
        raise InputError(f"threat {spec.threat!r} attacks purifier and classifier end to end: pass purifier=<LQVAE>")
    if not threat.stochastic:
        return Defended(purifier, classifier)
    if not isinstance(purifier, LQVAE):
        raise InputError(f"threat {spec.threat!r} needs an LQVAE purifier (it samples z), got {type(purifier).__name__}")
    return EOTDefended(purifier, classifier, spec.eot_samples)


@contextlib.contextmanager
def attack_mode(spec: AttackSpec, models: list[nn.Module | None], purifier: nn.Module | None) -> Iterator[None]:
    """Eval mode, frozen weights and the purifier's BPDA backward for the attack; all restored after."""
    mods = [m for m in models if m is not None]
    training = [m.training for m in mods]
    params = [p for m in mods for p in m.parameters()]
    needs = [p.requires_grad for p in params]
    old_mode = getattr(getattr(purifier, "quantizer", None), "grad_mode", None)
    try:
        for m in mods:
            m.eval()
        for p in params:
            p.requires_grad_(False)  # foolbox differentiates w.r.t. the input only
        if old_mode is not None and THREATS[spec.threat].end_to_end:
            purifier.set_grad_mode(spec.bpda_backward)  # type: ignore[union-attr]
        yield
    finally:
        if old_mode is not None:
            purifier.quantizer.grad_mode = old_mode  # type: ignore[union-attr]
        for p, req in zip(params, needs):
            p.requires_grad_(req)
        for m, was in zip(mods, training):
            m.train(was)


__all__ = ["AttackCancelled", "EOTDefended", "attacked_model", "attack_mode"]
