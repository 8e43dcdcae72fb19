import json

import pytest

from lqvae.checkpoint import load_checkpoint
from lqvae.train import main
from tests.conftest import make_idx_folder


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
