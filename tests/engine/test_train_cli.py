import json

import pytest

from lqvae.io.checkpoint import load_checkpoint
from lqvae.cli.train import main
from tests.helpers import make_idx_folder


@pytest.mark.parametrize("what", ["lqvae", "classifier"])
def test_train_cli_runs_end_to_end_and_resumes(tmp_path, capsys, what):
    data = make_idx_folder(tmp_path / "data", dotted=False, compress=True, n_train=256, n_test=32)
    out = tmp_path / "run"
    extra = ["--arch", "C"] if what == "classifier" else ["--free-bits", "1", "--recon-weight", "10"]
    base = [what, *extra, "--data-dir", str(data), "--limit", "256", "--batch-size", "64", "--out", str(out),
            "--quiet", "--device", "cpu"]
    main([*base, "--epochs", "1"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    name = "lqvae" if what == "lqvae" else "classifier_C"
    ck = load_checkpoint(out / f"{name}.safetensors")
    assert ck.metadata["epochs"] == 1 and ck.metrics["epoch"] == 1
    if what == "lqvae":
        assert {"dead_bits", "distinct_codes", "bit_balance", "kl_per_dim", "lipschitz_median"} <= set(line)
        assert ck.config.free_bits == 1.0
    main([*base, "--epochs", "2", "--resume"])
    assert load_checkpoint(out / f"{name}.safetensors").metadata["epochs"] == 2
    assert len((out / f"{name}.log.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow  # ~5-14 s: in make test-all; the default run keeps a faster check of the same code
def test_sigterm_leaves_a_resumable_state(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    data = make_idx_folder(tmp_path / "data", dotted=False, compress=False, n_train=4096, n_test=16)
    out = tmp_path / "run"
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "lqvae.train", "classifier", "--arch", "A", "--data-dir", str(data), "--epochs", "50",
           "--batch-size", "16", "--out", str(out), "--device", "cpu", "--threads", "1"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)})
    log = out / "classifier_A.log.jsonl"
    deadline = time.monotonic() + 120
    while not log.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)  # wait for the first epoch, then stop it in the middle of the second
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]  # 128 + SIGTERM, as a shell reports it
    assert "resume with --resume" in err
    from safetensors import safe_open

    with safe_open(str(out / "classifier_A.train-state.safetensors"), framework="pt") as fh:
        info = json.loads(fh.metadata()["info"])
    assert info["epoch"] >= 1 and info["step"] > 256  # saved mid-epoch 2, not only at the end of epoch 1


def test_lqvae_init_fine_tunes_a_checkpoint_keeping_its_recipe(tmp_path, capsys):
    import torch

    from lqvae.io.checkpoint import CheckpointError

    data = make_idx_folder(tmp_path / "data", dotted=False, compress=True, n_train=128, n_test=16)
    base = ["lqvae", "--data-dir", str(data), "--limit", "128", "--batch-size", "64", "--epochs", "1", "--quiet",
            "--device", "cpu"]
    main([*base, "--free-bits", "1", "--recon-weight", "10", "--out", str(tmp_path / "a")])
    first = tmp_path / "a" / "lqvae.safetensors"
    # a vanishing learning rate: the fine-tuned weights are the initial ones, so --init really loaded them
    main([*base, "--init", str(first), "--input-noise", "0.3", "--lr", "1e-12", "--out", str(tmp_path / "b")])
    capsys.readouterr()
    a, b = load_checkpoint(first), load_checkpoint(tmp_path / "b" / "lqvae.safetensors")
    assert b.config.free_bits == 1.0 and b.config.recon_weight == 10 and b.config.input_noise == 0.3
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), name
    main(["classifier", "--arch", "C", *base[1:], "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="^error: .*classifier_C.safetensors") as refused:  # a classifier, not an LQ-VAE
        main([*base, "--init", str(tmp_path / "c" / "classifier_C.safetensors"), "--out", str(tmp_path / "d")])
    assert refused.value.code == 2
    with pytest.raises(CheckpointError):  # the library raises; only the command turns it into an exit
        from types import SimpleNamespace

        from lqvae.train.jobs import lqvae_job
        lqvae_job(SimpleNamespace(init=str(tmp_path / "c" / "classifier_C.safetensors")), None, torch.device("cpu"))


def test_bad_arguments_end_in_one_line_and_exit_status_2(tmp_path, capsys):
    data = make_idx_folder(tmp_path / "data", dotted=False, compress=True, n_train=64, n_test=16)
    with pytest.raises(SystemExit) as refused:
        main(["classifier", "--arch", "C", "--data-dir", str(data), "--epochs", "0", "--out", str(tmp_path / "run")])
    assert refused.value.code == 2 and str(refused.value) == "error: expected --epochs >= 1, got 0"
    assert capsys.readouterr().err.strip() == "error: expected --epochs >= 1, got 0"


def test_evaluate_run_with_no_images_prints_one_line_not_a_traceback():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "lqvae.evaluate", "run", "--n", "0"], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --n expects a number of images >= 1, got 0" and "Traceback" not in proc.stderr
