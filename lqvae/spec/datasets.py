"""The data sets and their classes, and the paper's quantization threshold eta (torch-free)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

DATASETS = ("mnist", "fashion_mnist")
DATASET_LABELS: Mapping[str, str] = MappingProxyType({"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"})
CLASS_NAMES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
})
SHORT_NAMES: Mapping[str, str] = MappingProxyType({  # for axis ticks and thumbnails
    "T-shirt/top": "Tee", "Trouser": "Trous", "Pullover": "Pull", "Sandal": "Sand", "Sneaker": "Sneak",
    "Ankle boot": "Boot"})

ETA_MEDIAN = 0.67449  # eq. 2: P(|z| <= eta) = 0.5 for z ~ N(0, 1), so both bits are equally likely


def short_name(name: str) -> str:
    """A class name short enough for an axis tick or a thumbnail ("Ankle boot" -> "Boot")."""
    return SHORT_NAMES.get(name, name)


__all__ = ["DATASETS", "DATASET_LABELS", "CLASS_NAMES", "SHORT_NAMES", "ETA_MEDIAN", "short_name"]
