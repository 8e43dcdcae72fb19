"""``python -m lqvae.bench all|train-step|purify|attacks|defenses [--json PATH]``: the benchmarks (not tests).

Each prints a small table of medians over repeated runs (these machines are noisy) and writes JSON.

* ``all``: the plain eager float32 LQ-VAE beside the fast path (:mod:`lqvae.core.fast`) in one run: purification
  of 1 and 256 images, a BPDA PGD step at 256, the app's live attacks, Defense-GAN; speed-ups, GFLOP/s and
  their fraction of a float32 matrix-product peak measured in the same run, and issue 19's targets met or not
  (:func:`lqvae.bench.engine.bench_fast_path`). Use ``--threads 2`` to match the issue.
* ``train-step``: Algorithm 1 steps per second at ``--batch-size`` (penalty included), as images/s.
* ``purify``: ``single_ms_median`` (one image, median of ``--calls`` >= 50 calls) and
  ``batch_images_per_s`` (batch 256), in float32 and, with ``--bf16``, under bfloat16 autocast
  together with the share of bit codes that stay identical to float32 (:mod:`lqvae.bench.engine`).
* ``attacks``: wall time per attack, threat model and preset (:mod:`lqvae.bench.attacks`).
* ``defenses``: milliseconds per image and images/s of every shipped defense (:mod:`lqvae.bench.defenses`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lqvae.cli import errors_exit
from lqvae.core.device import DEVICE_CHOICES
from lqvae.spec.attacks import ATTACKS, PRESET_NAMES, THREATS
from lqvae.spec.datasets import DATASETS


def _train_step(a: argparse.Namespace) -> dict[str, Any]:
    from lqvae.bench.engine import bench_train_step

    return bench_train_step(checkpoint=a.checkpoint, batch_size=a.batch_size, repeats=a.repeats, device=a.device)


def _purify(a: argparse.Namespace) -> dict[str, Any]:
    from lqvae.bench.engine import bench_purify

    return bench_purify(checkpoint=a.checkpoint, calls=a.calls, repeats=a.repeats, bf16=a.bf16, device=a.device)


def _attacks(a: argparse.Namespace) -> dict[str, Any]:
    from lqvae.bench.attacks import bench_attacks

    return bench_attacks(dataset=a.dataset, presets=a.presets, attacks=a.attacks, threats=a.threats,
                         repeats=a.repeats, batch=0 if a.no_batch else a.batch, checkpoints=a.checkpoints,
                         device=a.device, log=lambda line: print(line, flush=True))


def _defenses(a: argparse.Namespace) -> dict[str, Any]:
    from lqvae.bench.defenses import bench_defenses

    return bench_defenses(dataset=a.dataset, checkpoints=a.checkpoints, calls=a.calls, repeats=a.repeats,
                          dg_calls=a.dg_calls, dg_repeats=a.dg_repeats, device=a.device)


def _all(a: argparse.Namespace) -> dict[str, Any]:
    from lqvae.bench.engine import bench_fast_path

    return bench_fast_path(dataset=a.dataset, purifier=a.purifier, checkpoints=a.checkpoints, repeats=a.repeats,
                           calls=a.calls, attack_repeats=a.attack_repeats, dg_repeats=a.dg_repeats,
                           profile=not a.no_profile, log=lambda line: print(line, flush=True))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lqvae.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("all", help="plain eager fp32 vs the fast path, side by side, against the measured matmul peak")
    s.add_argument("--dataset", choices=DATASETS, default="mnist")
    s.add_argument("--purifier", default="lqvae_adv", help="shipped LQ-VAE to measure (default lqvae_adv)")
    s.add_argument("--checkpoints", default=None, help="checkpoint root (default ./checkpoints)")
    s.add_argument("--repeats", type=int, default=15, help="rounds of the batch measurements (median)")
    s.add_argument("--calls", type=int, default=100, help="one-image purification calls (median of calls/2 rounds)")
    s.add_argument("--attack-repeats", type=int, default=5, help="images per live attack (median)")
    s.add_argument("--dg-repeats", type=int, default=3, help="Defense-GAN one-image calls (median)")
    s.add_argument("--no-profile", action="store_true", help="skip the torch.profiler shares of the fast path")
    s.set_defaults(func=_all)
    for name, fn in (("train-step", _train_step), ("purify", _purify)):
        s = sub.add_parser(name)
        s.add_argument("--checkpoint", default=None, help="LQ-VAE checkpoint (default: random weights)")
        s.add_argument("--batch-size", type=int, default=128)
        s.add_argument("--repeats", type=int, default=10)
        s.add_argument("--calls", type=int, default=100)
        s.add_argument("--bf16", action="store_true")
        s.set_defaults(func=fn)
    s = sub.add_parser("attacks", help="wall time per attack, threat model and preset (one image; batch throughput)")
    s.add_argument("--dataset", choices=DATASETS, default="mnist")
    s.add_argument("--presets", nargs="+", choices=PRESET_NAMES, default=list(PRESET_NAMES))
    s.add_argument("--attacks", nargs="+", choices=list(ATTACKS), default=list(ATTACKS))
    s.add_argument("--threats", nargs="+", choices=list(THREATS), default=list(THREATS))
    s.add_argument("--repeats", type=int, default=5, help="images timed one at a time (median reported)")
    s.add_argument("--batch", type=int, default=64, help="batch size for the throughput measurement")
    s.add_argument("--no-batch", action="store_true", help="skip the batch throughput (the paper preset is slow)")
    s.add_argument("--checkpoints", default=None)
    s.set_defaults(func=_attacks)
    s = sub.add_parser("defenses", help="median ms per image and images/s (batch 64) of every defense")
    s.add_argument("--dataset", choices=DATASETS, default="mnist")
    s.add_argument("--checkpoints", default=None, help="checkpoint root (default ./checkpoints)")
    s.add_argument("--calls", type=int, default=50, help="single-image calls per fast defense (median)")
    s.add_argument("--repeats", type=int, default=10, help="batch calls per fast defense (median)")
    s.add_argument("--dg-calls", type=int, default=5, help="single-image calls of Defense-GAN at L=200, R=10")
    s.add_argument("--dg-repeats", type=int, default=3, help="batch calls of Defense-GAN at L=200, R=10")
    s.set_defaults(func=_defenses)
    for s in sub.choices.values():
        s.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
        s.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
        s.add_argument("--json", default=None, help="write the summary here")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    with errors_exit():
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        result = args.func(args)
    width = max(len(k) for k in result)
    for k, v in result.items():
        if isinstance(v, dict):
            v = json.dumps(v)
        print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
