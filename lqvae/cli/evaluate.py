"""Evaluation CLI: ``python -m lqvae.evaluate clean|run|table ...``.

``clean`` measures the shipped checkpoints of one dataset on its full test set: for each classifier
its clean accuracy and its accuracy on LQ-VAE-purified images, plus the purifier's bit statistics
(``bit_balance``, ``dead_bits``, ``distinct_codes``) and ``lipschitz_median``. Accuracies in percent.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from lqvae.io.data import DATASETS, load_split
from lqvae.core.device import DEVICE_CHOICES, resolve_device
from lqvae.evaluate.diagnostics import lqvae_report, predict, purify_all
from lqvae.io.registry import inventory, load_named


def clean_metrics(dataset: str, images: torch.Tensor, labels: torch.Tensor, *, device: torch.device,
                  purifier: str = "lqvae", root: str | None = None) -> dict[str, Any]:
    inv = inventory(dataset, root)
    if not inv.classifiers:
        raise SystemExit(f"no classifier checkpoints for {dataset} in checkpoints/{dataset}/ ({inv.errors})")
    out: dict[str, Any] = {"dataset": dataset, "n": len(images), "purifier": purifier}
    purified = None
    if purifier in inv.purifiers:
        lq = load_named(dataset, purifier, kind="lqvae", device=device, root=root).model
        purified = purify_all(lq, images)  # type: ignore[arg-type]
        out.update(lqvae_report(lq, images))  # type: ignore[arg-type]
    for name, _ in sorted(inv.classifiers.items()):
        clf = load_named(dataset, name, kind="classifier", device=device, root=root).model
        entry = {"clean_accuracy": float((predict(clf, images) == labels).float().mean() * 100)}
        if purified is not None:
            entry["purified_accuracy"] = float((predict(clf, purified) == labels).float().mean() * 100)
        out[name] = entry
    return out


def cmd_clean(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    if args.samples:
        from lqvae.io.data import load_samples
        images, labels = load_samples(args.dataset).tensors(args.n)
    else:
        images, labels = load_split(args.dataset, "test", args.data_dir).tensors(args.n)
    t0 = time.monotonic()
    result = clean_metrics(args.dataset, images, labels, device=device, purifier=args.purifier,
                           root=args.checkpoints)
    result["seconds"] = round(time.monotonic() - t0, 2)
    summary = ", ".join(f"{k}: clean {v['clean_accuracy']:.2f}%" +
                        (f" purified {v['purified_accuracy']:.2f}%" if "purified_accuracy" in v else "")
                        for k, v in result.items() if isinstance(v, dict) and "clean_accuracy" in v)
    print(f"{args.dataset} n={result['n']}: {summary}; dead bits {result.get('dead_bits')}, "
          f"distinct codes {result.get('distinct_codes')}, Lipschitz median {result.get('lipschitz_median')}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lqvae.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("clean", help="clean and purified accuracy of the shipped checkpoints")
    c.add_argument("--dataset", choices=DATASETS, default="mnist")
    c.add_argument("--data-dir", default=None)
    c.add_argument("--n", type=int, default=None, help="first n test images (default all 10,000)")
    c.add_argument("--samples", action="store_true", help="use the bundled samples instead of the test set")
    c.add_argument("--purifier", default="lqvae")
    c.add_argument("--checkpoints", default=None, help="checkpoint root (default ./checkpoints)")
    c.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    c.add_argument("--json", default=None)
    c.set_defaults(func=cmd_clean)
    if importlib.util.find_spec("lqvae.evaluate.scoring") is not None:  # `run` and `table` live there
        from lqvae.evaluate.scoring import add_subcommands

        add_subcommands(sub)
    return p


def main(argv: list[str] | None = None) -> Any:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
