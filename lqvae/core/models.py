"""Networks of the paper's appendix: LQ-VAE encoder/decoders (Tables 8, 9) and classifiers A, B, C.

Images are in [0, 1] everywhere; classifiers return logits (softmax is applied by the caller).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from lqvae.core.config import ClassifierConfig, LQVAEConfig
from lqvae.core.quantize import BinaryQuantizer, GradMode, IdentityQuantizer, hard_quantize


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2)


class Encoder(nn.Module):
    """f_theta: image -> (mu, log sigma^2), each (B, M)."""

    def __init__(self, cfg: LQVAEConfig) -> None:
        super().__init__()
        ch = cfg.image_shape[0]
        if cfg.arch == "table8":  # 28 -> 28 -> 14 -> 7 -> 7
            convs = [(ch, 64, 1), (64, 64, 2), (64, 128, 2), (128, 128, 1)]
            flat = 128 * 7 * 7
        else:  # table9: 64 -> 64 -> 32 -> 16 -> 8 -> 4
            convs = [(ch, 64, 1), (64, 64, 2), (64, 128, 2), (128, 128, 2), (128, 256, 2)]
            flat = 256 * 4 * 4
        layers: list[nn.Module] = []
        for cin, cout, stride in convs:
            layers += [nn.Conv2d(cin, cout, 3, stride, padding=1), _lrelu()]
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, 1024), _lrelu())
        self.mu = nn.Linear(1024, cfg.latent_dim)
        self.logvar = nn.Linear(1024, cfg.latent_dim)
        if cfg.mu_init_std is not None:
            nn.init.normal_(self.mu.weight, std=cfg.mu_init_std)
            nn.init.zeros_(self.mu.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(x)  # (B, 1024)
        return self.mu(h), self.logvar(h).clamp(-20.0, 10.0)


class Decoder(nn.Module):
    """g_phi (inference, fed H) and its training copy h_psi (fed H~): code (B, M) -> image."""

    def __init__(self, cfg: LQVAEConfig) -> None:
        super().__init__()
        ch = cfg.image_shape[0]
        if cfg.arch == "table8":  # 7 -> 7 -> 14 -> 28 -> 28
            self.start = (128, 7, 7)
            deconvs = [(128, 128, 1), (128, 128, 2), (128, 64, 2)]
        else:  # 4 -> 8 -> 16 -> 32 -> 64 -> 64
            self.start = (256, 4, 4)
            deconvs = [(256, 128, 2), (128, 128, 2), (128, 64, 2), (64, 64, 2)]
        c0, h0, w0 = self.start
        self.fc = nn.Sequential(nn.Linear(cfg.latent_dim, 1024), _lrelu(), nn.Linear(1024, c0 * h0 * w0), _lrelu())
        layers: list[nn.Module] = []
        for cin, cout, stride in deconvs:
            layers += [nn.ConvTranspose2d(cin, cout, 3, stride, padding=1, output_padding=stride - 1), _lrelu()]
        layers += [nn.ConvTranspose2d(deconvs[-1][1], ch, 3, 1, padding=1), nn.Sigmoid()]
        self.deconv = nn.Sequential(*layers)

    def forward(self, code: Tensor) -> Tensor:
        h = self.fc(code).view(code.shape[0], *self.start)
        return self.deconv(h)  # (B, C, H, W) in [0, 1]


class Purification(NamedTuple):
    """Everything a viewer needs from one purification.

    Deterministic mode: ``image`` (B, C, H, W), ``bits`` and ``z`` (B, M), ``samples`` None.
    Stochastic mode with S samples: ``samples`` (S, B, C, H, W), ``bits`` and ``z`` (S, B, M), and
    ``image`` the mean of the samples. ``mu`` and ``sigma`` are (B, M) in both modes.
    """

    image: Tensor
    bits: Tensor
    z: Tensor
    mu: Tensor
    sigma: Tensor
    samples: Tensor | None


PURIFY_MODES = ("deterministic", "stochastic")


class LQVAE(nn.Module):
    """Encoder f, quantizer H and decoder g (the defense), plus h (training only).

    ``forward(x)`` is the defense as one differentiable-or-not module (deterministic g(H(mu))); the
    quantizer's ``grad_mode`` decides what an attack's gradient sees. ``training_parts`` builds what only
    training needs, the decoder h_psi (a copy of g, Algorithm 1 line 1); a shipped defense has none.
    """

    def __init__(self, cfg: LQVAEConfig, *, training_parts: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.g = Decoder(cfg)
        self.h: Decoder | None = None
        if training_parts:
            self.h = Decoder(cfg)
            self.h.load_state_dict(self.g.state_dict())  # Algorithm 1, line 1: h is a copy of g
        self.quantizer: BinaryQuantizer | IdentityQuantizer = (
            BinaryQuantizer(eta=cfg.eta, c=cfg.c) if cfg.quantizer == "binary" else IdentityQuantizer())

    @property
    def quantized(self) -> bool:
        """False for the VAE ablation (``quantizer="none"``): its "bits" are the continuous code."""
        return self.cfg.quantizer == "binary"

    def set_grad_mode(self, mode: GradMode) -> None:
        self.quantizer.grad_mode = mode

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """f: images (B, C, H, W) -> (mu, log sigma^2), each (B, M). :class:`lqvae.core.fast.FastLQVAE` overrides
        this and ``decode`` with its fused path; everything else here goes through the two."""
        return self.encoder(x)

    def decode(self, code: Tensor) -> Tensor:
        """g: code (B, M) -> images (B, C, H, W) in [0, 1]."""
        return self.g(code)

    def forward(self, x: Tensor) -> Tensor:
        mu, _ = self.encode(x)
        return self.decode(self.quantizer(mu))

    def encode_bits(self, x: Tensor) -> Tensor:
        mu, _ = self.encode(x)
        return hard_quantize(mu, self.cfg.eta) if self.quantized else mu.detach()

    def purify(self, x: Tensor, *, mode: str = "deterministic", n_samples: int = 8,
               generator: torch.Generator | None = None) -> Purification:
        """Purify a batch of images in [0, 1].

        The default is ``"deterministic"`` (z = mu): the same image always gets the same code and the
        same purified image, which is what a user comparing clean and adversarial codes needs and what
        Theorem 1 reasons about. ``"stochastic"`` samples z ~ N(mu, (noise_scale * sigma)^2) as in
        training, ``n_samples`` times, and averages the decoded images.
        """
        if mode not in PURIFY_MODES:
            raise ValueError(f"expected mode in {PURIFY_MODES}, got {mode!r}")
        if x.dim() != 4 or tuple(x.shape[1:]) != tuple(self.cfg.image_shape):
            raise ValueError(f"expected images of shape (B, {', '.join(map(str, self.cfg.image_shape))}), got {tuple(x.shape)}")
        mu, logvar = self.encode(x)
        sigma = torch.exp(0.5 * logvar)
        if mode == "deterministic":
            bits = self.quantizer(mu)
            return Purification(self.decode(bits), bits, mu, mu, sigma, None)
        if n_samples < 1:
            raise ValueError(f"expected n_samples >= 1, got {n_samples}")
        eps = torch.randn((n_samples, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + self.cfg.noise_scale * sigma * eps  # (S, B, M)
        bits = self.quantizer(z)
        samples = self.decode(bits.flatten(0, 1)).unflatten(0, (n_samples, mu.shape[0]))  # (S, B, C, H, W)
        return Purification(samples.mean(0), bits, z, mu, sigma, samples)


class Classifier(nn.Module):
    """Classifier A, B or C of the paper's appendix (logits out)."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch, hgt, wid = cfg.image_shape
        if cfg.arch == "A":
            feats = nn.Sequential(nn.Conv2d(ch, 64, 5, 1), nn.ReLU(), nn.Conv2d(64, 64, 5, 2), nn.ReLU(),
                                  nn.Dropout(0.25), nn.Flatten())
        elif cfg.arch == "B":  # first conv 'same' (TF) padding for stride 2, kernel 8 -> pad 3
            feats = nn.Sequential(nn.Dropout(0.2), nn.Conv2d(ch, 64, 8, 2, padding=3), nn.ReLU(),
                                  nn.Conv2d(64, 128, 6, 2), nn.ReLU(), nn.Conv2d(128, 128, 5, 1), nn.ReLU(),
                                  nn.Dropout(0.5), nn.Flatten())
        else:
            feats = nn.Flatten()
        with torch.no_grad():
            n_flat = feats.eval()(torch.zeros(1, ch, hgt, wid)).shape[1]
        if cfg.arch == "A":
            head = nn.Sequential(nn.Linear(n_flat, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, cfg.num_classes))
        elif cfg.arch == "B":
            head = nn.Linear(n_flat, cfg.num_classes)
        else:
            head = nn.Sequential(nn.Linear(n_flat, 200), nn.ReLU(), nn.Dropout(0.5), nn.Linear(200, 200), nn.ReLU(),
                                 nn.Linear(200, cfg.num_classes))
        self.net = nn.Sequential(feats, head)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Defended(nn.Module):
    """purifier -> classifier as one module, so an attack on it is end to end (BPDA/EOT)."""

    def __init__(self, purifier: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.purifier = purifier
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.purifier(x))


class StochasticPurifier(nn.Module):
    """One stochastic draw of the defense per call: g(H(mu + noise_scale * sigma * eps)).

    Used for Expectation over Transformation: averaging gradients of several calls estimates the
    gradient of the expected output. The quantizer's ``grad_mode`` still decides the backward of H.
    """

    def __init__(self, lqvae: LQVAE) -> None:
        super().__init__()
        self.lqvae = lqvae

    def forward(self, x: Tensor) -> Tensor:
        mu, logvar = self.lqvae.encode(x)
        z = mu + self.lqvae.cfg.noise_scale * torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.lqvae.decode(self.lqvae.quantizer(z))
