"""The strongest-attack suite (issue 18): its attacks are strong where they must be, its worst case is a
worst case, its sanity checks catch a gradient-masking defense, and its numbers carry n and an interval.

Tiny models throughout (one CPU thread: on a shared 2-core machine, two threads make a tiny MLP 50 times
slower); the shipped checkpoints appear only in the slow test at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lqvae.attacks.apgd import APGD, PGD, fgsm
from lqvae.attacks.latent import LatentAttack, bits_loss, code_bits, nearest_other_codes
from lqvae.attacks.losses import cw, dlr_t
from lqvae.attacks.models import AttackCancelled
from lqvae.attacks.square import SquareLinf
from lqvae.attacks.suite import MemberResult, SuiteResult, run_suite
from lqvae.cli.evaluate import main as evaluate_main
from lqvae.core.config import LQVAEConfig
from lqvae.core.models import LQVAE, Defended
from lqvae.core.quantize import BinaryQuantizer, hard_quantize, soft_quantize_grad
from lqvae.evaluate.suite import evaluate_suite, sanity_checks, summary_lines
from lqvae.spec.suite import Estimate, SuiteMember, SuiteSettings, suite_members, wilson_interval

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _bars(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy synthetic digits: class k is a faint bar in row band k (separable, but not by a wide margin)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    x = 0.3 * torch.rand(n, 1, 28, 28, generator=g)
    for k in range(10):
        x[y == k, :, 2 + 2 * k: 4 + 2 * k, 4:24] += 0.35
    return x.clamp(0, 1), y


@pytest.fixture(scope="module")
def vulnerable() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """An undefended MLP trained to 100 % on the bars, and 32 test images it classifies correctly."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    xtr, ytr = _bars(300, 0)
    xte, yte = _bars(64, 1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xtr), ytr).backward()
        opt.step()
    model.eval().requires_grad_(False)
    torch.set_num_threads(saved)
    with torch.no_grad():
        keep = model(xte).argmax(1) == yte
    return model, xte[keep][:32], yte[keep][:32]


def _robust(model: nn.Module, adv: torch.Tensor, y: torch.Tensor) -> int:
    with torch.no_grad():
        return int((model(adv).argmax(1) == y).sum())


def _members(eps: float, *, purifier: bool = False) -> tuple[SuiteMember, ...]:
    """A cheap member set: every method once, few steps."""
    sur = "sigmoid" if purifier else None
    out = [SuiteMember("fgsm", "fgsm", "ce", eps, 1, surrogate=sur, stepsize=eps),
           SuiteMember("pgd_ce", "pgd", "ce", eps, 10, 2, sur, eps / 4),
           SuiteMember("pgd_cw", "pgd", "cw", eps, 10, 1, sur, eps / 4),
           SuiteMember("apgd_ce", "apgd", "ce", eps, 10, 1, sur),
           SuiteMember("apgd_t", "apgd_t", "dlr_t", eps, 10, 2, sur),
           SuiteMember("square", "square", "margin", eps, 50),
           SuiteMember("pgd_ce_2steps", "pgd", "ce", eps, 2, 1, sur, eps / 4, "few_steps"),
           SuiteMember("pgd_ce_eps1", "pgd", "ce", 1.0, 10, 1, sur, 0.1, "large_eps")]
    return tuple(out)


# ----------------------------------------------------------------------------- numbers with an interval
def test_wilson_interval_matches_the_textbook_values() -> None:
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(27.75, abs=0.01)
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(23.66, abs=0.01), pytest.approx(76.34, abs=0.01))
    lo, hi = wilson_interval(242, 1000)  # the 24.2 % at n = 1000
    assert (lo, hi) == (pytest.approx(21.65, abs=0.01), pytest.approx(26.95, abs=0.01))
    assert Estimate(242, 1000).text() == "24.2 % (n = 1000, 95 % CI 21.6-27.0)"
    with pytest.raises(ValueError, match="k <= n"):
        wilson_interval(3, 2)


