"""Algorithm 1 of the paper as loss terms.

One call of ``algorithm1_losses`` returns the three losses of lines 8-10:

* ``L_h = ||x - h(H~(z))||^2`` trains h (psi) and, through H~, the encoder (theta);
* ``L_g = ||x - g(H(z))||^2`` trains g (phi) only: H(z) is detached, so no gradient reaches theta;
* ``L_f = w_rec * L_h + w_kl * KL + w_pen * (||grad_x f(x)|| - K)^2`` trains theta.

Beyond the paper (issue 7), two optional terms join L_f, both on the encoder only:

* ``code_weight * ||H~(mu(x_in)) - H(mu(x))||^2`` on the rows whose input was perturbed (noise or an
  attack): the perturbed image must keep the clean image's bits (``code_consistency``);
* ``margin_weight * relu(margin - ||mu| - eta|)^2``: latent means kept away from the threshold where a
  bit flips (``margin_penalty``).

``total = L_f + L_g`` can be back-propagated once: theta only appears in L_f, phi only in L_g, and
psi only through L_h (inside L_f), so each parameter group receives exactly its Algorithm 1
gradient (up to the reconstruction weight on psi, a rescaling that Adam ignores).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lqvae.core.config import LQVAEConfig
from lqvae.core.models import LQVAE
from lqvae.core.quantize import hard_quantize, soft_quantize


class Losses(NamedTuple):
    total: Tensor
    L_f: Tensor
    L_g: Tensor
    L_h: Tensor
    kl: Tensor  # the KL term as optimised (after free bits), per image
    kl_raw: Tensor  # plain KL per image
    kl_per_dim: Tensor  # (M,) batch mean
    penalty: Tensor  # (||grad|| - K)^2, batch mean
    grad_norm: Tensor  # mean ||grad_x f(x)||, for the log
    mu: Tensor
    logvar: Tensor
    code: Tensor  # code-consistency term (0 when unused), before its weight
    margin: Tensor  # margin term (0 when unused), before its weight


def code_consistency(mu_in: Tensor, target_bits: Tensor, eta: float, c: float) -> Tensor:
    """Squared distance of the soft code H~(mu_in) to the clean bits, summed over dimensions, batch mean.

    ``target_bits`` (B, M) in {-1, +1} is H(mu(x)) of the clean images (no gradient); each flipped bit
    costs up to 4, and the gradient pushes mu_j back across the threshold towards its clean side.
    """
    if mu_in.shape != target_bits.shape:
        raise ValueError(f"expected target bits of shape {tuple(mu_in.shape)}, got {tuple(target_bits.shape)}")
    return (soft_quantize(mu_in, eta, c) - target_bits.detach()).pow(2).sum(1).mean()


def margin_penalty(mu: Tensor, eta: float, margin: float) -> Tensor:
    """relu(margin - ||mu_j| - eta|)^2 summed over dimensions, batch mean: zero once every mu_j is at
    least ``margin`` from the threshold +-eta, so bits sit where small perturbations cannot flip them."""
    return torch.relu(margin - (mu.abs() - eta).abs()).pow(2).sum(1).mean()


def reconstruction(x: Tensor, x_hat: Tensor, kind: str) -> Tensor:
    """Per-image reconstruction loss, averaged over the batch: ``sse`` or Bernoulli ``bce``."""
    if kind == "sse":
        return (x - x_hat).pow(2).flatten(1).sum(1).mean()
    if kind == "bce":
        return F.binary_cross_entropy(x_hat.clamp(1e-6, 1 - 1e-6), x, reduction="none").flatten(1).sum(1).mean()
    raise ValueError(f"expected recon 'sse' or 'bce', got {kind!r}")


def kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per image and dimension, (B, M)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)


def gradient_penalty(encoder: torch.nn.Module, x: Tensor, cfg: LQVAEConfig, *,
                     create_graph: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(||grad_x s(x)||_2 - K)^2 averaged over the batch, with s chosen by ``cfg.penalty_target``.

    Returns (penalty, per-image gradient norms, mu, logvar); mu and logvar come from the same
    forward pass so the caller need not encode twice.
    """
    x = x.detach().requires_grad_(True)
    mu, logvar = encoder(x)
    if cfg.penalty_target == "sum":
        weights = torch.ones_like(mu)
    else:
        v = torch.randn_like(mu)
        weights = v / v.norm(dim=1, keepdim=True)
    (grad,) = torch.autograd.grad(mu, x, grad_outputs=weights, create_graph=create_graph)
    norms = grad.flatten(1).norm(dim=1)  # (B,)
    return (norms - cfg.lipschitz_target).pow(2).mean(), norms, mu, logvar


