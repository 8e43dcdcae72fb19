import numpy as np
import pytest

from lqvae.io.data import DataNotFoundError, load_split, locate, read_idx
from tests.helpers import SHARED_MNIST, make_idx_folder


@pytest.mark.parametrize("dotted", [False, True])
@pytest.mark.parametrize("compress", [False, True])
def test_loader_finds_both_naming_styles(tmp_path, dotted, compress):
    folder = make_idx_folder(tmp_path / "d", dotted=dotted, compress=compress)
    before = sorted(p.name for p in folder.iterdir())
    train = load_split("mnist", "train", folder, download=False)
    x, y = train.tensors()
    assert x.shape == (20, 1, 28, 28) and y.shape == (20,) and 0 <= x.min() and x.max() <= 1
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written into the user's folder


def test_missing_data_error_names_the_places(tmp_path, monkeypatch):
    monkeypatch.delenv("LQVAE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DataNotFoundError) as err:
        locate("mnist", tmp_path / "empty", download=False)
    assert str(tmp_path / "empty") in str(err.value) and "--data-dir" in str(err.value)


def test_env_variable_is_used(tmp_path, monkeypatch):
    make_idx_folder(tmp_path / "env" / "mnist", dotted=False, compress=True)
    monkeypatch.setenv("LQVAE_DATA", str(tmp_path / "env"))
    assert locate("mnist", None, download=False) == tmp_path / "env" / "mnist"


def test_truncated_idx_is_refused(tmp_path):
    folder = make_idx_folder(tmp_path / "d", dotted=False, compress=False)
    f = folder / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(f)


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared MNIST copy not present")
def test_real_mnist_test_split():
    test = load_split("mnist", "test", SHARED_MNIST, download=False)
    assert test.images.shape == (10_000, 28, 28) and np.bincount(test.labels).min() > 800
