"""Issue 7's training levers on tiny models: the code-consistency and margin terms (value and gradient),
the adversarial training inputs (budget, effect, restored state) and the CLI that drives them."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lqvae.train.adv_inputs import AdvInputs, adversarial_rows, quick_robustness, training_inputs
from lqvae.io.checkpoint import load_checkpoint
from lqvae.core.config import LQVAEConfig
from lqvae.core.losses import algorithm1_losses, code_consistency, margin_penalty
from lqvae.core.models import LQVAE, Defended
from lqvae.core.quantize import soft_quantize
from lqvae.cli.train import main
from tests.helpers import make_idx_folder

ETA, C = 0.67449, 0.1


def _tiny_classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


# ----------------------------------------------------------------------------- code consistency


def test_code_consistency_value_and_gradient_direction():
    # mu = 0 sits on the +1 side (|mu| <= eta), mu = 2 on the -1 side
    mu = torch.tensor([[0.0, 2.0]], requires_grad=True)
    same = code_consistency(mu, torch.tensor([[1.0, -1.0]]), ETA, C)
    h = soft_quantize(mu.detach(), ETA, C)
    assert torch.isclose(same, ((h - torch.tensor([[1.0, -1.0]])) ** 2).sum())
    assert same < 0.05  # bits already agree: close to nothing left to pay
    flipped = code_consistency(mu, torch.tensor([[-1.0, 1.0]]), ETA, C)
    assert flipped > 6.0  # each disagreeing bit costs close to 4
    z = torch.tensor([[0.6, 0.75]], requires_grad=True)  # just inside / just outside eta
    code_consistency(z, torch.tensor([[-1.0, 1.0]]), ETA, C).backward()
    # descending the gradient pushes 0.6 outwards (towards -1) and 0.75 inwards (towards +1)
    assert z.grad[0, 0] < 0 and z.grad[0, 1] > 0
    with pytest.raises(ValueError, match="shape"):
        code_consistency(z, torch.ones(1, 3), ETA, C)


def test_margin_penalty_is_zero_away_from_eta_and_pushes_away_from_it():
    far = torch.tensor([[0.0, 1.5, -2.0]])
    assert margin_penalty(far, ETA, 0.1) == 0
    z = torch.tensor([[ETA - 0.05, -(ETA + 0.02)]], requires_grad=True)
    value = margin_penalty(z, ETA, 0.1)
    assert torch.isclose(value, torch.tensor(0.05 ** 2 + 0.08 ** 2), atol=1e-6)
    value.backward()
    assert z.grad[0, 0] > 0  # gradient descent lowers 0.62 further below eta
    assert z.grad[0, 1] > 0  # and moves -0.69 further below -eta


def test_algorithm1_adds_the_new_terms_to_the_encoder_loss_only(batch):
    torch.manual_seed(0)
    model = LQVAE(LQVAEConfig.mnist(latent_dim=16, code_weight=2.0, margin_weight=3.0, margin=0.7), training_parts=True)
    x_in = (batch + 0.3 * torch.randn_like(batch)).clamp(0, 1)
    perturbed = torch.zeros(len(batch), dtype=torch.bool)
    perturbed[:4] = True
    torch.manual_seed(1)
    with_terms = algorithm1_losses(model, batch, x_in=x_in, perturbed=perturbed)
    assert with_terms.code > 0 and with_terms.margin > 0
    plain = LQVAE(LQVAEConfig.mnist(latent_dim=16), training_parts=True)
    plain.load_state_dict(model.state_dict())
    torch.manual_seed(1)
    without = algorithm1_losses(plain, batch, x_in=x_in, perturbed=perturbed)
    assert torch.isclose(with_terms.L_f - without.L_f, 2.0 * with_terms.code + 3.0 * with_terms.margin, rtol=1e-4)
    # the clean rows are not asked for consistency: the term only sees the perturbed rows' codes
    mu = model.encoder(x_in[:4])[0]
    target = torch.where(model.encoder(batch[:4])[0].abs() <= model.cfg.eta, 1.0, -1.0)
    assert torch.isclose(with_terms.code, code_consistency(mu, target, model.cfg.eta, model.cfg.c), rtol=1e-5)
    g_dec = torch.autograd.grad(with_terms.code, list(model.g.parameters()), allow_unused=True, retain_graph=True)
    assert all(g is None for g in g_dec)  # g is trained by L_g only
    g_enc = torch.autograd.grad(with_terms.code, list(model.encoder.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in g_enc)


def test_config_refuses_negative_weights():
    with pytest.raises(ValueError, match="code_weight"):
        LQVAEConfig.mnist(code_weight=-1.0)


# ----------------------------------------------------------------------------- adversarial inputs


def test_training_inputs_layout_budget_and_mask(batch):
    torch.manual_seed(0)
    model, clf = LQVAE(LQVAEConfig.mnist(latent_dim=16), training_parts=True), _tiny_classifier()
    x = torch.cat([batch, batch])  # 16 rows
    y = torch.arange(16) % 10
    spec = AdvInputs.parse("classifier,pipeline", eps=0.3, steps=3, input_noise=0.3)
    x_in, perturbed = training_inputs(spec, model, clf, x, y)
    assert x_in.shape == x.shape and x_in.min() >= 0 and x_in.max() <= 1
    assert (x_in - x).abs().max() <= 0.3 + 1e-6
    assert perturbed.tolist() == [True] * 12 + [False] * 4  # 8 adversarial, 4 noise, 4 clean
    assert torch.equal(x_in[12:], x[12:])
    assert model.quantizer.grad_mode == "none"  # BPDA was switched on for the attack only
    noise_only, mask = training_inputs(AdvInputs(input_noise=0.3), model, None, x, y)
    assert mask.sum() == 8 and torch.equal(noise_only[8:], x[8:])
    with pytest.raises(ValueError, match="classifier"):
        training_inputs(spec, model, None, x, y)
    with pytest.raises(ValueError, match="unknown adversarial source"):
        AdvInputs.parse("classifer")


@pytest.mark.parametrize("source", ["classifier", "pipeline"])
def test_adversarial_rows_raise_the_loss_of_their_target(batch, source):
    torch.manual_seed(0)
    # a fresh encoder's means are ~0.02: a threshold at their scale makes bits that an attack can flip
    model = LQVAE(LQVAEConfig.mnist(latent_dim=16, eta=0.015, c=1e-4), training_parts=True).eval()
    clf = _tiny_classifier()
    y = torch.arange(8) % 10
    target = clf if source == "classifier" else Defended(model, clf)
    model.set_grad_mode("bpda")  # so the loss of the pipeline below is the one the attack climbs
    ce = nn.functional.cross_entropy
    with torch.no_grad():
        before = ce(target(batch), y)
    model.set_grad_mode("none")
    adv = adversarial_rows(model, clf, batch, y, source=source, eps=0.3, steps=5)
    with torch.no_grad():
        assert ce(target(adv), y) > before  # a random decoder barely reacts, but the loss must rise
    if source == "pipeline":  # through BPDA the attack reaches the bits
        assert (model.encode_bits(adv) != model.encode_bits(batch)).any()
    assert (adv - batch).abs().max() <= 0.3 + 1e-6
    assert model.quantizer.grad_mode == "none"


def test_quick_robustness_reports_percentages(batch):
    torch.manual_seed(0)
    model, clf = LQVAE(LQVAEConfig.mnist(latent_dim=16), training_parts=False).eval(), _tiny_classifier()
    out = quick_robustness(model, clf, batch, torch.arange(8) % 10, batch_size=3)
    assert set(out) == {"greybox_fgsm_8", "bpda_fgsm_8"} and all(0 <= v <= 100 for v in out.values())


def test_train_cli_adversarial_inputs_need_a_classifier_and_record_the_recipe(tmp_path, capsys):
    from lqvae.io.checkpoint import save_checkpoint
    from lqvae.core.config import ClassifierConfig
    from lqvae.core.models import Classifier

    data = make_idx_folder(tmp_path / "data", dotted=False, compress=True, n_train=64, n_test=16)
    base = ["lqvae", "--data-dir", str(data), "--limit", "64", "--batch-size", "32", "--epochs", "1", "--quiet",
            "--device", "cpu", "--latent-dim", "8", "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit, match="--adv-classifier"):
        main([*base, "--adv-inputs", "pipeline"])
    clf_path = tmp_path / "clf.safetensors"
    save_checkpoint(clf_path, Classifier(ClassifierConfig(arch="C")), kind="classifier", dataset="mnist")
    main([*base, "--adv-inputs", "classifier,pipeline", "--adv-classifier", str(clf_path), "--adv-steps", "2",
          "--code-weight", "1", "--eval-classifier", str(clf_path)])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "code" in line and "greybox_fgsm_16" in line and "bpda_fgsm_16" in line
    ck = load_checkpoint(tmp_path / "run" / "lqvae.safetensors")
    assert ck.config.code_weight == 1.0
    recipe = ck.metadata["args"] if isinstance(ck.metadata["args"], dict) else json.loads(ck.metadata["args"])
    assert recipe["adv_inputs"] == "classifier,pipeline" and recipe["adv_steps"] == 2


# ----------------------------------------------------------------------------- Jacobian (random projection)


def test_random_projection_penalty_measures_the_jacobian_along_a_random_unit_direction():
    from lqvae.core.losses import gradient_penalty

    cfg = LQVAEConfig.mnist(latent_dim=8, penalty_target="random_projection", lipschitz_target=0.05)
    enc = LQVAE(cfg, training_parts=False).encoder.double()
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    torch.manual_seed(7)
    pen, norms, mu, _ = gradient_penalty(enc, x, cfg)
    torch.manual_seed(7)
    v = torch.randn(3, 8, dtype=torch.float64)  # the draw the penalty made after its forward pass
    v = v / v.norm(dim=1, keepdim=True)
    rows = []
    for i in range(3):  # the full Jacobian of image i, then its transpose applied to v_i
        jac = torch.autograd.functional.jacobian(lambda im: enc(im.unsqueeze(0))[0][0], x[i])  # (8, 1, 28, 28)
        rows.append(torch.einsum("m,mchw->chw", v[i], jac).norm())
    assert torch.allclose(norms, torch.stack(rows), rtol=1e-6)
    assert torch.isclose(pen, ((norms - 0.05) ** 2).mean())
    (g,) = torch.autograd.grad(pen, [enc.mu.weight])
    assert g.abs().sum() > 0  # double backward reaches the encoder