def kl_weight_at(cfg: LQVAEConfig, step: int) -> float:
    if cfg.kl_warmup_steps <= 0:
        return cfg.kl_weight
    return cfg.kl_weight * min(1.0, step / cfg.kl_warmup_steps)


def algorithm1_losses(model: LQVAE, x: Tensor, *, step: int = 0, x_in: Tensor | None = None,
                      perturbed: Tensor | None = None) -> Losses:
    """Losses of Algorithm 1 (lines 4-10) on a batch ``x`` in [0, 1].

    ``x_in`` (default ``x``) is what the encoder sees; reconstruction targets are always ``x``. The
    robust variants pass randomly perturbed or adversarial inputs here. ``perturbed`` (B,) bool marks
    the rows of ``x_in`` that differ from ``x``: the code-consistency term applies to those only.
    """
    cfg = model.cfg
    assert model.h is not None, "training needs h: build LQVAE(cfg, training_parts=True)"
    x_in = x if x_in is None else x_in
    if cfg.penalty_weight > 0:
        penalty, norms, mu, logvar = gradient_penalty(model.encoder, x_in, cfg)
    else:
        mu, logvar = model.encoder(x_in)
        penalty = norms = torch.zeros((), device=x.device)
    sigma = torch.exp(0.5 * logvar)
    z = mu + cfg.noise_scale * sigma * torch.randn_like(mu)  # line 5, reparameterised
    if cfg.quantizer == "binary":
        x1 = model.h(soft_quantize(z, cfg.eta, cfg.c))  # line 6
        x2 = model.g(hard_quantize(z.detach(), cfg.eta))  # line 7: H has no gradient; g only
    else:  # VAE ablation: the same two decoders and losses, fed the continuous z
        x1 = model.h(z)
        x2 = model.g(z.detach())
    L_h = reconstruction(x, x1, cfg.recon)
    L_g = reconstruction(x, x2, cfg.recon)
    kl = kl_per_dim(mu, logvar)  # (B, M)
    kl_dims = kl.mean(0)  # (M,)
    kl_raw = kl.sum(1).mean()
    kl_term = torch.clamp(kl_dims, min=cfg.free_bits).sum() if cfg.free_bits > 0 else kl_raw
    L_f = cfg.recon_weight * L_h + kl_weight_at(cfg, step) * kl_term + cfg.penalty_weight * penalty
    code = margin = torch.zeros((), device=x.device)
    if cfg.code_weight > 0 and cfg.quantizer == "binary":
        rows = torch.ones(x.shape[0], dtype=torch.bool, device=x.device) if perturbed is None else perturbed
        if bool(rows.any()):
            with torch.no_grad():
                target = hard_quantize(model.encoder(x[rows])[0], cfg.eta)  # (b, M) the clean bits
            code = code_consistency(mu[rows], target, cfg.eta, cfg.c)
            L_f = L_f + cfg.code_weight * code
    if cfg.margin_weight > 0 and cfg.quantizer == "binary":
        margin = margin_penalty(mu, cfg.eta, cfg.margin)
        L_f = L_f + cfg.margin_weight * margin
    return Losses(L_f + cfg.recon_weight * L_g, L_f, L_g, L_h, kl_term, kl_raw, kl_dims.detach(), penalty,
                  norms.mean() if norms.dim() else norms, mu, logvar, code, margin)
