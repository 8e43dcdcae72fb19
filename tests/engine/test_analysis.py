"""analyze() for the app, evaluate_batch() and the evaluate CLI (run, table) on tiny models."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers import tiny_checkpoints
from lqvae.evaluate.analysis import Analysis, analyze
from lqvae.attacks.runners import AttackSpec
from lqvae.core.config import LQVAEConfig
from lqvae.evaluate.scoring import bit_flip_stats, evaluate_batch
from lqvae.evaluate.tables import build_table, table_jobs
from lqvae.core.models import LQVAE
from lqvae.core.theory import flip_probability, theorem1
from lqvae.spec.results import Theorem1

RUN_KEYS = {"dataset", "classifier", "defense", "attack", "threat", "n", "clean_accuracy", "undefended_accuracy",
            "defended_accuracy",
            "attack_failures", "mean_linf", "mean_l2", "seconds", "bits", "theorem1"}
BIT_KEYS = {"hamming_histogram", "share_below_6pct", "mean_flips"}


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    lq = LQVAE(LQVAEConfig.mnist(latent_dim=16), training_parts=False).eval()
    return clf, lq


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.zeros((28, 28), np.uint8)
    img[6:22, 10:18] = rng.integers(0, 256, (16, 8))
    return img


def test_analyze_without_attack_or_purifier(models, image):
    clf, _ = models
    a = analyze(image, 3, classifier=clf)
    assert isinstance(a, Analysis) and a.original.shape == (1, 28, 28) and a.original.dtype == np.float32
    assert a.probs_original.shape == (10,) and abs(a.probs_original.sum() - 1) < 1e-5
    assert a.adversarial is None and a.purified_original is None and a.bits_original is None and a.hamming is None
    assert a.theorem1 is None and a.stochastic_probs is None and not a.attack_failed


def test_analyze_deterministic_with_attack(models, image):
    clf, lq = models
    a = analyze(image, None, classifier=clf, purifier=lq, spec=AttackSpec(attack="pgd"))
    assert a.label == int(a.probs_original.argmax())  # no label: the prediction is attacked
    for arr in (a.adversarial, a.purified_original, a.purified_adversarial):
        assert arr.shape == (1, 28, 28) and 0 <= arr.min() and arr.max() <= 1
    for p in (a.probs_adversarial, a.probs_purified_original, a.probs_purified_adversarial):
        assert p.shape == (10,) and abs(p.sum() - 1) < 1e-5
    assert set(np.unique(a.bits_original)) <= {-1.0, 1.0} and a.bits_adversarial.shape == (16,)
    assert a.hamming == int((a.bits_original != a.bits_adversarial).sum())
    assert a.z_original.shape == a.sigma_original.shape == (16,)
    assert a.linf <= 0.3 + 1e-6 and a.attack_ms > 0 and a.purify_ms > 0
    t = a.theorem1
    assert isinstance(t, Theorem1) and t.latent_dim == 16 and t.eta == lq.cfg.eta
    assert t.observed_flips == a.hamming and 0 <= t.p_flip <= 1 and 0 <= t.prob_observed <= 1
    assert t.shift_mean == pytest.approx(float(np.abs(a.z_adversarial - a.z_original).mean()), rel=1e-5)
    assert t.paper_plugin.delta_z == pytest.approx(0.1 * a.linf) and t.linf == a.linf
    assert t.l2 == a.l2 and t.bound.delta_z == pytest.approx(0.1 * a.l2)  # the bound with this δ's L2 size
    assert lq.quantizer.grad_mode == "none"


def test_analyze_stochastic_mode(models, image):
    clf, lq = models
    a = analyze(image, 1, classifier=clf, purifier=lq, spec=AttackSpec(attack="fgsm"), mode="stochastic", n_samples=5)
    assert a.stochastic_probs.shape == (5, 10)
    np.testing.assert_allclose(a.stochastic_probs.mean(0), a.probs_purified_adversarial, rtol=1e-5)
    assert set(np.unique(a.bits_original)) <= {-1.0, 1.0}  # codes stay the deterministic H(mu)


def test_analyze_rejects_bad_input(models):
    clf, _ = models
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        analyze(np.full((28, 28), 2.0, np.float32), 0, classifier=clf)
    with pytest.raises(ValueError, match="one image"):
        analyze(np.zeros((2, 1, 28, 28), np.float32), 0, classifier=clf)
    with pytest.raises(ValueError, match="mode"):
        analyze(np.zeros((28, 28), np.float32), 0, classifier=clf, mode="random")


def test_theorem1_zero_shift_predicts_no_flips():
    t = theorem1(torch.zeros(64), torch.zeros(64), 0, eta=0.67449)
    assert t.p_flip == 0 and t.expected_flips == 0 and t.prob_observed == 1


def test_theorem1_uses_each_coordinates_shift_and_the_l2_size():
    eta = 0.67449
    mu, mu_adv = torch.zeros(64), torch.zeros(64)
    mu_adv[:4] = 3.0  # four coordinates moved far, sixty not at all: mean shift 0.1875
    t = theorem1(mu, mu_adv, 4, eta=eta, l2=5.0, linf=0.3, lipschitz_target=0.1)
    p_far = flip_probability(3.0, eta)
    assert t.shift_mean == pytest.approx(0.1875) and t.shift_max == pytest.approx(3.0)
    assert t.expected_flips == pytest.approx(4 * p_far)  # not 64 * p(mean shift) ≈ 7.6
    assert t.prob_observed == pytest.approx(p_far ** 4) and t.prob_at_least_observed == pytest.approx(p_far ** 4)
    assert t.bound.delta_z == pytest.approx(0.5)  # K * ||delta||_2
    assert t.bound.expected_flips == pytest.approx(64 * flip_probability(0.5, eta))
    assert t.paper_plugin.delta_z == pytest.approx(0.03)  # K * eps_inf, kept only as the paper's plug-in


def test_bit_flip_stats():
    s = bit_flip_stats(np.array([0, 1, 3, 4, 10]), 64)
    assert sum(s["hamming_histogram"]) == 5 and len(s["hamming_histogram"]) == 65
    assert s["mean_flips"] == 3.6 and s["share_below_6pct"] == 60.0  # < 3.84 bits: 0, 1, 3


def test_evaluate_batch_reports_every_key(models):
    clf, lq = models
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 1, 28, 28, generator=g), torch.randint(0, 10, (6,), generator=g)
    out = evaluate_batch(AttackSpec(attack="fgsm"), x, y, classifier=clf, purifier=lq)
    assert (RUN_KEYS - {"dataset", "classifier", "defense"}) <= set(out) and BIT_KEYS <= set(out["bits"])
    t = Theorem1.from_dict(out["theorem1"], latent_dim=16)  # the batch's Theorem 1, in the old or the new shape
    assert t.observed_flips == pytest.approx(out["bits"]["mean_flips"]) and t.paper_plugin is not None
    assert sum(out["bits"]["hamming_histogram"]) == out["bits"]["n_images"] == 6 - out["attack_failures"]
    json.dumps(out)  # JSON-ready
    undefended = evaluate_batch(AttackSpec(attack="fgsm"), x, y, classifier=clf)
    assert 0 <= undefended["undefended_accuracy"] <= 100 and "defended_accuracy" not in undefended
    assert "bits" not in undefended


# ----------------------------------------------------------------------------- CLI on tiny checkpoints
def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    """A checkpoint root with classifiers A, B and an LQ-VAE, and an idx data folder of 8 test images."""
    root = tiny_checkpoints(tmp_path_factory.mktemp("ckpt"))
    data = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("t10k", 8)):
        _write_idx(data / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(data / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return root, data


def test_cli_run_writes_every_key(cli_env, tmp_path, capsys):
    from lqvae.cli.evaluate import main

    root, data = cli_env
    out = tmp_path / "run.json"
    main(["run", "--dataset", "mnist", "--classifier", "A", "--defense", "lqvae", "--attack", "fgsm",
          "--threat", "whitebox", "--n", "8", "--data-dir", str(data), "--checkpoints", str(root),
          "--json", str(out), "--device", "cpu", "--quiet"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("mnist A+lqvae fgsm/whitebox") and "attacked" in line
    result = json.loads(out.read_text())
    assert RUN_KEYS <= set(result) and BIT_KEYS <= set(result["bits"])
    assert result["n"] == 8 and result["defense"] == "lqvae" and 0 <= result["defended_accuracy"] <= 100


def test_cli_run_explains_missing_defense(cli_env):
    from lqvae.cli.evaluate import main

    root, data = cli_env
    with pytest.raises(SystemExit, match="no defense 'vae'"):
        main(["run", "--defense", "vae", "--n", "2", "--data-dir", str(data), "--checkpoints", str(root), "--quiet"])
    with pytest.raises(SystemExit, match="--defense lqvae"):
        main(["run", "--defense", "none", "--threat", "bpda", "--n", "2", "--data-dir", str(data),
              "--checkpoints", str(root), "--quiet"])


def test_cli_table_is_resumable_and_marks_missing_columns(cli_env, tmp_path, monkeypatch, capsys):
    from lqvae.evaluate import tables as evaluation
    from lqvae.cli.evaluate import main

    root, data = cli_env
    argv = ["table", "--paper-table", "4", "--n", "4", "--preset", "live", "--data-dir", str(data),
            "--checkpoints", str(root), "--out", str(tmp_path), "--device", "cpu"]
    main(argv)
    md = (tmp_path / "table4_mnist.md").read_text()
    assert "| A / B |" in md and "(88.09)" in md  # ours beside the paper's
    assert "| C / A | — (98.37)" in md  # no classifier C: shown as missing, never invented
    report = json.loads((tmp_path / "table4_mnist.json").read_text())
    assert report["rows"][0]["ours"]["defensegan"] is None and report["rows"][0]["ours"]["lqvae"] is not None
    assert (tmp_path / "table4_mnist.csv").read_text().startswith("Classifier / Substitute,no_attack,no_attack_paper")

    def boom(*a, **k):
        raise AssertionError("finished runs must come from the cache")

    monkeypatch.setattr(evaluation, "run_attack", boom)
    main(argv)  # everything cached: no attack runs
    assert json.loads((tmp_path / "table4_mnist.json").read_text())["rows"] == report["rows"]


def test_table_layouts():
    jobs = table_jobs(2, "mnist", n=10, n_fast=100, preset="paper")
    main_runs = [j for j in jobs if j.key.count("/") == 3 and j.attacked in "ABC"]
    assert len(main_runs) == 9 and {j.spec.attack for j in main_runs} == {"fgsm", "deepfool", "cw"}
    assert all(j.n == (100 if j.spec.attack == "fgsm" else 10) for j in jobs)
    t7 = table_jobs(7, "fashion_mnist", n=10, n_fast=10, preset="paper")
    assert {j.spec.threat for j in t7} == {"bpda", "whitebox", "bpda_eot"}
    report = build_table(7, ("mnist", "fashion_mnist"), {}, preset="paper")
    assert "— (83.70)" in report["markdown"] and "— (57.41)" in report["markdown"]


def test_table_n_override_most_specific_wins():
    from lqvae.cli.evaluate import parse_n_override

    over = parse_n_override(["pgd=5000", "pgd/bpda=700", "bpda_eot=50", "cw=30"])
    jobs = {j.key: j.n for j in table_jobs(7, "mnist", n=1000, n_fast=10000, preset="live", n_override=over)}
    assert jobs["mnist/t7/lqvae_pgd/A"] == 700 and jobs["mnist/t7/lqvae_eot/A"] == 50
    assert jobs["mnist/t7/lqvae/A"] == 10000  # FGSM: no override applies
    wb = {j.key: j.n for j in table_jobs(2, "mnist", n=1000, n_fast=10000, preset="live", n_override=over)}
    assert wb["mnist/wb/cw/A"] == 30 and wb["mnist/wb/deepfool/A"] == 1000
    for bad in (["cw"], ["cw=0"], ["nope=3"], ["cw=x"]):
        with pytest.raises(SystemExit, match="--n-override"):
            parse_n_override(bad)


def test_table_cache_keeps_runs_written_by_another_process(tmp_path):
    from lqvae.evaluate.tables import merged_cache as _merged_cache

    path = tmp_path / "table7_paper.json"
    path.write_text(json.dumps({"fashion_mnist/t7/lqvae/A": {"n": 5}}))  # written meanwhile by the other dataset's run
    merged = _merged_cache(path, {"mnist/t7/lqvae/A": {"n": 7}})
    assert merged == {"fashion_mnist/t7/lqvae/A": {"n": 5}, "mnist/t7/lqvae/A": {"n": 7}}
    path.write_text("{broken")
    assert _merged_cache(path, {"k": {}}) == {"k": {}}
