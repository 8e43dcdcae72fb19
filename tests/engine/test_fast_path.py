"""The fast path (``lqvae.core.fast``, issue 19) is the same defense: on the bundled samples and the shipped
checkpoints it gives the plain float32 model's bit codes and classifier-A predictions, images within 5e-6, and
it passes the BPDA gradient to the input. (On the 10,000 + 10,000 test images: 0 codes and 0 predictions differ
for every shipped LQ-VAE, images within 1.3e-6; see README, Performance.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lqvae.core.fast import FastLQVAE, optimize_for_inference
from lqvae.core.models import LQVAE, Defended

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "checkpoints"  # the repository's own, not $LQVAE_CHECKPOINTS
IMAGE_TOL = 5e-6  # summation order of the convolutions and the encoder's dense layer (measured max 1.3e-6)
CASES = [(d, n) for d in ("mnist", "fashion_mnist") for n in ("lqvae", "lqvae_robust", "lqvae_adv")]


def _present(dataset: str, name: str) -> bool:
    return ((SHIPPED / dataset / f"{name}.safetensors").is_file()
            and (SHIPPED / dataset / "classifier_A.safetensors").is_file()
            and (ROOT / "resources" / "samples" / f"{dataset}.npz").is_file())


def _load(dataset: str, name: str):
    from lqvae.io.data import load_samples
    from lqvae.io.registry import load_named

    ref = load_named(dataset, name, kind="lqvae", root=SHIPPED).model.eval()
    clf = load_named(dataset, "A", kind="classifier", root=SHIPPED).model.eval()
    x = load_samples(dataset).tensors()[0][::5]  # 200 of the 1,000, every class
    return ref, clf, x


@pytest.mark.parametrize("dataset,name", CASES)
def test_same_codes_predictions_and_images_on_bundled_samples(dataset: str, name: str) -> None:
    if not _present(dataset, name):
        pytest.skip(f"shipped {dataset}/{name} or bundled samples not present")
    ref, clf, x = _load(dataset, name)
    fast = optimize_for_inference(ref)
    assert isinstance(fast, FastLQVAE) and isinstance(fast, LQVAE)
    assert fast.state_dict().keys() == ref.state_dict().keys()
    with torch.inference_mode():
        a, b = ref.purify(x), fast.purify(x)
        assert torch.equal(a.bits, b.bits)
        assert torch.equal(ref.encode_bits(x), fast.encode_bits(x))
        assert (a.image - b.image).abs().max() <= IMAGE_TOL
        assert torch.equal(clf(a.image).argmax(1), clf(b.image).argmax(1))
        for i in (0, 137, 199):  # one image: the app's call, its own packed weights
            one_a, one_b = ref.purify(x[i:i + 1]), fast.purify(x[i:i + 1])
            assert torch.equal(one_a.bits, one_b.bits)
            assert (one_a.image - one_b.image).abs().max() <= IMAGE_TOL


@pytest.mark.skipif(not _present("mnist", "lqvae_adv"), reason="shipped mnist/lqvae_adv not present")
def test_stochastic_mode_draws_the_same_codes() -> None:
    ref, _, x = _load("mnist", "lqvae_adv")
    fast = optimize_for_inference(ref)
    with torch.inference_mode():
        a = ref.purify(x[:50], mode="stochastic", n_samples=4, generator=torch.Generator().manual_seed(3))
        b = fast.purify(x[:50], mode="stochastic", n_samples=4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.bits, b.bits)
    assert (a.image - b.image).abs().max() <= IMAGE_TOL


@pytest.mark.skipif(not _present("mnist", "lqvae_adv"), reason="shipped mnist/lqvae_adv not present")
def test_bpda_gradient_reaches_the_input_through_the_fast_path() -> None:
    ref, clf, x = _load("mnist", "lqvae_adv")
    fast = optimize_for_inference(ref)
    for p in [*clf.parameters(), *ref.parameters()]:
        p.requires_grad_(False)
    y = clf(x[:16]).argmax(1)
    grads = []
    for model in (ref, fast):
        model.set_grad_mode("bpda")
        xi = x[:16].clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(Defended(model, clf)(xi), y)
        (g,) = torch.autograd.grad(loss, xi)
        grads.append(g)
    g_ref, g_fast = grads
    assert torch.isfinite(g_fast).all() and g_fast.abs().sum() > 0
    cos = torch.nn.functional.cosine_similarity(g_ref.flatten(), g_fast.flatten(), dim=0)
    assert cos > 0.999  # the same gradient up to summation order (BPDA's dH~/dz is steep near eta)
    fast.set_grad_mode("none")  # grey-box: the code is detached, as in the plain model
    xi = x[:4].clone().requires_grad_(True)
    assert not fast(xi).requires_grad


def test_tiny_model_and_refusals(lqvae_model: LQVAE, batch: torch.Tensor) -> None:
    ref = lqvae_model.eval()
    fast = optimize_for_inference(ref)
    with torch.no_grad():
        assert torch.equal(ref.purify(batch).bits, fast.purify(batch).bits)
        assert torch.equal(ref.purify(batch[:1]).bits, fast.purify(batch[:1]).bits)
        big = batch.repeat(20, 1, 1, 1)  # 160 images: chunks of CHUNK and a remainder
        assert torch.equal(ref.encode_bits(big), fast.encode_bits(big))
    with pytest.raises(RuntimeError, match="inference snapshot"):
        fast.train()
    assert optimize_for_inference(fast) is fast
    clf = torch.nn.Linear(2, 2)
    assert optimize_for_inference(clf) is clf  # not an LQ-VAE: unchanged


# ----------------------------------------------------------------------------- the attack path: fused forward, hand-written backward
def _input_gradient(model: LQVAE, x: torch.Tensor, weight: torch.Tensor, eps: torch.Tensor | None) -> torch.Tensor:
    """d/dx of sum(weight * g(H(z))), z = mu (eps None) or mu + noise_scale * sigma * eps (the stochastic mode)."""
    dtype = next(model.parameters()).dtype
    xi = x.to(dtype)
    if next(model.parameters()).is_contiguous(memory_format=torch.channels_last) and not isinstance(model, FastLQVAE):
        xi = xi.contiguous(memory_format=torch.channels_last)
    xi.requires_grad_(True)
    mu, logvar = model.encode(xi)
    z = mu if eps is None else mu + model.cfg.noise_scale * torch.exp(0.5 * logvar) * eps.to(dtype)
    out = model.decode(model.quantizer(z))
    if isinstance(model, FastLQVAE):  # the fused path with its own backward, not the eager modules
        node, names = out.grad_fn, []
        while node is not None and len(names) < 3:
            names.append(type(node).__name__)
            node = node.next_functions[0][0] if node.next_functions else None
        assert "_DecodeFnBackward" in names, names
    (g,) = torch.autograd.grad((out * weight.to(dtype)).sum(), xi)
    return g.double()


@pytest.mark.parametrize("arch,grad_mode", [("table8", "bpda"), ("table9", "straight_through")])
def test_input_gradient_of_the_fused_path_is_as_exact_as_the_plain_model(arch: str, grad_mode: str) -> None:
    """Attacks differentiate w.r.t. the input alone: the fast path runs its fused kernels and a hand-written
    backward (``_EncodeFn``/``_DecodeFn``). Against a float64 copy of the model, its gradient must be as exact as
    the plain float32 model's, contiguous or channels-last (torch's oneDNN kernels for channels-last round
    differently: up to ~1e-3 relative on a random 64x64 model), with mu and, in the stochastic mode, the
    log-variance carrying gradient, for one image and for a batch that is not a multiple of the chunk."""
    import copy

    from lqvae.core.config import LQVAEConfig

    torch.manual_seed(0)
    cfg = LQVAEConfig.mnist(latent_dim=16) if arch == "table8" else LQVAEConfig.celeba(latent_dim=16)
    ref = LQVAE(cfg, training_parts=False).eval().requires_grad_(False)
    fast, exact = optimize_for_inference(ref), copy.deepcopy(ref).double()
    eager_cl = copy.deepcopy(ref).to(memory_format=torch.channels_last)
    shape = tuple(cfg.image_shape)
    weight = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    for n in ((1, 67) if arch == "table8" else (1, 5)):  # 67: a chunk of 64 and a remainder
        x = torch.rand((n, *shape), generator=torch.Generator().manual_seed(n))
        for eps in (None, torch.randn(n, 16, generator=torch.Generator().manual_seed(2))):
            for model in (ref, fast, exact, eager_cl):
                model.set_grad_mode(grad_mode)
            g_exact = _input_gradient(exact, x, weight, eps)
            g_fast = _input_gradient(fast, x, weight, eps)
            err_eager = max((_input_gradient(m, x, weight, eps) - g_exact).norm() for m in (ref, eager_cl))
            err_fast = (g_fast - g_exact).norm()
            assert g_exact.norm() > 0 and torch.isfinite(g_fast).all()
            assert err_fast <= 2 * err_eager + 1e-6 * g_exact.norm(), (n, eps is not None, float(err_fast), float(err_eager))


def test_the_fused_attack_path_refuses_a_second_derivative(lqvae_model: LQVAE, batch: torch.Tensor) -> None:
    fast = optimize_for_inference(lqvae_model.eval())
    fast.set_grad_mode("bpda")
    xi = batch.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fast(xi).sum(), xi, create_graph=True)
    with pytest.raises(RuntimeError):  # an error, never a silently wrong (zero) second derivative
        torch.autograd.grad(g.sum(), xi)
