"""What the evaluation commands load and write: test images, checkpoints by name, JSON files.

The loaders raise with a message that says what to do (``FileNotFoundError`` for a checkpoint that is
not there, :class:`lqvae.io.checkpoint.CheckpointError` for one that is refused); the command-line
faces in :mod:`lqvae.cli` turn those into one-line errors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lqvae.io.checkpoint import atomic_write, load_checkpoint
from lqvae.io.data import load_samples, load_split
from lqvae.io.registry import checkpoint_root, inventory


def load_images(dataset: str, n: int | None, *, data_dir: str | None = None,
                samples: bool = False) -> tuple[Tensor, Tensor]:
    """The first ``n`` test images, or ``n`` evenly spaced bundled samples (they are sorted by class),
    as float (N, 1, 28, 28) in [0, 1] and labels.

    Raises:
        ValueError: ``n`` is given and is not >= 1.
        lqvae.io.data.DataNotFoundError: the test set or the samples are not on disk.
    """
    if n is not None and n < 1:
        raise ValueError(f"expected n >= 1 images, got {n}")
    if not samples:
        return load_split(dataset, "test", data_dir).tensors(n)
    x, y = load_samples(dataset).tensors()
    if n is not None and n < len(x):
        idx = torch.from_numpy(np.linspace(0, len(x) - 1, n).round().astype(np.int64))
        x, y = x[idx], y[idx]
    return x, y


def load_classifier(dataset: str, name: str, *, device: torch.device, root: str | None = None) -> nn.Module:
    """Classifier checkpoint ``name`` (A, B, C, A_madry, ...) of ``dataset``, found by the registry.

    Raises:
        FileNotFoundError: there is no such checkpoint (the message lists those found).
    """
    inv = inventory(dataset, root)
    if name not in inv.classifiers:
        folder = Path(root or checkpoint_root()) / dataset
        raise FileNotFoundError(
            f"no classifier {name!r} for {dataset} in {folder} (found {sorted(inv.classifiers) or 'none'}"
            f"{'; problems: ' + str(inv.errors) if inv.errors else ''}); train it with "
            f"`python -m lqvae.train classifier --arch {name[:1]} --dataset {dataset}` or pass --checkpoints")
    return load_checkpoint(inv.classifiers[name], kind="classifier", device=device).model


def load_defense(dataset: str, name: str, *, device: torch.device, root: str | None = None) -> nn.Module | None:
    """``none`` -> None; otherwise the purifier checkpoint ``<name>.safetensors`` found by the registry.

    Raises:
        FileNotFoundError: there is no such purifier (the message lists those found).
        lqvae.io.checkpoint.CheckpointError: the file is there but refused.
    """
    if name in ("none", ""):
        return None
    inv = inventory(dataset, root)
    if name not in inv.purifiers:
        folder = Path(root or checkpoint_root()) / dataset
        raise FileNotFoundError(f"no defense {name!r} for {dataset} in {folder} (purifiers found: "
                                f"{sorted(inv.purifiers) or 'none'}); pass --defense none or one of those, "
                                "or --checkpoints DIR")
    return load_checkpoint(inv.purifiers[name], device=device).model


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json(path: str | Path, data: Any) -> None:
    """``data`` as indented JSON (numpy numbers and arrays included), written atomically."""
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


__all__ = ["load_images", "load_classifier", "load_defense", "file_sha256", "write_json"]
