"""Defense-GAN (Samangouei et al., ICLR 2018), the baseline the paper calls orders of magnitude slower.

A WGAN-GP generator G learns the data; at inference an image x is replaced by G(z*), where z* is the
best of R random restarts of L gradient-descent steps on ||G(z) - x||^2. All R restarts of all
images run as one batch ((R * B) latents optimised together): the loss is a sum of independent
per-latent terms and momentum SGD is element-wise, so batching changes nothing but the speed.

The search has no useful gradient with respect to x (it is an inner optimisation); Athalye et al.
attacked it with BPDA, taking the backward pass of the purifier as the identity. ``grad_mode``
chooses: ``"none"`` detaches (grey-box), ``"bpda"`` or ``"straight_through"`` give the identity
backward, ``x + (G(z*) - x).detach()``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from lqvae.core.config import DefenseGANConfig
from lqvae.core.models import Purification
from lqvae.core.quantize import GradMode, IdentityQuantizer
from lqvae.spec.defenses import DEFENSEGAN_SEARCH


class Generator(nn.Module):
    """The authors' MNIST generator: z (128) -> 4x4x256 -> 8x8 (cropped to 7x7) -> 14 -> 28, sigmoid."""

    def __init__(self, cfg: DefenseGANConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.fc = nn.Sequential(nn.Linear(cfg.latent_dim, 4 * 4 * 4 * d), nn.ReLU())
        self.up1 = nn.Sequential(nn.ConvTranspose2d(4 * d, 2 * d, 5, 2, padding=2, output_padding=1), nn.ReLU())
        self.up2 = nn.Sequential(nn.ConvTranspose2d(2 * d, d, 5, 2, padding=2, output_padding=1), nn.ReLU())
        self.up3 = nn.Sequential(nn.ConvTranspose2d(d, cfg.image_shape[0], 5, 2, padding=2, output_padding=1),
                                 nn.Sigmoid())
        self.dim = d

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(z.shape[0], 4 * self.dim, 4, 4)
        h = self.up1(h)[:, :, :7, :7]
        return self.up3(self.up2(h))


class Critic(nn.Module):
    """WGAN-GP critic of Gulrajani et al. for MNIST (training only; not shipped)."""

    def __init__(self, cfg: DefenseGANConfig) -> None:
        super().__init__()
        d = cfg.critic_dim
        lrelu = nn.LeakyReLU(0.2)
        self.net = nn.Sequential(nn.Conv2d(cfg.image_shape[0], d, 5, 2, padding=2), lrelu,
                                 nn.Conv2d(d, 2 * d, 5, 2, padding=2), lrelu,
                                 nn.Conv2d(2 * d, 4 * d, 5, 2, padding=2), lrelu,
                                 nn.Flatten(), nn.Linear(4 * 4 * 4 * d, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


class SearchResult(NamedTuple):
    image: Tensor  # (B, C, H, W): G(z*) of the best restart
    z: Tensor  # (B, latent): z* of the best restart
    error: Tensor  # (B,): mean squared error of the best restart
    errors: Tensor  # (R, B): final error of every restart
    trace: Tensor  # (L + 1, B): best-over-restarts error before the first and after every step


def latent_search(generator: nn.Module, x: Tensor, *, steps: int, restarts: int, lr: float, momentum: float,
                  generator_rng: torch.Generator | None = None) -> SearchResult:
    """min_z ||G(z) - x||^2 (per-pixel mean), R restarts x L momentum-SGD steps, all in one batch."""
    b = x.shape[0]
    with torch.inference_mode(False):  # callers may be in inference mode; the search needs autograd
        return _search(generator, x.detach().clone(), b, steps, restarts, lr, momentum, generator_rng)


def _search(generator: nn.Module, x: Tensor, b: int, steps: int, restarts: int, lr: float, momentum: float,
            generator_rng: torch.Generator | None) -> SearchResult:
    target = x.unsqueeze(0).expand(restarts, *x.shape).reshape(restarts * b, *x.shape[1:])
    latent = generator.fc[0].in_features
    z = torch.randn((restarts * b, latent), generator=generator_rng, device=x.device, dtype=x.dtype)
    velocity = torch.zeros_like(z)
    trace = []
    with torch.enable_grad():
        for _ in range(steps):
            z.requires_grad_(True)
            err = (generator(z) - target).pow(2).flatten(1).mean(1)  # (R*B,)
            (grad,) = torch.autograd.grad(err.sum(), z)
            trace.append(err.detach().view(restarts, b).min(0).values)
            with torch.no_grad():
                velocity = momentum * velocity + grad
                z = z.detach() - lr * velocity
    with torch.no_grad():
        images = generator(z)
        errors = (images - target).pow(2).flatten(1).mean(1).view(restarts, b)
        trace.append(errors.min(0).values)
        best = errors.argmin(0)  # (B,)
        pick = best * b + torch.arange(b, device=x.device)
        return SearchResult(images[pick], z[pick], errors[best, torch.arange(b, device=x.device)], errors,
                            torch.stack(trace))


class DefenseGAN(nn.Module):
    """The Defense-GAN purifier: ``forward(x) = G(z*(x))`` with the backward chosen by ``grad_mode``.

    ``search_steps`` and ``restarts`` default to the config's (the authors' L = 200, R = 10) and can be
    changed on the instance for live use (the app's "live" setting is L = 50, R = 2). ``training_parts``
    builds what only training needs, the WGAN-GP critic; a shipped Defense-GAN has none.
    """

    LIVE = DEFENSEGAN_SEARCH["live"]  # (L, R) for interactive use

    def __init__(self, cfg: DefenseGANConfig, *, training_parts: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.generator = Generator(cfg)
        self.critic: Critic | None = Critic(cfg) if training_parts else None
        self.quantizer = IdentityQuantizer()  # holds grad_mode, so attacks switch it like the LQ-VAE's
        self.search_steps = cfg.search_steps
        self.restarts = cfg.restarts
        self.seed = 0

    quantized = False

    def set_grad_mode(self, mode: GradMode) -> None:
        self.quantizer.grad_mode = mode

    def search(self, x: Tensor) -> SearchResult:
        if x.dim() != 4 or tuple(x.shape[1:]) != tuple(self.cfg.image_shape):
            raise ValueError(f"expected images of shape (B, {', '.join(map(str, self.cfg.image_shape))}), "
                             f"got {tuple(x.shape)}")
        rng = torch.Generator(device=x.device).manual_seed(self.seed)
        return latent_search(self.generator, x, steps=self.search_steps, restarts=self.restarts,
                             lr=self.cfg.search_lr, momentum=self.cfg.search_momentum, generator_rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        image = self.search(x).image
        if self.quantizer.grad_mode == "none":
            return image
        return x + (image - x).detach()  # BPDA: identity backward

    def purify(self, x: Tensor, *, mode: str = "deterministic", n_samples: int = 8,
               generator: torch.Generator | None = None) -> Purification:
        """The search as a ``Purification``: ``z`` and ``mu`` are z*, ``bits`` z* too (there is no binary
        code). There is no stochastic mode: ``"stochastic"`` returns the one result as a single sample."""
        del n_samples, generator  # the search's own seed fixes its restarts
        res = self.search(x)
        samples = res.image.unsqueeze(0) if mode == "stochastic" else None
        return Purification(res.image, res.z, res.z, res.z, torch.zeros_like(res.z), samples)


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP: E[(||grad D(x_hat)|| - 1)^2] on random interpolates of real and fake."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


__all__ = ["Critic", "DefenseGAN", "Generator", "SearchResult", "gradient_penalty", "latent_search"]
