"""The quantizers of the paper: hard H (eq. 2) and soft H~ (eq. 4).

H maps each latent coordinate to +1 when |z_i| <= eta and to -1 otherwise. Its derivative is zero
almost everywhere, so an attack through it needs an explicit choice of backward pass. In eval mode
``grad_mode`` makes that choice visible:

* ``"none"``: the output is detached; no gradient reaches the encoder (and the caller can see that:
  the result does not require grad).
* ``"bpda"``: forward H, backward dH~/dz (Athalye et al.'s BPDA with the paper's own H~).
* ``"straight_through"``: forward H, backward identity. Weaker: H is not monotonic (it decreases
  for z > 0), so the identity points the wrong way on half of the axis.
* ``"sigmoid"``: forward H, backward d/dz of the narrow surrogate 2 sigmoid((eta - |z|) / T) - 1
  (``temperature`` T, 0.05 by default): its gradient lives only near the thresholds +-eta, where a bit
  can actually flip. An independent evaluation found it stronger than H~ with c = 0.1 (issue 18); which
  backward is stronger depends on the model, so ``lqvae.attacks.suite`` tries each.

In training mode the module is never used directly on H: Algorithm 1 feeds H~ to h and the detached
H to g (see ``lqvae.core.losses``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

GradMode = Literal["none", "bpda", "straight_through", "sigmoid"]
GRAD_MODES: tuple[GradMode, ...] = ("none", "bpda", "straight_through", "sigmoid")
SIGMOID_TEMPERATURE = 0.05  # T of the "sigmoid" backward (the independent evaluation of issue 18 used 0.05)


def hard_quantize(z: Tensor, eta: float) -> Tensor:
    """Eq. 2: +1 where |z| <= eta, else -1 (same dtype as z)."""
    return torch.where(z.abs() <= eta, 1.0, -1.0).to(z.dtype)


def soft_quantize(z: Tensor, eta: float, c: float) -> Tensor:
    """Eq. 4: (eta^2 - z^2) / (c + |eta^2 - z^2|); equals H when c = 0 (away from |z| = eta)."""
    d = eta * eta - z * z
    return d / (c + d.abs())


def soft_quantize_grad(z: Tensor, eta: float, c: float) -> Tensor:
    """dH~/dz in closed form: -2 z c / (c + |eta^2 - z^2|)^2."""
    d = eta * eta - z * z
    return -2.0 * z * c / (c + d.abs()) ** 2


def sigmoid_quantize_grad(z: Tensor, eta: float, temperature: float) -> Tensor:
    """d/dz of 2 sigmoid((eta - |z|) / T) - 1: -2 sign(z) s (1 - s) / T with s = sigmoid((eta - |z|) / T)."""
    s = torch.sigmoid((eta - z.abs()) / temperature)
    return -2.0 * torch.sign(z) * s * (1.0 - s) / temperature


class _SurrogateBackward(torch.autograd.Function):
    """Forward the hard H; backward ``grad * surrogate_grad(z, eta, param)`` (BPDA with a smooth stand-in)."""

    @staticmethod
    def forward(ctx, z: Tensor, eta: float, surrogate_grad, param: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(z)
        ctx.eta, ctx.surrogate_grad, ctx.param = eta, surrogate_grad, param
        return hard_quantize(z, eta)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (z,) = ctx.saved_tensors
        return grad * ctx.surrogate_grad(z, ctx.eta, ctx.param), None, None, None


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, eta: float) -> Tensor:  # type: ignore[override]
        return hard_quantize(z, eta)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None


class _GradModeModule(nn.Module):
    """``grad_mode`` as a validated attribute: what an attack's backward pass sees (see ``GRAD_MODES``)."""

    def _check_grad_mode(self, mode: GradMode) -> None:
        """Further checks of a subclass (raise ValueError)."""

    @property
    def grad_mode(self) -> GradMode:
        return self._grad_mode

    @grad_mode.setter
    def grad_mode(self, mode: GradMode) -> None:
        if mode not in GRAD_MODES:
            raise ValueError(f"expected grad_mode in {GRAD_MODES}, got {mode!r}")
        self._check_grad_mode(mode)
        self._grad_mode = mode


class BinaryQuantizer(_GradModeModule):
    """H with an explicit backward pass; ``soft()`` gives H~ for the training path.

    Args:
        eta: quantization threshold of eq. 2 (0.67449 makes both bits equally likely under N(0, 1)).
        c: softness of eq. 4 (> 0 for a usable gradient).
        grad_mode: backward pass of H, one of ``GRAD_MODES``.
        temperature: T of the ``"sigmoid"`` backward (> 0; smaller is narrower around +-eta).
    """

    def __init__(self, *, eta: float, c: float, grad_mode: GradMode = "none",
                 temperature: float = SIGMOID_TEMPERATURE) -> None:
        super().__init__()
        self.eta = float(eta)
        self.c = float(c)
        if not temperature > 0:
            raise ValueError(f"expected temperature > 0 for the sigmoid backward, got {temperature}")
        self.temperature = float(temperature)
        self.grad_mode = grad_mode

    def _check_grad_mode(self, mode: GradMode) -> None:
        if mode == "bpda" and self.c <= 0:
            raise ValueError("grad_mode 'bpda' needs c > 0: with c = 0, dH~/dz is zero almost everywhere")

    def forward(self, z: Tensor) -> Tensor:
        if self._grad_mode == "bpda":
            return _SurrogateBackward.apply(z, self.eta, soft_quantize_grad, self.c)
        if self._grad_mode == "sigmoid":
            return _SurrogateBackward.apply(z, self.eta, sigmoid_quantize_grad, self.temperature)
        if self._grad_mode == "straight_through":
            return _StraightThrough.apply(z, self.eta)
        return hard_quantize(z.detach(), self.eta)

    def soft(self, z: Tensor) -> Tensor:
        return soft_quantize(z, self.eta, self.c)

    def extra_repr(self) -> str:
        return f"eta={self.eta}, c={self.c}, grad_mode={self._grad_mode!r}"


class IdentityQuantizer(_GradModeModule):
    """No quantization (the VAE ablation): the code is the continuous z itself.

    ``grad_mode`` keeps the interface of ``BinaryQuantizer``: ``"none"`` detaches (grey-box, as for
    the LQ-VAE), any other mode passes the exact gradient, so "BPDA" on the VAE is a white-box attack.
    """

    def __init__(self, grad_mode: GradMode = "none") -> None:
        super().__init__()
        self.grad_mode = grad_mode


    def forward(self, z: Tensor) -> Tensor:
        return z.detach() if self._grad_mode == "none" else z

    def soft(self, z: Tensor) -> Tensor:
        return z

    def extra_repr(self) -> str:
        return f"grad_mode={self._grad_mode!r}"
