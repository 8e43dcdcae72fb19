"""Checks at the engine's boundary: whatever a caller passes is refused here, with one error type.

Every public entry that takes images, labels or attack settings (:func:`lqvae.evaluate.analysis.analyze`,
:func:`lqvae.evaluate.scoring.evaluate_batch`, :func:`lqvae.attacks.runners.run_attack`, :class:`AttackSpec`) checks
its arguments with these functions before any torch work, and raises :class:`InputError` (a
``ValueError``) whose message names the argument, what it got and what is expected. A GUI catches
``InputError`` and shows the message; any other exception is a bug.

Pixels: uint8 (0..255, divided by 255) or float (any width, cast to float32) in [0, 1], finite.
Other integer dtypes, bool, complex, strings and objects are refused: their pixel scale is ambiguous.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lqvae.core.device import resolve_device
from lqvae.spec.errors import Refusal

MAX_SAMPLES = 256  # stochastic draws per image (analyze's n_samples, AttackSpec.eot_samples)
MAX_STEPS = 100_000  # AttackSpec.steps
MAX_RESTARTS = 100  # AttackSpec.restarts
ImageShape = tuple[int, int, int]


class InputError(Refusal):
    """An argument a caller passed to the engine is invalid; the message says which and what is expected."""


# ----------------------------------------------------------------------------- scalars
def integer(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in [low, high] (Python or numpy integers, or a 0-d integer tensor; not bool)."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, Tensor) and value.dtype == torch.bool):
        raise InputError(f"{name}: expected an integer, got the bool {value!r}")
    try:
        out = operator.index(value)
    except (TypeError, RuntimeError, NotImplementedError):  # a meta or multi-element tensor cannot be an int
        raise InputError(f"{name}: expected an integer, got {_show(value)}") from None
    if (low is not None and out < low) or (high is not None and out > high):
        raise InputError(f"{name}: expected an integer in [{_bound(low)}, {_bound(high)}], got {out}")
    return out


def real(value: Any, name: str) -> float:
    """``value`` as a finite float (Python or numpy real numbers; not bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InputError(f"{name}: expected a finite number, got {_show(value)}")
    try:
        out = float(value)
    except OverflowError:  # an int or Fraction beyond the float range
        raise InputError(f"{name}: expected a finite number, got one too large for a float") from None
    if not math.isfinite(out):
        raise InputError(f"{name}: expected a finite number, got {out}")
    return out


def choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise InputError(f"{name}: expected {name.rsplit('.', 1)[-1]} in {options}, got {_show(value)}")
    return value


def label(value: Any, name: str = "label", *, num_classes: int | None = None) -> int | None:
    """None (attack the prediction) or a class index in [0, num_classes)."""
    if value is None:
        return None
    return integer(value, name, low=0, high=None if num_classes is None else num_classes - 1)


def device(value: Any, name: str = "device") -> torch.device:
    """``"auto"``, ``"cpu"``, ``"cuda[:i]"`` or a torch.device (see :func:`lqvae.core.device.resolve_device`)."""
    try:
        return resolve_device(value)
    except ValueError as exc:
        raise InputError(f"{name}: {exc}") from None


# ----------------------------------------------------------------------------- models
def roles(*, classifier: Any, purifier: Any = None, substitute: Any = None) -> None:
    """Each model is a ``torch.nn.Module`` in the role it is passed for: an LQ-VAE or Defense-GAN (something with
    ``purify`` or a latent search) is a purifier, never the classifier or the substitute, and a classifier is never
    the purifier. Caught here, a swapped argument is a sentence instead of a shape error deep inside torch."""
    for name, model, may_be_none in (("classifier", classifier, False), ("purifier", purifier, True),
                                     ("substitute", substitute, True)):
        if model is None and may_be_none:
            continue
        if not isinstance(model, nn.Module):
            raise InputError(f"{name}: expected a torch.nn.Module, got {type(model).__name__}")
        is_purifier = hasattr(model, "purify") or hasattr(model, "restarts")
        is_classifier = hasattr(getattr(model, "cfg", None), "num_classes")
        if name != "purifier" and is_purifier:
            raise InputError(f"{name}: got a purifier ({type(model).__name__}); pass a classifier here and the "
                             "purifier as purifier=")
        if name == "purifier" and is_classifier:
            raise InputError(f"purifier: got a classifier ({type(model).__name__}); pass the LQ-VAE (or another "
                             "image-to-image defense) as purifier= and the classifier as classifier=")


def logits(out: Tensor, name: str, *, n: int) -> Tensor:
    """A model's output must be (n, K) class scores with K >= 2, finite."""
    if out.dim() != 2 or out.shape[0] != n or out.shape[1] < 2:
        raise InputError(f"{name}: expected class scores of shape ({n}, K) with K >= 2, got {tuple(out.shape)}; "
                         "is it an image classifier?")
    return out


def model_image_shape(**models: nn.Module | None) -> ImageShape | None:
    """The (C, H, W) the models' configs declare (``cfg.image_shape``), None when none declares one.

    Raises InputError when two models disagree (e.g. a 3x64x64 purifier before a 1x28x28 classifier).
    """
    found: dict[str, ImageShape] = {}
    for name, model in models.items():
        shape = getattr(getattr(model, "cfg", None), "image_shape", None)
        if shape is not None:
            found[name] = tuple(int(v) for v in shape)  # type: ignore[assignment]
    if len(set(found.values())) > 1:
        raise InputError("the models expect different image shapes: "
                         + ", ".join(f"{k} {v}" for k, v in found.items()) + "; pick models of the same dataset")
    return next(iter(found.values()), None)


def declared_classes(classifier: nn.Module) -> int | None:
    """K from the classifier's config (``cfg.num_classes``), None when it has none."""
    k = getattr(getattr(classifier, "cfg", None), "num_classes", None)
    return int(k) if k is not None else None


@torch.inference_mode()
def probe_classes(classifier: nn.Module, x: Tensor) -> int:
    """K from one forward pass on the first image of ``x``, for a classifier without a config.

    Only called when no shape is declared: a model refusing the image is then the caller's wrong shape.
    """
    was_training = classifier.training
    try:
        out = classifier.eval()(x[:1])
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"images: the classifier cannot take images of shape {tuple(x.shape[1:])} "
                         f"({type(exc).__name__}: {exc})") from None
    finally:
        classifier.train(was_training)
    return int(out.shape[-1])


