"""The strongest-attack suite: every member of :func:`lqvae.spec.suite.suite_members` against one defense,
and the per-image worst case over them ("robust accuracy under the suite", issue 18).

:func:`run_suite` takes the defense (a classifier alone, or purifier -> classifier, deterministic or
stochastic) and a batch of images in [0, 1]. It classifies the clean images, then attacks the correctly
classified ones with each member, chunk by chunk; every adversarial image is projected into its member's
budget and judged by the REAL defense (the hard H forward; the stochastic mode on ``check_samples`` fresh
draws), whatever the member's model saw. An image is robust under the suite when it is correct when clean
and every member that counts failed on it.

Members by method: ``fgsm``/``pgd`` (:class:`lqvae.attacks.apgd.PGD`), ``apgd``/``apgd_t``
(:class:`lqvae.attacks.apgd.APGD`), ``square`` (:class:`lqvae.attacks.square.SquareLinf`, queries only),
``transfer`` (PGD on the classifier alone, purified after) and ``latent``
(:class:`lqvae.attacks.latent.LatentAttack`, on the quantizer's bits). Gradient members through a
purifier differentiate ``Defended`` (or :class:`lqvae.attacks.models.EOTDefended` over ``eot_samples``
draws in the stochastic mode) with the quantizer's ``grad_mode`` set to the member's surrogate.

Chunk ``k`` and member ``m`` run under the seed ``unit_seed(settings.seed, k, m.name)`` (torch's global
generator, forked and restored), so the same seed gives the same result in any process and whatever
order the units run in (on the same hardware and thread count: float sums may be ordered differently
elsewhere). ``should_stop`` is polled before every unit and inside every model call
(:class:`lqvae.attacks.models.AttackCancelled`); ``progress`` gets the share of units done, refined
inside a unit by its share of expected model calls.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from lqvae.attacks.apgd import APGD, PGD, project
from lqvae.attacks.latent import LatentAttack, code_bits, nearest_other_codes
from lqvae.attacks.models import AttackCancelled, EOTDefended, _Guard
from lqvae.attacks.square import SquareLinf
from lqvae.core.models import LQVAE, Defended, StochasticPurifier
from lqvae.core.quantize import hard_quantize
from lqvae.spec.suite import Estimate, SuiteMember, SuiteSettings, suite_members, unit_seed

EOT_IMAGES_PER_CALL = 128  # stochastic mode: a chunk holds at most this many images x draws


class Victim:
    """The defense under evaluation, as the suite attacks and judges it.

    Args:
        classifier: the classifier (for a classifier-side defense, the hardened one).
        purifier: the purifier in front of it, or None.
        stochastic: purify with z ~ N(mu, sigma^2) draws (an LQ-VAE only): attacked with EOT, judged on
            fresh draws.
        eot_samples: draws averaged per model call of the attack.
        check_samples: draws that judge a prediction.
        temperature: T of the quantizer's ``"sigmoid"`` backward.
    """

    def __init__(self, *, classifier: nn.Module, purifier: nn.Module | None = None, stochastic: bool = False,
                 eot_samples: int = 16, check_samples: int = 32, temperature: float = 0.05) -> None:
        if stochastic and not isinstance(purifier, LQVAE):
            raise ValueError("the stochastic mode samples z ~ N(mu, sigma^2): it needs an LQ-VAE purifier, got "
                             f"{type(purifier).__name__}; drop --stochastic or pass an LQ-VAE")
        self.classifier, self.purifier, self.stochastic = classifier, purifier, stochastic
        self.eot_samples, self.check_samples, self.temperature = eot_samples, check_samples, temperature

    @property
    def quantized(self) -> bool:
        return isinstance(self.purifier, LQVAE) and self.purifier.quantized

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Eval mode and frozen weights (the attacks differentiate the input only); the quantizer's
        ``grad_mode`` and temperature restored after."""
        mods = [m for m in (self.classifier, self.purifier) if m is not None]
        training, params = [m.training for m in mods], [p for m in mods for p in m.parameters()]
        needs = [p.requires_grad for p in params]
        quantizer = getattr(self.purifier, "quantizer", None)
        saved = (quantizer.grad_mode, getattr(quantizer, "temperature", None)) if quantizer is not None else None
        try:
            for m in mods:
                m.eval()
            for p in params:
                p.requires_grad_(False)
            yield
        finally:
            if saved is not None:
                quantizer.grad_mode = saved[0]  # type: ignore[union-attr]
                if saved[1] is not None:
                    quantizer.temperature = saved[1]  # type: ignore[union-attr]
            for p, req in zip(params, needs):
                p.requires_grad_(req)
            for m, was in zip(mods, training):
                m.train(was)

    def model(self, member: SuiteMember) -> nn.Module:
        """What ``member`` differentiates or queries: the classifier for ``transfer`` (and when there is no
        purifier), else the defense end to end with H's backward set to the member's surrogate."""
        if self.purifier is None or member.method == "transfer":
            return self.classifier
        quantizer = getattr(self.purifier, "quantizer", None)
        if quantizer is not None:
            if hasattr(quantizer, "temperature"):
                quantizer.temperature = self.temperature
            quantizer.grad_mode = member.surrogate or "bpda"
        if self.stochastic:
            return EOTDefended(self.purifier, self.classifier, self.eot_samples)  # type: ignore[arg-type]
        return Defended(self.purifier, self.classifier)

    @torch.no_grad()
    def predict(self, x: Tensor, seed: int) -> Tensor:
        """The defense's real predictions (stochastic: argmax of the mean probability over fresh draws)."""
        if self.purifier is None:
            return self.classifier(x).argmax(1)
        if not self.stochastic:
            return self.classifier(self.purifier(x)).argmax(1)
        draw = StochasticPurifier(self.purifier)  # type: ignore[arg-type]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            probs = sum(torch.softmax(self.classifier(draw(x)), -1) for _ in range(self.check_samples))
        return probs.argmax(1)  # type: ignore[union-attr]

    def chunk_size(self, settings: SuiteSettings) -> int:
        if not self.stochastic:
            return settings.chunk_size
        return max(1, min(settings.chunk_size, EOT_IMAGES_PER_CALL // self.eot_samples))


@dataclass
class MemberResult:
    """One member's outcome: ``robust[i]`` is True when image i was correct when clean and this member
    failed on it (the images incorrect when clean are never attacked)."""

    member: SuiteMember
    robust: np.ndarray  # (N,) bool
    seconds: float

    @property
    def estimate(self) -> Estimate:
        return Estimate(int(self.robust.sum()), len(self.robust))


@dataclass
class SuiteResult:
    """Every member's per-image outcome on one defense and their worst case."""

    settings: SuiteSettings
    clean_correct: np.ndarray  # (N,) bool
    members: dict[str, MemberResult]
    seconds: float
    defense: dict[str, Any]  # what was attacked: purifier?, stochastic?, eot_samples, check_samples, surrogates

    @property
    def n(self) -> int:
        return len(self.clean_correct)

    @property
    def robust(self) -> np.ndarray:
        """Per image: correct when clean and every counting member failed (the worst case)."""
        out = self.clean_correct.copy()
        for r in self.members.values():
            if r.member.counts:
                out &= r.robust
        return out

    @property
    def worst_case(self) -> Estimate:
        return Estimate(int(self.robust.sum()), self.n)

    @property
    def clean(self) -> Estimate:
        return Estimate(int(self.clean_correct.sum()), self.n)

    def only_broken_by(self, name: str) -> int:
        """Images this member broke and no other counting member did (its own contribution to the worst case)."""
        others = self.clean_correct.copy()
        for key, r in self.members.items():
            if key != name and r.member.counts:
                others &= r.robust
        return int((others & ~self.members[name].robust).sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "clean": self.clean.to_dict(), "worst_case": self.worst_case.to_dict(),
            "seconds": round(self.seconds, 2), "defense": self.defense, "settings": self.settings.to_dict(),
            "members": {k: {"method": r.member.method, "loss": r.member.loss, "eps": r.member.eps,
                            "steps": r.member.steps, "restarts": r.member.restarts, "surrogate": r.member.surrogate,
                            "stepsize": r.member.stepsize, "role": r.member.role, **r.estimate.to_dict(),
                            "only_this_broke": self.only_broken_by(k) if r.member.counts else None,
                            "seconds": round(r.seconds, 2)}
                        for k, r in self.members.items()},
        }


def _attack(member: SuiteMember, victim: Victim, model: nn.Module, settings: SuiteSettings, x: Tensor, y: Tensor,
            target: Tensor | None) -> Tensor:
    """``member``'s adversarial images for (x, y) (``target``: the latent attack's codes)."""
    m = member
    if m.method in ("fgsm", "pgd", "transfer"):
        atk = PGD(eps=m.eps, steps=m.steps, stepsize=float(m.stepsize or m.eps), loss=m.loss, restarts=m.restarts,
                  random_start=m.method != "fgsm", first_hit=m.method != "transfer")
        return atk(model, x, y).adversarial
    if m.method in ("apgd", "apgd_t"):
        return APGD(eps=m.eps, steps=m.steps, loss=m.loss, restarts=m.restarts)(model, x, y).adversarial
    if m.method == "square":
        return SquareLinf(eps=m.eps, queries=m.steps, p_init=settings.square_p_init)(model, x, y).adversarial
    if m.method == "latent":
        assert isinstance(victim.purifier, LQVAE) and target is not None
        lq, eta = victim.purifier, victim.purifier.cfg.eta
        classify = None if victim.stochastic else (lambda mu: victim.classifier(lq.decode(hard_quantize(mu, eta))))
        atk = LatentAttack(eps=m.eps, steps=m.steps, stepsize=float(m.stepsize or 0.01), kappa=settings.latent_margin)
        return atk(lambda xs: model(xs), x, y, target, eta=eta, classify=classify).adversarial
    raise ValueError(f"unknown suite method {m.method!r}")


def _expected_calls(m: SuiteMember) -> int:
    """Model calls of one member on one chunk, about (the restarts only see the images still robust)."""
    return m.steps * m.restarts + 2


def _call_counter(progress: Callable[[float], None] | None, done: int, units: int,
                  expected: int) -> Callable[[], None]:
    """Progress inside a unit: the share of its expected model calls made, capped below the unit's end."""
    calls = [0]

    def on_call() -> None:
        calls[0] += 1
        if progress is not None:
            progress((done + min(calls[0] / expected, 0.99)) / units)
    return on_call


class _Encoder(nn.Module):
    """mu of the purifier, as a module the cancel guard can wrap."""

    def __init__(self, lq: LQVAE) -> None:
        super().__init__()
        self.lq = lq

    def forward(self, x: Tensor) -> Tensor:
        return self.lq.encode(x)[0]


def _latent_targets(victim: Victim, images: Tensor, labels: Tensor, correct: Tensor,
                    size: int) -> tuple[Tensor, Tensor]:
    """(target codes (N, M) bool, has a target (N,)): the nearest correctly purified image of another class."""
    lq = victim.purifier
    assert isinstance(lq, LQVAE)
    with torch.no_grad():
        codes = torch.cat([code_bits(lq.encode(images[a:a + size])[0], lq.cfg.eta)
                           for a in range(0, len(images), size)])
    return nearest_other_codes(codes, labels, correct)


def _run_unit(m: SuiteMember, victim: Victim, settings: SuiteSettings, x: Tensor, y: Tensor, target: Tensor | None,
              *, seed: int, guard: Callable[[nn.Module], nn.Module]) -> Tensor:
    """One member on one chunk's images under its own seed: True where the real defense is still right."""
    inner = _Encoder(victim.purifier) if m.method == "latent" else victim.model(m)  # type: ignore[arg-type]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adv = _attack(m, victim, guard(inner), settings, x, y, target)
    adv = project(adv.detach(), x, m.eps)  # every member is held to its budget
    return victim.predict(adv, seed) == y


def run_suite(settings: SuiteSettings, images: Tensor, labels: Tensor, *, classifier: nn.Module,
              purifier: nn.Module | None = None, stochastic: bool = False,
              members: tuple[SuiteMember, ...] | None = None, should_stop: Callable[[], bool] | None = None,
              progress: Callable[[float], None] | None = None) -> SuiteResult:
    """Attack ``images`` with every member of the suite; the per-image worst case and each member's result.

    Args:
        settings: budgets, restarts, draws, chunk size and seed.
        images, labels: (N, C, H, W) in [0, 1] and (N,) classes, on the models' device.
        classifier, purifier, stochastic: the defense (see :class:`Victim`).
        members: the members to run (default :func:`lqvae.spec.suite.suite_members` for this defense).
        should_stop: polled before every chunk x member and inside every model call.
        progress: called with the share of chunk x member units done (non-decreasing; 1.0 at the end).

    Raises:
        lqvae.attacks.models.AttackCancelled: ``should_stop()`` returned True.
        ValueError: the stochastic mode without an LQ-VAE, or images and labels that do not match.
    """
    if images.dim() != 4 or labels.shape != (len(images),):
        raise ValueError(f"expected images (N, C, H, W) and labels (N,), got {tuple(images.shape)} and "
                         f"{tuple(labels.shape)}")
    t0 = time.perf_counter()
    victim = Victim(classifier=classifier, purifier=purifier, stochastic=stochastic, eot_samples=settings.eot_samples,
                    check_samples=settings.check_samples, temperature=settings.sigmoid_temperature)
    chosen = members if members is not None else suite_members(settings, purifier=purifier is not None,
                                                               quantized=victim.quantized)
    n, size = len(images), victim.chunk_size(settings)
    starts = list(range(0, n, size))
    units, done = len(starts) * len(chosen), 0

    def stop() -> None:
        if should_stop is not None and should_stop():
            raise AttackCancelled("suite cancelled by the caller")

    with victim.frozen():
        stop()
        correct = torch.zeros(n, dtype=torch.bool, device=images.device)
        for k, a in enumerate(starts):
            seed = unit_seed(settings.seed, k, "clean")
            correct[a:a + size] = victim.predict(images[a:a + size], seed) == labels[a:a + size]
        targets = (_latent_targets(victim, images, labels, correct, size)
                   if victim.quantized and any(m.method == "latent" for m in chosen) else None)
        robust = {m.name: correct.clone() for m in chosen}
        seconds = {m.name: 0.0 for m in chosen}
        for k, a in enumerate(starts):
            for m in chosen:
                stop()
                t1 = time.perf_counter()
                idx = a + correct[a:a + size].nonzero().squeeze(1)  # only the images correct when clean
                if m.method == "latent" and targets is not None:
                    idx = idx[targets[1][idx]]  # ... that have a target code
                if len(idx):
                    on_call = _call_counter(progress, done, units, _expected_calls(m))
                    robust[m.name][idx] = _run_unit(m, victim, settings, images[idx], labels[idx],
                                                    None if targets is None else targets[0][idx],
                                                    seed=unit_seed(settings.seed, k, m.name),
                                                    guard=lambda mod: _Guard(mod, should_stop, on_call))
                seconds[m.name] += time.perf_counter() - t1
                done += 1
                if progress is not None:
                    progress(done / units)
    defense = {"purifier": purifier is not None, "quantized": victim.quantized, "stochastic": stochastic,
               "eot_samples": settings.eot_samples if stochastic else None,
               "check_samples": settings.check_samples if stochastic else None, "chunk_size": size}
    results = {m.name: MemberResult(m, robust[m.name].cpu().numpy(), seconds[m.name]) for m in chosen}
    return SuiteResult(settings, correct.cpu().numpy(), results, time.perf_counter() - t0, defense)


__all__ = ["Victim", "MemberResult", "SuiteResult", "run_suite"]
