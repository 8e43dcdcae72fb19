"""Adversarial attacks on foolbox 3.3.4 under the paper's threat models, plus BPDA + EOT.

One entry point, :func:`run_attack`: an :class:`AttackSpec` (which attack, budget, preset, threat
model) and a batch of images in [0, 1] go in, an :class:`AttackResult` of plain numpy arrays comes
out. Every attack is foolbox's own; this module only chooses its settings, composes the model it
attacks, and makes failures per image.

Threat models (``THREATS``):

* ``whitebox`` -- gradients of the classifier alone; the defense only sees the result (paper
  Tables 1-3). Attacking the classifier and then purifying is this threat model, not an adaptive one.
* ``blackbox`` -- the attack runs on a ``substitute`` classifier and the adversarials are transferred
  (paper Tables 4-6).
* ``bpda`` -- end to end through ``Defended(purifier, classifier)`` with the purifier's quantizer in
  ``grad_mode = spec.bpda_backward``: forward the hard H, backward dH~/dz (``"bpda"``, default and
  the stronger one) or the identity (``"straight_through"``) (paper Table 7).
* ``bpda_eot`` -- BPDA plus Expectation over Transformation over the stochastic purifier: each model
  call decodes ``eot_samples`` draws of z ~ N(mu, sigma^2) and returns log of the mean class
  probability, so the gradient is that of the expected prediction. Iterative attacks get at least
  100 steps in the ``paper`` preset, ``restarts`` random restarts are kept by foolbox's ``repeat``,
  and success is re-checked on fresh draws. Beyond the paper: the adaptive attack a reviewer asks for.

Presets (``PRESETS``, resolved by :func:`attack_params`): ``live`` is fast enough for the app on one
image; ``paper`` is the strength used for the result tables. C&W and DeepFool are minimization
attacks: with ``eps=None`` they are unbounded (as in the paper, via cleverhans) and the achieved L2
is what they report; with ``eps`` set, foolbox clips the perturbation to that L2 (L-inf for
``deepfool_linf``) and success is judged on the clipped image.

Failures are per image: foolbox's exceptions (``init_attack failed``, starting points that are not
adversarial), NaN outputs and non-adversarial results mark that image ``failed`` with a message in
``messages[i]``; a batch that raises is bisected until the failing image is alone, so the others
still finish. ``should_stop`` is checked inside every model call, so a cancel lands within one
forward pass; ``progress`` gets the share of the expected number of model calls done.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import foolbox as fb
import numpy as np
import torch
from torch import Tensor, nn

from lqvae.io import validate as check
from lqvae.core.models import LQVAE, Defended, StochasticPurifier
from lqvae.io.validate import InputError

ATTACKS = ("fgsm", "bim", "pgd", "deepfool", "deepfool_linf", "cw", "boundary")  # deepfool = L2
THREATS = ("whitebox", "blackbox", "bpda", "bpda_eot")
PRESET_NAMES = ("live", "paper")
BPDA_BACKWARDS = ("bpda", "straight_through")
NORMS = {"fgsm": "linf", "bim": "linf", "pgd": "linf", "deepfool": "l2", "deepfool_linf": "linf", "cw": "l2",
         "boundary": "l2"}
EOT_MIN_STEPS = 100  # bpda_eot, paper preset: at least this many steps for the iterative attacks
EOT_CHECK_SAMPLES = 32  # fresh draws for re-checking bpda_eot success
BOUNDARY_START_EPS = (0.3, 0.6, 1.0)  # L-inf PGD starts tried in turn for Boundary

# C&W calibration (MNIST test images, classifier A, unbounded; mean / median L2 of the adversarials).
# 32 images, A after 3 epochs: foolbox's 9 x 100 steps at 0.01 from c = 1e-3 fails on 5/32 (median 7.8);
# 9 x 1000 at 0.01: no failures, median 1.562; paper preset (6 x 200 at 0.05 from c = 0.1): 1.581.
# 16 images, A after 12 epochs: 9 x 1000 at 0.01: 1.358 / 1.098; paper preset: 1.372 / 1.139;
# 6 x 400 at 0.05: 1.362 / 1.126; 6 x 200 at 0.1: 1.370 / 1.135. No failures in any: more steps move
# the mean by about 1 %. Live (3 x 100 at 0.1 from c = 1): 1.456 / 1.444 on 32 images, 12-epoch A (4 x 100 at
# 0.05: 1.511 / 1.476), about 1.1 s of CPU for one image.
# Settings per attack and preset. eps None = unbounded (minimization attacks only). Step sizes are
# absolute (in pixel units for L-inf; tanh-space Adam step for C&W).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "live": {
        "fgsm": {"eps": 0.3},
        "bim": {"eps": 0.3, "steps": 10, "stepsize": 0.05},  # cleverhans defaults (the paper's library)
        "pgd": {"eps": 0.3, "steps": 40, "stepsize": 0.01},  # Madry et al. MNIST, random start
        "deepfool": {"eps": None, "steps": 50, "candidates": 3, "overshoot": 0.02},
        "deepfool_linf": {"eps": None, "steps": 50, "candidates": 3, "overshoot": 0.02},
        "cw": {"eps": None, "steps": 100, "binary_search_steps": 3, "stepsize": 0.1, "initial_const": 1.0,
               "confidence": 0.0, "abort_early": True},
        "boundary": {"eps": None, "steps": 300, "start_steps": 20},
    },
    "paper": {
        "fgsm": {"eps": 0.3},
        "bim": {"eps": 0.3, "steps": 80, "stepsize": 1.0 / 255},  # Kurakin et al.: min(eps*255+4, 1.25*eps*255)
        "pgd": {"eps": 0.3, "steps": 100, "stepsize": 0.01},  # Madry et al.'s evaluation setting
        "deepfool": {"eps": None, "steps": 50, "candidates": 10, "overshoot": 0.02},  # cleverhans defaults
        "deepfool_linf": {"eps": None, "steps": 50, "candidates": 10, "overshoot": 0.02},
        "cw": {"eps": None, "steps": 200, "binary_search_steps": 6, "stepsize": 0.05, "initial_const": 0.1,
               "confidence": 0.0, "abort_early": True},
        "boundary": {"eps": None, "steps": 5000, "start_steps": 40},
    },
}


class AttackCancelled(Exception):
    """Raised inside a model call when ``should_stop()`` returned True."""


@dataclass(frozen=True)
class AttackSpec:
    """What to attack with, how hard, and under which threat model.

    Every field is checked on construction (:class:`lqvae.io.validate.InputError` names the field); what
    depends on the models (target < K, an L2 eps within the image's size, a purifier for BPDA, a
    substitute for blackbox) is checked by :func:`lqvae.io.validate.attack_setup` when the attack runs.

    Args:
        attack: one of ``ATTACKS`` (``deepfool`` is L2 DeepFool, ``boundary`` is foolbox's
            BoundaryAttack started from an L-inf PGD point).
        eps: L-inf budget for L-inf attacks (in (0, 1]), L2 budget for L2 attacks; None = the preset's
            (0.3 for the L-inf attacks, unbounded for DeepFool, C&W and Boundary).
        steps: iterations (PGD/BIM steps, DeepFool max steps, C&W steps per binary-search step,
            Boundary steps), 1 to ``validate.MAX_STEPS``; None = the preset's. Ignored by FGSM.
        preset: ``"live"`` (one image, interactive) or ``"paper"`` (the tables' strength).
        targeted: aim for class ``target`` instead of any wrong class (not DeepFool).
        target: the target class when ``targeted``.
        threat: one of ``THREATS``.
        bpda_backward: backward of H for ``bpda``/``bpda_eot``: ``"bpda"`` (dH~/dz) or
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

    def __post_init__(self) -> None:  # every field checked here; what needs the models: validate.attack_setup
        check.choice(self.attack, "spec.attack", ATTACKS)
        check.choice(self.threat, "spec.threat", THREATS)
        check.choice(self.preset, "spec.preset", PRESET_NAMES)
        check.choice(self.bpda_backward, "spec.bpda_backward", BPDA_BACKWARDS)
        if self.eps is not None:
            eps = check.real(self.eps, "spec.eps")
            if not eps > 0:
                raise InputError(f"spec.eps: expected eps > 0 or None (preset default), got {self.eps}")
            if NORMS[self.attack] == "linf" and eps > 1:
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
        if self.targeted and self.attack in ("deepfool", "deepfool_linf"):
            raise InputError("spec.targeted: foolbox's DeepFool is untargeted only; use pgd, bim or cw for a "
                             "targeted attack")

    @property
    def norm(self) -> str:
        """``"linf"`` or ``"l2"``: the norm ``eps`` is measured in."""
        return NORMS[self.attack]


@dataclass
class AttackResult:
    """Outcome of :func:`run_attack` for a batch of B images (plain numpy).

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
    params = dict(PRESETS[spec.preset][spec.attack])
    if spec.eps is not None:
        params["eps"] = float(spec.eps)
    if spec.steps is not None and spec.attack != "fgsm":
        params["steps"] = int(spec.steps)
    if (spec.threat == "bpda_eot" and spec.preset == "paper" and spec.attack in ("bim", "pgd")
            and spec.steps is None):
        params["steps"] = max(params["steps"], EOT_MIN_STEPS)
    params.update(attack=spec.attack, norm=spec.norm, threat=spec.threat, preset=spec.preset,
                  restarts=spec.restarts, targeted=spec.targeted)
    if spec.threat in ("bpda", "bpda_eot"):
        params["bpda_backward"] = spec.bpda_backward
    if spec.threat == "bpda_eot":
        params["eot_samples"] = spec.eot_samples
    return params


def expected_calls(spec: AttackSpec) -> int:
    """Model calls one batch needs (an upper bound for the early-stopping attacks), for progress."""
    p = attack_params(spec)
    a = spec.attack
    if a == "fgsm":
        n = 1
    elif a in ("bim", "pgd"):
        n = p["steps"]
    elif a in ("deepfool", "deepfool_linf"):
        n = p["steps"] * (p["candidates"] - 1) // 2  # DeepFool stops early; half the worst case
    elif a == "cw":
        n = p["binary_search_steps"] * p["steps"] // 2
    else:
        n = p["start_steps"] + int(p["steps"] * 1.1) + 2
    return n * spec.restarts + 2  # + foolbox's success check + ours


# ----------------------------------------------------------------------------- models attacked
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
    if spec.threat == "whitebox":
        return classifier
    if spec.threat == "blackbox":
        if substitute is None:
            raise InputError("threat 'blackbox' attacks a substitute classifier: pass substitute=<nn.Module> "
                             "(e.g. classifier B when defending A)")
        return substitute
    if purifier is None:
        raise InputError(f"threat {spec.threat!r} attacks purifier and classifier end to end: pass purifier=<LQVAE>")
    if spec.threat == "bpda":
        return Defended(purifier, classifier)
    if not isinstance(purifier, LQVAE):
        raise InputError(f"threat 'bpda_eot' needs an LQVAE purifier (it samples z), got {type(purifier).__name__}")
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
        if old_mode is not None and spec.threat in ("bpda", "bpda_eot"):
            purifier.set_grad_mode(spec.bpda_backward)  # type: ignore[union-attr]
        yield
    finally:
        if old_mode is not None:
            purifier.quantizer.grad_mode = old_mode  # type: ignore[union-attr]
        for p, req in zip(params, needs):
            p.requires_grad_(req)
        for m, was in zip(mods, training):
            m.train(was)


# ----------------------------------------------------------------------------- foolbox attacks
def _criterion(spec: AttackSpec, labels: Tensor) -> fb.criteria.Criterion:
    if spec.targeted:
        return fb.criteria.TargetedMisclassification(torch.full_like(labels, int(spec.target)))  # type: ignore[arg-type]
    return fb.criteria.Misclassification(labels)


def build_attack(spec: AttackSpec, params: dict[str, Any] | None = None) -> fb.attacks.Attack:
    """The foolbox attack object for ``spec`` (Boundary without its PGD start, see ``_run_boundary``)."""
    p = params or attack_params(spec)
    a = spec.attack
    if a == "fgsm":  # foolbox's FGSM refuses targeted criteria; one BIM step of size eps is the same update
        atk: fb.attacks.Attack = (fb.attacks.LinfBasicIterativeAttack(abs_stepsize=p["eps"], steps=1, random_start=False)
                                  if spec.targeted else fb.attacks.LinfFastGradientAttack(random_start=False))
    elif a == "bim":
        atk = fb.attacks.LinfBasicIterativeAttack(abs_stepsize=p["stepsize"], steps=p["steps"], random_start=False)
    elif a == "pgd":
        atk = fb.attacks.LinfProjectedGradientDescentAttack(abs_stepsize=p["stepsize"], steps=p["steps"],
                                                            random_start=True)
    elif a == "deepfool":
        atk = fb.attacks.L2DeepFoolAttack(steps=p["steps"], candidates=p["candidates"], overshoot=p["overshoot"])
    elif a == "deepfool_linf":
        atk = fb.attacks.LinfDeepFoolAttack(steps=p["steps"], candidates=p["candidates"], overshoot=p["overshoot"])
    elif a == "cw":
        atk = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=p["binary_search_steps"], steps=p["steps"],
                                               stepsize=p["stepsize"], confidence=p["confidence"],
                                               initial_const=p["initial_const"], abort_early=p["abort_early"])
    else:
        atk = fb.attacks.BoundaryAttack(steps=p["steps"])
    return atk.repeat(spec.restarts) if spec.restarts > 1 else atk


def _run_boundary(spec: AttackSpec, params: dict[str, Any], fmodel: fb.PyTorchModel, x: Tensor,
                  criterion: fb.criteria.Criterion, note: Callable[[int, str], None]) -> Tensor:
    """Boundary from an L-inf PGD point (foolbox needs adversarial starting points).

    Images without an adversarial PGD start up to the largest eps keep their input and get a note.
    """
    start, found = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for eps in BOUNDARY_START_EPS:
        todo = ~found
        if not todo.any():
            break
        pgd = fb.attacks.LinfProjectedGradientDescentAttack(abs_stepsize=eps / 10, steps=params["start_steps"])
        _, adv, ok = pgd(fmodel, x[todo], _subset_criterion(criterion, todo), epsilons=eps)
        idx = todo.nonzero().squeeze(1)
        start[idx[ok]] = adv[ok]
        found[idx[ok]] = True
    for i in (~found).nonzero().squeeze(1).tolist():
        note(i, f"no adversarial starting point: L-inf PGD failed up to eps {BOUNDARY_START_EPS[-1]}")
    out = x.clone()
    if found.any():
        _, adv, _ = build_attack(spec, params)(fmodel, x[found], _subset_criterion(criterion, found),
                                               epsilons=params["eps"], starting_points=start[found])
        out[found] = adv
    return out


def _subset_criterion(criterion: fb.criteria.Criterion, mask: Tensor) -> fb.criteria.Criterion:
    if isinstance(criterion, fb.criteria.TargetedMisclassification):
        return fb.criteria.TargetedMisclassification(criterion.target_classes.raw[mask])
    return fb.criteria.Misclassification(criterion.labels.raw[mask])  # type: ignore[attr-defined]


def _foolbox_run(spec: AttackSpec, params: dict[str, Any], fmodel: fb.PyTorchModel, x: Tensor,
                 labels: Tensor, note: Callable[[int, str], None]) -> Tensor:
    criterion = _criterion(spec, labels)
    if spec.attack == "boundary":
        return _run_boundary(spec, params, fmodel, x, criterion, note)
    _, adv, _ = build_attack(spec, params)(fmodel, x, criterion, epsilons=params["eps"])
    return adv


def _run_isolating(spec: AttackSpec, params: dict[str, Any], fmodel: fb.PyTorchModel, x: Tensor,
                   labels: Tensor, messages: list[str], offset: int) -> Tensor:
    """Run on the batch; if foolbox raises, bisect so only the failing image(s) lose their result."""
    def note(i: int, message: str) -> None:
        messages[offset + i] = message

    try:
        return _foolbox_run(spec, params, fmodel, x, labels, note)
    except AttackCancelled:
        raise
    except Exception as exc:  # foolbox raises ValueError/AssertionError/RuntimeError per batch
        if len(x) == 1:
            messages[offset] = f"attack error: {type(exc).__name__}: {exc}".strip()
            return x.clone()
        half = len(x) // 2
        return torch.cat([_run_isolating(spec, params, fmodel, x[:half], labels[:half], messages, offset),
                          _run_isolating(spec, params, fmodel, x[half:], labels[half:], messages, offset + half)])


@torch.no_grad()
def _judge(spec: AttackSpec, model: nn.Module, adv: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(adversarial?, finite outputs?) per image; for EOT on fresh draws."""
    if isinstance(model, _Guard) and isinstance(model.model, EOTDefended):
        eot = model.model
        saved, eot.samples = eot.samples, max(EOT_CHECK_SAMPLES, eot.samples)
        try:
            logits = model(adv)
        finally:
            eot.samples = saved
    else:
        logits = model(adv)
    finite = torch.isfinite(logits).all(1)
    pred = logits.argmax(1)
    hit = pred == int(spec.target) if spec.targeted else pred != labels
    return hit & finite, finite


def _judge_isolating(spec: AttackSpec, model: nn.Module, adv: Tensor, labels: Tensor, messages: list[str],
                     offset: int) -> tuple[Tensor, Tensor]:
    """``_judge``, bisecting when the model raises so one broken image does not take the batch down."""
    try:
        return _judge(spec, model, adv, labels)
    except AttackCancelled:
        raise
    except Exception as exc:
        if len(adv) == 1:
            messages[offset] = messages[offset] or f"model error on the result: {type(exc).__name__}: {exc}"
            return torch.zeros(1, dtype=torch.bool), torch.zeros(1, dtype=torch.bool)
        half = len(adv) // 2
        a = _judge_isolating(spec, model, adv[:half], labels[:half], messages, offset)
        b = _judge_isolating(spec, model, adv[half:], labels[half:], messages, offset + half)
        return torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])


