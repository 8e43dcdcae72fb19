import torch

from lqvae.core.config import LQVAEConfig
from lqvae.core.losses import algorithm1_losses, gradient_penalty
from lqvae.core.models import LQVAE


def test_penalty_matches_finite_differences():
    torch.manual_seed(0)
    cfg = LQVAEConfig.mnist(latent_dim=4)
    enc = LQVAE(cfg, training_parts=False).encoder.double()
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    _, norms, _, _ = gradient_penalty(enc, x, cfg, create_graph=False)
    # finite differences of s(x) = sum_j mu_j along the analytic gradient's direction recover its norm
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(enc(x_req)[0].sum(), x_req)
    for i in range(2):
        d = grad[i] / grad[i].norm()
        h = 1e-5
        s_plus = enc((x[i] + h * d).unsqueeze(0))[0].sum()
        s_minus = enc((x[i] - h * d).unsqueeze(0))[0].sum()
        assert abs(((s_plus - s_minus) / (2 * h)).item() - norms[i].item()) < 1e-5 * max(1.0, norms[i].item())


def test_penalty_value_is_squared_distance_to_k():
    torch.manual_seed(0)
    cfg = LQVAEConfig.mnist(latent_dim=4, lipschitz_target=0.1)
    enc = LQVAE(cfg, training_parts=False).encoder
    pen, norms, _, _ = gradient_penalty(enc, torch.rand(3, 1, 28, 28), cfg)
    assert torch.allclose(pen, ((norms - 0.1) ** 2).mean())
    assert pen.requires_grad  # double backward: the penalty trains the encoder


def _grads(loss, params):
    gs = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    return sum(float(g.abs().sum()) for g in gs if g is not None)


def test_parameter_groups_get_only_their_losses(lqvae_model, batch):
    losses = algorithm1_losses(lqvae_model, batch)
    assert _grads(losses.L_f, lqvae_model.g.parameters()) == 0  # g gets nothing from L_f
    assert _grads(losses.L_g, lqvae_model.encoder.parameters()) == 0  # encoder nothing from L_g
    assert _grads(losses.L_g, lqvae_model.h.parameters()) == 0
    assert _grads(losses.L_f, lqvae_model.encoder.parameters()) > 0
    assert _grads(losses.L_g, lqvae_model.g.parameters()) > 0
    assert _grads(losses.L_h, lqvae_model.h.parameters()) > 0


def test_a_few_algorithm1_steps_lower_both_reconstruction_losses(lqvae_model, batch):
    torch.manual_seed(0)
    opt = torch.optim.Adam(lqvae_model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    first = algorithm1_losses(lqvae_model, batch)
    for step in range(15):
        losses = algorithm1_losses(lqvae_model, batch, step=step)
        opt.zero_grad()
        losses.total.backward()
        opt.step()
    last = algorithm1_losses(lqvae_model, batch)
    assert last.L_g < first.L_g and last.L_h < first.L_h


def test_free_bits_floor_each_dimension():
    torch.manual_seed(0)
    model = LQVAE(LQVAEConfig.mnist(latent_dim=8, free_bits=1.0, penalty_weight=0.0))
    losses = algorithm1_losses(model, torch.rand(4, 1, 28, 28))
    assert torch.allclose(losses.kl, torch.clamp(losses.kl_per_dim, min=1.0).sum())
    assert losses.kl >= 8.0
