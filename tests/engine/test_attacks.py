"""Attacks on tiny models: they work, fail per image, cancel quickly and leave the purifier as found.

The last section checks the shipped checkpoints on the bundled samples (skipped until they exist).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lqvae.attacks.runners import (ATTACKS, AttackCancelled, AttackSpec, attack_mode, attack_params, attacked_model,
                           run_attack)
from lqvae.core.config import LQVAEConfig
from lqvae.core.models import LQVAE

ROOT = Path(__file__).resolve().parents[2]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"

# Shipped-checkpoint floors (bundled samples, 200 images, 20 per class). Measured on the shipped MNIST
# checkpoints: FGSM eps 0.3 on classifier A alone leaves A at about 18 %, and A on the LQ-VAE-purified
# adversarials at 57.0 % (62.6 % on the 10,000 test images, docs/results.md). Floors: measured minus a margin.
FGSM_UNDEFENDED_CEILING = 40.0
LQVAE_FGSM_WHITEBOX_FLOOR = 50.0
FLOOR_N = 200


def _tiny_data(n_train: int = 400, n_test: int = 64) -> tuple[torch.Tensor, ...]:
    """A few hundred MNIST images when the shared copy is on disk, else separable synthetic digits."""
    try:
        from lqvae.io.data import load_split

        split = load_split("mnist", "test", SHARED_MNIST, download=False)  # 10k images: quicker to read
        x, y = split.tensors(n_train + n_test)
    except Exception:
        g = torch.Generator().manual_seed(0)
        y = torch.arange(n_train + n_test) % 10
        x = 0.15 * torch.rand(n_train + n_test, 1, 28, 28, generator=g)
        for k in range(10):  # class k: a bright bar in row band k
            x[y == k, :, 2 + 2 * k: 4 + 2 * k, 4:24] = 0.9
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def _train_tiny(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> nn.Module:
    """A small MLP, full-batch SGD with momentum (torch.optim's first call is slow to import)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    params = list(model.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    for _ in range(150):
        grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), params)
        with torch.no_grad():
            for p, v, g in zip(params, velocity, grads):
                p.sub_(0.1 * v.mul_(0.9).add_(g))
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    xtr, ytr, xte, yte = _tiny_data()
    clf, sub = _train_tiny(xtr, ytr, 0), _train_tiny(xtr, ytr, 1)
    with torch.no_grad():
        keep = clf(xte).argmax(1) == yte  # attack correctly classified images only
    return clf, sub, xte[keep][:16], yte[keep][:16]


@pytest.fixture(scope="module")
def tiny_lqvae() -> LQVAE:
    torch.manual_seed(0)
    return LQVAE(LQVAEConfig.mnist(latent_dim=16), training_parts=False).eval()


def _acc(model: nn.Module, x: np.ndarray | torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(torch.as_tensor(x)).argmax(1) == y).float().mean() * 100)


@pytest.mark.parametrize("attack", ATTACKS)
def test_each_attack_lowers_accuracy_of_undefended_classifier(tiny, attack):
    clf, _, x, y = tiny
    res = run_attack(AttackSpec(attack=attack), x, y, classifier=clf)
    assert res.adversarial.shape == tuple(x.shape) and res.adversarial.dtype == np.float32
    assert 0.0 <= res.adversarial.min() and res.adversarial.max() <= 1.0
    assert _acc(clf, res.adversarial, y) < _acc(clf, x, y) == 100.0
    assert res.success.sum() > len(y) // 2
    np.testing.assert_array_equal(res.failed, ~res.success)
    assert len(res.messages) == len(y)