# ----------------------------------------------------------------------------- the sigmoid backward of H
def test_sigmoid_backward_exists_differs_from_h_tilde_and_leaves_the_old_modes_alone() -> None:
    eta = 0.67449
    z = torch.linspace(-1.5, 1.5, 61)
    grads = {}
    for mode in ("bpda", "sigmoid", "straight_through"):
        zz = z.clone().requires_grad_(True)
        out = BinaryQuantizer(eta=eta, c=0.1, grad_mode=mode)(zz)
        assert torch.equal(out.detach(), hard_quantize(z, eta))  # forward: the hard H in every mode
        (grads[mode],) = torch.autograd.grad(out.sum(), zz)
    assert torch.equal(grads["bpda"], soft_quantize_grad(z, eta, 0.1))  # H~ unchanged
    assert torch.equal(grads["straight_through"], torch.ones_like(z))
    zz = z.clone().requires_grad_(True)  # the sigmoid backward is the derivative of the smooth surrogate
    (expected,) = torch.autograd.grad((2 * torch.sigmoid((eta - zz.abs()) / 0.05) - 1).sum(), zz)
    assert torch.allclose(grads["sigmoid"], expected, atol=1e-5)
    near, far = (z.abs() - eta).abs() < 0.05, (z.abs() - eta).abs() > 0.5
    assert grads["sigmoid"][near].abs().min() > 1.0  # steep at the thresholds ...
    assert grads["sigmoid"][far].abs().max() < 2e-3  # ... and flat away from them, unlike H~
    assert not torch.allclose(grads["sigmoid"], grads["bpda"])
    with pytest.raises(ValueError, match="temperature"):
        BinaryQuantizer(eta=eta, c=0.1, temperature=0.0)


def test_sigmoid_backward_reaches_the_input_through_the_lqvae(lqvae_model: LQVAE, classifier_a, batch) -> None:
    lqvae_model.eval().requires_grad_(False)
    classifier_a.eval().requires_grad_(False)
    model = Defended(lqvae_model, classifier_a)
    grads = {}
    for mode in ("sigmoid", "bpda"):
        lqvae_model.set_grad_mode(mode)
        lqvae_model.quantizer.temperature = 0.5  # wide enough for the untrained encoder's mu (near 0)
        x = batch.clone().requires_grad_(True)
        (grads[mode],) = torch.autograd.grad(model(x)[:, 0].sum(), x)
    assert grads["sigmoid"].abs().sum() > 0
    assert not torch.allclose(grads["sigmoid"], grads["bpda"])


# ----------------------------------------------------------------------------- the attacks themselves
def test_losses_are_larger_when_more_adversarial() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0, -2.0], [0.0, 2.0, 1.0, -1.0, -2.0]])
    y = torch.tensor([0, 0])
    assert cw(logits, y).tolist() == [-2.0, 2.0]  # the margin: > 0 exactly when misclassified
    t = torch.tensor([1, 1])
    assert dlr_t(logits, y, t)[1] > dlr_t(logits, y, t)[0]
    assert torch.allclose(dlr_t(10 * logits, y, t), dlr_t(logits, y, t))  # DLR ignores the logits' scale


def test_apgd_breaks_a_vulnerable_classifier_and_is_at_least_as_strong_as_pgd(vulnerable) -> None:
    model, x, y = vulnerable
    torch.manual_seed(0)
    for atk in (APGD(eps=0.3, steps=10), APGD(eps=0.3, steps=10, loss="dlr_t", restarts=2), SquareLinf(eps=0.3)):
        assert _robust(model, atk(model, x, y).adversarial, y) == 0  # ~0 % at a large eps
    for eps in (0.07, 0.08, 0.09):  # where PGD leaves some: APGD, same budget, leaves no more
        pgd = _robust(model, PGD(eps=eps, steps=20, stepsize=eps / 8)(model, x, y).adversarial, y)
        apgd = _robust(model, APGD(eps=eps, steps=20)(model, x, y).adversarial, y)
        assert apgd <= pgd, (eps, apgd, pgd)
        single = _robust(model, fgsm(eps)(model, x, y).adversarial, y)
        assert pgd <= single
    found = APGD(eps=0.08, steps=20)(model, x, y)
    assert (found.adversarial - x).abs().max() <= 0.08 + 1e-6
    assert torch.equal(found.success, torch.as_tensor([_robust(model, a[None], b[None]) == 0
                                                       for a, b in zip(found.adversarial, y)]))


