"""Dataclass configs for the LQ-VAE and the classifiers.

Every checkpoint stores its config as JSON beside the weights; loading rebuilds the model from it
(``from_dict``) and refuses unknown keys, so a config is the single description of a model. A config
may come from a hostile file, so every field is checked (type, finite, within the limits below) before
any network is built: a claim of 2,000,000 classes or 10^12 latent bits fails here, naming the field,
not in the allocator.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal

from lqvae.spec.datasets import ETA_MEDIAN  # eq. 2: P(|z| <= eta) = 0.5 for z ~ N(0, 1)

Arch = Literal["table8", "table9"]
ReconLoss = Literal["sse", "bce"]
PenaltyTarget = Literal["sum", "random_projection"]
QuantizerKind = Literal["binary", "none"]


# Limits far above every model here and far below a memory bomb (a checkpoint's config is untrusted input).
MAX_CHANNELS = 4  # grey, RGB or RGBA
MAX_SIDE = 256  # pixels per image side
MAX_LATENT = 4096
MAX_CLASSES = 10_000
MAX_WIDTH = 1024  # Defense-GAN's dim and critic_dim
MAX_STEPS = 1_000_000  # step and iteration counts


def _int(owner: object, name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int in [lo, hi]; a bool, a float or a string is refused, not rounded."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise ValueError(f"{type(owner).__name__}.{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _real(owner: object, name: str, value: Any, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a finite float in [lo, hi] (NaN and infinity would poison every computation silently)."""
    try:  # an int too large for a float (10**400) raises OverflowError in isfinite
        ok = (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
              and lo <= value <= hi)
    except OverflowError:
        ok = False
    if not ok:
        shown = repr(value) if len(repr(value)) < 60 else repr(value)[:40] + "…"
        raise ValueError(f"{type(owner).__name__}.{name} must be a finite number in [{lo}, {hi}], got {shown}")
    return float(value)


def _choice(owner: object, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"expected {type(owner).__name__}.{name} in {choices}, got {value!r}")


def _check_image_shape(owner: object) -> None:
    """``image_shape`` as a tuple (C, H, W) of small positive ints, set back on the frozen instance."""
    shape = getattr(owner, "image_shape")
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        raise ValueError(f"expected {type(owner).__name__}.image_shape (C, H, W), got {shape!r}")
    shape = (_int(owner, "image_shape[0] (channels)", shape[0], 1, MAX_CHANNELS),
             _int(owner, "image_shape[1] (height)", shape[1], 1, MAX_SIDE),
             _int(owner, "image_shape[2] (width)", shape[2], 1, MAX_SIDE))
    object.__setattr__(owner, "image_shape", shape)


def _check_betas(owner: object) -> None:
    betas = getattr(owner, "betas")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"expected {type(owner).__name__}.betas (beta1, beta2), got {betas!r}")
    object.__setattr__(owner, "betas", tuple(_real(owner, "betas", b, 0.0, 1.0) for b in betas))


def _from_dict(cls: type, data: dict[str, Any]):
    if not isinstance(data, dict):
        raise ValueError(f"expected a {cls.__name__} as a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}; expected a subset of {sorted(names)}")
    return cls(**data)  # __post_init__ checks and normalises every field


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
    code_weight: float = 0.0  # code consistency: perturbed inputs must keep the clean input's bits (lqvae.core.losses)
    margin_weight: float = 0.0  # hinge on mu near +-eta: bits sit at least `margin` from where they flip
    margin: float = 0.1
    quantizer: QuantizerKind = "binary"  # "none": the VAE ablation of issue 6 (g decodes the continuous z)
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)

    def __post_init__(self) -> None:
        if self.quantizer not in ("binary", "none"):
            raise ValueError(f"expected quantizer 'binary' or 'none', got {self.quantizer!r}")
        _check_image_shape(self)
        _choice(self, "arch", self.arch, ("table8", "table9"))
        _choice(self, "recon", self.recon, ("sse", "bce"))
        _choice(self, "penalty_target", self.penalty_target, ("sum", "random_projection"))
        _int(self, "latent_dim", self.latent_dim, 1, MAX_LATENT)
        _int(self, "kl_warmup_steps", self.kl_warmup_steps, 0, MAX_STEPS)
        for name in ("eta", "c", "lipschitz_target", "penalty_weight", "kl_weight", "free_bits", "recon_weight",
                     "noise_scale", "input_noise", "code_weight", "margin_weight", "margin", "lr"):
            _real(self, name, getattr(self, name))
        if self.mu_init_std is not None:
            _real(self, "mu_init_std", self.mu_init_std, 0.0)
        _check_betas(self)
        if self.arch == "table8" and tuple(self.image_shape[1:]) != (28, 28):
            raise ValueError(f"arch table8 needs 28x28 images, got {self.image_shape}; use arch='table9' for 64x64")
        if self.arch == "table9" and tuple(self.image_shape[1:]) != (64, 64):
            raise ValueError(f"arch table9 needs 64x64 images, got {self.image_shape}")
        if not 1e-3 <= self.eta <= 10 or self.c < 0:  # a threshold of 5e-324 or 1e300 makes every bit constant
            raise ValueError(f"expected eta in [0.001, 10] and c >= 0, got eta={self.eta}, c={self.c}")
        if self.code_weight < 0 or self.margin_weight < 0 or self.margin < 0:
            raise ValueError(f"expected code_weight, margin_weight and margin >= 0, got {self.code_weight}, "
                             f"{self.margin_weight}, {self.margin}")

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
        _check_image_shape(self)
        _int(self, "num_classes", self.num_classes, 2, MAX_CLASSES)
        _real(self, "lr", self.lr)

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
        _check_image_shape(self)
        if tuple(self.image_shape[1:]) != (28, 28):
            raise ValueError(f"the Defense-GAN generator makes 28x28 images, got {self.image_shape}")
        _int(self, "search_steps", self.search_steps, 1, MAX_STEPS)
        _int(self, "restarts", self.restarts, 1, MAX_STEPS)
        _int(self, "latent_dim", self.latent_dim, 1, MAX_LATENT)
        _int(self, "dim", self.dim, 1, MAX_WIDTH)
        _int(self, "critic_dim", self.critic_dim, 1, MAX_WIDTH)
        _int(self, "critic_iters", self.critic_iters, 1, MAX_STEPS)
        for name in ("search_lr", "search_momentum", "gp_weight", "lr"):
            _real(self, name, getattr(self, name))
        _check_betas(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DefenseGANConfig":
        return _from_dict(cls, data)


__all__ = ["ETA_MEDIAN", "LQVAEConfig", "ClassifierConfig", "DefenseGANConfig"]