# ----------------------------------------------------------------------------- pixels
def image(value: Any, *, shape: ImageShape | None, name: str = "image") -> Tensor:
    """One image as a (1, C, H, W) float32 CPU tensor in [0, 1].

    Accepts (H, W) when C == 1, (C, H, W) or (1, C, H, W); with ``shape`` None any non-empty
    2-4-dimensional image (a 4-d one with a leading 1).
    """
    x = _tensor(value, name)
    dims = tuple(x.shape)
    if shape is not None:
        c, h, w = shape
        accepted = ([(h, w)] if c == 1 else []) + [(c, h, w), (1, c, h, w)]
        if dims not in accepted:
            hint = ""
            if x.dim() == 3 and dims[:2] == (h, w) and dims[2] in (1, 3, 4):
                hint = "; channels go first: transpose (H, W, C) to (C, H, W)"
                hint += f" (these models take {c} channel(s))" if dims[2] != c else ""
            elif x.dim() == 3 and dims[1:] == (h, w):
                hint = f"; these models take {c} channel(s)"
            elif x.dim() == 4 and dims[1:] == (c, h, w):
                hint = f"; this is a batch of {dims[0]}: pass one image"
            raise InputError(f"{name}: expected one image of shape {' or '.join(map(str, accepted))} for these "
                             f"models, got shape {dims}{hint}")
    elif not 2 <= x.dim() <= 4 or (x.dim() == 4 and dims[0] != 1):
        raise InputError(f"{name}: expected one image (H, W), (C, H, W) or (1, C, H, W), got shape {dims}")
    if x.numel() == 0:
        raise InputError(f"{name}: expected a non-empty image, got shape {dims}")
    while x.dim() < 4:
        x = x.unsqueeze(0)
    out = _pixels(x, name)
    return out.clone() if isinstance(value, Tensor) and out.data_ptr() == value.data_ptr() else out  # no aliasing