class _NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        raise RuntimeError("this model has no gradient")


def test_square_needs_no_gradient(vulnerable) -> None:
    model, x, y = vulnerable
    blocked = nn.Sequential()
    blocked.forward = lambda v: model(_NoBackward.apply(v))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="no gradient"):
        PGD(eps=0.3, steps=1, stepsize=0.1)(blocked, x, y)
    torch.manual_seed(0)
    found = SquareLinf(eps=0.3, queries=100)(blocked, x, y)
    assert _robust(model, found.adversarial, y) <= 2
    assert (found.adversarial - x).abs().max() <= 0.3 + 1e-6


def test_nearest_other_codes_picks_the_closest_usable_code_of_another_class() -> None:
    codes = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]]).bool()
    labels = torch.tensor([0, 0, 1, 2, 1])
    usable = torch.tensor([True, True, True, False, True])
    targets, has = nearest_other_codes(codes, labels, usable)
    assert has.all()
    assert torch.equal(targets[0], codes[2])  # 2 bits away; image 3 (also 2 away) is not usable
    assert torch.equal(targets[2], codes[0])  # image 0 is 2 bits away, image 1 is 3
    assert torch.equal(targets[3], codes[1])  # unusable as a target, image 3 still gets one
    _, none = nearest_other_codes(codes[:2], labels[:2], usable[:2])
    assert not none.any()  # only one class: no target


def test_the_quantizer_attack_flips_bits_towards_the_target_code(batch) -> None:
    torch.manual_seed(0)
    lq = LQVAE(LQVAEConfig.mnist(latent_dim=16, eta=0.015), training_parts=False).eval().requires_grad_(False)
    eta = lq.cfg.eta
    with torch.no_grad():
        codes = code_bits(lq.encode(batch)[0], eta)
    target = codes.clone()
    target[:, :6] = ~target[:, :6]  # six bits to flip per image
    y = torch.zeros(len(batch), dtype=torch.long)
    out = LatentAttack(eps=0.3, steps=10, stepsize=0.03, kappa=0.002)(lambda v: lq.encode(v)[0], batch, y, target,
                                                                        eta=eta)
    with torch.no_grad():
        mu = lq.encode(out.adversarial)[0]
    after = (code_bits(mu, eta) != target).sum(1)
    assert (after <= 1).all(), after  # from 6 bits away to (almost) the target
    assert (out.adversarial - batch).abs().max() <= 0.3 + 1e-6
    assert bits_loss(mu, target, eta, 0.002).mean() < bits_loss(lq.encode(batch)[0], target, eta, 0.002).mean()


# ----------------------------------------------------------------------------- the suite
def test_worst_case_is_at_most_every_member_and_keeps_each(vulnerable) -> None:
    model, x, y = vulnerable
    members = _members(0.08)
    result = run_suite(SuiteSettings(eps=0.08, chunk_size=16), x, y, classifier=model, members=members)
    assert set(result.members) == {m.name for m in members}
    worst = result.robust
    for r in result.members.values():
        if r.member.counts:
            assert not (worst & ~r.robust).any()  # per image: robust under the suite => robust to each member
            assert result.worst_case.k <= r.estimate.k
    # the worst case is strictly stronger than any single member here, and the diagnostics do not count
    assert result.worst_case.k < min(r.estimate.k for r in result.members.values() if r.member.counts)
    assert result.members["pgd_ce_eps1"].estimate.k == 0
    record = result.to_dict()
    assert record["worst_case"]["n"] == 32 and len(record["worst_case"]["ci95"]) == 2
    assert record["members"]["square"]["only_this_broke"] is not None


