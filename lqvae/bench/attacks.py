"""``python -m lqvae.bench attacks``: how long each attack takes, per threat model and preset.

For every (preset, attack, threat) it reports the median wall time of :func:`lqvae.evaluate.analysis.analyze`
on one image (attack plus purification and classification, what the app waits for) and the
throughput of :func:`lqvae.attacks.runners.run_attack` on a batch (64 by default). Live-preset targets on
this project's reference CPU are in ``LIVE_TARGETS_MS``. Uses the shipped checkpoints when present,
else freshly initialised models of the same architecture (timings are the same; outcomes are not).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lqvae.evaluate.analysis import analyze
from lqvae.attacks.runners import ATTACKS, PRESET_NAMES, THREATS, AttackSpec, run_attack
from lqvae.core.config import ClassifierConfig, LQVAEConfig
from lqvae.io.data import DATASETS, DataNotFoundError, load_samples, load_split
from lqvae.core.device import DEVICE_CHOICES, resolve_device
from lqvae.core.models import LQVAE, Classifier
from lqvae.io.registry import inventory, load_named

LIVE_TARGETS_MS = {("fgsm", "whitebox"): 50, ("pgd", "whitebox"): 400, ("pgd", "bpda"): 600, ("cw", "whitebox"): 1500}


def bench_models(dataset: str, device: torch.device, root: str | None = None) -> tuple[nn.Module, LQVAE, nn.Module, str]:
    """(classifier A, LQ-VAE, substitute B, note): shipped checkpoints, or fresh models when missing."""
    inv = inventory(dataset, root)
    if "A" in inv.classifiers and "lqvae" in inv.purifiers:
        clf = load_named(dataset, "A", kind="classifier", device=device, root=root).model
        sub_name = "B" if "B" in inv.classifiers else "A"
        sub = load_named(dataset, sub_name, kind="classifier", device=device, root=root).model
        lq = load_named(dataset, "lqvae", kind="lqvae", device=device, root=root).model
        return clf, lq, sub, f"shipped checkpoints of {dataset} (substitute {sub_name})"  # type: ignore[return-value]
    torch.manual_seed(0)
    clf = Classifier(ClassifierConfig(arch="A")).to(device).eval()
    sub = Classifier(ClassifierConfig(arch="B")).to(device).eval()
    lq = LQVAE(LQVAEConfig.mnist(), with_h=False).to(device).eval()
    return clf, lq, sub, f"no checkpoints for {dataset}: freshly initialised A, B and LQ-VAE (timings only)"


def bench_images(dataset: str, n: int) -> tuple[Tensor, Tensor]:
    """Bundled samples, else the test set if it is on disk, else random ink-like blobs."""
    try:  # bundled samples are sorted by class: take them evenly spaced
        x, y = load_samples(dataset).tensors()
        idx = torch.linspace(0, len(x) - 1, min(n, len(x))).round().long()
        return x[idx], y[idx]
    except (DataNotFoundError, FileNotFoundError, ValueError):
        pass
    try:
        return load_split(dataset, "test", download=False).tensors(n)
    except (DataNotFoundError, FileNotFoundError, ValueError):
        pass
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 6:22, 10:18] = torch.rand(n, 1, 16, 8, generator=g)
    return x, torch.randint(0, 10, (n,), generator=g)


def bench_spec(spec: AttackSpec, images: Tensor, labels: Tensor, *, classifier: nn.Module, purifier: LQVAE,
               substitute: nn.Module, repeats: int, batch: int) -> dict[str, Any]:
    """Median one-image ``analyze`` time (ms) over ``repeats`` images and images/s on a batch."""
    kw = dict(classifier=classifier, purifier=purifier, substitute=substitute)
    analyze(images[0], int(labels[0]), spec=spec, **kw)  # warm-up (allocations, lazy init)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        analyze(images[i % len(images)], int(labels[i % len(labels)]), spec=spec, **kw)
        times.append((time.perf_counter() - t0) * 1000)
    out: dict[str, Any] = {"attack": spec.attack, "threat": spec.threat, "preset": spec.preset,
                           "one_image_ms": round(statistics.median(times), 1)}
    target = LIVE_TARGETS_MS.get((spec.attack, spec.threat)) if spec.preset == "live" else None
    if target is not None:
        out["target_ms"] = target
        out["meets_target"] = out["one_image_ms"] <= target
    if batch > 0:
        x, y = images[:batch], labels[:batch]
        t0 = time.perf_counter()
        run_attack(spec, x, y, **kw, batch_size=batch)  # type: ignore[arg-type]
        out["batch"] = len(x)
        out["images_per_s"] = round(len(x) / (time.perf_counter() - t0), 2)
    return out


def cmd_attacks(args: argparse.Namespace) -> dict[str, Any]:
    """Print a row per (preset, attack, threat) as it finishes; return a flat dict for ``lqvae.bench.engine``'s summary
    and JSON: ``"<preset>/<attack>/<threat> ms"`` (one image) and ``"... img/s"`` (batch)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    clf, lq, sub, note = bench_models(args.dataset, device, args.checkpoints)
    images, labels = bench_images(args.dataset, max(args.batch, args.repeats, 1))
    print(f"# attack benchmark: {note}; torch threads {torch.get_num_threads()}, device {device}")
    print(f"{'preset':6} {'attack':14} {'threat':9} {'1 image ms':>10} {'target':>7} {'batch img/s':>11}")
    summary: dict[str, Any] = {"models": note, "threads": torch.get_num_threads()}
    for preset in args.presets:
        for attack in args.attacks:
            for threat in args.threats:
                spec = AttackSpec(attack=attack, threat=threat, preset=preset)
                row = bench_spec(spec, images, labels, classifier=clf, purifier=lq, substitute=sub,
                                 repeats=args.repeats, batch=0 if args.no_batch else args.batch)
                key = f"{preset}/{attack}/{threat}"
                summary[f"{key} ms"] = row["one_image_ms"]
                if "images_per_s" in row:
                    summary[f"{key} img/s"] = row["images_per_s"]
                mark = "" if "target_ms" not in row else (" ok" if row["meets_target"] else " SLOW")
                print(f"{preset:6} {attack:14} {threat:9} {row['one_image_ms']:>10.1f} "
                      f"{row.get('target_ms', ''):>7}{mark} {row.get('images_per_s', ''):>11}", flush=True)
    return summary


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    """Add ``attacks`` to ``python -m lqvae.bench``."""
    p = sub.add_parser("attacks", help="wall time per attack, threat model and preset (one image; batch throughput)")
    p.add_argument("--dataset", choices=DATASETS, default="mnist")
    p.add_argument("--presets", nargs="+", choices=PRESET_NAMES, default=list(PRESET_NAMES))
    p.add_argument("--attacks", nargs="+", choices=ATTACKS, default=list(ATTACKS))
    p.add_argument("--threats", nargs="+", choices=THREATS, default=list(THREATS))
    p.add_argument("--repeats", type=int, default=5, help="images timed one at a time (median reported)")
    p.add_argument("--batch", type=int, default=64, help="batch size for the throughput measurement")
    p.add_argument("--no-batch", action="store_true", help="skip the batch throughput (the paper preset is slow)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    p.add_argument("--checkpoints", default=None)
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument("--json", default=None, help="write the summary here")
    p.set_defaults(func=cmd_attacks)


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(prog="python -m lqvae.bench.attacks", description=__doc__)
    add_subcommand(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    summary = args.func(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
