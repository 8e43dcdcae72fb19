"""Measurements of an LQ-VAE that say whether its bits carry the image.

A flip statistic means nothing without these: a collapsed model gives every image the same code and
so shows "0 bits flipped" under any attack.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from lqvae.core.config import LQVAEConfig
from lqvae.core.losses import gradient_penalty
from lqvae.core.models import LQVAE


@torch.inference_mode()
def encode_means(model: LQVAE, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """(mu, sigma) for all images, (N, M) each."""
    mus, sigmas = [], []
    device = next(model.parameters()).device
    for i in range(0, len(images), batch_size):
        mu, logvar = model.encoder(images[i:i + batch_size].to(device))
        mus.append(mu.cpu())
        sigmas.append(torch.exp(0.5 * logvar).cpu())
    return torch.cat(mus), torch.cat(sigmas)


def bit_statistics(bits: Tensor, dead_low: float = 0.01, dead_high: float = 0.99) -> dict[str, Any]:
    """Share of +1 per dimension (min/median/max), dead dimensions and distinct codes of (N, M) +-1 bits."""
    share = (bits > 0).float().mean(0)  # (M,)
    packed = {bytes(np.packbits((row > 0).numpy().astype(np.uint8))) for row in bits}
    return {
        "bit_balance": {"min": float(share.min()), "median": float(share.median()), "max": float(share.max())},
        "dead_bits": int(((share < dead_low) | (share > dead_high)).sum()),
        "distinct_codes": len(packed),
    }


def lipschitz_norms(model: LQVAE, images: Tensor, cfg: LQVAEConfig | None = None, batch_size: int = 256) -> Tensor:
    """Per-image ||grad_x s(x)||_2, the quantity the penalty pushes towards K."""
    cfg = cfg or model.cfg
    device = next(model.parameters()).device
    norms = []
    for i in range(0, len(images), batch_size):
        with torch.enable_grad():
            _, n, _, _ = gradient_penalty(model.encoder, images[i:i + batch_size].to(device), cfg, create_graph=False)
        norms.append(n.detach().cpu())
    return torch.cat(norms)


@torch.inference_mode()
def predict(model: torch.nn.Module, images: Tensor, batch_size: int = 500) -> Tensor:
    device = next(model.parameters()).device
    out = [model(images[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out)


@torch.inference_mode()
def purify_all(model: LQVAE, images: Tensor, batch_size: int = 500) -> Tensor:
    device = next(model.parameters()).device
    return torch.cat([model(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)])


def lqvae_report(model: LQVAE, images: Tensor, *, lipschitz_n: int = 1000) -> dict[str, Any]:
    """Bit statistics, sigma, KL per dimension and the Lipschitz median on held-out images."""
    mu, sigma = encode_means(model, images)
    bits = torch.where(mu.abs() <= model.cfg.eta, 1.0, -1.0)
    report = bit_statistics(bits)
    kl = 0.5 * (mu.pow(2) + sigma.pow(2) - 2 * sigma.log() - 1).mean(0)
    report.update({
        "sigma_median": float(sigma.median()),
        "mu_abs_max": float(mu.abs().max()),
        "kl_per_dim": {"min": float(kl.min()), "median": float(kl.median()), "max": float(kl.max())},
        "kl_total": float(kl.sum()),
        "lipschitz_median": float(lipschitz_norms(model, images[:lipschitz_n]).median()),
        "recon_mse": float((purify_all(model, images) - images).pow(2).mean()),
    })
    return report