def test_suite_is_deterministic_with_a_seed_and_in_another_process() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval().requires_grad_(False)
    x, _ = _bars(12, 3)
    with torch.no_grad():
        y = model(x).argmax(1)
    s = SuiteSettings(eps=0.03, chunk_size=5, seed=7)
    a = run_suite(s, x, y, classifier=model, members=_members(0.03))
    b = run_suite(s, x, y, classifier=model, members=_members(0.03))
    assert {k: r.robust.tolist() for k, r in a.members.items()} == {k: r.robust.tolist() for k, r in b.members.items()}
    other = run_suite(SuiteSettings(eps=0.03, chunk_size=5, seed=8), x, y, classifier=model, members=_members(0.03))
    assert other.members["square"].robust.tolist() != a.members["square"].robust.tolist()  # the seed matters
    script = (
        "import json, torch, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import test_suite as t\n"
        "from torch import nn\n"
        "torch.set_num_threads(1); torch.manual_seed(0)\n"
        "model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval().requires_grad_(False)\n"
        "x, _ = t._bars(12, 3)\n"
        "y = model(x).argmax(1)\n"
        "r = t.run_suite(t.SuiteSettings(eps=0.03, chunk_size=5, seed=7), x, y, classifier=model,"
        " members=t._members(0.03))\n"
        "print(json.dumps({k: m.robust.tolist() for k, m in r.members.items()}))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {k: r.robust.tolist() for k, r in a.members.items()}


def test_suite_reports_progress_and_cancels_between_chunks(vulnerable) -> None:
    model, x, y = vulnerable
    seen: list[float] = []
    s, members = SuiteSettings(eps=0.08, chunk_size=16), _members(0.08)[:2]
    run_suite(s, x, y, classifier=model, members=members, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert {0.25, 0.5, 0.75} <= set(seen)  # 2 chunks x 2 members, and finer steps inside each
    assert len(seen) > 4
    seen.clear()
    with pytest.raises(AttackCancelled):
        run_suite(s, x, y, classifier=model, members=members, progress=seen.append,
                  should_stop=lambda: bool(seen) and seen[-1] >= 0.25)
    assert 0.25 <= max(seen) < 0.5  # stopped within the second unit, after the first one ended


class _Masked(nn.Module):
    """A toy gradient-masking "defense": the classifier's output, but a zero gradient w.r.t. the input."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.detach() + 0 * x)


def test_sanity_checks_flag_a_gradient_masked_defense_and_pass_an_honest_one(vulnerable) -> None:
    model, x, y = vulnerable
    s = SuiteSettings(eps=0.2, chunk_size=32, tolerance=0.0)
    honest = sanity_checks(run_suite(s, x, y, classifier=model, members=_members(0.2)))
    assert all(c.passed is not False for c in honest), [c.detail for c in honest]
    masked = sanity_checks(run_suite(s, x, y, classifier=_Masked(model), members=_members(0.2)))
    failed = {c.name for c in masked if c.passed is False}
    assert "score_not_stronger" in failed  # Square breaks what the blind gradient attacks cannot
    assert "unbounded_reaches_zero" in failed  # and a blind PGD cannot even win with eps = 1
    check = next(c for c in masked if c.name == "score_not_stronger")
    assert check.numbers["weak"]["member"] == "square" and check.numbers["weak"]["k"] < check.numbers["strong"]["k"]
    assert next(c for c in masked if c.name == "whitebox_beats_transfer").passed is None  # no purifier


def test_each_sanity_check_fails_on_numbers_that_break_it() -> None:
    n = 50

    def robust(k: int) -> np.ndarray:
        return np.arange(n) < k

    members = {"fgsm@bpda": 10, "pgd_ce@bpda": 30, "transfer": 5, "square": 40, "pgd_ce_10steps@bpda": 20,
               "pgd_ce_eps1@bpda": 25}
    spec = {m.name: m for m in suite_members(SuiteSettings(surrogates=("bpda",)), purifier=True, quantized=True)}
    result = SuiteResult(SuiteSettings(tolerance=0.0), robust(n), {k: MemberResult(spec[k], robust(v), 0.0)
                                                                   for k, v in members.items()}, 0.0, {})
    verdict = {c.name: c.passed for c in sanity_checks(result)}
    assert verdict == {"iterative_beats_single_step": False,  # PGD leaves 30, FGSM 10
                       "whitebox_beats_transfer": False,  # the best end-to-end (10) trails transfer (5)
                       "more_steps_help": False,  # 100 steps leave 30, 10 steps 20
                       "unbounded_reaches_zero": False,  # 50 % at eps 1
                       "score_not_stronger": True}  # Square 40 >= 10
    assert result.worst_case.k == 5  # robust to every counting member: the first 5 images


def test_suite_through_a_purifier_runs_every_method_and_restores_the_models(lqvae_model, classifier_a, batch) -> None:
    lq = lqvae_model.eval()
    with torch.no_grad():
        y = classifier_a.eval()(lq(batch)).argmax(1)
    s = SuiteSettings(eps=0.3, pgd_steps=2, pgd_restarts=1, apgd_steps=2, apgd_restarts=1, apgd_targets=1,
                      square_queries=3, latent_steps=2, few_steps=1, eot_samples=2, check_samples=2, chunk_size=4,
                      surrogates=("sigmoid", "bpda"), sigmoid_temperature=0.5)
    members = suite_members(s, purifier=True, quantized=True)
    assert {"latent", "transfer", "apgd_t@sigmoid", "pgd_cw@bpda", "square"} <= {m.name for m in members}
    keep = tuple(m for m in members if m.name in ("apgd_t@sigmoid", "pgd_cw@bpda", "latent", "transfer", "square"))
    for stochastic in (False, True):
        result = run_suite(s, batch[:4], y[:4], classifier=classifier_a, purifier=lq, stochastic=stochastic,
                           members=keep)
        assert set(result.members) == {m.name for m in keep}
        assert result.defense["stochastic"] is stochastic
        assert result.defense["eot_samples"] == (2 if stochastic else None)  # the draws are recorded
    assert lq.quantizer.grad_mode == "none" and lq.quantizer.temperature == 0.05
    assert all(p.requires_grad for p in lq.parameters()) and all(p.requires_grad for p in classifier_a.parameters())


def test_evaluate_suite_record_has_n_intervals_and_checks(vulnerable) -> None:
    model, x, y = vulnerable
    s = SuiteSettings(eps=0.3, pgd_steps=5, pgd_restarts=1, apgd_steps=5, apgd_restarts=1, apgd_targets=1,
                      square_queries=20, few_steps=2, chunk_size=32)
    record = evaluate_suite(s, x[:8], y[:8], classifier=model)
    assert record["worst_case"]["n"] == 8 and record["worst_case"]["percent"] == 0.0
    assert all(len(m["ci95"]) == 2 and m["n"] == 8 for m in record["members"].values())
    assert [c["name"] for c in record["checks"]][0] == "iterative_beats_single_step"
    text = "\n".join(summary_lines(record))
    assert "worst case" in text and "95 % CI" in text and "apgd_t" in text


def test_cli_refuses_a_bad_setting_in_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        evaluate_main(["suite", "--eps", "2", "--n-images", "4"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "eps" in err[0]


# ----------------------------------------------------------------------------- shipped checkpoints
@pytest.mark.slow
def test_shipped_lqvae_adv_through_the_cli(tmp_path, monkeypatch) -> None:
    if not (ROOT / "checkpoints" / "mnist" / "lqvae_adv.safetensors").exists():
        pytest.skip("shipped checkpoints not present")
    for var in ("LQVAE_CHECKPOINTS", "LQVAE_SAMPLES"):  # the app tests' session points these at tiny models
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "suite.json"
    evaluate_main(["suite", "--defense", "lqvae_adv", "--samples", "--checkpoints", str(ROOT / "checkpoints"), "--n-images", "20", "--steps", "10",
                   "--restarts", "1", "--apgd-restarts", "1", "--apgd-targets", "1", "--square-queries", "50",
                   "--latent-steps", "10", "--quiet", "--json", str(out)])
    record = json.loads(out.read_text())
    assert record["worst_case"]["n"] == 20
    counting = [m for m in record["members"].values() if m["role"] == "attack"]
    assert record["worst_case"]["k"] <= min(m["k"] for m in counting)
    assert record["members"]["pgd_ce_eps1@sigmoid"]["percent"] <= 10.0
    assert np.isfinite(record["seconds"])