def images(value: Any, *, shape: ImageShape | None, name: str = "images", min_n: int = 1) -> Tensor:
    """A batch as an (N, C, H, W) float32 CPU tensor in [0, 1], N >= ``min_n``, (C, H, W) == ``shape`` if given."""
    x = _tensor(value, name)
    want = "(N, " + (", ".join(map(str, shape)) if shape is not None else "C, H, W") + ")"
    if x.dim() != 4 or (shape is not None and tuple(x.shape[1:]) != tuple(shape)):
        raise InputError(f"{name}: expected images of shape {want}, got shape {tuple(x.shape)}")
    if len(x) < min_n:
        raise InputError(f"{name}: expected at least {min_n} image(s), got {len(x)}")
    if 0 in x.shape[1:]:
        raise InputError(f"{name}: expected non-empty images, got shape {tuple(x.shape)}")
    return _pixels(x, name)


def labels(value: Any, *, n: int, num_classes: int | None, name: str = "labels") -> Tensor:
    """(N,) int64 class indices in [0, num_classes)."""
    if isinstance(value, Tensor):
        y = value.detach().cpu()
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise InputError(f"{name}: expected integer class indices, got dtype {y.dtype}")
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise InputError(f"{name}: expected integer class indices, got {type(value).__name__} ({exc})") from None
        if arr.dtype.kind not in "iu" or arr.dtype == np.uint64:
            raise InputError(f"{name}: expected integer class indices, got dtype {arr.dtype}")
        y = torch.from_numpy(arr.astype(np.int64))
    if tuple(y.shape) != (n,):
        raise InputError(f"{name}: expected shape ({n},), one per image, got shape {tuple(y.shape)}")
    y = y.long()
    if num_classes is not None and n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)]
        raise InputError(f"{name}: expected classes in [0, {num_classes - 1}], got {int(bad[0])} "
                         f"({len(bad)} out of range)")
    return y


# ----------------------------------------------------------------------------- helpers
def _tensor(value: Any, name: str) -> Tensor:
    """A CPU tensor of uint8 or floating pixels, refusing every other dtype."""
    if isinstance(value, Tensor):
        if value.layout != torch.strided or value.is_nested or value.device.type == "meta":
            kind = "a nested" if value.is_nested else f"a {value.layout} " if value.layout != torch.strided else "a meta"
            raise InputError(f"{name}: expected a dense tensor of pixels, got {kind} tensor; pass .to_dense() or a "
                             "numpy array")
        x = value.detach().cpu()
        if x.dtype == torch.uint8 or x.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            return x
        raise InputError(f"{name}: expected uint8 (0..255) or float pixels in [0, 1], got dtype {x.dtype}"
                         + _dtype_hint(x.dtype == torch.bool, x.is_complex()))
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise InputError(f"{name}: expected an array of pixels, got {type(value).__name__} ({exc})") from None
    if arr.dtype == np.uint8:
        return torch.from_numpy(np.array(arr, copy=True))
    if arr.dtype.kind == "f":
        if arr.dtype not in (np.float16, np.float32, np.float64):  # long double: torch has none
            arr = arr.astype(np.float64)
        return torch.from_numpy(np.array(arr, copy=True))
    what = f"dtype {arr.dtype}" if arr.dtype.kind in "biuc" else f"{type(value).__name__} of dtype {arr.dtype}"
    raise InputError(f"{name}: expected uint8 (0..255) or float pixels in [0, 1], got {what}"
                     + _dtype_hint(arr.dtype.kind == "b", arr.dtype.kind == "c"))


def _dtype_hint(is_bool: bool, is_complex: bool) -> str:
    if is_bool:
        return "; convert a mask with .astype(float)"
    if is_complex:
        return "; pixels are real numbers"
    return "; convert 0..255 integers with .astype(np.uint8), or divide by their maximum"


def _pixels(x: Tensor, name: str) -> Tensor:
    """float32 in [0, 1] from uint8 or a finite float tensor in [0, 1]."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if x.numel() == 0:
        return x.float()
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InputError(f"{name}: expected finite pixels in [0, 1], got {bad} NaN/Inf value(s) of {x.numel()}")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise InputError(f"{name}: expected float pixels in [0, 1] (or uint8 0..255), got min {lo:.4g} max {hi:.4g}")
    return x.float().contiguous()


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _bound(v: int | None) -> str:
    return "..." if v is None else str(v)


__all__ = ["InputError", "MAX_SAMPLES", "MAX_STEPS", "MAX_RESTARTS", "integer", "real", "choice", "label", "device",
           "model_image_shape", "declared_classes", "probe_classes", "image", "images", "labels", "roles", "logits"]
