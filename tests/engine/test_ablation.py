"""The ablation of issue 7: records written per cell, grey-box attacks shared between variants, the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lqvae.evaluate import ablation as ablation
from lqvae.evaluate.ablation import CELLS, Cell, ablation_table, run_cells
from lqvae.evaluate.report import assemble
from tests.helpers import CHECKPOINTS, SHARED_MNIST


def _write(folder: Path, name: str, data: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))


def test_table_reads_records_orders_variants_and_leaves_gaps(tmp_path):
    root = tmp_path / "ablation"
    _write(root / "mnist" / "b_variant", "variant.json",
           {"description": "noise", "wall_s": "600", "epochs": 2, "command": "python -m lqvae.train lqvae --init checkpoints/mnist/lqvae.safetensors"})
    _write(root / "mnist" / "b_variant", "fgsm_greybox.json",
           {"n": 10000, "attacked_accuracy": 70.0, "clean_accuracy_defended": 97.15, "bits": {"mean_flips": 7.25}})
    _write(root / "mnist" / "b_variant", "pgd_eot.json",
           {"n": 100, "attacked_accuracy": 3.0, "attacked_accuracy_stochastic": 5.0, "clean_accuracy_defended": 99.0})
    _write(root / "mnist" / "a_variant", "variant.json", {})
    _write(root, "order.json", {"mnist": ["b_variant", "a_variant"]})
    table = ablation_table("mnist", root)
    rows = table.splitlines()
    assert len(rows) == 4 and rows[2].startswith("| `b_variant`: noise |")
    b = [c.strip() for c in rows[2].strip("|").split("|")]
    assert b[1] == "97.15 <sub>n=10000</sub>"  # clean purified from the first cell that has it
    assert b[2] == "70.00 <sub>n=10000</sub>" and b[3] == "—"  # grey-box PGD not measured: a gap, not a number
    assert b[1 + len(CELLS)] == "3.00 <sub>n=100</sub> (stoch. 5.00)"
    assert b[2 + len(CELLS)] == "≤ 3.00 (BPDA+EOT PGD-100)"  # the strongest end-to-end attack measured
    assert b[-2] == "7.2" or b[-2] == "7.3"
    assert b[-1] == "10 min, 2 ep. on top of `lqvae`"
    assert rows[3].startswith("| `a_variant` |") and rows[3].count("—") == len(CELLS) + 4
    assert ablation_table("fashion_mnist", root) is None
    text, missing = assemble("{{ablation:mnist}}\n{{ablation:fashion_mnist}}", tmp_path)
    assert "`b_variant`: noise" in text and missing == ["ablation:fashion_mnist"]
    assert "python -m lqvae.cli.ablation run" in text


@pytest.mark.skipif(not (CHECKPOINTS / "mnist" / "lqvae.safetensors").is_file() or not SHARED_MNIST.is_dir(),
                    reason="needs the shipped MNIST LQ-VAE and ../shared/data/mnist")
def test_run_cells_writes_records_and_shares_greybox_attacks(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "CACHE", tmp_path / "cache")
    calls: list[str] = []
    real = ablation.run_attack

    def counting(spec, *args, **kwargs):
        calls.append(spec.threat)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(ablation, "run_attack", counting)
    cells = [Cell("fgsm_greybox", "grey-box FGSM", "fgsm", "whitebox", 24),
             Cell("fgsm_bpda", "BPDA FGSM", "fgsm", "bpda", 12)]
    ckpt = CHECKPOINTS / "mnist" / "lqvae.safetensors"
    kw = dict(cells=cells, out=tmp_path / "out", quiet=True, data_dir=str(SHARED_MNIST))
    first = run_cells("mnist", "one", ckpt, **kw)
    second = run_cells("mnist", "two", ckpt, **kw)
    assert calls == ["whitebox", "bpda", "bpda"]  # the grey-box attack ran once for both variants
    assert first["fgsm_greybox"]["defended_accuracy"] == second["fgsm_greybox"]["defended_accuracy"]
    rec = json.loads((tmp_path / "out" / "mnist" / "one" / "fgsm_bpda.json").read_text())
    assert rec["n"] == 12 and rec["threat"] == "bpda" and 0 <= rec["defended_accuracy"] <= 100
    assert rec["defended_accuracy"] <= rec["clean_accuracy_defended"]
    info = json.loads((tmp_path / "out" / "mnist" / "one" / "variant.json").read_text())
    assert len(info["sha256"]) == 64 and info["config"]["latent_dim"] == 64
