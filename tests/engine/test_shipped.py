"""The shipped checkpoints and bundled samples: they load safely, match their metadata, and stay accurate.

Floors are set a couple of points below the values measured on the bundled samples (model card), so a
broken checkpoint or a purifier regression fails CI.
"""

import numpy as np
import pytest
import torch

from lqvae.io.checkpoint import load_checkpoint, read_metadata
from lqvae.io.data import DATASETS, load_samples
from lqvae.core.diagnostics import bit_statistics, predict
from tests.helpers import CHECKPOINTS

# Measured on the 1,000 bundled samples (docs/results/clean_*_samples.json, model card), minus ~1.5-2 points:
# MNIST A 99.2, B 99.1, C 98.4, A on purified 96.5; Fashion-MNIST A 92.6, B 90.4, C 90.4, A on purified 80.1.
CLEAN_FLOORS = {"mnist": {"A": 97.5, "B": 97.5, "C": 96.5}, "fashion_mnist": {"A": 90.5, "B": 88.5, "C": 88.5}}
PURIFIED_FLOORS = {"mnist": 94.5, "fashion_mnist": 78.0}


@pytest.mark.parametrize("dataset", DATASETS)
def test_samples_load_without_pickle_and_hold_100_per_class(dataset):
    s = load_samples(dataset)
    assert s.images.shape == (1000, 28, 28) and s.images.dtype == np.uint8
    assert np.bincount(s.labels, minlength=10).tolist() == [100] * 10


def _files():
    return sorted(CHECKPOINTS.glob("*/*.safetensors"))


@pytest.mark.parametrize("path", _files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_checkpoint_loads_and_matches_metadata(path):
    meta = read_metadata(path)
    ck = load_checkpoint(path)
    assert meta["dataset"] == path.parent.name and ck.kind == meta["kind"]
    assert meta["epochs"] >= 1 and meta["command"].startswith("python -m lqvae.train")
    assert type(ck.config).from_dict(meta["config"]) == ck.config  # the model was rebuilt from its metadata


@pytest.mark.parametrize("dataset", DATASETS)
def test_shipped_accuracy_floors_on_bundled_samples(dataset):
    folder = CHECKPOINTS / dataset
    if not (folder / "classifier_A.safetensors").exists():
        pytest.skip(f"no shipped checkpoints for {dataset}")
    x, y = load_samples(dataset).tensors()
    for arch, floor in CLEAN_FLOORS[dataset].items():
        path = folder / f"classifier_{arch}.safetensors"
        if path.exists():
            acc = float((predict(load_checkpoint(path).model, x) == y).float().mean() * 100)
            assert acc >= floor, f"{dataset} classifier {arch}: {acc:.1f}% < floor {floor}%"
    lq_path = folder / "lqvae.safetensors"
    if lq_path.exists():
        lq = load_checkpoint(lq_path).model
        clf = load_checkpoint(folder / "classifier_A.safetensors").model
        acc = float((predict(torch.nn.Sequential(lq, clf), x) == y).float().mean() * 100)
        assert acc >= PURIFIED_FLOORS[dataset], f"{dataset} purified: {acc:.1f}% < {PURIFIED_FLOORS[dataset]}%"
        with torch.inference_mode():
            stats = bit_statistics(lq.encode_bits(x))
        # the bits carry the image (issue targets; measured 0 dead bits and 999 / 996 distinct codes of 1,000)
        assert stats["dead_bits"] <= 4 and stats["distinct_codes"] >= 980
        assert 0.2 <= stats["bit_balance"]["median"] <= 0.8