class _LabelsOnly(nn.Module):
    """The classifier with its gradient cut: only its decisions reach an attack."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x)


def test_hopskipjump_needs_only_decisions(tiny):
    clf, _, x, y = tiny
    x, y = x[:4], y[:4]
    res = run_attack(AttackSpec(attack="hsj"), x, y, classifier=_LabelsOnly(clf))
    assert res.success.all(), res.messages
    with torch.no_grad():
        assert (clf(torch.from_numpy(res.adversarial)).argmax(1) != y).all()
    assert np.isfinite(res.l2).all() and (res.l2 > 0).all() and res.params["norm"] == "l2"
    assert res.params["steps"] == ATTACKS["hsj"].presets["live"]["steps"]
    with pytest.raises(ValueError, match="HopSkipJump"):
        AttackSpec(attack="hsj", targeted=True, target=1)


def test_failed_images_keep_the_input_and_norms_are_reported(tiny):
    clf, _, x, y = tiny
    res = run_attack(AttackSpec(attack="fgsm", eps=0.02), x, y, classifier=clf)
    assert res.failed.any(), "eps 0.02 should leave some images correctly classified"
    np.testing.assert_array_equal(res.adversarial[res.failed], x.numpy()[res.failed])
    assert (res.linf[res.failed] == 0).all() and (res.l2[res.failed] == 0).all()
    assert (res.linf[res.success] <= 0.02 + 1e-6).all() and (res.l2[res.success] > 0).all()
    assert all(m.startswith("not adversarial") for m, f in zip(res.messages, res.failed) if f)


def test_iterative_attacks_at_least_as_strong_as_fgsm(tiny):
    clf, _, x, y = tiny
    accs = {a: _acc(clf, run_attack(AttackSpec(attack=a, eps=0.08), x, y, classifier=clf).adversarial, y)
            for a in ("fgsm", "bim", "pgd")}
    assert accs["bim"] <= accs["fgsm"] and accs["pgd"] <= accs["fgsm"], accs


def test_targeted_pgd_reaches_the_target(tiny):
    clf, _, x, y = tiny
    res = run_attack(AttackSpec(attack="pgd", targeted=True, target=3), x, y, classifier=clf)
    with torch.no_grad():
        pred = clf(torch.from_numpy(res.adversarial)).argmax(1)
    other = y != 3
    assert ((pred == 3) == torch.from_numpy(res.success))[other].all()
    assert res.success[other.numpy()].mean() > 0.5
    assert not res.success[y.numpy() == 3].any()  # target = true label is not a success


def test_blackbox_attacks_the_substitute(tiny):
    clf, sub, x, y = tiny
    res = run_attack(AttackSpec(attack="fgsm", threat="blackbox"), x, y, classifier=clf, substitute=sub)
    with torch.no_grad():
        fooled_sub = sub(torch.from_numpy(res.adversarial)).argmax(1) != y
    np.testing.assert_array_equal(fooled_sub.numpy(), res.success)
    assert _acc(clf, res.adversarial, y) < 100.0  # transfers at eps 0.3


def test_bpda_gradient_flows_through_the_purifier_and_none_blocks_it(tiny, tiny_lqvae):
    clf = tiny[0]
    x = tiny[2][:2].clone().requires_grad_(True)
    y = tiny[3][:2]
    for backward in ("bpda", "straight_through"):
        spec = AttackSpec(attack="pgd", threat="bpda", bpda_backward=backward)
        model = attacked_model(spec, classifier=clf, purifier=tiny_lqvae)
        with attack_mode(spec, [clf, tiny_lqvae], tiny_lqvae):
            assert tiny_lqvae.quantizer.grad_mode == backward
            (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), x)
        assert grad.abs().sum() > 0, backward
    assert tiny_lqvae.quantizer.grad_mode == "none"  # restored
    out = attacked_model(AttackSpec(threat="bpda"), classifier=clf, purifier=tiny_lqvae)(x)
    (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    assert grad is None  # grad_mode 'none': no path from the input to the output


def test_bpda_attack_runs_end_to_end_and_restores_grad_mode(tiny, tiny_lqvae):
    clf, _, x, y = tiny
    res = run_attack(AttackSpec(attack="fgsm", threat="bpda"), x[:4], y[:4], classifier=clf, purifier=tiny_lqvae)
    assert res.adversarial.shape == (4, 1, 28, 28) and res.params["bpda_backward"] == "bpda"
    assert tiny_lqvae.quantizer.grad_mode == "none"
    assert all(p.requires_grad for p in tiny_lqvae.parameters())  # weights unfrozen again


def test_bpda_eot_runs_end_to_end_and_restores_grad_mode(tiny, tiny_lqvae):
    clf, _, x, y = tiny
    spec = AttackSpec(attack="pgd", threat="bpda_eot", steps=3, eot_samples=2, restarts=2)
    res = run_attack(spec, x[:2], y[:2], classifier=clf, purifier=tiny_lqvae)
    assert res.adversarial.shape == (2, 1, 28, 28) and res.params["eot_samples"] == 2
    assert tiny_lqvae.quantizer.grad_mode == "none"
    assert attack_params(AttackSpec(attack="pgd", threat="bpda_eot", preset="paper"))["steps"] >= 100


class _LuckyDraws(nn.Module):
    """Stands in for ``StochasticPurifier``: every draw returns the image itself, except that one draw in four
    (``torch.rand``, so every call draws anew) returns a white image, which fools ``_WhiteDetector``."""

    def __init__(self, lqvae: LQVAE) -> None:
        super().__init__()
        self.lqvae = lqvae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lucky = torch.rand(x.shape[0], device=x.device) < 0.25
        return torch.where(lucky.view(-1, 1, 1, 1), torch.ones_like(x), x)


class _WhiteDetector(nn.Module):
    """Class 1 for a white image, class 0 otherwise; records (rows, rows called class 1) of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        white = x.flatten(1).mean(1) > 0.9
        self.calls.append((len(x), int(white.sum())))
        logits = torch.zeros(len(x), 10, device=x.device)
        logits[:, 0], logits[:, 1] = 20.0 * (~white), 20.0 * white
        return logits + 0.0 * x.flatten(1).sum(1, keepdim=True)  # a zero gradient, not a missing one


