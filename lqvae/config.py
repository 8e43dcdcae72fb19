"""Dataclass configs for the LQ-VAE and the classifiers.

Every checkpoint stores its config as JSON beside the weights; loading rebuilds the model from it
(``from_dict``) and refuses unknown keys, so a config is the single description of a model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

ETA_MEDIAN = 0.67449  # eq. 2: P(|z| <= eta) = 0.5 for z ~ N(0, 1)

Arch = Literal["table8", "table9"]
ReconLoss = Literal["sse", "bce"]
PenaltyTarget = Literal["sum", "random_projection"]
QuantizerKind = Literal["binary", "none"]


def _from_dict(cls: type, data: dict[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}; expected a subset of {sorted(names)}")
    kwargs = dict(data)
    if "image_shape" in kwargs:
        kwargs["image_shape"] = tuple(int(v) for v in kwargs["image_shape"])
    return cls(**kwargs)


@dataclass(frozen=True)
class LQVAEConfig:
    """Everything that defines an LQ-VAE and how Algorithm 1 trains it.

    Defaults follow the paper (Algorithm 1, eq. 2 and 4, Table 8). Where the paper is silent we chose:

    * ``c = 0.1`` for H~ (eq. 4 gives no value; H~ -> H as c -> 0, and 0.1 keeps dH~/dz bounded).
    * ``recon = "sse"`` per image summed over pixels, averaged over the batch (Algorithm 1 sums over
      the batch; the mean only rescales every term equally, which Adam does not see).
    * ``penalty_target = "sum"``: the penalty differentiates sum_j mu_j(x) w.r.t. x, the usual
      WGAN-GP reading of ||grad_x f(x)|| for a vector-valued f; ``"random_projection"`` uses
      v . mu(x) with a fresh unit Gaussian v per image (an estimate of the Jacobian's norm).
    * ``penalty_weight = 1`` (Algorithm 1 adds the penalty unweighted).

    The knobs after ``penalty_weight`` exist because the literal objective collapses (every image
    gets the all-(+1) code); the shipped settings and their effect are in ``checkpoints/README.md``.
    """

    image_shape: tuple[int, int, int] = (1, 28, 28)
    arch: Arch = "table8"
    latent_dim: int = 64
    eta: float = ETA_MEDIAN
    c: float = 0.1
    lipschitz_target: float = 0.1  # K
    penalty_weight: float = 1.0
    penalty_target: PenaltyTarget = "sum"
    kl_weight: float = 1.0
    kl_warmup_steps: int = 0  # linear warm-up of the KL weight from 0
    free_bits: float = 0.0  # nats per latent dimension (0 = plain KL)
    recon: ReconLoss = "sse"
    recon_weight: float = 1.0
    noise_scale: float = 1.0  # z = mu + noise_scale * sigma * eps
    mu_init_std: float | None = None  # None = PyTorch default init of the mu head
    input_noise: float = 0.0  # uniform +-input_noise on half of each batch, clean targets (robust variant)
    code_weight: float = 0.0  # code consistency: perturbed inputs must keep the clean input's bits (lqvae.losses)
    margin_weight: float = 0.0  # hinge on mu near +-eta: bits sit at least `margin` from where they flip
    margin: float = 0.1
    quantizer: QuantizerKind = "binary"  # "none": the VAE ablation of issue 6 (g decodes the continuous z)
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)

    def __post_init__(self) -> None:
        if self.quantizer not in ("binary", "none"):
            raise ValueError(f"expected quantizer 'binary' or 'none', got {self.quantizer!r}")
        if len(self.image_shape) != 3:
            raise ValueError(f"expected image_shape (C, H, W), got {self.image_shape}")
        if self.arch == "table8" and tuple(self.image_shape[1:]) != (28, 28):
            raise ValueError(f"arch table8 needs 28x28 images, got {self.image_shape}; use arch='table9' for 64x64")
        if self.arch == "table9" and tuple(self.image_shape[1:]) != (64, 64):
            raise ValueError(f"arch table9 needs 64x64 images, got {self.image_shape}")
        if self.eta <= 0 or self.c < 0:
            raise ValueError(f"expected eta > 0 and c >= 0, got eta={self.eta}, c={self.c}")
        if self.code_weight < 0 or self.margin_weight < 0 or self.margin < 0:
            raise ValueError(f"expected code_weight, margin_weight and margin >= 0, got {self.code_weight}, "
                             f"{self.margin_weight}, {self.margin}")
        if self.latent_dim < 1:
            raise ValueError(f"expected latent_dim >= 1, got {self.latent_dim}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    @classmethod
    def mnist(cls, **overrides: Any) -> "LQVAEConfig":
        """Table 8 preset (MNIST and Fashion-MNIST, 1x28x28)."""
        return cls(image_shape=(1, 28, 28), arch="table8", **overrides)

    @classmethod
    def celeba(cls, **overrides: Any) -> "LQVAEConfig":
        """Table 9 preset (CelebA, 3x64x64). Built and shape-tested; no data here to train it."""
        return cls(image_shape=(3, 64, 64), arch="table9", **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LQVAEConfig":
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        return _from_dict(cls, data)


@dataclass(frozen=True)
class ClassifierConfig:
    """Classifier A, B or C of the paper's appendix table."""

    arch: Literal["A", "B", "C"] = "A"
    image_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 10
    lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.arch not in ("A", "B", "C"):
            raise ValueError(f"expected classifier arch A, B or C, got {self.arch!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClassifierConfig":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class DefenseGANConfig:
    """Defense-GAN (Samangouei et al. 2018): a WGAN-GP generator and its latent search at inference.

    Architecture: the authors' MNIST generator (latent 128 -> linear 4x4x256 -> three 5x5 transposed
    convolutions, the first cropped 8x8 -> 7x7, sigmoid) and the WGAN-GP critic of Gulrajani et al.
    The critic is half the authors' width (``critic_dim``, training only). Search defaults are the authors' L = 200 steps and R = 10 restarts; ``search_lr`` and
    ``search_momentum`` follow their code (gradient descent with momentum on the per-image mean
    squared error). Training: Adam 1e-4, betas (0.5, 0.9), 5 critic steps per generator step, lambda 10.
    """

    image_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 128
    dim: int = 64
    critic_dim: int = 32  # the authors' critic has 64; halved to fit WGAN-GP training on a 2-core CPU
    search_steps: int = 200  # L
    restarts: int = 10  # R
    search_lr: float = 10.0
    search_momentum: float = 0.7
    critic_iters: int = 5
    gp_weight: float = 10.0
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)

    def __post_init__(self) -> None:
        if tuple(self.image_shape[1:]) != (28, 28):
            raise ValueError(f"the Defense-GAN generator makes 28x28 images, got {self.image_shape}")
        if self.search_steps < 1 or self.restarts < 1:
            raise ValueError(f"expected search_steps >= 1 and restarts >= 1, got {self.search_steps}, {self.restarts}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DefenseGANConfig":
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        return _from_dict(cls, data)


__all__ = ["ETA_MEDIAN", "LQVAEConfig", "ClassifierConfig", "DefenseGANConfig"]
