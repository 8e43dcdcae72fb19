"""MNIST and Fashion-MNIST from idx files, without writing into the user's data folder.

Where the files are looked for, in order:

1. ``data_dir`` (``--data-dir``), or the ``LQVAE_DATA`` environment variable: a folder holding the
   four idx files, gzip-compressed or not, named ``train-images-idx3-ubyte`` or
   ``train-images.idx3-ubyte`` (and a ``<dataset>/`` sub-folder of it is tried too);
2. Debian's ``dataset-fashion-mnist`` package folder ``/usr/share/datasets/fashion-mnist``
   (Fashion-MNIST only);
3. torchvision's own download into ``~/.cache/lqvae/<dataset>`` when the machine is online.

The idx parser is ours (a few lines of numpy with bounded sizes) because torchvision's classes want
the files decompressed in a fixed layout, which would mean writing into the user's folder.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lqvae.spec.datasets import CLASS_NAMES, DATASETS  # noqa: F401 - re-exported, written once in lqvae.spec

DEBIAN_DIRS = {"fashion_mnist": Path("/usr/share/datasets/fashion-mnist")}
_STEMS = {
    ("train", "images"): "train-images-idx3-ubyte", ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte", ("test", "labels"): "t10k-labels-idx1-ubyte",
}
_MAX_IDX_BYTES = 200 * 1024 * 1024


class DataNotFoundError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64

    def tensors(self, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as float32 (N, 1, 28, 28) in [0, 1] and labels as int64."""
        imgs, labels = self.images[:limit], self.labels[:limit]
        return torch.from_numpy(np.ascontiguousarray(imgs).copy()).float().div_(255.0).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _candidates(stem: str) -> list[str]:
    dotted = stem.replace("-idx", ".idx")
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


def _find(folder: Path, stem: str) -> Path | None:
    for name in _candidates(stem):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (gzip or raw) into a uint8 array, with bounded size and a checked header."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read(_MAX_IDX_BYTES + 1)
    if len(data) > _MAX_IDX_BYTES:
        raise ValueError(f"{path}: larger than {_MAX_IDX_BYTES} bytes, not an MNIST idx file")
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file (bad magic number)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(data) - offset != expected:
        raise ValueError(f"{path}: header says {dims} ({expected} bytes) but holds {len(data) - offset}; truncated?")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _search_dirs(dataset: str, data_dir: str | os.PathLike | None) -> list[Path]:
    dirs: list[Path] = []
    for root in (data_dir, os.environ.get("LQVAE_DATA")):
        if root:
            root = Path(root).expanduser()
            dirs += [root, root / dataset, root / dataset.replace("_", "-")]
    if dataset in DEBIAN_DIRS:
        dirs.append(DEBIAN_DIRS[dataset])
    dirs.append(Path.home() / ".cache" / "lqvae" / dataset)
    return dirs


def _torchvision_download(dataset: str) -> Path | None:
    target = Path.home() / ".cache" / "lqvae" / dataset
    try:
        from torchvision import datasets

        cls = datasets.MNIST if dataset == "mnist" else datasets.FashionMNIST
        for train in (True, False):
            cls(str(target / "tv"), train=train, download=True)
    except Exception:  # offline or blocked: fall through to the clear error
        return None
    raw = target / "tv" / ("MNIST" if dataset == "mnist" else "FashionMNIST") / "raw"
    return raw if raw.is_dir() else None


def locate(dataset: str, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The folder holding all four idx files of ``dataset``, or a clear ``DataNotFoundError``."""
    if dataset not in DATASETS:
        raise ValueError(f"expected dataset in {DATASETS}, got {dataset!r}")
    dirs = _search_dirs(dataset, data_dir)
    for folder in dirs:
        if all(_find(folder, stem) for stem in _STEMS.values()):
            return folder
    if download:
        raw = _torchvision_download(dataset)
        if raw is not None and all(_find(raw, s) for s in _STEMS.values()):
            return raw
    hint = ("apt-get install -y dataset-fashion-mnist" if dataset == "fashion_mnist"
            else "pass --data-dir ../shared/data/mnist (or set LQVAE_DATA)")
    looked = "\n  ".join(str(d) for d in dirs)
    raise DataNotFoundError(
        f"{dataset}: could not find the four idx files (train/t10k images and labels, .gz or not) in:\n  {looked}\n"
        f"and torchvision's download failed or was disabled. Get the data: {hint}, or run online once.")


def load_split(dataset: str, split: str, data_dir: str | os.PathLike | None = None, *,
               download: bool = True) -> Split:
    folder = locate(dataset, data_dir, download=download)
    images = read_idx(_find(folder, _STEMS[(split, "images")]))  # type: ignore[arg-type]
    labels = read_idx(_find(folder, _STEMS[(split, "labels")]))  # type: ignore[arg-type]
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{folder}: images {images.shape} and labels {labels.shape} do not match")
    return Split(images, labels.astype(np.int64))


def load_samples(dataset: str, root: str | os.PathLike | None = None) -> Split:
    """The bundled test images in ``resources/samples/<dataset>.npz`` (no pickle)."""
    root = Path(root) if root else Path(__file__).resolve().parents[2] / "resources" / "samples"
    path = root / f"{dataset}.npz"
    if not path.is_file():
        raise DataNotFoundError(f"bundled samples {path} are missing; run `python -m lqvae.cli.samples` to make them")
    with np.load(path, allow_pickle=False) as npz:
        return Split(npz["images"].astype(np.uint8), npz["labels"].astype(np.int64))
