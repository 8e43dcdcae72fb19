"""Helpers for the app tests (not fixtures): synthetic samples and checkpoints, running ``main.py``, files
a user might drop that are not images."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
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
    """Random-weight classifiers A, B, C and an LQ-VAE for MNIST, samples, an empty results folder, and a config
    folder of its own (the history file), so no test reads or writes the real home."""
    import torch

    from lqvae.io.checkpoint import save_checkpoint
    from lqvae.core.config import ClassifierConfig, LQVAEConfig
    from lqvae.core.models import LQVAE, Classifier

    ckpt = root / "checkpoints" / "mnist"
    ckpt.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for arch in "ABC":
        save_checkpoint(ckpt / f"classifier_{arch}.safetensors", Classifier(ClassifierConfig(arch=arch)),
                        kind="classifier", dataset="mnist")
    lq = LQVAE(LQVAEConfig.mnist(mu_init_std=0.05), training_parts=False)
    save_checkpoint(ckpt / "lqvae.safetensors", lq, kind="lqvae", dataset="mnist", dtype=torch.float16)
    samples = root / "samples"
    samples.mkdir(exist_ok=True)
    images, labels = synthetic_digits()
    np.savez(samples / "mnist.npz", images=images, labels=labels)
    results = root / "results"
    results.mkdir(exist_ok=True)
    return {"LQVAE_CHECKPOINTS": str(root / "checkpoints"), "LQVAE_SAMPLES": str(samples),
            "LQVAE_RESULTS": str(results), "LQVAE_THREADS": "1", "LQVAE_CONFIG_DIR": str(root / "config")}


def both_datasets(tmp: Path, app_env, monkeypatch) -> None:
    """The test models and samples for MNIST, copied for Fashion-MNIST too (a dataset switch keeps working)."""
    root, samples = tmp / "ckpt", tmp / "samples"
    shutil.copytree(Path(app_env["LQVAE_CHECKPOINTS"]) / "mnist", root / "mnist")
    shutil.copytree(root / "mnist", root / "fashion_mnist")
    shutil.copytree(Path(app_env["LQVAE_SAMPLES"]), samples)
    shutil.copy(samples / "mnist.npz", samples / "fashion_mnist.npz")
    monkeypatch.setenv("LQVAE_CHECKPOINTS", str(root))
    monkeypatch.setenv("LQVAE_SAMPLES", str(samples))


def open_window(qtbot, model_cache=None):
    """A shown, started main window whose models have loaded and whose first analysis has been drawn.

    ``model_cache`` shares loaded models between windows (loading is not what most tests test); None loads
    them afresh from the current ``LQVAE_CHECKPOINTS``."""
    from app.engine.controller import Controller
    from app.main_window import MainWindow
    from app.state.app_state import AppState

    state = AppState()
    win = MainWindow(state, Controller(state, cache=model_cache))
    qtbot.addWidget(win)
    win.show()
    win.start()
    qtbot.waitUntil(lambda: win.controller.models_ready and win.state.result is not None, timeout=60_000)
    wait_settled(qtbot, win)
    return win


def wait_settled(qtbot, win, timeout: int = 30_000) -> None:
    qtbot.wait(DEBOUNCE_WAIT_MS)
    qtbot.waitUntil(win.controller.settled, timeout=timeout)


DEBOUNCE_WAIT_MS = 200


def run_main(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def png_pixels(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def child_env(app_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {**os.environ, **app_env, **extra}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def write_png_header(path, width: int, height: int) -> None:
    """A PNG whose header claims width x height, with a tiny (invalid) body: a decompression bomb's shape."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def broken_files(folder):
    """Each kind of file a user might drop that is not a usable image: name -> (path, words in the error)."""
    from PIL import Image

    folder.mkdir(exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("this is not an image\n" * 10)
    (folder / "model.png").write_bytes(b"\x80\x04\x95" + b"\0" * 64)  # a pickle renamed .png
    good = folder / "good.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(good)
    data = good.read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 3])
    write_png_header(folder / "huge.png", 20000, 20000)
    with open(folder / "enormous.bmp", "wb") as fh:  # sparse: 65 MB on paper, nothing on disk
        fh.truncate(65 * 1024 * 1024)
    (folder / "a_folder.png").mkdir(exist_ok=True)
    return {
        "empty": (folder / "empty.png", "empty"),
        "text": (folder / "notes.png", "not an image"),
        "pickle": (folder / "model.png", "not an image"),
        "truncated": (folder / "truncated.png", "damaged or truncated"),
        "huge": (folder / "huge.png", "megapixels"),
        "too_big": (folder / "enormous.bmp", "MB"),
        "folder": (folder / "a_folder.png", "folder"),
        "missing": (folder / "nowhere.png", "no such file"),
    }


MADRY = "Madry adversarial training"  # the Defense box's label of the classifier-side defense


def choose(combo, text: str) -> None:
    """Pick the entry ``text`` of a combo box as a user would (it must be there)."""
    i = combo.findText(text)
    assert i >= 0, f"{text!r} not in {[combo.itemText(k) for k in range(combo.count())]}"
    combo.setCurrentIndex(i)


def tiny_defenses(root: Path, source: Path) -> None:
    """Random-weight Defense-GAN, VAE and a "Madry" classifier A beside the session's tiny models."""
    import torch

    from lqvae.io.checkpoint import save_checkpoint
    from lqvae.core.config import ClassifierConfig, DefenseGANConfig, LQVAEConfig
    from lqvae.core.defensegan import DefenseGAN
    from lqvae.core.models import LQVAE, Classifier

    shutil.copytree(source, root)
    folder = root / "mnist"
    torch.manual_seed(1)
    save_checkpoint(folder / "defensegan.safetensors", DefenseGAN(DefenseGANConfig(dim=8)), kind="defensegan",
                    dataset="mnist")
    save_checkpoint(folder / "vae.safetensors", LQVAE(LQVAEConfig.mnist(quantizer="none"), training_parts=False),
                    kind="lqvae", dataset="mnist")
    save_checkpoint(folder / "classifier_A_madry.safetensors", Classifier(ClassifierConfig(arch="A")),
                    kind="classifier", dataset="mnist", epochs=1,
                    args={"adv": "madry", "epochs": 1, "pgd_steps": 7, "adv_eps": 0.3},
                    metrics={"test_accuracy": 50.0, "pgd20_accuracy_1000": 20.0})
