"""Issue 15: nothing a caller passes to the engine crashes it or misleads; bad input is one InputError.

Each regression test below failed before lqvae/validate.py; the property test at the end throws random
shapes, dtypes, values, labels and attack settings at ``analyze`` and allows only an Analysis with
finite probabilities or an InputError with a message.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn

from lqvae.evaluate.analysis import Analysis, InputError, analyze, as_image_batch
from lqvae.attacks.runners import AttackSpec, run_attack
from lqvae.evaluate.scoring import evaluate_batch
from lqvae.core.models import Classifier
from lqvae.io.validate import InputError as ValidateInputError


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.zeros((28, 28), np.float32)
    img[6:22, 10:18] = rng.random((16, 8))
    return img


class _MustNotRun(nn.Module):
    """Classifier A whose forward fails the test: validation must refuse before any model runs."""

    def __init__(self, inner: Classifier) -> None:
        super().__init__()
        self.inner, self.cfg = inner, inner.cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the model ran on input that should have been refused")


def _refused(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(InputError, match=match) as info:
        fn(*args, **kwargs)
    assert str(info.value)
    return str(info.value)


def test_one_error_type_shared_by_the_engine():
    assert InputError is ValidateInputError and issubclass(InputError, ValueError)


# ----------------------------------------------------------------------------- 1. non-finite pixels
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_pixels_are_refused(classifier_a, image, bad):
    img = image.copy()
    img[14, 14] = bad
    msg = _refused("NaN/Inf", analyze, img, 3, classifier=_MustNotRun(classifier_a), spec=AttackSpec(attack="fgsm"))
    assert msg.startswith("image:") and "1 NaN/Inf" in msg
    _refused("NaN/Inf", as_image_batch, torch.from_numpy(img))
    x = torch.from_numpy(img).view(1, 1, 28, 28).repeat(2, 1, 1, 1)
    _refused("images: .*NaN/Inf", run_attack, AttackSpec(), x, torch.tensor([1, 2]), classifier=classifier_a)


# ----------------------------------------------------------------------------- 2. labels and targets
@pytest.mark.parametrize("label", [10, -1, 1.5, True, "3", np.float64(2.0), [3]])
def test_bad_labels_are_refused(classifier_a, image, label):
    msg = _refused("label", analyze, image, label, classifier=_MustNotRun(classifier_a))
    assert msg.startswith("label:")


def test_numpy_and_tensor_integer_labels_are_fine(classifier_a, image):
    for label in (np.int64(3), np.uint8(3), torch.tensor(3)):
        assert analyze(image, label, classifier=classifier_a).label == 3


def test_label_range_from_the_output_when_no_config(image):
    torch.manual_seed(0)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(784, 4)).eval()  # no cfg: K = 4 from the output
    assert analyze(image, 3, classifier=clf).label == 3
    _refused(r"label: expected an integer in \[0, 3\], got 4", analyze, image, 4, classifier=clf)


def test_targets_out_of_range_or_equal_to_the_label_are_refused(classifier_a, image):
    clf = _MustNotRun(classifier_a)
    _refused(r"spec.target: .*\[0, 9\], got 10", analyze, image, 3, classifier=clf,
             spec=AttackSpec(attack="bim", targeted=True, target=10))
    _refused("spec.target", AttackSpec, attack="bim", targeted=True, target=-1)
    _refused("spec.target", AttackSpec, attack="bim", targeted=True, target=2.5)
    _refused("own class 3", analyze, image, 3, classifier=clf, spec=AttackSpec(attack="bim", targeted=True, target=3))


def test_target_equal_to_the_prediction_is_refused_when_no_label(classifier_a, image):
    pred = int(analyze(image, None, classifier=classifier_a).label)
    _refused("already the classifier's prediction", analyze, image, None, classifier=classifier_a,
             spec=AttackSpec(attack="bim", steps=1, targeted=True, target=pred))
    other = analyze(image, None, classifier=classifier_a, spec=AttackSpec(attack="bim", steps=1, targeted=True,
                                                                          target=(pred + 1) % 10))
    assert other.label == pred and other.adversarial is not None


# ----------------------------------------------------------------------------- 3. shapes and dtypes
@pytest.mark.parametrize("shape, hint", [((3, 28, 28), "got shape \\(3, 28, 28\\)"), ((28, 28, 3), "channels go first"),
                                         ((1000, 1000), "got shape \\(1000, 1000\\)"), ((0, 0), "got shape \\(0, 0\\)"),
                                         ((2, 1, 28, 28), "batch of 2"), ((28,), "got shape"),
                                         ((1, 1, 1, 28, 28), "got shape")])
def test_shapes_the_models_cannot_take_are_refused(classifier_a, lqvae_model, shape, hint):
    msg = _refused(hint, analyze, np.zeros(shape, np.float32), 1, classifier=_MustNotRun(classifier_a),
                   purifier=lqvae_model)
    assert msg.startswith("image:") and "(1, 28, 28)" in msg  # what was expected


@pytest.mark.parametrize("shape", [(0, 0), (1000, 1000), (3, 28, 28), (2, 28, 28), (1, 2, 3, 4, 5)])
def test_shapes_are_refused_without_a_config(shape):
    clf = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    msg = _refused("image", analyze, np.zeros(shape, np.float32), 1, classifier=clf)
    assert str(shape).replace(",)", ")") in msg or "shape" in msg


@pytest.mark.parametrize("value", [np.zeros((28, 28), bool), np.zeros((28, 28), np.complex64),
                                   np.zeros((28, 28), np.int64), np.zeros((28, 28), np.uint16),
                                   np.full((28, 28), "a"), np.full((28, 28), None, object), "image.png", None,
                                   [[0.0, 1.0], [0.5]], torch.zeros(28, 28, dtype=torch.int32),
                                   torch.zeros(28, 28, dtype=torch.bool)])
def test_dtypes_without_a_pixel_scale_are_refused(classifier_a, value):
    msg = _refused("image: expected", analyze, value, 1, classifier=_MustNotRun(classifier_a))
    assert "uint8" in msg or "array" in msg


def test_uint8_and_float_widths_give_the_same_analysis(classifier_a, image):
    as_u8 = (image * 255).round().astype(np.uint8)
    ref = analyze(as_u8.astype(np.float32) / 255, 2, classifier=classifier_a)
    for img in (as_u8, as_u8.astype(np.float64) / 255, as_u8.astype(np.float16) / 255):
        out = analyze(img, 2, classifier=classifier_a)
        assert out.original.dtype == np.float32
        np.testing.assert_allclose(out.original, ref.original, atol=1e-3)
        np.testing.assert_allclose(out.probs_original, ref.probs_original, atol=1e-3)


@pytest.mark.parametrize("value, got", [(-0.5, "min -0.5"), (1.5, "max 1.5"), (1e300, "max 1e\\+300")])
def test_floats_outside_unit_range_are_refused(classifier_a, image, value, got):
    img = image.astype(np.float64)
    img[0, 0] = value
    _refused(rf"image: expected float pixels in \[0, 1\].*{got}", analyze, img, 1, classifier=_MustNotRun(classifier_a))


def test_models_of_different_shapes_are_refused(classifier_a, image):
    from lqvae.core.config import LQVAEConfig
    from lqvae.core.models import LQVAE

    celeba = LQVAE(LQVAEConfig.celeba(latent_dim=4), training_parts=False)
    _refused("different image shapes", analyze, image, 1, classifier=_MustNotRun(classifier_a), purifier=celeba)


# ----------------------------------------------------------------------------- 4. mode, n_samples, the spec
@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "random"}, "mode: expected mode in"), ({"mode": None}, "mode"),
    ({"n_samples": 0}, r"n_samples: .*\[1, 256\], got 0"), ({"n_samples": 10**6}, "n_samples"),
    ({"n_samples": 2.5}, "n_samples: expected an integer"), ({"n_samples": True}, "n_samples: .*bool"),
    ({"device": "tpu"}, "device"),
    ({"spec": "fgsm"}, "spec: expected an lqvae.attacks.runners.AttackSpec"),
    ({"spec": AttackSpec(threat="bpda")}, "spec.threat 'bpda' .* pass purifier"),
    ({"spec": AttackSpec(threat="bpda_eot")}, "spec.threat 'bpda_eot' .* pass purifier"),
    ({"spec": AttackSpec(threat="blackbox")}, "spec.threat 'blackbox' .* pass substitute"),
    ({"spec": AttackSpec(attack="cw", eps=29.0)}, r"spec.eps: expected an L2 budget <= 28"),
])
def test_bad_settings_are_refused_before_any_model_runs(classifier_a, image, kwargs, match):
    _refused(match, analyze, image, 1, classifier=_MustNotRun(classifier_a), **kwargs)


@pytest.mark.parametrize("fields, match", [
    ({"eps": math.inf}, "spec.eps: expected a finite number, got inf"), ({"eps": math.nan}, "spec.eps"),
    ({"eps": -0.1}, "spec.eps: expected eps > 0"), ({"eps": 0.0}, "spec.eps"), ({"eps": 2.0}, r"L-inf .*\(0, 1\]"),
    ({"eps": "0.3"}, "spec.eps"), ({"eps": True}, "spec.eps"),
    ({"steps": 0}, "spec.steps"), ({"steps": 1.5}, "spec.steps: expected an integer"), ({"steps": 10**7}, "spec.steps"),
    ({"threat": "greybox"}, "spec.threat: expected threat in"), ({"attack": 3}, "spec.attack"),
    ({"preset": "fast"}, "spec.preset"), ({"bpda_backward": "none"}, "spec.bpda_backward"),
    ({"eot_samples": 0}, "spec.eot_samples"), ({"eot_samples": 10**4}, "spec.eot_samples"),
    ({"restarts": 0}, "spec.restarts"), ({"restarts": 1.0}, "spec.restarts"), ({"seed": -1}, "spec.seed"),
    ({"targeted": "yes", "target": 1}, "spec.targeted"), ({"targeted": True}, "spec.target"),
])
def test_attack_spec_fields_are_checked(fields, match):
    _refused(match, AttackSpec, **fields)


def test_valid_specs_still_build():
    AttackSpec(attack="pgd", eps=np.float32(0.1), steps=np.int64(5))
    AttackSpec(attack="cw", eps=3.0, steps=100_000)
    AttackSpec(attack="fgsm", eps=1.0, targeted=True, target=np.int64(0))


# ----------------------------------------------------------------------------- 6. evaluation entry points
@pytest.fixture
def eval_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 1, 28, 28, generator=g), torch.tensor([0, 1, 2, 3])


def test_evaluate_batch_accepts_valid_input(classifier_a, eval_batch):
    x, y = eval_batch
    out = evaluate_batch(AttackSpec(attack="fgsm"), x, y, classifier=classifier_a)
    assert out["n"] == 4
    as_u8 = evaluate_batch(AttackSpec(attack="fgsm"), (x * 255).round().to(torch.uint8), y.numpy(),
                           classifier=classifier_a)
    assert as_u8["n"] == 4


@pytest.mark.parametrize("case, match", [
    ("nan", "images: .*NaN/Inf"), ("range", r"images: .*\[0, 1\]"), ("shape", r"images: .*\(N, 1, 28, 28\)"),
    ("one", r"images: .*\(N, 1, 28, 28\)"), ("empty", "images: expected at least 1"),
    ("label_range", r"labels: .*\[0, 9\], got 10"), ("label_float", "labels: .*float"),
    ("label_len", r"labels: expected shape \(4,\)"), ("target", "spec.target"),
    ("bpda", "pass purifier"), ("batch_size", "batch_size"),
])
def test_evaluate_batch_refuses_bad_input(classifier_a, eval_batch, case, match):
    x, y = eval_batch
    spec, kwargs = AttackSpec(attack="fgsm"), {}
    if case == "nan":
        x[2, 0, 5, 5] = float("nan")
    elif case == "range":
        x = x * 255
    elif case == "shape":
        x = x.view(4, 28, 28, 1)
    elif case == "one":
        x = x[0]
    elif case == "empty":
        x, y = x[:0], y[:0]
    elif case == "label_range":
        y = torch.tensor([0, 1, 10, 3])
    elif case == "label_float":
        y = y.float()
    elif case == "label_len":
        y = y[:3]
    elif case == "target":
        spec = AttackSpec(attack="bim", targeted=True, target=12)
    elif case == "bpda":
        spec = AttackSpec(attack="fgsm", threat="bpda")
    elif case == "batch_size":
        kwargs = {"batch_size": 0}
    _refused(match, evaluate_batch, spec, x, y, classifier=_MustNotRun(classifier_a), **kwargs)


def test_evaluate_batch_without_config_checks_labels_against_the_output(eval_batch):
    x, y = eval_batch
    clf = nn.Sequential(nn.Flatten(), nn.Linear(784, 3)).eval()
    _refused(r"labels: .*\[0, 2\], got 3", evaluate_batch, AttackSpec(), x, y, classifier=clf)
    _refused("images: the classifier cannot take", evaluate_batch, AttackSpec(), x[:, :, :20, :20], y % 3,
             classifier=clf)


# ----------------------------------------------------------------------------- 5. property: Analysis or InputError
SHAPES = [(28, 28), (1, 28, 28), (1, 1, 28, 28)]
BAD_SHAPES = [(3, 28, 28), (28, 28, 1), (2, 1, 28, 28), (0, 0), (0, 28, 28), (28,), (), (27, 28), (1000, 1000),
              (1, 1, 1, 28, 28)]
DTYPES = [np.uint8, np.float16, np.float32, np.float64]
BAD_DTYPES = [np.int64, np.int8, np.uint16, bool, np.complex64, object]
SPECIALS = [np.nan, np.inf, -np.inf, -0.5, 1.5, 1e30, -1e30]
NUMBERS = st.one_of(st.none(), st.integers(-3, 12), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.just("3"), st.sampled_from([np.int64(2), np.float32(0.1), np.int8(-1)]))
FIELDS = ("image", "label", "spec", "mode", "n_samples")


def _image(draw, bad: bool):
    if bad and draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from([None, "x.png", 0.5, [[0.1, 0.2], [0.3]], {"a": 1}, [[0.2] * 28] * 28]))
    spoil = draw(st.sets(st.sampled_from(["shape", "dtype", "value"]), min_size=1)) if bad else set()
    shape = draw(st.sampled_from(BAD_SHAPES if "shape" in spoil else SHAPES))
    dtype = draw(st.sampled_from(BAD_DTYPES if "dtype" in spoil else DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    base = np.asarray(rng.random(shape) if math.prod(shape) < 10**5 else np.zeros(shape))  # big ones stay cheap
    if dtype in (np.uint8, np.int64, np.int8, np.uint16):
        base = (base * 255).round()
    if "value" in spoil and base.size:
        base.flat[draw(st.integers(0, base.size - 1))] = draw(st.sampled_from(SPECIALS))
    with np.errstate(all="ignore"):
        arr = np.asarray(base.astype(dtype))  # a 0-d array stays an array (round() makes it a scalar)
    return torch.from_numpy(arr) if draw(st.booleans()) and dtype not in (object, np.uint16) else arr


def _spec(draw, bad: bool):
    if not bad:
        if draw(st.booleans()):
            return None
        targeted = draw(st.booleans())
        return dict(attack=draw(st.sampled_from(["fgsm", "bim"])), eps=draw(st.one_of(st.none(), st.floats(0.01, 0.5))),
                    steps=draw(st.sampled_from([None, 1, 2])), targeted=targeted,
                    target=draw(st.integers(0, 9)) if targeted else None,
                    threat=draw(st.sampled_from(["whitebox", "blackbox", "bpda", "bpda_eot"])),
                    eot_samples=draw(st.integers(1, 2)), seed=draw(st.integers(0, 9)))
    return dict(attack=draw(st.sampled_from(["fgsm", "bim", "jsma", 3])),
                eps=draw(st.one_of(st.none(), st.floats(0.01, 0.5), NUMBERS)),
                steps=draw(st.one_of(st.none(), st.integers(-1, 3), st.just(10**9), st.just(2.0))),
                targeted=draw(st.one_of(st.booleans(), st.just("no"))), target=draw(NUMBERS),
                threat=draw(st.sampled_from(["whitebox", "blackbox", "bpda", "bpda_eot", "greybox"])),
                eot_samples=draw(st.sampled_from([1, 2, 0, 10**5])), restarts=draw(st.sampled_from([1, 0, 1.5])),
                seed=draw(st.sampled_from([0, 7, -3])))


@st.composite
def cases(draw) -> dict:
    """analyze's arguments with zero, one or two fields spoiled (shrinking toward all valid)."""
    bad = draw(st.sets(st.sampled_from(FIELDS), max_size=2))
    return dict(
        image=_image(draw, "image" in bad),
        label=draw(NUMBERS if "label" in bad else st.one_of(st.none(), st.integers(0, 9), st.just(np.int64(4)))),
        spec=_spec(draw, "spec" in bad),
        mode=draw(st.sampled_from(["random", 1, None] if "mode" in bad else ["deterministic", "stochastic"])),
        n_samples=draw(st.one_of(st.integers(-3, 0), st.just(10**6), st.just(2.5), st.just(True)) if "n_samples" in bad
                       else st.integers(1, 3)),
        with_purifier=draw(st.booleans()), with_substitute=draw(st.booleans()))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(case=cases())
