"""Benchmarks of the model itself (not tests), run by ``python -m lqvae.bench train-step|purify [--json PATH]``.

Each command prints a small table of medians over repeated runs (these machines are noisy) and writes JSON.

* ``train-step``: Algorithm 1 steps per second at ``--batch-size`` (penalty included), as images/s.
* ``purify``: ``single_ms_median`` (one image, median of ``--calls`` >= 50 calls) and
  ``batch_images_per_s`` (batch 256), in float32 and, with ``--bf16``, under bfloat16 autocast
  together with the share of bit codes that stay identical to float32.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch

from lqvae.io.checkpoint import load_checkpoint
from lqvae.core.config import LQVAEConfig
from lqvae.core.device import resolve_device
from lqvae.core.losses import algorithm1_losses
from lqvae.core.models import LQVAE


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _model(checkpoint: str | None, device: torch.device, training_parts: bool) -> LQVAE:
    if checkpoint:
        model = load_checkpoint(checkpoint, kind="lqvae", device=device, training_parts=training_parts).model
    else:
        torch.manual_seed(0)
        model = LQVAE(LQVAEConfig.mnist(free_bits=1.0, recon_weight=10.0), training_parts=training_parts).to(device)
    return model  # type: ignore[return-value]


def _sample_images(n: int, device: torch.device) -> torch.Tensor:
    try:
        from lqvae.io.data import load_samples

        return load_samples("mnist").tensors()[0][:n].to(device)
    except Exception:
        return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)


def bench_train_step(*, checkpoint: str | None = None, batch_size: int = 128, repeats: int = 10,
                     device: str | torch.device = "auto") -> dict[str, Any]:
    """Algorithm 1 steps (penalty included) at ``batch_size``: median ms per step and images/s."""
    device = resolve_device(device)
    model = _model(checkpoint, device, training_parts=True).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    x = _sample_images(batch_size, device)
    if len(x) < batch_size:
        x = x.repeat((batch_size + len(x) - 1) // len(x), 1, 1, 1)[:batch_size]

    def step() -> None:
        losses = algorithm1_losses(model, x)
        opt.zero_grad(set_to_none=True)
        losses.total.backward()
        opt.step()

    times = timed(step, repeats)
    med = statistics.median(times)
    return {"batch_size": batch_size, "step_ms_median": med * 1e3,
            "images_per_s": batch_size / med, "threads": torch.get_num_threads(), "repeats": repeats}


def bench_purify(*, checkpoint: str | None = None, calls: int = 100, repeats: int = 10, bf16: bool = False,
                 device: str | torch.device = "auto") -> dict[str, Any]:
    """Median ms to purify one image (``calls`` calls), images/s at batch 256; with ``bf16`` also under
    bfloat16 autocast, with the share of codes identical to float32."""
    device = resolve_device(device)
    model = _model(checkpoint, device, training_parts=False).eval()
    one = _sample_images(1, device)
    batch = _sample_images(256, device)
    if len(batch) < 256:
        batch = batch.repeat(256 // len(batch) + 1, 1, 1, 1)[:256]
    result: dict[str, Any] = {"threads": torch.get_num_threads(), "calls": calls}
    with torch.inference_mode():
        single = timed(lambda: model.purify(one), calls, warmup=10)
        batched = timed(lambda: model.purify(batch), max(5, repeats))
        result["single_ms_median"] = statistics.median(single) * 1e3
        result["batch_images_per_s"] = 256 / statistics.median(batched)
        if bf16:
            ref_bits = model.purify(batch).bits
            with torch.autocast(device.type, dtype=torch.bfloat16):
                single = timed(lambda: model.purify(one), calls, warmup=10)
                batched = timed(lambda: model.purify(batch), max(5, repeats))
                bf_bits = model.purify(batch).bits
            result["bf16_single_ms_median"] = statistics.median(single) * 1e3
            result["bf16_batch_images_per_s"] = 256 / statistics.median(batched)
            result["bf16_identical_codes"] = float((bf_bits == ref_bits).all(1).float().mean())
    return result
