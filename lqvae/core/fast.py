"""The LQ-VAE's fast CPU path (issue 19): the same defense, the same bit codes, ~2-3x the throughput.

``optimize_for_inference(model)`` returns a :class:`FastLQVAE`, an :class:`~lqvae.core.models.LQVAE` (same
API, same ``state_dict``, ``isinstance`` checks unchanged) whose weights are a frozen snapshot of ``model``'s:

* **without autograd** (``torch.no_grad``/``inference_mode``, or an input that needs no gradient while the
  weights need none either) ``encode`` and ``decode``, hence ``forward``, ``purify`` and ``encode_bits``, run oneDNN convolutions and
  transposed convolutions directly (``torch.ops.mkldnn._convolution[_transpose]_pointwise``) on weights
  reordered once into oneDNN's blocked layout, the LeakyReLU/sigmoid fused into each, on channels-last
  activations, in chunks of ``CHUNK`` images. The plain model sends the stride-2 transposed convolutions to
  ``slow_conv_transpose2d``, copies between layouts, and allocates ~0.5 GB of fresh activations per batch of
  256, most of whose time is the kernel zeroing new pages (page faults); the chunks keep every activation in
  the allocator's cache. The dense layers stay float32 ``addmm``; their weights are permuted once so the
  channels-last activations flatten without a copy (the decoder's rows: exact; the encoder's columns:
  the dot product sums in another order, |d mu| <= ~1e-6).
* **with autograd for the input alone** (the BPDA and EOT attacks: the snapshot's weights never need a
  gradient) the same fused forward runs, keeping each layer's output, and ``_EncodeFn``/``_DecodeFn`` compute
  the input gradient by hand: oneDNN transposed convolutions (and convolutions) on weights packed for the input gradient, ``leaky_relu_backward`` and
  ``sigmoid_backward`` from the saved outputs, two matrix products per dense layer. The quantizer between them
  stays the module itself, so BPDA through H~, straight-through and the stochastic mode's log-variance path are
  unchanged. The gradient is as exact as autograd through the plain model in channels-last
  (``tests/engine/test_fast_path.py`` checks both against a float64 copy). It is once differentiable: a
  second derivative raises instead of coming back wrong.
* **otherwise** (a weight that needs a gradient) the eager modules run in ``torch.channels_last``.

Bit codes H(mu) equal the plain float32 model's on all 20,000 MNIST and Fashion-MNIST test images for
every shipped LQ-VAE (``tests/engine/test_fast_path.py`` pins it on the bundled samples); the purified
images differ by at most ~1e-6 (summation order). Half-precision weights were measured and rejected: they
move mu by ~1e-3 and flip bits. The snapshot does not follow later weight changes: build it again after
training (``FastLQVAE.train()`` refuses, so a fine-tune cannot silently run on stale packed weights).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lqvae.core.models import LQVAE, Decoder, Encoder

CHUNK = 64  # images per oneDNN call: activations of 64 images stay in the allocator's cache (and L2/L3)
_ONE = 1  # weights are also packed for a single image, the app's live call

_mkldnn = torch.ops.mkldnn


def fast_path_available() -> bool:
    """oneDNN is built in (every official CPU wheel of torch): the fused path can run."""
    return bool(torch.backends.mkldnn.is_available())


def transposed_as_conv_weight(weight: Tensor) -> Tensor:
    """A stride-1 ``ConvTranspose2d`` weight (Cin, Cout, k, k) as the equivalent ``Conv2d`` weight (Cout, Cin, k, k):
    channels swapped, kernel flipped (the conv then takes padding k - 1 - p)."""
    return weight.flip(2, 3).transpose(0, 1).contiguous()


class _Layer:
    """One oneDNN convolution (or transposed convolution) with its fused activation, weights packed per batch size."""

    def __init__(self, mod: nn.Conv2d | nn.ConvTranspose2d, act: nn.Module | None, hw: int) -> None:
        if isinstance(act, nn.LeakyReLU):
            self.attr, self.scalars = "leaky_relu", [act.negative_slope]
        elif isinstance(act, nn.Sigmoid):
            self.attr, self.scalars = "sigmoid", []
        elif isinstance(act, nn.ReLU):
            self.attr, self.scalars = "relu", []
        else:
            self.attr, self.scalars = "none", []
        weight = mod.weight.detach()
        self.stride, self.padding = list(mod.stride), list(mod.padding)
        self.dilation, self.groups = list(mod.dilation), mod.groups
        self.transposed = isinstance(mod, nn.ConvTranspose2d)
        self.output_padding = list(mod.output_padding) if self.transposed else []
        if self.transposed and self.stride == [1, 1] and self.output_padding == [0, 0] and self.groups == 1 \
                and self.dilation == [1, 1]:  # a plain convolution: oneDNN's fastest kernels
            self.transposed = False
            weight = transposed_as_conv_weight(weight)
            self.padding = [k - 1 - p for k, p in zip(mod.kernel_size, self.padding)]
        self.bias = None if mod.bias is None else mod.bias.detach().contiguous()
        self.weight = weight.contiguous()  # unpacked, in this layer's form: packed for the input gradient on first use
        self._grad_packed: dict[int, tuple[Tensor, list[int]]] = {}
        self.in_channels, self.hw = mod.in_channels, hw
        self.packed = {n: self._pack(weight.contiguous(), n) for n in (_ONE, CHUNK)}

    def _pack(self, weight: Tensor, batch: int) -> Tensor:
        size = [batch, self.in_channels, self.hw, self.hw]
        if self.transposed:
            return _mkldnn._reorder_convolution_transpose_weight(weight, self.padding, self.output_padding, self.stride,
                                                                 self.dilation, self.groups, size)
        return _mkldnn._reorder_convolution_weight(weight, self.padding, self.stride, self.dilation, self.groups, size)

    def out_hw(self, hw: int) -> int:
        k = 3  # only used to plan the next layer's packing; every layer here is 3x3 (checked at build)
        if self.transposed:
            return (hw - 1) * self.stride[0] - 2 * self.padding[0] + k + self.output_padding[0]
        return (hw + 2 * self.padding[0] - k) // self.stride[0] + 1

    def __call__(self, x: Tensor) -> Tensor:
        w = self.packed[_ONE if x.shape[0] == 1 else CHUNK]
        if self.transposed:
            return _mkldnn._convolution_transpose_pointwise(x, w, self.bias, self.padding, self.output_padding,
                                                            self.stride, self.dilation, self.groups, self.attr,
                                                            self.scalars, "")
        return _mkldnn._convolution_pointwise(x, w, self.bias, self.padding, self.stride, self.dilation, self.groups,
                                              self.attr, self.scalars, "")


    def input_grad(self, grad_out: Tensor, y: Tensor, x: Tensor) -> Tensor:
        """d loss / d x from d loss / d y, where y = act(conv(x)) is this layer's saved output (no weight gradient).

        The input gradient of a convolution is the transposed convolution with the same weight (and the other
        way round), run by oneDNN on weights packed once for it: the same numbers as
        ``aten.convolution_backward``, ~1.7x faster (it reorders the weight on every call)."""
        if self.attr == "leaky_relu":  # the slope > 0 keeps the sign: y > 0 exactly where the pre-activation is
            grad_out = torch.ops.aten.leaky_relu_backward(grad_out, y, self.scalars[0], True)
        elif self.attr == "sigmoid":
            grad_out = torch.ops.aten.sigmoid_backward(grad_out, y)
        elif self.attr == "relu":
            grad_out = torch.ops.aten.threshold_backward(grad_out, y, 0)
        g = grad_out.contiguous(memory_format=torch.channels_last)
        batch = _ONE if g.shape[0] == 1 else CHUNK
        if batch not in self._grad_packed:
            self._grad_packed[batch] = self._pack_grad(list(g.shape[1:]), x.shape[-1], batch)
        w, output_padding = self._grad_packed[batch]
        if self.transposed:
            return _mkldnn._convolution_pointwise(g, w, None, self.padding, self.stride, self.dilation, self.groups,
                                                  "none", [], "")
        return _mkldnn._convolution_transpose_pointwise(g, w, None, self.padding, output_padding, self.stride,
                                                        self.dilation, self.groups, "none", [], "")

    def _pack_grad(self, grad_chw: list[int], in_hw: int, batch: int) -> tuple[Tensor, list[int]]:
        size = [batch, *grad_chw]
        if self.transposed:  # d/dx of a transposed convolution: the convolution with its weight (Cin, Cout, k, k)
            return _mkldnn._reorder_convolution_weight(self.weight, self.padding, self.stride, self.dilation,
                                                       self.groups, size), []
        k = self.weight.shape[-1]  # d/dx of a convolution: the transposed one, sized back to the input
        pad = in_hw - ((grad_chw[-1] - 1) * self.stride[0] - 2 * self.padding[0] + k)
        output_padding = [pad, pad]
        return _mkldnn._reorder_convolution_transpose_weight(self.weight, self.padding, output_padding, self.stride,
                                                             self.dilation, self.groups, size), output_padding


def _conv_layers(seq: nn.Sequential, hw: int) -> tuple[list[_Layer], int]:
    mods = list(seq)
    layers = []
    for i, mod in enumerate(mods):
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            if tuple(mod.kernel_size) != (3, 3):
                raise ValueError(f"the fast path plans 3x3 convolutions, got {mod}")
            act = mods[i + 1] if i + 1 < len(mods) else None
            layer = _Layer(mod, act, hw)
            layers.append(layer)
            hw = layer.out_hw(hw)
    return layers, hw


class _FastEncoder:
    """Encoder.features (conv + LeakyReLU blocks, Flatten, Linear, LeakyReLU) and the mu/logvar heads."""

    def __init__(self, enc: Encoder, image_hw: int) -> None:
        self.convs, hw = _conv_layers(enc.features, image_hw)
        fc = next(m for m in enc.features if isinstance(m, nn.Linear))
        c = fc.in_features // (hw * hw)
        # columns from (C, H, W) to (H, W, C) order: a channels-last activation flattens without a copy
        self.fc_w = fc.weight.detach().view(-1, c, hw, hw).permute(0, 2, 3, 1).reshape(fc.out_features, -1).contiguous()
        self.fc_b = fc.bias.detach()
        self.slope = next(m for m in enc.features if isinstance(m, nn.LeakyReLU)).negative_slope
        self.mu = (enc.mu.weight.detach(), enc.mu.bias.detach())
        self.logvar = (enc.logvar.weight.detach(), enc.logvar.bias.detach())

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar, _ = self.forward_saving(x, keep=False)
        return mu, logvar.clamp_(-20.0, 10.0)

    def forward_saving(self, x: Tensor, *, keep: bool) -> tuple[Tensor, Tensor, list[Tensor]]:
        """mu, the unclamped log-variance, and (``keep``) every activation the input gradient needs."""
        h = x.contiguous(memory_format=torch.channels_last)
        acts = [h]
        for layer in self.convs:
            h = layer(h)
            acts.append(h)
        h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # (B, H*W*C), a view of the channels-last tensor
        h = F.leaky_relu_(torch.addmm(self.fc_b, h, self.fc_w.t()), self.slope)  # (B, 1024)
        acts.append(h)
        return F.linear(h, *self.mu), F.linear(h, *self.logvar), acts if keep else []

    def input_grad(self, acts: list[Tensor], logvar: Tensor, g_mu: Tensor | None, g_logvar: Tensor | None) -> Tensor:
        """d loss / d x from d loss / d (mu, clamped log-variance); ``acts`` from ``forward_saving(keep=True)``."""
        h = acts[-1]
        g = torch.zeros_like(h)
        if g_mu is not None:
            g.addmm_(g_mu, self.mu[0])
        if g_logvar is not None:  # clamp's gradient: through where -20 <= logvar <= 10 (torch's own rule)
            g.addmm_(g_logvar * ((logvar >= -20.0) & (logvar <= 10.0)), self.logvar[0])
        g = torch.ops.aten.leaky_relu_backward(g, h, self.slope, True)
        g = torch.mm(g, self.fc_w)  # (B, H*W*C)
        last = acts[-2]
        b, c, hh, ww = last.shape
        g = g.view(b, hh, ww, c).permute(0, 3, 1, 2)  # (B, C, H, W), channels-last
        for i in range(len(self.convs) - 1, -1, -1):
            g = self.convs[i].input_grad(g, acts[i + 1], acts[i])
        return g


class _FastDecoder:
    """Decoder.fc (Linear, LeakyReLU, Linear, LeakyReLU) and the transposed convolutions."""

    def __init__(self, dec: Decoder) -> None:
        c, h, w = dec.start
        self.start = (c, h, w)
        lin = [m for m in dec.fc if isinstance(m, nn.Linear)]
        self.slope = next(m for m in dec.fc if isinstance(m, nn.LeakyReLU)).negative_slope
        self.fc0 = (lin[0].weight.detach(), lin[0].bias.detach())
        # rows from (C, H, W) to (H, W, C): the output is channels-last as it comes (the same dot products)
        self.fc1_w = lin[1].weight.detach().view(c, h, w, -1).permute(1, 2, 0, 3).reshape(c * h * w, -1).contiguous()
        self.fc1_b = lin[1].bias.detach().view(c, h, w).permute(1, 2, 0).reshape(-1).contiguous()
        self.deconvs, _ = _conv_layers(dec.deconv, h)

    def __call__(self, code: Tensor) -> Tensor:
        return self.forward_saving(code, keep=False)[0]

    def forward_saving(self, code: Tensor, *, keep: bool) -> tuple[Tensor, list[Tensor]]:
        """The image and (``keep``) every activation the input gradient needs."""
        c, h, w = self.start
        x1 = F.leaky_relu_(F.linear(code, *self.fc0), self.slope)  # (B, 1024)
        x2 = F.leaky_relu_(torch.addmm(self.fc1_b, x1, self.fc1_w.t()), self.slope)  # (B, H*W*C)
        x = x2.view(code.shape[0], h, w, c).permute(0, 3, 1, 2)  # (B, C, H, W), channels-last
        acts = [x1, x2, x]
        for layer in self.deconvs:
            x = layer(x)
            acts.append(x)
        return x, acts if keep else []

    def input_grad(self, acts: list[Tensor], g: Tensor) -> Tensor:
        """d loss / d code from d loss / d image; ``acts`` from ``forward_saving(keep=True)``."""
        x1, x2 = acts[0], acts[1]
        g = g.contiguous(memory_format=torch.channels_last)
        for i in range(len(self.deconvs) - 1, -1, -1):
            g = self.deconvs[i].input_grad(g, acts[i + 3], acts[i + 2])
        g = g.permute(0, 2, 3, 1).reshape(g.shape[0], -1)  # (B, H*W*C): channels-last is this order already
        g = torch.ops.aten.leaky_relu_backward(g, x2, self.slope, True)
        g = torch.ops.aten.leaky_relu_backward(torch.mm(g, self.fc1_w), x1, self.slope, True)
        return torch.mm(g, self.fc0[0])  # (B, M)


def _chunked(fn, x: Tensor) -> tuple[Tensor, ...] | Tensor:
    if x.shape[0] <= CHUNK:
        return fn(x)
    parts = [fn(c) for c in x.split(CHUNK)]
    if isinstance(parts[0], Tensor):
        return torch.cat(parts)
    return tuple(torch.cat(p) for p in zip(*parts))


class _EncodeFn(torch.autograd.Function):
    """x -> (mu, logvar) on the fused kernels, with the input gradient computed by hand (weights are frozen)."""

    @staticmethod
    def forward(ctx, x: Tensor, enc: _FastEncoder) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        ctx.set_materialize_grads(False)
        ctx.enc = enc
        chunks = [enc.forward_saving(c, keep=True) for c in x.split(CHUNK)]
        ctx.acts = [acts for _, _, acts in chunks]
        raw = torch.cat([lv for _, lv, _ in chunks])
        ctx.save_for_backward(raw)
        ctx.shape, ctx.format = x.shape, _format(x)
        return torch.cat([mu for mu, _, _ in chunks]), raw.clamp(-20.0, 10.0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_mu: Tensor | None, g_logvar: Tensor | None):  # type: ignore[override]
        if g_mu is None and g_logvar is None:
            return None, None
        (raw,) = ctx.saved_tensors
        n = [a[0].shape[0] for a in ctx.acts]
        parts_mu = g_mu.split(n) if g_mu is not None else [None] * len(n)
        parts_lv = g_logvar.split(n) if g_logvar is not None else [None] * len(n)
        grads = [ctx.enc.input_grad(a, lv, gm, gl) for a, lv, gm, gl in zip(ctx.acts, raw.split(n), parts_mu, parts_lv)]
        ctx.acts = None
        return torch.cat(grads).contiguous(memory_format=ctx.format), None


class _DecodeFn(torch.autograd.Function):
    """code -> image on the fused kernels, with the input gradient computed by hand (weights are frozen)."""

    @staticmethod
    def forward(ctx, code: Tensor, dec: _FastDecoder) -> Tensor:  # type: ignore[override]
        ctx.set_materialize_grads(False)
        ctx.dec = dec
        chunks = [dec.forward_saving(c, keep=True) for c in code.split(CHUNK)]
        ctx.acts = [acts for _, acts in chunks]
        return torch.cat([img for img, _ in chunks])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor | None):  # type: ignore[override]
        if g is None:
            return None, None
        n = [a[0].shape[0] for a in ctx.acts]
        grads = [ctx.dec.input_grad(a, gi) for a, gi in zip(ctx.acts, g.split(n))]
        ctx.acts = None
        return torch.cat(grads), None


def _format(x: Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


class FastLQVAE(LQVAE):
    """An :class:`LQVAE` with the fused no-grad path of this module (built by :func:`optimize_for_inference`)."""

    def __init__(self, model: LQVAE) -> None:
        nn.Module.__init__(self)
        src = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
        self.cfg = src.cfg
        self.encoder, self.g, self.h, self.quantizer = src.encoder, src.g, src.h, src.quantizer
        self.training = False
        self.requires_grad_(False)  # a snapshot: gradients only ever flow to the input (attacks)
        with torch.no_grad():
            self._enc = _FastEncoder(self.encoder, self.cfg.image_shape[1])
            self._dec = _FastDecoder(self.g)

    def train(self, mode: bool = True) -> FastLQVAE:
        if mode:
            raise RuntimeError("FastLQVAE is an inference snapshot (its packed weights do not follow training): "
                               "train the plain LQVAE and call optimize_for_inference again")
        return super().train(False)

    def _fused(self, x: Tensor) -> bool:
        """True when nothing needs autograd: the fused oneDNN path gives the same result faster."""
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return False
        if not torch.is_grad_enabled():
            return True
        return not x.requires_grad and not any(p.requires_grad for p in self.parameters())

    def _input_grad_only(self, x: Tensor) -> bool:
        """Autograd is needed for the input alone (an attack): the fused forward and a hand-written backward."""
        return (x.device.type == "cpu" and x.dtype == torch.float32 and torch.is_grad_enabled()
                and not any(p.requires_grad for p in self.parameters()))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self._fused(x):
            return _chunked(self._enc, x)  # type: ignore[return-value]
        if self._input_grad_only(x):
            return _EncodeFn.apply(x, self._enc)
        return self.encoder(x.contiguous(memory_format=torch.channels_last))

    def decode(self, code: Tensor) -> Tensor:
        if self._fused(code):
            out = _chunked(self._dec, code)
        elif self._input_grad_only(code):
            out = _DecodeFn.apply(code, self._dec)
        else:
            out = self.g(code)
        return out.contiguous()  # the plain model's layout for the caller (a no-op for one channel)


def optimize_for_inference(model: nn.Module) -> nn.Module:
    """``model`` on the fast path when it is an LQ-VAE on the CPU in float32 and oneDNN is built in; any other
    model (a classifier, Defense-GAN, a CUDA model) is returned unchanged."""
    if isinstance(model, FastLQVAE) or not isinstance(model, LQVAE) or not fast_path_available():
        return model
    p = next(model.parameters())
    if p.device.type != "cpu" or p.dtype != torch.float32:
        return model
    return FastLQVAE(model)


__all__ = ["CHUNK", "FastLQVAE", "fast_path_available", "optimize_for_inference", "transposed_as_conv_weight"]