def test_bpda_eot_success_is_judged_on_fresh_draws_not_the_attacks_own(tiny_lqvae, monkeypatch):
    """The attack's own draws (one per call here) say "fooled" for about a quarter of the images; the
    re-check on EOT_CHECK_SAMPLES fresh draws sees the expected prediction, which is still the true class."""
    import lqvae.attacks.models as attacked
    import lqvae.attacks.runners as runners
    from lqvae.spec.attacks import EOT_CHECK_SAMPLES

    monkeypatch.setattr(attacked, "StochasticPurifier", _LuckyDraws)
    x, y = 0.2 * torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.zeros(16, dtype=torch.long)
    spec = AttackSpec(attack="fgsm", threat="bpda_eot", eps=0.1, eot_samples=1)

    detector = _WhiteDetector()
    res = run_attack(spec, x, y, classifier=detector, purifier=tiny_lqvae)
    *during_attack, (checked_rows, checked_fooled) = detector.calls
    assert during_attack and all(rows == len(x) * spec.eot_samples for rows, _ in during_attack)
    assert sum(fooled for _, fooled in during_attack) > 0  # the attack's own draws did see "success"
    assert checked_rows == EOT_CHECK_SAMPLES * len(x)  # the verdict: 32 draws per image ...
    assert 0 < checked_fooled < checked_rows // 2  # ... fresh ones: some lucky, most not
    assert not res.success.any() and all(m.startswith("not adversarial") for m in res.messages)

    monkeypatch.setattr(runners, "EOT_CHECK_SAMPLES", 1)  # judged on as few draws as the attack used ...
    lucky = run_attack(spec, x, y, classifier=_WhiteDetector(), purifier=tiny_lqvae)
    assert lucky.success.any()  # ... some images would pass as adversarial: the re-check is what stops them


