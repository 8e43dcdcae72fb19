"""Issue 19, scale-out: ``torchrun`` on two CPU processes (gloo) gives exactly one process's evaluation
results, and trains with DistributedDataParallel (the gradient penalty's double backward included).

The evaluation commands run as subprocesses (``python -m torch.distributed.run --standalone``, which finds
a free port itself) beside one process with the same threads per process (torchrun's one, see
``ONE_THREAD``); training runs in two processes of ``torch.multiprocessing`` joined by gloo.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lqvae.core import distributed
from lqvae.core.config import LQVAEConfig
from lqvae.core.models import LQVAE
from tests.helpers import tiny_checkpoints, ROOT, make_idx_folder

PYTHON = sys.executable
# torchrun gives each process one thread; one process compared with it must sum its floats in the same order
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMING = {"seconds", "attack_seconds", "distributed"}  # the fields that may differ between 1 and 2 processes


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS}
    return {**env, **ONE_THREAD, "PYTHONPATH": str(ROOT)}


def _run(argv: list[str], nproc: int, tmp: Path) -> subprocess.CompletedProcess:
    launch = ([PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), "-m"]
              if nproc > 1 else [PYTHON, "-m"])
    proc = subprocess.run([*launch, *argv], env=_env(), cwd=tmp, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> tuple[Path, Path]:
    """A checkpoint root with classifiers A, B and an LQ-VAE, and an idx data folder of 12 test images."""
    root = tiny_checkpoints(tmp_path_factory.mktemp("ckpt"))
    data = make_idx_folder(tmp_path_factory.mktemp("data"), dotted=False, compress=False, n_train=64, n_test=12)
    return root, data


def _without(result: dict, keys: set[str]) -> dict:
    return {k: v for k, v in result.items() if k not in keys}


# ----------------------------------------------------------------------------- helpers without a process group
def test_single_process_is_world_one_without_a_group():
    w = distributed.launched_world()
    assert (w.rank, w.size, w.main) == (0, 1, True) and not dist.is_initialized()
    with distributed.session("cpu") as (joined, device):
        assert joined.size == 1 and device.type == "cpu" and not dist.is_initialized()
    assert distributed.gather({"a": 1}) == [{"a": 1}] and distributed.reduce_values([1.0, 2.0]) == [1.0, 2.0]
    assert distributed.any_rank(True) and not distributed.any_rank(False)


def test_chunks_go_whole_to_the_ranks():
    ranges = distributed.chunks(10, 3)
    assert [list(r) for r in ranges] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    worlds = [distributed.World(rank=r, size=3) for r in range(3)]
    shards = [distributed.shard(len(ranges), w) for w in worlds]
    assert shards == [[0, 3], [1], [2]] and sorted(sum(shards, [])) == list(range(len(ranges)))
    with pytest.raises(ValueError, match="chunk size"):
        distributed.chunks(10, 0)


def test_bad_torchrun_environment_is_explained(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="RANK must be in"):
        distributed.launched_world()


# ----------------------------------------------------------------------------- evaluation: 2 ranks == 1 process
@pytest.mark.slow  # ~5-14 s: in make test-all; the default run keeps a faster check of the same code
def test_evaluate_run_on_two_processes_equals_one(env, tmp_path):
    root, data = env
    argv = ["lqvae.evaluate", "run", "--dataset", "mnist", "--classifier", "A", "--defense", "lqvae",
            "--attack", "pgd", "--threat", "whitebox", "--preset", "live", "--n-images", "12", "--batch-size", "5",
            "--data-dir", str(data), "--checkpoints", str(root), "--device", "cpu", "--quiet"]
    _run([*argv, "--json", str(tmp_path / "one.json")], 1, tmp_path)
    proc = _run([*argv, "--json", str(tmp_path / "two.json")], 2, tmp_path)
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert _without(two, TIMING) == _without(one, TIMING)  # every accuracy, norm, histogram and Theorem 1 float
    assert one["distributed"] == {"world_size": 1, "backend": None, "chunk_size": 5, "images_per_rank": [12]}
    # chunks [0, 5), [5, 10), [10, 12): rank 0 takes the first and the last, rank 1 the second
    assert two["distributed"] == {"world_size": 2, "backend": "gloo", "chunk_size": 5, "images_per_rank": [7, 5]}
    assert proc.stdout.count("mnist A+lqvae pgd/whitebox") == 1  # rank 0 alone reports


# ~20 s: a table 7 on one and on two processes (slow: the default run keeps the evaluate-run check above,
# which shards and merges through the same code)
@pytest.mark.slow
def test_evaluate_table_cells_on_two_processes_equal_one(env, tmp_path):
    root, data = env
    argv = ["lqvae.evaluate", "table", "--paper-table", "7", "--dataset", "mnist", "--n-images", "4",
            "--batch-size", "2", "--preset", "live", "--eot-samples", "2", "--data-dir", str(data),
            "--checkpoints", str(root), "--device", "cpu"]
    _run([*argv, "--out", str(tmp_path / "one")], 1, tmp_path)
    _run([*argv, "--out", str(tmp_path / "two")], 2, tmp_path)
    one, two = (json.loads((tmp_path / n / "table7_mnist.json").read_text()) for n in ("one", "two"))
    assert one["cells"] and set(one["cells"]) == set(two["cells"])
    assert one["rows"] == two["rows"]
    for key, cell in one["cells"].items():
        assert _without(two["cells"][key], TIMING) == _without(cell, TIMING), key
    assert {r["distributed"]["world_size"] for r in two["runs"].values()} == {2}
    assert all(sum(r["distributed"]["images_per_rank"]) == r["n"] for r in two["runs"].values())


# ----------------------------------------------------------------------------- training with DDP (gloo)
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), **ONE_THREAD)
    torch.set_num_threads(1)


def _penalty_gradients_worker(rank: int, world: int, port: int, out: str) -> None:
    """DDP gradients of Algorithm 1 (with the gradient penalty) on this rank's half of a batch."""
    from torch.nn.parallel import DistributedDataParallel

    from lqvae.core.losses import algorithm1_losses
    from lqvae.train.jobs import Objective

    _join(rank, world, port)
    with distributed.session("cpu"):
        torch.manual_seed(0)  # noise_scale 0 and the "sum" target: a deterministic loss, a mean over the images
        cfg = LQVAEConfig.mnist(latent_dim=8, penalty_weight=1.0, penalty_target="sum", noise_scale=0.0,
                                free_bits=0.0)
        model = LQVAE(cfg, training_parts=True)
        x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
        ddp = DistributedDataParallel(Objective(model, lambda m, xs: algorithm1_losses(m, xs)))
        ddp(x.tensor_split(world)[rank]).total.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        torch.save(grads, f"{out}/grads{rank}.pt")