def run_attack(spec: AttackSpec, images: Tensor, labels: Tensor, *, classifier: nn.Module,
               purifier: LQVAE | None = None, substitute: nn.Module | None = None,
               should_stop: Callable[[], bool] | None = None,
               progress: Callable[[float], None] | None = None, batch_size: int = 128) -> AttackResult:
    """Attack ``images`` under ``spec`` and report per image.

    Args:
        spec: attack, budget, preset and threat model.
        images: (B, C, H, W) float in [0, 1].
        labels: (B,) true classes (for untargeted attacks, what the image must stop being).
        classifier: the defended classifier (logits); attacked directly under ``whitebox``.
        purifier: the LQ-VAE, needed for ``bpda`` and ``bpda_eot``; its ``grad_mode`` is restored after.
        substitute: the classifier attacked under ``blackbox``.
        should_stop: polled inside every model call; True raises :class:`AttackCancelled`.
        progress: called with the share (0..1) of the expected model calls done.
        batch_size: images per foolbox call (``bpda_eot`` divides it by ``eot_samples``).

    Returns:
        An :class:`AttackResult`; an attack error on one image fails that image only.

    Raises:
        lqvae.io.validate.InputError: images not (B, C, H, W) of the models' shape, finite and in [0, 1] (or
            uint8), labels not B class indices, or ``spec`` needing a model that was not passed.
    """
    t0 = time.perf_counter()
    images, labels = _check_inputs(spec, images, labels, classifier=classifier, purifier=purifier,
                                   substitute=substitute)
    params = attack_params(spec)
    model = attacked_model(spec, classifier=classifier, purifier=purifier, substitute=substitute)
    device = _device_of(model)
    n = len(images)
    chunk = max(1, batch_size // spec.eot_samples) if spec.threat == "bpda_eot" else max(1, batch_size)
    total = max(1, expected_calls(spec) * math.ceil(n / chunk))
    calls = [0]

    def on_call() -> None:
        calls[0] += 1
        if progress is not None:
            progress(min(0.99, calls[0] / total))

    guard = _Guard(model, should_stop, on_call).eval()
    messages = [""] * n
    advs, oks, finites = [], [], []
    rng_devices = [device] if device.type == "cuda" else []
    with attack_mode(spec, [classifier, purifier, substitute], purifier), torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(spec.seed)
        fmodel = fb.PyTorchModel(guard, bounds=(0, 1), device=device)
        for start in range(0, n, chunk):
            x = images[start:start + chunk].to(device)
            y = labels[start:start + chunk].to(device)
            adv = _run_isolating(spec, params, fmodel, x, y, messages, start)
            ok, finite = _judge_isolating(spec, guard, adv, y, messages, start)
            advs.append(adv.detach().cpu())
            oks.append(ok.cpu())
            finites.append(finite.cpu())
    adv = torch.cat(advs)
    x = images.cpu()
    ok, finite = torch.cat(oks), torch.cat(finites)
    nan = ~torch.isfinite(adv.flatten(1)).all(1)
    ok &= ~nan
    if spec.targeted:
        same = labels.cpu() == int(spec.target)
        ok &= ~same
    for i in range(n):
        if ok[i] or messages[i]:
            continue
        if nan[i]:
            messages[i] = "attack returned NaN pixels"
        elif not finite[i]:
            messages[i] = "model output is NaN/inf on the attacked image"
        elif spec.targeted and same[i]:
            messages[i] = f"target class {spec.target} is the true label"
        else:
            messages[i] = "not adversarial" + (f" within {spec.norm} eps {params['eps']}" if params.get("eps") else "")
    adv = torch.where(ok.view(-1, 1, 1, 1), torch.nan_to_num(adv), x).clamp_(0, 1)
    delta = (adv - x).flatten(1)
    if progress is not None:
        progress(1.0)
    return AttackResult(
        adversarial=adv.numpy().astype(np.float32), success=ok.numpy(), failed=(~ok).numpy(),
        linf=delta.abs().amax(1).numpy().astype(np.float32), l2=delta.norm(dim=1).numpy().astype(np.float32),
        seconds=time.perf_counter() - t0, messages=messages, params=params)


def _check_inputs(spec: AttackSpec, images: Tensor, labels: Tensor, *, classifier: nn.Module,
                  purifier: nn.Module | None, substitute: nn.Module | None) -> tuple[Tensor, Tensor]:
    """(B, C, H, W) float32 in [0, 1] and (B,) int64 labels, or :class:`InputError` (see :mod:`lqvae.io.validate`)."""
    shape = check.model_image_shape(classifier=classifier, purifier=purifier, substitute=substitute)
    images = check.images(images, shape=shape, min_n=0)
    k = check.declared_classes(classifier)
    labels = check.labels(labels, n=len(images), num_classes=k)
    check.attack_setup(spec, purifier=purifier, substitute=substitute, num_classes=k,
                       pixels=images[0].numel() if len(images) else None)
    return images, labels


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


__all__ = ["ATTACKS", "THREATS", "PRESETS", "AttackSpec", "AttackResult", "AttackCancelled", "run_attack",
           "attack_params", "attacked_model", "build_attack", "expected_calls", "EOTDefended"]