class _Poisoned(nn.Module):
    """NaN logits (or an exception) for images whose top row is bright: a broken model on one image."""

    def __init__(self, model: nn.Module, *, raise_error: bool = False) -> None:
        super().__init__()
        self.model, self.raise_error = model, raise_error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bad = x[:, 0, 0, :].mean(1) > 0.6
        if self.raise_error and bad.any():
            raise RuntimeError("this image breaks the model")
        out = self.model(x)
        return torch.where(bad[:, None], torch.full_like(out, float("nan")), out)


@pytest.mark.parametrize("raise_error", [False, True])
def test_one_failing_image_is_reported_and_the_others_finish(tiny, raise_error):
    clf, _, x, y = tiny
    x = x[:6].clone()
    x[2, 0, 0, :] = 1.0
    res = run_attack(AttackSpec(attack="pgd", steps=10), x, y[:6], classifier=_Poisoned(clf, raise_error=raise_error))
    assert res.failed[2] and not res.success[2] and res.messages[2]
    if raise_error:
        assert "this image breaks the model" in res.messages[2]
    np.testing.assert_array_equal(res.adversarial[2], x[2].numpy())
    others = np.arange(6) != 2
    assert res.success[others].sum() >= 4 and not np.isnan(res.adversarial).any()


def test_cancel_lands_within_one_model_call(tiny, tiny_lqvae):
    clf, _, x, y = tiny
    t0 = time.perf_counter()
    stop_at = t0 + 0.2
    with pytest.raises(AttackCancelled):
        run_attack(AttackSpec(attack="pgd", threat="bpda", steps=100_000), x, y, classifier=clf,
                   purifier=tiny_lqvae, should_stop=lambda: time.perf_counter() > stop_at)
    assert time.perf_counter() - stop_at < 1.0
    assert tiny_lqvae.quantizer.grad_mode == "none"


def test_progress_rises_to_one(tiny):
    clf, _, x, y = tiny
    seen: list[float] = []
    run_attack(AttackSpec(attack="bim"), x, y, classifier=clf, progress=seen.append, batch_size=8)
    assert seen[-1] == 1.0 and all(0 <= p <= 1 for p in seen) and seen == sorted(seen) and len(seen) > 10


def test_clear_errors(tiny):
    clf, _, x, y = tiny
    with pytest.raises(ValueError, match="substitute"):
        run_attack(AttackSpec(threat="blackbox"), x, y, classifier=clf)
    with pytest.raises(ValueError, match="purifier"):
        run_attack(AttackSpec(threat="bpda"), x, y, classifier=clf)
    with pytest.raises(ValueError, match="target"):
        AttackSpec(attack="pgd", targeted=True)
    with pytest.raises(ValueError, match="untargeted"):
        AttackSpec(attack="deepfool", targeted=True, target=1)
    with pytest.raises(ValueError, match="attack in"):
        AttackSpec(attack="jsma")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        run_attack(AttackSpec(), x * 255, y, classifier=clf)


def test_paper_preset_is_at_least_as_strong_as_live():
    def work(p: dict) -> int:
        return p.get("steps", 1) * p.get("binary_search_steps", 1)

    for attack in ATTACKS:
        assert work(attack_params(AttackSpec(attack=attack, preset="paper"))) >= work(attack_params(AttackSpec(attack=attack)))
    assert attack_params(AttackSpec(attack="fgsm"))["eps"] == 0.3
    assert attack_params(AttackSpec(attack="cw"))["eps"] is None  # unbounded, as in the paper


# ----------------------------------------------------------------------------- shipped checkpoints
SHIPPED = ROOT / "checkpoints"  # the repository's own, not $LQVAE_CHECKPOINTS (the app tests point that at tiny models)


def _shipped(dataset: str = "mnist") -> bool:
    folder = SHIPPED / dataset
    return ((folder / "classifier_A.safetensors").is_file() and (folder / "lqvae.safetensors").is_file()
            and (ROOT / "resources" / "samples" / f"{dataset}.npz").is_file())