def test_gradient_penalty_double_backward_under_ddp_averages_like_one_batch(tmp_path):
    mp.spawn(_penalty_gradients_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    g0, g1 = (torch.load(tmp_path / f"grads{r}.pt", weights_only=True) for r in (0, 1))
    torch.manual_seed(0)
    from lqvae.core.losses import algorithm1_losses

    cfg = LQVAEConfig.mnist(latent_dim=8, penalty_weight=1.0, penalty_target="sum", noise_scale=0.0, free_bits=0.0)
    model = LQVAE(cfg, training_parts=True)
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    losses = algorithm1_losses(model, x)
    assert float(losses.penalty.detach()) > 0
    losses.total.backward()
    whole = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    encoder = [n for n in whole if n.startswith("encoder.")]
    assert encoder and set(g0) == set(g1) == set(whole)
    for name, grad in whole.items():  # both ranks hold the mean of their halves' gradients = the whole batch's
        assert torch.equal(g0[name], g1[name]), name
        torch.testing.assert_close(g0[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def _train_worker(rank: int, world: int, port: int, argv: list[str], out: str) -> None:
    import lqvae.train.run as training
    from lqvae.cli.train import main

    _join(rank, world, port)
    jobs = []
    make = training.lqvae_job

    def keep(*a):
        jobs.append(make(*a))
        return jobs[-1]
    training.lqvae_job = keep
    metrics = main(argv)
    torch.save({"weights": jobs[0].model.state_dict(), "metrics": metrics}, f"{out}/rank{rank}.pt")


@pytest.mark.slow  # ~12 s; the default run keeps the DDP double-backward check above
def test_ddp_training_with_the_gradient_penalty(env, tmp_path):
    _, data = env
    run_dir = tmp_path / "run"
    argv = ["lqvae", "--latent-dim", "8", "--limit", "32", "--test-limit", "8", "--batch-size", "8", "--epochs", "1",
            "--penalty-weight", "1", "--data-dir", str(data), "--out", str(run_dir), "--quiet", "--device", "cpu"]
    mp.spawn(_train_worker, args=(2, _free_port(), argv, str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name, w in r0["weights"].items():  # DDP kept the ranks' weights identical, step after step
        assert torch.equal(w, r1["weights"][name]), name
    assert sorted(p.name for p in run_dir.iterdir()) == ["lqvae.log.jsonl", "lqvae.safetensors",
                                                          "lqvae.train-state.safetensors"]
    lines = (run_dir / "lqvae.log.jsonl").read_text().splitlines()
    assert len(lines) == 1  # rank 0 alone writes
    logged = json.loads(lines[0])
    assert all(torch.isfinite(torch.tensor(logged[k])) for k in ("L_f", "L_g", "penalty", "grad_norm"))
    assert logged["penalty"] > 0 and r0["metrics"]["L_f"] == r1["metrics"]["L_f"]  # the ranks' mean, on both
    from safetensors import safe_open

    with safe_open(str(run_dir / "lqvae.train-state.safetensors"), framework="pt") as fh:
        info = json.loads(fh.metadata()["info"])
    assert info["world_size"] == 2 and len(info["rng_ranks"]) == 2 and info["epoch"] == 1 and info["step"] == 4
