"""LQ-VAE engine: models, quantizers, data, checkpoints, training, attacks, evaluation.

The engine never imports Qt; the GUI in ``app/`` only calls into it.
"""

from lqvae.config import ClassifierConfig, LQVAEConfig
from lqvae.device import resolve_device

__all__ = ["ClassifierConfig", "LQVAEConfig", "resolve_device"]
