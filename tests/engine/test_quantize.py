import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lqvae.core.config import ETA_MEDIAN
from lqvae.core.quantize import BinaryQuantizer, hard_quantize, soft_quantize, soft_quantize_grad


def test_hard_quantizer_values_and_threshold():
    z = torch.tensor([-2.0, -ETA_MEDIAN, -0.1, 0.0, 0.5, ETA_MEDIAN, 0.7, 3.0])
    assert hard_quantize(z, ETA_MEDIAN).tolist() == [-1, 1, 1, 1, 1, 1, -1, -1]


def test_eta_gives_balanced_bits_under_standard_normal():
    z = torch.randn(400_000, generator=torch.Generator().manual_seed(1))
    share = (hard_quantize(z, ETA_MEDIAN) > 0).float().mean().item()
    assert abs(share - 0.5) < 4 * (0.25 / 400_000) ** 0.5  # 4 standard errors


@settings(max_examples=50, deadline=None)
@given(st.floats(-5, 5).filter(lambda v: abs(abs(v) - ETA_MEDIAN) > 0.05))
def test_soft_quantizer_tends_to_hard_as_c_vanishes(v):
    z = torch.tensor([v], dtype=torch.float64)
    hard = hard_quantize(z, ETA_MEDIAN)
    assert torch.allclose(soft_quantize(z, ETA_MEDIAN, 1e-9), hard, atol=1e-6)
    err_big = (soft_quantize(z, ETA_MEDIAN, 0.5) - hard).abs()
    err_small = (soft_quantize(z, ETA_MEDIAN, 0.01) - hard).abs()
    assert err_small <= err_big


def test_soft_gradient_closed_form_matches_autograd():
    z = torch.linspace(-2, 2, 41, dtype=torch.float64).requires_grad_(True)
    (g,) = torch.autograd.grad(soft_quantize(z, ETA_MEDIAN, 0.1).sum(), z)
    assert torch.allclose(g, soft_quantize_grad(z.detach(), ETA_MEDIAN, 0.1))


@pytest.mark.parametrize("mode", ["bpda", "straight_through"])
def test_gradient_modes_pass_a_gradient(mode):
    q = BinaryQuantizer(eta=ETA_MEDIAN, c=0.1, grad_mode=mode)
    z = torch.tensor([0.3, -1.2, 0.8], requires_grad=True)
    out = q(z)
    assert out.tolist() == [1, -1, -1]
    (g,) = torch.autograd.grad(out.sum(), z)
    assert (g != 0).all()
    if mode == "bpda":  # H~ decreases in |z|: the gradient's sign is -sign(z)
        assert torch.equal(torch.sign(g), -torch.sign(z.detach()))


def test_none_mode_blocks_visibly():
    q = BinaryQuantizer(eta=ETA_MEDIAN, c=0.1)
    out = q(torch.tensor([0.3], requires_grad=True))
    assert not out.requires_grad


def test_unknown_grad_mode_is_refused():
    with pytest.raises(ValueError, match="grad_mode"):
        BinaryQuantizer(eta=ETA_MEDIAN, c=0.1, grad_mode="identity")