shipped = pytest.mark.skipif(not _shipped(), reason="shipped MNIST checkpoints or bundled samples not present yet")


@pytest.fixture(scope="module")
def shipped_models():
    from lqvae.io.data import load_samples
    from lqvae.io.registry import load_named

    clf = load_named("mnist", "A", kind="classifier", root=SHIPPED).model
    lq = load_named("mnist", "lqvae", kind="lqvae", root=SHIPPED).model
    x, y = load_samples("mnist").tensors()
    keep = torch.arange(0, len(x), len(x) // FLOOR_N)[:FLOOR_N]  # the samples are sorted by class
    x, y = x[keep], y[keep]
    return clf, lq, x, y


def _defended_acc(clf: nn.Module, lq: LQVAE, adv: np.ndarray, y: torch.Tensor) -> float:
    with torch.no_grad():
        return _acc(clf, lq(torch.from_numpy(adv)), y)


@shipped
def test_shipped_fgsm_whitebox_floors(shipped_models):
    clf, lq, x, y = shipped_models
    adv = run_attack(AttackSpec(attack="fgsm", preset="paper"), x, y, classifier=clf).adversarial
    assert _acc(clf, adv, y) < FGSM_UNDEFENDED_CEILING
    assert _defended_acc(clf, lq, adv, y) >= LQVAE_FGSM_WHITEBOX_FLOOR


@shipped
@pytest.mark.slow
def test_shipped_bpda_at_least_as_strong_as_classifier_only(shipped_models):
    # Same attack (PGD-40, eps 0.3) with and without the purifier in the gradient. Single-step FGSM is not
    # compared: one sign step along the BPDA gradient can be weaker than along the classifier's (measured
    # 71.0 % vs 60.5 % on an epoch-5 LQ-VAE), while 40 BPDA steps bring the defense to a few percent.
    clf, lq, x, y = shipped_models
    x, y = x[::4], y[::4]  # 50 images, every class
    wb = run_attack(AttackSpec(attack="pgd"), x, y, classifier=clf).adversarial
    bpda = run_attack(AttackSpec(attack="pgd", threat="bpda"), x, y, classifier=clf, purifier=lq).adversarial
    assert _defended_acc(clf, lq, bpda, y) <= _defended_acc(clf, lq, wb, y)


@shipped
def test_shipped_pgd_at_least_as_strong_as_fgsm(shipped_models):
    clf, _, x, y = shipped_models
    x, y = x[::4], y[::4]  # 50 images, every class
    fgsm = run_attack(AttackSpec(attack="fgsm", preset="paper"), x, y, classifier=clf).adversarial
    pgd = run_attack(AttackSpec(attack="pgd", preset="live"), x, y, classifier=clf).adversarial
    assert _acc(clf, pgd, y) <= _acc(clf, fgsm, y)


@shipped
@pytest.mark.slow
def test_shipped_bpda_pgd_at_least_as_strong_as_bpda_fgsm(shipped_models):
    clf, lq, x, y = shipped_models
    x, y = x[::2], y[::2]
    fgsm = run_attack(AttackSpec(attack="fgsm", threat="bpda"), x, y, classifier=clf, purifier=lq).adversarial
    pgd = run_attack(AttackSpec(attack="pgd", threat="bpda"), x, y, classifier=clf, purifier=lq).adversarial
    assert _defended_acc(clf, lq, pgd, y) <= _defended_acc(clf, lq, fgsm, y)


@pytest.mark.skipif(not (SHIPPED / "mnist" / "lqvae_robust.safetensors").is_file(), reason="no shipped lqvae_robust")
def test_shipped_robust_variant_beats_lqvae_on_greybox_fgsm(shipped_models):
    # measured on these 200 samples: lqvae 57.0 %, lqvae_robust 63.0 % (clean purified 97.0 / 96.5 %)
    from lqvae.io.registry import load_named

    clf, lq, x, y = shipped_models
    robust = load_named("mnist", "lqvae_robust", kind="lqvae", root=SHIPPED).model
    adv = run_attack(AttackSpec(attack="fgsm", preset="paper"), x, y, classifier=clf).adversarial
    assert _defended_acc(clf, robust, adv, y) >= _defended_acc(clf, lq, adv, y) + 3.0
    assert _defended_acc(clf, robust, x.numpy(), y) >= 94.5


@pytest.mark.skipif(not (SHIPPED / "fashion_mnist" / "lqvae_robust.safetensors").is_file(),
                    reason="no shipped Fashion-MNIST lqvae_robust")
def test_shipped_fashion_robust_variant_beats_lqvae_on_greybox_fgsm():
    # measured on these 200 samples: lqvae 36.0 %, lqvae_robust 41.5 % (clean purified 77.5 / 78.0 %)
    from lqvae.io.data import load_samples
    from lqvae.io.registry import load_named

    clf = load_named("fashion_mnist", "A", kind="classifier", root=SHIPPED).model
    lq, robust = (load_named("fashion_mnist", n, kind="lqvae", root=SHIPPED).model for n in ("lqvae", "lqvae_robust"))
    x, y = load_samples("fashion_mnist").tensors()
    keep = torch.arange(0, len(x), len(x) // FLOOR_N)[:FLOOR_N]
    x, y = x[keep], y[keep]
    adv = run_attack(AttackSpec(attack="fgsm", preset="paper"), x, y, classifier=clf).adversarial
    assert _defended_acc(clf, robust, adv, y) >= _defended_acc(clf, lq, adv, y) + 3.0
    assert _defended_acc(clf, robust, x.numpy(), y) >= 76.0


# measured on these 200 bundled samples (classifier A, FGSM eps 0.3; clean purified / grey-box / BPDA):
# MNIST lqvae_robust 96.5 / 63.0 / 77.5, lqvae_adv 94.5 / 88.0 / 85.0
# Fashion-MNIST lqvae_robust 78.0 / 41.5 / 34.0, lqvae_adv 77.0 / 66.0 / 49.0
ADV_MARGINS = {"mnist": {"greybox": 15.0, "bpda": 4.0, "clean": 93.0},
               "fashion_mnist": {"greybox": 12.0, "bpda": 7.0, "clean": 74.5}}


@pytest.mark.parametrize("dataset", sorted(ADV_MARGINS))
def test_shipped_adversarially_fine_tuned_variant_beats_the_noise_variant(dataset):
    from lqvae.io.data import load_samples
    from lqvae.io.registry import load_named

    if not all((SHIPPED / dataset / f"{n}.safetensors").is_file() for n in ("lqvae_robust", "lqvae_adv")):
        pytest.skip(f"no shipped {dataset} lqvae_adv / lqvae_robust")
    clf = load_named(dataset, "A", kind="classifier", root=SHIPPED).model
    robust, adv_model = (load_named(dataset, n, kind="lqvae", root=SHIPPED).model for n in ("lqvae_robust", "lqvae_adv"))
    x, y = load_samples(dataset).tensors()
    keep = torch.arange(0, len(x), len(x) // FLOOR_N)[:FLOOR_N]
    x, y = x[keep], y[keep]
    margins = ADV_MARGINS[dataset]
    grey = run_attack(AttackSpec(attack="fgsm", preset="paper"), x, y, classifier=clf).adversarial
    assert _defended_acc(clf, adv_model, grey, y) >= _defended_acc(clf, robust, grey, y) + margins["greybox"]
    spec = AttackSpec(attack="fgsm", preset="paper", threat="bpda")
    bpda = {name: run_attack(spec, x, y, classifier=clf, purifier=m).adversarial
            for name, m in (("robust", robust), ("adv", adv_model))}
    assert _defended_acc(clf, adv_model, bpda["adv"], y) >= _defended_acc(clf, robust, bpda["robust"], y) + margins["bpda"]
    assert _defended_acc(clf, adv_model, x.numpy(), y) >= margins["clean"]