def test_analyze_returns_an_analysis_or_input_error(classifier_a, lqvae_model, case):
    spec = case["spec"]
    try:
        built = None if spec is None else AttackSpec(**spec)
        out = analyze(case["image"], case["label"], classifier=classifier_a,
                      purifier=lqvae_model if case["with_purifier"] else None, spec=built,
                      substitute=classifier_a if case["with_substitute"] else None, mode=case["mode"],
                      n_samples=case["n_samples"])
    except InputError as exc:
        assert str(exc).strip()
        event(f"refused: {str(exc).split(':')[0]}")
        return
    assert isinstance(out, Analysis)
    event("analysis" + (" with attack" if built else ""))
    probs = [out.probs_original, out.probs_adversarial, out.probs_purified_original, out.probs_purified_adversarial]
    probs += list(out.stochastic_probs) if out.stochastic_probs is not None else []
    for p in probs:
        if p is not None:
            assert np.isfinite(p).all() and abs(float(p.sum()) - 1) < 1e-4
    assert 0 <= out.label < 10 and np.isfinite(out.original).all()


# ----------------------------------------------------------------------------- a fresh hostile corpus (red team)
@pytest.mark.parametrize("eps", [10 ** 400, __import__("fractions").Fraction(10 ** 400)])
def test_a_budget_beyond_the_float_range_is_refused(eps):
    _refused("spec.eps", AttackSpec, attack="pgd", eps=eps)


