"""One image through attack and defense: the single engine call behind the app and the evaluation.

:func:`analyze` takes an image, optionally attacks it (:mod:`lqvae.attacks.runners`), purifies the clean and
the adversarial image with the LQ-VAE, classifies all of them and returns an :class:`Analysis` of
plain numpy arrays and numbers, ready to draw (the dataclass lives in the torch-free
:mod:`lqvae.spec.results`, which the app imports; it is re-exported here). Bits are always the
deterministic codes H(mu), so the Hamming distance compares like with like in both purification
modes; Theorem 1's prediction (:func:`lqvae.core.theory.theorem1`) is made from the measured
per-coordinate latent shift |mu_adv_i - mu_i| and from the perturbation's L2 size (the theorem's
bound), and set beside the observed flips.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from lqvae.io import validate as check
from lqvae.attacks.runners import AttackSpec, run_attack
from lqvae.attacks.settings import attack_setup
from lqvae.core.models import LQVAE
from lqvae.core.theory import theorem1
from lqvae.io.validate import InputError
from lqvae.spec.datasets import ETA_MEDIAN
from lqvae.spec.results import Analysis, Theorem1

ANALYZE_MODES = ("deterministic", "stochastic")


def as_image_batch(image: np.ndarray | Tensor, *, shape: tuple[int, int, int] | None = None) -> Tensor:
    """(1, C, H, W) float32 in [0, 1] from (H, W), (C, H, W) or (1, C, H, W), uint8 or float.

    ``shape`` is the (C, H, W) the models expect (None = any). Raises :class:`InputError` for a wrong
    shape or dtype, NaN/Inf pixels or floats outside [0, 1] (see :func:`lqvae.io.validate.image`).
    """
    return check.image(image, shape=shape)


@torch.inference_mode()
def _probs(classifier: nn.Module, x: Tensor) -> Tensor:
    return torch.softmax(classifier(x), dim=-1)


def analyze(image: np.ndarray | Tensor, label: int | None, *, classifier: nn.Module,
            purifier: LQVAE | None = None, spec: AttackSpec | None = None, substitute: nn.Module | None = None,
            mode: str = "deterministic", n_samples: int = 8, device: str | torch.device = "cpu",
            should_stop: Callable[[], bool] | None = None,
            progress: Callable[[float], None] | None = None) -> Analysis:
    """Attack (optionally), purify and classify one image.

    Args:
        image: (H, W), (C, H, W) or (1, C, H, W), uint8 or float in [0, 1].
        label: the true class; None attacks the classifier's own prediction.
        classifier: logits model, on ``device``.
        purifier: the LQ-VAE (or any module mapping images to images) or None.
        spec: the attack, or None for no attack.
        substitute: the classifier attacked under ``spec.threat == "blackbox"``.
        mode: ``"deterministic"`` (z = mu) or ``"stochastic"`` (``n_samples`` draws, averaged).
        n_samples: draws in stochastic mode.
        device: where the image goes; the models must already be there.
        should_stop, progress: passed to :func:`lqvae.attacks.runners.run_attack`.

    Raises:
        lqvae.io.validate.InputError: an argument is invalid (before any model runs); the message says which.
        lqvae.attacks.runners.AttackCancelled: when ``should_stop()`` became True during the attack.
    """
    check.roles(classifier=classifier, purifier=purifier, substitute=substitute)
    shape = check.model_image_shape(classifier=classifier, purifier=purifier, substitute=substitute)
    x = as_image_batch(image, shape=shape)
    k = check.declared_classes(classifier)
    label = check.label(label, num_classes=k)
    check.choice(mode, "mode", ANALYZE_MODES)
    n_samples = check.integer(n_samples, "n_samples", low=1, high=check.MAX_SAMPLES)
    if spec is not None:
        attack_setup(spec, purifier=purifier, substitute=substitute, num_classes=k, pixels=x[0].numel(),
                           own_labels=None if label is None else [label])
    dev = check.device(device)
    x = x.to(dev)
    classifier.eval()
    try:
        p_orig = _probs(classifier, x)[0]  # (K,)
        check.logits(p_orig.unsqueeze(0), "classifier", n=1)
    except (RuntimeError, ValueError) as exc:
        if shape is not None:
            raise
        # no model declares an image shape: the classifier refusing this one is the caller's shape
        raise InputError(f"image: the classifier cannot take an image of shape {tuple(x.shape[1:])} "
                         f"({type(exc).__name__}: {exc})") from None
    if k is None:  # no cfg.num_classes: check against the classifier's output
        label = check.label(label, num_classes=p_orig.numel())
        if spec is not None and spec.targeted:
            check.label(spec.target, "spec.target", num_classes=p_orig.numel())
    if label is None:
        label = int(p_orig.argmax())
        if spec is not None and spec.targeted and spec.target == label:
            raise InputError(f"spec.target: the target class {spec.target} is already the classifier's prediction "
                             "for this image (no label given); aim at another class or use targeted=False")
    res = Analysis(original=x[0].cpu().numpy(), probs_original=p_orig.cpu().numpy(), label=int(label))

    adv = None
    if spec is not None:
        t0 = time.perf_counter()
        r = run_attack(spec, x, torch.tensor([label]), classifier=classifier, purifier=purifier,
                       substitute=substitute, should_stop=should_stop, progress=progress)
        res.attack_ms = (time.perf_counter() - t0) * 1000
        adv = torch.from_numpy(r.adversarial).to(dev)
        res.adversarial = r.adversarial[0]
        res.probs_adversarial = _probs(classifier, adv)[0].cpu().numpy()
        res.linf, res.l2 = float(r.linf[0]), float(r.l2[0])
        res.attack_failed = bool(r.failed[0])
        res.message = r.messages[0]
        if int(p_orig.argmax()) != label:
            note = "the classifier already misclassifies the clean image"
            res.message = f"{res.message}; {note}" if res.message else note
    if purifier is not None:
        t0 = time.perf_counter()
        _purify_into(res, purifier, classifier, x, adv, mode=mode, n_samples=n_samples, seed=spec.seed if spec else 0)
        res.purify_ms = (time.perf_counter() - t0) * 1000
    return res


@torch.inference_mode()
def _purify_into(res: Analysis, purifier: nn.Module, classifier: nn.Module, x: Tensor, adv: Tensor | None, *,
                 mode: str, n_samples: int, seed: int) -> None:
    purifier.eval()
    xs = x if adv is None else torch.cat([x, adv])  # (1 or 2, C, H, W)
    if not hasattr(purifier, "purify") or not getattr(purifier, "quantized", True):
        # a generic image -> image defense, the VAE ablation or Defense-GAN: no binary code to show
        img = purifier(xs)
        if not isinstance(img, torch.Tensor) or img.shape != xs.shape:
            raise InputError(f"purifier: expected images back of shape {tuple(xs.shape)}, got "
                             f"{tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__}")
        probs = torch.softmax(classifier(img), -1)
        res.purified_original, res.probs_purified_original = img[0].cpu().numpy(), probs[0].cpu().numpy()
        if adv is not None:
            res.purified_adversarial, res.probs_purified_adversarial = img[1].cpu().numpy(), probs[1].cpu().numpy()
        return
    det = purifier.purify(xs)
    bits, mu = det.bits.cpu(), det.mu.cpu()
    res.bits_original, res.z_original = bits[0].numpy(), mu[0].numpy()
    res.sigma_original = det.sigma[0].cpu().numpy()
    if mode == "deterministic":
        images, probs = det.image, torch.softmax(classifier(det.image), -1)
        per_draw = None
    else:
        gen = torch.Generator(device=xs.device).manual_seed(seed)
        sto = purifier.purify(xs, mode="stochastic", n_samples=n_samples, generator=gen)
        s, b = sto.samples.shape[:2]
        per_draw = torch.softmax(classifier(sto.samples.flatten(0, 1)), -1).view(s, b, -1)  # (S, B, K)
        images, probs = sto.image, per_draw.mean(0)
    res.purified_original, res.probs_purified_original = images[0].cpu().numpy(), probs[0].cpu().numpy()
    if adv is None:
        return
    res.purified_adversarial, res.probs_purified_adversarial = images[1].cpu().numpy(), probs[1].cpu().numpy()
    res.bits_adversarial, res.z_adversarial = bits[1].numpy(), mu[1].numpy()
    res.hamming = int((bits[0] != bits[1]).sum())
    if per_draw is not None:
        res.stochastic_probs = per_draw[:, 1].cpu().numpy()
    cfg = getattr(purifier, "cfg", None)
    res.theorem1 = theorem1(mu[0], mu[1], res.hamming, eta=cfg.eta if cfg else ETA_MEDIAN, l2=res.l2, linf=res.linf,
                            lipschitz_target=cfg.lipschitz_target if cfg else None)


__all__ = ["Analysis", "Theorem1", "analyze", "as_image_batch", "ANALYZE_MODES", "InputError"]
