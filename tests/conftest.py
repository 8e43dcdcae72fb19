"""Shared fixtures: small synthetic data and freshly initialised models (no shipped weights needed)."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

from lqvae.core.config import ClassifierConfig, LQVAEConfig
from lqvae.core.models import LQVAE, Classifier

torch.set_num_threads(min(2, torch.get_num_threads()))

# CI explores the same examples every run (a red CI must mean a real regression, not a new random draw);
# a developer's run keeps drawing new ones, which is how the property tests find what nobody wrote down.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def lqvae_model() -> LQVAE:
    torch.manual_seed(0)
    return LQVAE(LQVAEConfig.mnist(latent_dim=16), training_parts=True)


@pytest.fixture
def classifier_a() -> Classifier:
    torch.manual_seed(0)
    return Classifier(ClassifierConfig(arch="A"))


@pytest.fixture
def batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 6:22, 10:18] = torch.rand(8, 1, 16, 8, generator=g)  # blobs with ink-like statistics
    return x
