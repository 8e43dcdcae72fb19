"""Fixtures for the app tests: tiny random checkpoints and synthetic samples in a temp dir.

Imported by ``tests/test_app*.py`` (``from conftest_app import *``). Nothing here needs the shipped
checkpoints: the environment variables point the app at the temp dir for the whole session.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["LQVAE_THREADS"] = "1"

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints"


def synthetic_digits(n_per_class: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Digit-like blobs (a bar at a class-dependent angle), uint8 28x28, with labels."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    ys, xs = np.mgrid[0:28, 0:28]
    for label in range(10):
        for _ in range(n_per_class):
            angle = label * np.pi / 10 + rng.normal(0, 0.05)
            d = np.abs((xs - 13.5) * np.cos(angle) + (ys - 13.5) * np.sin(angle))
            along = np.abs(-(xs - 13.5) * np.sin(angle) + (ys - 13.5) * np.cos(angle))
            img = np.clip(1.6 - d, 0, 1) * (along < 9)
            images.append((img * 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels, np.int64)


def make_env(root: Path) -> dict[str, str]:
    """Random-weight classifiers A, B, C and an LQ-VAE for MNIST, samples, an empty results folder."""
    import torch

    from lqvae.checkpoint import save_checkpoint
    from lqvae.config import ClassifierConfig, LQVAEConfig
    from lqvae.models import LQVAE, Classifier

    ckpt = root / "checkpoints" / "mnist"
    ckpt.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for arch in "ABC":
        save_checkpoint(ckpt / f"classifier_{arch}.safetensors", Classifier(ClassifierConfig(arch=arch)),
                        kind="classifier", dataset="mnist")
    lq = LQVAE(LQVAEConfig.mnist(mu_init_std=0.05), with_h=False)
    save_checkpoint(ckpt / "lqvae.safetensors", lq, kind="lqvae", dataset="mnist", dtype=torch.float16)
    samples = root / "samples"
    samples.mkdir(exist_ok=True)
    images, labels = synthetic_digits()
    np.savez(samples / "mnist.npz", images=images, labels=labels)
    results = root / "results"
    results.mkdir(exist_ok=True)
    return {"LQVAE_CHECKPOINTS": str(root / "checkpoints"), "LQVAE_SAMPLES": str(samples),
            "LQVAE_RESULTS": str(results), "LQVAE_THREADS": "1"}


@pytest.fixture(scope="session")
def app_env(tmp_path_factory) -> dict[str, str]:
    env = make_env(tmp_path_factory.mktemp("lqvae_app"))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def model_cache(app_env):
    """Loaded models shared by the windows of the session (loading is not what these tests test)."""
    from app.engine_adapter import ModelCache

    return ModelCache()


@pytest.fixture
def window(qtbot, app_env, model_cache):
    """A started main window whose models have loaded and whose first analysis has been drawn."""
    from app.controller import Controller
    from app.main_window import MainWindow
    from app.state import AppState

    state = AppState()
    win = MainWindow(state, Controller(state, cache=model_cache))
    qtbot.addWidget(win)
    win.show()
    win.start()
    qtbot.waitUntil(lambda: win.controller.models_ready and win.state.result is not None, timeout=60_000)
    qtbot.waitUntil(win.controller.settled, timeout=30_000)
    yield win
    win.controller.shutdown()


def wait_settled(qtbot, win, timeout: int = 30_000) -> None:
    qtbot.wait(DEBOUNCE_WAIT_MS)
    qtbot.waitUntil(win.controller.settled, timeout=timeout)


DEBOUNCE_WAIT_MS = 200

__all__ = ["ROOT", "SHIPPED", "app_env", "make_env", "model_cache", "synthetic_digits", "wait_settled", "window"]
