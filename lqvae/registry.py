"""What is shipped in ``checkpoints/<dataset>/``, discovered from the files rather than a fixed menu.

File names: ``classifier_A.safetensors`` (B, C; adversarially trained baselines add a suffix such
as ``classifier_A_madry``), ``lqvae.safetensors`` and further purifiers (``lqvae_robust``, ``vae``,
...). Each file's metadata says its kind; names only order and label them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lqvae.checkpoint import PURIFIER_KINDS, Checkpoint, CheckpointError, load_checkpoint, read_metadata

CHECKPOINT_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"


def checkpoint_root() -> Path:
    return Path(os.environ.get("LQVAE_CHECKPOINTS", CHECKPOINT_ROOT))


@dataclass
class Inventory:
    """Checkpoint files of one dataset, by name, and the problems met while listing them."""

    dataset: str
    classifiers: dict[str, Path] = field(default_factory=dict)  # "A" -> path
    purifiers: dict[str, Path] = field(default_factory=dict)  # "lqvae" -> path
    errors: dict[str, str] = field(default_factory=dict)  # file name -> message


def inventory(dataset: str, root: str | os.PathLike | None = None) -> Inventory:
    folder = Path(root or checkpoint_root()) / dataset
    inv = Inventory(dataset)
    if not folder.is_dir():
        inv.errors[str(folder)] = f"no checkpoint folder {folder}"
        return inv
    for path in sorted(folder.glob("*.safetensors")):
        if path.name.endswith(".train-state.safetensors"):
            continue
        try:
            meta = read_metadata(path)
        except CheckpointError as exc:
            inv.errors[path.name] = str(exc)
            continue
        if meta["kind"] == "classifier":
            inv.classifiers[path.stem.removeprefix("classifier_")] = path
        else:
            inv.purifiers[path.stem] = path
    return inv


def load_named(dataset: str, name: str, *, kind: str, device: torch.device | str = "cpu",
               root: str | os.PathLike | None = None) -> Checkpoint:
    """Load ``classifier_<name>`` (kind='classifier') or purifier ``<name>`` of a dataset; kind='lqvae' or
    'defensegan' insists on that kind, kind='purifier' takes either."""
    stem = f"classifier_{name}" if kind == "classifier" else name
    path = Path(root or checkpoint_root()) / dataset / f"{stem}.safetensors"
    ckpt = load_checkpoint(path, kind=None if kind == "purifier" else kind, device=device)
    if kind == "purifier" and ckpt.kind not in PURIFIER_KINDS:
        raise CheckpointError(f"{path}: is a {ckpt.kind!r} checkpoint, expected a purifier ({', '.join(PURIFIER_KINDS)})")
    return ckpt
