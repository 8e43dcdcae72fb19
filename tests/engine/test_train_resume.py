"""Issue 15: a run stopped by SIGINT/SIGTERM at any point (a step, the evaluation, a save) leaves a state
from which ``--resume`` ends bit-identical to a run never stopped; a state of another run is refused."""

from __future__ import annotations

import json
import os
import signal
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import lqvae.train.run as train
from lqvae.cli.train import main
from tests.helpers import make_idx_folder

# classifier C (an MLP with dropout) is fast and its trajectory depends on the random state
CLASSIFIER = ["classifier", "--arch", "C", "--limit", "256", "--batch-size", "32", "--epochs", "2"]
# the LQ-VAE draws reparameterisation noise and random projections: two steps of the slower model
LQVAE = ["lqvae", "--latent-dim", "8", "--limit", "8", "--batch-size", "4", "--epochs", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_idx_folder(tmp_path_factory.mktemp("data"), dotted=False, compress=False, n_train=256, n_test=16)


def _args(job: list[str], data: Path, out: Path) -> list[str]:
    return [*job, "--data-dir", str(data), "--out", str(out), "--quiet", "--device", "cpu"]


def _state_name(job: list[str]) -> str:
    return ("classifier_C" if job[0] == "classifier" else "lqvae") + ".train-state.safetensors"


def _info(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as fh:
        return json.loads(fh.metadata()["info"])


def _kill_self(signum: int) -> None:
    os.kill(os.getpid(), signum)  # its Python handler runs as soon as os.kill returns


def _wrap_job(monkeypatch, job_name: str, change: Callable) -> None:
    """Make the run loop build its job through ``lqvae.train.run.<job_name>`` and then ``change(job)``."""
    make = getattr(train, job_name)

    def wrapped(*a):
        job = make(*a)
        change(job)
        return job
    monkeypatch.setattr(train, job_name, wrapped)


def _on_step(at_step: int, signum: int) -> Callable:
    """A job factory wrapper whose step at global step ``at_step`` receives ``signum`` before it returns."""
    def signal_in_step(job) -> None:
        step = job.step

        def signalled_step(x, y, global_step):
            logs = step(x, y, global_step)  # the weights have moved: the signal comes before the step returns
            if global_step == at_step:
                _kill_self(signum)
            return logs
        job.step = signalled_step
    return lambda monkeypatch, job_name: _wrap_job(monkeypatch, job_name, signal_in_step)


def _on_first_evaluation(signum: int) -> Callable:
    def signal_in_evaluation(job) -> None:
        evaluate = job.evaluate

        def signalled_evaluate():
            torch.rand(100)  # the evaluation drew random numbers before the signal came
            _kill_self(signum)
            return evaluate()
        job.evaluate = signalled_evaluate
    return lambda monkeypatch, job_name: _wrap_job(monkeypatch, job_name, signal_in_evaluation)


def _on_first_checkpoint_save(signum: int) -> Callable:
    def patch(monkeypatch, _job_name: str) -> None:
        save = train.save_checkpoint

        def signalled_save(*a, **kw):
            _kill_self(signum)
            return save(*a, **kw)
        monkeypatch.setattr(train, "save_checkpoint", signalled_save)
    return patch


def _uninterrupted(job: list[str], data: Path, out: Path) -> dict[str, torch.Tensor]:
    main(_args(job, data, out))
    return load_file(out / _state_name(job))


# (injection, signal, where the saved state must be: epoch, batch) for 256 images in batches of 32 (8 per epoch)
CASES = {
    "mid_epoch_step": (_on_step(10, signal.SIGTERM), signal.SIGTERM, (1, 3)),
    "evaluation": (_on_first_evaluation(signal.SIGTERM), signal.SIGTERM, (0, 8)),
    "checkpoint_save": (_on_first_checkpoint_save(signal.SIGINT), signal.SIGINT, (1, 0)),
}


def _log(path: Path) -> list[dict]:
    """The epoch lines of a run's log, without their wall times."""
    return [{k: v for k, v in json.loads(line).items() if k != "wall_s"} for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> tuple[dict[str, torch.Tensor], list[dict]]:
    out = tmp_path_factory.mktemp("reference")
    return _uninterrupted(CLASSIFIER, data, out), _log(out / "classifier_C.log.jsonl")


def _interrupt_and_resume(job: list[str], data: Path, out: Path, inject: Callable, signum: int,
                          monkeypatch) -> dict:
    handler = signal.getsignal(signal.SIGTERM)
    with monkeypatch.context() as m:
        inject(m, "classifier_job" if job[0] == "classifier" else "lqvae_job")
        with pytest.raises(SystemExit) as stopped:
            main(_args(job, data, out))
    assert stopped.value.code == 128 + signum  # 130 for SIGINT, 143 for SIGTERM
    assert signal.getsignal(signal.SIGTERM) is handler  # restored for in-process callers
    state = out / _state_name(job)
    assert state.exists(), "the interrupt left no training state"
    where = _info(state)
    main([*_args(job, data, out), "--resume"])
    return where


@pytest.mark.parametrize("case", CASES)
def test_interrupt_anywhere_then_resume_is_bit_identical(case, data, reference, tmp_path, monkeypatch, capsys):
    inject, signum, (epoch, batch) = CASES[case]
    where = _interrupt_and_resume(CLASSIFIER, data, tmp_path, inject, signum, monkeypatch)
    err = capsys.readouterr().err
    assert (where["epoch"], where["batch"]) == (epoch, batch)
    assert "resume with --resume" in err and str(tmp_path / _state_name(CLASSIFIER)) in err
    ref_state, ref_log = reference
    resumed = load_file(tmp_path / _state_name(CLASSIFIER))
    assert resumed.keys() == ref_state.keys()  # weights and Adam moments
    different = [k for k in ref_state if not torch.equal(ref_state[k], resumed[k])]
    assert not different, f"{case}: {different[:5]} differ from the uninterrupted run"
    log = _log(tmp_path / "classifier_C.log.jsonl")
    assert [line["epoch"] for line in log] == [1, 2]
    # the epoch means (loss, train accuracy) cover every batch of the epoch, those before the stop included:
    # the running sums are saved in the state, so an epoch resumed in the middle divides the right sums
    assert log == ref_log


def test_lqvae_noise_and_projections_resume_bit_identical(data, tmp_path, monkeypatch):
    ref = _uninterrupted(LQVAE, data, tmp_path / "reference")
    where = _interrupt_and_resume(LQVAE, data, tmp_path / "stopped", _on_step(0, signal.SIGTERM), signal.SIGTERM,
                                  monkeypatch)
    assert (where["epoch"], where["batch"]) == (0, 1)
    resumed = load_file(tmp_path / "stopped" / _state_name(LQVAE))
    assert [k for k in ref if not torch.equal(ref[k], resumed[k])] == []


def test_resume_refuses_a_state_of_another_run(data, tmp_path, capsys):
    out = tmp_path / "run"
    first = [*CLASSIFIER[:-1], "1"]
    main(_args(first, data, out))
    state = out / _state_name(CLASSIFIER)
    before = state.read_bytes()
    for change, named in ((["--seed", "1"], "--seed"), (["--arch", "A"], "config.arch"), (["--lr", "0.01"], "--lr")):
        args = _args(first, data, out) + ["--resume"]
        if change[0] == "--arch":
            args[args.index("--arch") + 1] = "A"
            shutil.copy(state, out / "classifier_A.train-state.safetensors")  # the same file under A's name
        else:
            args += change
        with pytest.raises(SystemExit, match="different run") as refused:
            main(args)
        assert named in str(refused.value)
    assert state.read_bytes() == before  # refused untouched
    # the right arguments (a longer run is fine) resume it
    main([*_args(CLASSIFIER, data, out), "--resume"])
    assert "resumed" in capsys.readouterr().err and _info(state)["epoch"] == 2


def test_resume_without_a_state_starts_fresh_and_says_so(data, tmp_path, capsys):
    main([*_args([*CLASSIFIER[:-1], "1"], data, tmp_path), "--resume"])
    assert "no training state" in capsys.readouterr().err and _info(tmp_path / _state_name(CLASSIFIER))["epoch"] == 1


def test_a_new_run_removes_temporaries_a_killed_save_left(data, tmp_path):
    """SIGKILL in the middle of a save leaves ``.<name>.<pid>.<random>.tmp``; the next start removes it."""
    out = tmp_path / "run"
    out.mkdir()
    dead = 2 ** 22 + 12345  # above the default pid_max of 4,194,304: never a live process
    orphan = out / f".classifier_C.safetensors.{dead}.abcd1234.tmp"
    orphan.write_bytes(b"\0" * 1024)
    old = orphan.stat().st_mtime - 120  # untouched for longer than the grace period
    os.utime(orphan, (old, old))
    mine = out / f".classifier_C.safetensors.{os.getpid()}.efgh5678.tmp"  # a live writer's file stays
    mine.write_bytes(b"\0")
    unrelated = out / "notes.tmp"
    unrelated.write_text("keep")
    main(_args([*CLASSIFIER[:-1], "1", "--limit", "32"], data, out))
    assert not orphan.exists() and mine.exists() and unrelated.exists()
