"""Benchmarks (not tests): ``python -m lqvae.bench train-step|purify [--json PATH]``.

Each prints a small table of medians over repeated runs (these machines are noisy) and writes JSON.

* ``train-step``: Algorithm 1 steps per second at ``--batch-size`` (penalty included), as images/s.
* ``purify``: ``single_ms_median`` (one image, median of ``--calls`` >= 50 calls) and
  ``batch_images_per_s`` (batch 256), in float32 and, with ``--bf16``, under bfloat16 autocast
  together with the share of bit codes that stay identical to float32.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

from lqvae.io.checkpoint import load_checkpoint
from lqvae.core.config import LQVAEConfig
from lqvae.core.device import DEVICE_CHOICES, resolve_device
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


def _model(args: argparse.Namespace, device: torch.device, with_h: bool) -> LQVAE:
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint, kind="lqvae", device=device, with_h=with_h).model
    else:
        torch.manual_seed(0)
        model = LQVAE(LQVAEConfig.mnist(free_bits=1.0, recon_weight=10.0), with_h=with_h).to(device)
    return model  # type: ignore[return-value]


def _sample_images(n: int, device: torch.device) -> torch.Tensor:
    try:
        from lqvae.io.data import load_samples

        return load_samples("mnist").tensors()[0][:n].to(device)
    except Exception:
        return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)


def bench_train_step(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    model = _model(args, device, with_h=True).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    x = _sample_images(args.batch_size, device)
    if len(x) < args.batch_size:
        x = x.repeat((args.batch_size + len(x) - 1) // len(x), 1, 1, 1)[: args.batch_size]

    def step() -> None:
        losses = algorithm1_losses(model, x)
        opt.zero_grad(set_to_none=True)
        losses.total.backward()
        opt.step()

    times = timed(step, args.repeats)
    med = statistics.median(times)
    return {"batch_size": args.batch_size, "step_ms_median": med * 1e3,
            "images_per_s": args.batch_size / med, "threads": torch.get_num_threads(), "repeats": args.repeats}


def bench_purify(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    model = _model(args, device, with_h=False).eval()
    one = _sample_images(1, device)
    batch = _sample_images(256, device)
    if len(batch) < 256:
        batch = batch.repeat(256 // len(batch) + 1, 1, 1, 1)[:256]
    result: dict[str, Any] = {"threads": torch.get_num_threads(), "calls": args.calls}
    with torch.inference_mode():
        single = timed(lambda: model.purify(one), args.calls, warmup=10)
        batched = timed(lambda: model.purify(batch), max(5, args.repeats))
        result["single_ms_median"] = statistics.median(single) * 1e3
        result["batch_images_per_s"] = 256 / statistics.median(batched)
        if args.bf16:
            ref_bits = model.purify(batch).bits
            with torch.autocast(device.type, dtype=torch.bfloat16):
                single = timed(lambda: model.purify(one), args.calls, warmup=10)
                batched = timed(lambda: model.purify(batch), max(5, args.repeats))
                bf_bits = model.purify(batch).bits
            result["bf16_single_ms_median"] = statistics.median(single) * 1e3
            result["bf16_batch_images_per_s"] = 256 / statistics.median(batched)
            result["bf16_identical_codes"] = float((bf_bits == ref_bits).all(1).float().mean())
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m lqvae.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn in (("train-step", bench_train_step), ("purify", bench_purify)):
        s = sub.add_parser(name)
        s.add_argument("--checkpoint", default=None, help="LQ-VAE checkpoint (default: random weights)")
        s.add_argument("--batch-size", type=int, default=128)
        s.add_argument("--repeats", type=int, default=10)
        s.add_argument("--calls", type=int, default=100)
        s.add_argument("--threads", type=int, default=None)
        s.add_argument("--bf16", action="store_true")
        s.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
        s.add_argument("--json", default=None)
        s.set_defaults(func=fn)
    for module in ("lqvae.bench.attacks", "lqvae.bench.defenses"):  # further benchmarks register themselves
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).add_subcommand(sub)
    args = p.parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    result = args.func(args)
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
