"""Shared fixtures: small synthetic data and freshly initialised models (no shipped weights needed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from lqvae.config import ClassifierConfig, LQVAEConfig
from lqvae.models import LQVAE, Classifier

torch.set_num_threads(min(2, torch.get_num_threads()))
ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints"
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture
def lqvae_model() -> LQVAE:
    torch.manual_seed(0)
    return LQVAE(LQVAEConfig.mnist(latent_dim=16), with_h=True)


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


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def make_idx_folder(folder: Path, *, dotted: bool, compress: bool, n_train: int = 20, n_test: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
             "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
             "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
             "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    for stem, arr in files.items():
        name = stem.replace("-idx", ".idx") if dotted else stem
        write_idx(folder / (name + (".gz" if compress else "")), np.asarray(arr), compress)
    return folder
