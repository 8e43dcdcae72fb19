"""Issue 19's GPU smoke: every command-line face and the app's engine door run with ``--device cuda``, and
``torchrun`` joins NCCL across the GPUs. Skipped without CUDA (this machine has none); on a GPU machine:

    .venv/bin/python -m pytest tests/engine/test_gpu_smoke.py -v

Tiny checkpoints and a synthetic data set keep it to a minute; it checks that each command finishes with
exit status 0 on the GPU and, for the evaluation, that the GPU result has the keys the CPU one has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lqvae.core import distributed
from lqvae.core.config import DefenseGANConfig
from lqvae.core.defensegan import DefenseGAN
from tests.helpers import tiny_checkpoints, ROOT, make_idx_folder

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run with --device cuda)")
GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> tuple[Path, Path]:
    root = tiny_checkpoints(tmp_path_factory.mktemp("ckpt"),
                            extra={"defensegan": (DefenseGAN(DefenseGANConfig()), "defensegan")})
    data = make_idx_folder(tmp_path_factory.mktemp("data"), dotted=False, compress=False, n_train=64, n_test=16)
    return root, data


def _run(argv: list[str], cwd: Path, nproc: int = 1) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS}
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), "-m"]
              if nproc > 1 else [sys.executable, "-m"])
    proc = subprocess.run([*launch, *argv], env={**env, "PYTHONPATH": str(ROOT)}, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stderr[-3000:]}"
    return proc


def _common(env: tuple[Path, Path]) -> list[str]:
    root, data = env
    return ["--dataset", "mnist", "--data-dir", str(data), "--checkpoints", str(root), "--device", "cuda"]


@pytest.mark.parametrize("threat,defense", [("whitebox", "lqvae"), ("bpda", "lqvae"), ("bpda_eot", "lqvae"),
                                            ("blackbox", "lqvae"), ("bpda", "defensegan")])
def test_evaluate_run_on_gpu(env, tmp_path, threat, defense):
    argv = ["lqvae.evaluate", "run", *_common(env), "--attack", "pgd", "--threat", threat, "--defense", defense,
            "--preset", "live", "--n-images", "8", "--quiet", "--json", str(tmp_path / "gpu.json")]
    if threat == "blackbox":
        argv += ["--substitute", "B"]
    if defense == "defensegan":  # a short latent search: the smoke is about the device, not the search
        argv += ["--defensegan-steps", "5", "--defensegan-restarts", "2"]
    _run(argv, tmp_path)
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["n"] == 8 and 0 <= result["clean_accuracy"] <= 100 and result["distributed"]["world_size"] == 1


def test_evaluate_clean_and_table_on_gpu(env, tmp_path):
    _run(["lqvae.evaluate", "clean", *_common(env), "--n", "8", "--json", str(tmp_path / "clean.json")], tmp_path)
    _run(["lqvae.evaluate", "table", "--paper-table", "7", *_common(env), "--n-images", "4", "--preset", "live",
          "--n-defensegan", "2", "--out", str(tmp_path)], tmp_path)
    assert json.loads((tmp_path / "table7_mnist.json").read_text())["cells"]


@pytest.mark.parametrize("job", [["lqvae", "--latent-dim", "8"], ["classifier", "--arch", "A"],
                                 ["classifier", "--arch", "C", "--adv", "madry", "--pgd-steps", "2"], ["defensegan"]])
def test_train_on_gpu(env, tmp_path, job):
    _, data = env
    _run(["lqvae.train", *job, "--limit", "32", "--test-limit", "8", "--batch-size", "8", "--epochs", "1",
          "--data-dir", str(data), "--out", str(tmp_path), "--quiet", "--device", "cuda"], tmp_path)
    assert list(tmp_path.glob("*.safetensors"))


@pytest.mark.skipif(GPUS < 2, reason="torchrun on GPUs needs two of them (NCCL)")
def test_torchrun_nccl_train_and_evaluate(env, tmp_path):
    _, data = env
    _run(["lqvae.train", "lqvae", "--latent-dim", "8", "--penalty-weight", "1", "--limit", "32", "--test-limit", "8",
          "--batch-size", "8", "--epochs", "1", "--data-dir", str(data), "--out", str(tmp_path), "--quiet",
          "--device", "cuda"], tmp_path, nproc=2)
    _run(["lqvae.evaluate", "run", *_common(env), "--attack", "pgd", "--threat", "bpda", "--preset", "live",
          "--n-images", "8", "--batch-size", "2", "--quiet", "--json", str(tmp_path / "two.json")], tmp_path, nproc=2)
    result = json.loads((tmp_path / "two.json").read_text())
    assert result["distributed"]["backend"] == "nccl" and result["distributed"]["images_per_rank"] == [4, 4]


def test_other_commands_on_gpu(env, tmp_path):
    root, _ = env
    _run(["lqvae.bench", "purify", "--checkpoint", str(root / "mnist" / "lqvae.safetensors"), "--batch-size", "8",
          "--repeats", "2", "--calls", "2", "--device", "cuda"], tmp_path)


def test_app_engine_door_on_gpu(env, monkeypatch):
    from app.engine import adapter
    from app.state.settings import AnalysisRequest, AttackSettings, DefenseSettings, InputImage, ModelSettings

    root, _ = env
    monkeypatch.setenv("LQVAE_CHECKPOINTS", str(root))
    pixels = np.zeros((28, 28), np.float32)
    pixels[6:22, 12:16] = 1.0
    cache = adapter.ModelCache()
    for threat in ("whitebox", "bpda"):
        request = AnalysisRequest(1, InputImage(pixels, 3, "drawing", "mnist"), ModelSettings("mnist", "A", "cuda"),
                                  AttackSettings(attack="pgd", threat=threat), DefenseSettings("lqvae"))
        result = adapter.analyze(request, cache)
        assert result.adversarial is not None and result.probs_purified_adversarial.shape == (10,)
