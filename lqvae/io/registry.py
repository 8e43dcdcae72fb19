"""What is shipped in ``checkpoints/<dataset>/``, discovered from the files rather than a fixed menu.

File names: ``classifier_A.safetensors`` (B, C; adversarially trained baselines add a suffix such
as ``classifier_A_madry``), ``lqvae.safetensors`` and further purifiers (``lqvae_robust``, ``vae``,
...). Each file's metadata says its kind; names order and label them, so a name must not contradict
the file: a classifier is ``classifier_<arch>`` or ``classifier_<arch>_<hardening>`` with ``<arch>`` its
config's arch (the app splits ``A_madry`` into base ``A`` and defense ``madry``), a purifier's name is
anything else (letters, digits, '_', '-'). A file that breaks these rules, whose metadata ``read_metadata``
refuses or whose config ``check_config`` refuses, is listed in ``Inventory.errors`` with the reason; the
other files are listed as usual (weights are checked when a model is loaded).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lqvae.io.checkpoint import (PURIFIER_KINDS, Checkpoint, CheckpointError, check_config, load_checkpoint,
                              read_metadata)
from lqvae.spec.defenses import HARDENINGS  # classifier-side defenses: classifier_<arch>_<hardening>

CHECKPOINT_ROOT = Path(__file__).resolve().parents[2] / "checkpoints"
CLASSIFIER_PREFIX = "classifier_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # a model name: no path separators, no dot files


def checkpoint_root() -> Path:
    return Path(os.environ.get("LQVAE_CHECKPOINTS", CHECKPOINT_ROOT))


@dataclass
class Inventory:
    """Checkpoint files of one dataset, by name, and the problems met while listing them."""

    dataset: str
    classifiers: dict[str, Path] = field(default_factory=dict)  # "A" -> path
    purifiers: dict[str, Path] = field(default_factory=dict)  # "lqvae" -> path
    errors: dict[str, str] = field(default_factory=dict)  # file name -> message


def model_name(path: Path, meta: dict[str, Any]) -> str:
    """The name a checkpoint is listed under ("A", "A_madry", "lqvae"), or a ``CheckpointError`` saying
    why its file name contradicts its metadata and how to rename it."""
    stem, kind = path.stem, meta["kind"]
    if kind != "classifier":
        if stem.startswith(CLASSIFIER_PREFIX) or not _NAME.fullmatch(stem):
            raise CheckpointError(f"{path}: a {kind} purifier needs a name of letters, digits, '_' and '-' not "
                                  f"starting with {CLASSIFIER_PREFIX!r}; rename it (e.g. {kind}_2.safetensors)")
        return stem
    arch = meta["config"].get("arch", "A")  # ClassifierConfig's default
    name = stem.removeprefix(CLASSIFIER_PREFIX)
    valid = [f"{arch}"] + [f"{arch}_{h}" for h in HARDENINGS]
    if not stem.startswith(CLASSIFIER_PREFIX) or name not in valid:
        raise CheckpointError(f"{path}: a classifier of arch {str(arch)[:20]!r} must be named "
                              f"classifier_<arch>[_<hardening>] with <hardening> one of {', '.join(HARDENINGS)}, "
                              f"i.e. one of {', '.join(f'{CLASSIFIER_PREFIX}{v}.safetensors' for v in valid)}; "
                              "rename or remove it")
    return name


def inventory(dataset: str, root: str | os.PathLike | None = None) -> Inventory:
    """List a dataset's checkpoints from their headers. One bad file never stops the listing: it goes
    to ``errors`` (file name -> reason) and every other file is listed."""
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
            check_config(path, meta)  # a config no model can be built from is refused here, not at loading
            name = model_name(path, meta)
        except CheckpointError as exc:
            inv.errors[path.name] = str(exc)
            continue
        (inv.classifiers if meta["kind"] == "classifier" else inv.purifiers)[name] = path
    return inv


def load_named(dataset: str, name: str, *, kind: str, device: torch.device | str = "cpu",
               root: str | os.PathLike | None = None) -> Checkpoint:
    """Load ``classifier_<name>`` (kind='classifier') or purifier ``<name>`` of a dataset; kind='lqvae' or
    'defensegan' insists on that kind, kind='purifier' takes either. The name rules of ``inventory``
    apply, so a file is never loaded under a name the listing would refuse."""
    folder = Path(root or checkpoint_root()) / dataset
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CheckpointError(f"{folder}: {name!r} is not a model name (letters, digits, '_' and '-'); pick one the "
                              "Models panel lists")
    stem = f"{CLASSIFIER_PREFIX}{name}" if kind == "classifier" else name
    path = folder / f"{stem}.safetensors"
    meta = read_metadata(path)  # the header only: the checks below cost nothing
    if kind == "purifier" and meta["kind"] not in PURIFIER_KINDS:
        raise CheckpointError(f"{path}: is a {meta['kind']!r} checkpoint, expected a purifier "
                              f"({', '.join(PURIFIER_KINDS)}); pick another purifier")
    if kind != "purifier" and meta["kind"] != kind:
        raise CheckpointError(f"{path}: is a {meta['kind']!r} checkpoint, expected {kind!r}; pick a {kind} file")
    model_name(path, meta)
    return load_checkpoint(path, device=device)
