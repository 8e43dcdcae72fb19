import pytest
import torch

from lqvae.core.config import ClassifierConfig, LQVAEConfig
from lqvae.core.models import LQVAE, Classifier, Defended


def test_mnist_preset_shapes(lqvae_model, batch):
    mu, logvar = lqvae_model.encoder(batch)
    assert mu.shape == logvar.shape == (8, 16)
    res = lqvae_model.purify(batch)
    assert res.image.shape == batch.shape and res.bits.shape == (8, 16) and res.samples is None
    assert set(res.bits.unique().tolist()) <= {-1.0, 1.0}
    assert 0 <= res.image.min() and res.image.max() <= 1


def test_celeba_preset_is_built_to_table9():
    model = LQVAE(LQVAEConfig.celeba(), training_parts=False)
    x = torch.rand(2, 3, 64, 64)
    assert model.purify(x).image.shape == (2, 3, 64, 64)
    clf = Classifier(ClassifierConfig(arch="B", image_shape=(3, 64, 64), num_classes=2))
    assert clf(x).shape == (2, 2)


def test_stochastic_purification_returns_samples(lqvae_model, batch):
    res = lqvae_model.purify(batch, mode="stochastic", n_samples=5, generator=torch.Generator().manual_seed(0))
    assert res.samples.shape == (5, *batch.shape) and res.bits.shape == (5, 8, 16)
    assert torch.allclose(res.image, res.samples.mean(0))


def test_purify_rejects_wrong_shape_and_mode(lqvae_model):
    with pytest.raises(ValueError, match="expected images of shape"):
        lqvae_model.purify(torch.rand(2, 28, 28))
    with pytest.raises(ValueError, match="expected mode"):
        lqvae_model.purify(torch.rand(1, 1, 28, 28), mode="random")


def test_h_starts_as_copy_of_g(lqvae_model):
    for (_, a), (_, b) in zip(lqvae_model.g.state_dict().items(), lqvae_model.h.state_dict().items()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("arch", ["A", "B", "C"])
def test_classifiers_give_ten_logits(arch):
    assert Classifier(ClassifierConfig(arch=arch))(torch.rand(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("mode,expect_grad", [("none", False), ("bpda", True), ("straight_through", True)])
def test_input_gradient_through_whole_purifier_in_eval_mode(lqvae_model, classifier_a, batch, mode, expect_grad):
    pipe = Defended(lqvae_model, classifier_a).eval()
    lqvae_model.set_grad_mode(mode)
    x = batch.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(pipe(x)[:, 0].sum(), x, allow_unused=True)
    if expect_grad:
        assert g is not None and g.abs().sum() > 0
    else:
        assert g is None  # blocked visibly (no graph to the input), never a silent zero