@pytest.mark.parametrize("device", [torch.device("meta"), "meta"]
                         + ([torch.device("cuda")] if not torch.cuda.is_available() else []))
def test_a_device_object_is_checked_like_its_name(classifier_a, image, device):
    _refused("device", analyze, image, 3, classifier=classifier_a, device=device)


@pytest.mark.parametrize("make", [
    lambda: torch.zeros(28, 28, device="meta"),
    lambda: torch.zeros(28, 28).to_sparse(),
    lambda: torch.nested.nested_tensor([torch.zeros(28, 28)]),
    lambda: torch.zeros(28, 28).to(torch.float8_e4m3fn),
])
def test_exotic_tensors_are_refused_as_pixels(classifier_a, make):
    with pytest.raises(InputError, match="image"):
        analyze(make(), 3, classifier=classifier_a)


def test_a_meta_tensor_is_not_an_integer(classifier_a, image):
    with pytest.raises(InputError, match="label"):
        analyze(image, torch.tensor(3, device="meta"), classifier=classifier_a)


def test_models_in_the_wrong_role_are_named(classifier_a, lqvae_model, image):
    lqvae_model.eval()
    _refused("purifier: got a classifier", analyze, image, 3, classifier=classifier_a, purifier=classifier_a)
    _refused("classifier: got a purifier", analyze, image, 3, classifier=lqvae_model)
    _refused("purifier: expected a torch.nn.Module", analyze, image, 3, classifier=classifier_a,
             purifier=lambda x: x)
    _refused("substitute: got a purifier", analyze, image, 3, classifier=classifier_a, substitute=lqvae_model,
             spec=AttackSpec(attack="fgsm", threat="blackbox"))


def test_a_module_that_is_no_classifier_is_refused(image):
    class Images(nn.Module):
        def forward(self, x):
            return x  # an image back, not class scores

    _refused("classifier: expected class scores", analyze, image, None, classifier=Images())


def test_a_purifier_that_changes_the_shape_is_refused(classifier_a, image):
    class Crop(nn.Module):
        def forward(self, x):
            return x[..., :20, :20]

    _refused("purifier: expected images back", analyze, image, 3, classifier=classifier_a, purifier=Crop())
