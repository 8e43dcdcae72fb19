"""Helpers the engine and app tests share (not fixtures): paths and synthetic idx data sets."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints"
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


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


def tiny_checkpoints(root: Path, *, extra: dict | None = None) -> Path:
    """Random-weight MNIST classifiers A and B and an LQ-VAE (latent 16) under ``root/mnist``, seeded: the CLI
    tests' checkpoint root. ``extra`` maps further file stems to (model, kind)."""
    import torch

    from lqvae.core.config import ClassifierConfig, LQVAEConfig
    from lqvae.core.models import LQVAE, Classifier
    from lqvae.io.checkpoint import save_checkpoint

    torch.manual_seed(0)
    for arch in "AB":
        save_checkpoint(root / "mnist" / f"classifier_{arch}.safetensors", Classifier(ClassifierConfig(arch=arch)),
                        kind="classifier", dataset="mnist")
    save_checkpoint(root / "mnist" / "lqvae.safetensors", LQVAE(LQVAEConfig.mnist(latent_dim=16), training_parts=False),
                    kind="lqvae", dataset="mnist")
    for stem, (model, kind) in (extra or {}).items():
        save_checkpoint(root / "mnist" / f"{stem}.safetensors", model, kind=kind, dataset="mnist")
    return root
