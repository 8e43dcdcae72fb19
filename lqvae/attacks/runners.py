"""Adversarial attacks on foolbox 3.3.4 under the paper's threat models, plus BPDA + EOT.

One entry point, :func:`run_attack`: an :class:`AttackSpec` (which attack, budget, preset, threat
model) and a batch of images in [0, 1] go in, an :class:`AttackResult` of plain numpy arrays comes
out. Every attack is foolbox's own; the package only chooses its settings, composes the model it
attacks, and makes failures per image:

* :mod:`lqvae.spec.attacks` -- every attack and threat model written once (norm, presets, targeting,
  labels), torch-free so the app reads it too;
* :mod:`lqvae.attacks.settings` -- :class:`AttackSpec`, :class:`AttackResult`, :func:`attack_params`;
* :mod:`lqvae.attacks.foolbox_attacks` -- one builder per attack (``BUILDERS``);
* :mod:`lqvae.attacks.models` -- what is attacked under each threat model (``Defended``, :class:`EOTDefended`);
* this module -- running it: batches, cancel, progress, per-image failures.

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

Presets (``lqvae.spec.attacks``, resolved by :func:`attack_params`): ``live`` is fast enough for the app
on one image; ``paper`` is the strength used for the result tables. The minimization attacks (C&W,
DeepFool, Boundary, HopSkipJump) are unbounded with ``eps=None`` (as in the paper, via cleverhans) and the
achieved L2 is what they report; with ``eps`` set, foolbox clips the perturbation to that budget (L-inf
for ``deepfool_linf``) and success is judged on the clipped image.

Failures are per image: foolbox's exceptions (``init_attack failed``, starting points that are not
adversarial), NaN outputs and non-adversarial results mark that image ``failed`` with a message in
``messages[i]``; a batch that raises is bisected until the failing image is alone, so the others
still finish. ``should_stop`` is checked inside every model call, so a cancel lands within one
forward pass; ``progress`` gets the share of the expected number of model calls done.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import foolbox as fb
import numpy as np
import torch
from torch import Tensor, nn

from lqvae.attacks.foolbox_attacks import BUILDERS, build, run_foolbox
from lqvae.attacks.models import AttackCancelled, EOTDefended, _Guard, attack_mode, attacked_model
from lqvae.attacks.settings import AttackResult, AttackSpec, attack_params, attack_setup
from lqvae.core.device import device_of
from lqvae.core.models import LQVAE
from lqvae.io import validate as check
from lqvae.spec.attacks import ATTACKS, EOT_CHECK_SAMPLES, PRESET_NAMES, PRESETS, THREATS


def build_attack(spec: AttackSpec, params: dict[str, Any] | None = None) -> fb.attacks.Attack:
    """The foolbox attack object for ``spec`` (without the starting points Boundary needs)."""
    return build(spec, params or attack_params(spec)).attack


def expected_calls(spec: AttackSpec) -> int:
    """Model calls one batch needs (an upper bound for the early-stopping attacks), for progress."""
    n = BUILDERS[spec.attack](spec, attack_params(spec)).calls
    return n * spec.restarts + 2  # + foolbox's success check + ours


def _run_isolating(spec: AttackSpec, params: dict[str, Any], fmodel: fb.PyTorchModel, x: Tensor,
                   labels: Tensor, messages: list[str], offset: int) -> Tensor:
    """Run on the batch; if foolbox raises, bisect so only the failing image(s) lose their result."""
    def note(i: int, message: str) -> None:
        messages[offset + i] = message

    try:
        return run_foolbox(spec, params, fmodel, x, labels, note)
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
    device = device_of(model)
    n = len(images)
    chunk = max(1, batch_size // spec.eot_samples) if THREATS[spec.threat].stochastic else max(1, batch_size)
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
    check.roles(classifier=classifier, purifier=purifier, substitute=substitute)
    shape = check.model_image_shape(classifier=classifier, purifier=purifier, substitute=substitute)
    images = check.images(images, shape=shape, min_n=0)
    k = check.declared_classes(classifier)
    labels = check.labels(labels, n=len(images), num_classes=k)
    attack_setup(spec, purifier=purifier, substitute=substitute, num_classes=k,
                       pixels=images[0].numel() if len(images) else None)
    return images, labels


__all__ = ["ATTACKS", "THREATS", "PRESETS", "PRESET_NAMES", "AttackSpec", "AttackResult", "AttackCancelled",
           "run_attack", "attack_params", "attacked_model", "attack_mode", "build_attack", "expected_calls",
           "EOTDefended"]
