"""How long each attack takes, per threat model and preset (``python -m lqvae.bench attacks``).

How long each attack takes, per threat model and preset.

For every (preset, attack, threat) it reports the median wall time of :func:`lqvae.evaluate.analysis.analyze`
on one image (attack plus purification and classification, what the app waits for) and the
throughput of :func:`lqvae.attacks.runners.run_attack` on a batch (64 by default). Live-preset targets on
this project's reference CPU are in ``LIVE_TARGETS_MS``. Uses the shipped checkpoints when present,
else freshly initialised models of the same architecture (timings are the same; outcomes are not).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from lqvae.evaluate.analysis import analyze
from lqvae.attacks.runners import AttackSpec, run_attack
from lqvae.core.config import ClassifierConfig, LQVAEConfig
from lqvae.io.data import DataNotFoundError, load_samples, load_split
from lqvae.core.device import resolve_device
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
    lq = LQVAE(LQVAEConfig.mnist(), training_parts=False).to(device).eval()
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


def bench_attacks(*, dataset: str = "mnist", presets: Sequence[str], attacks: Sequence[str], threats: Sequence[str],
                  repeats: int = 5, batch: int = 64, checkpoints: str | None = None, device: str | torch.device = "auto",
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every (preset, attack, threat), ``log`` a row as each finishes; a flat summary for the command's
    table and JSON: ``"<preset>/<attack>/<threat> ms"`` (one image) and ``"... img/s"`` (batch; none when
    ``batch`` is 0)."""
    device = resolve_device(device)
    clf, lq, sub, note = bench_models(dataset, device, checkpoints)
    images, labels = bench_images(dataset, max(batch, repeats, 1))
    log(f"# attack benchmark: {note}; torch threads {torch.get_num_threads()}, device {device}")
    log(f"{'preset':6} {'attack':14} {'threat':9} {'1 image ms':>10} {'target':>7} {'batch img/s':>11}")
    summary: dict[str, Any] = {"models": note, "threads": torch.get_num_threads()}
    for preset in presets:
        for attack in attacks:
            for threat in threats:
                spec = AttackSpec(attack=attack, threat=threat, preset=preset)
                row = bench_spec(spec, images, labels, classifier=clf, purifier=lq, substitute=sub,
                                 repeats=repeats, batch=batch)
                key = f"{preset}/{attack}/{threat}"
                summary[f"{key} ms"] = row["one_image_ms"]
                if "images_per_s" in row:
                    summary[f"{key} img/s"] = row["images_per_s"]
                mark = "" if "target_ms" not in row else (" ok" if row["meets_target"] else " SLOW")
                log(f"{preset:6} {attack:14} {threat:9} {row['one_image_ms']:>10.1f} "
                    f"{row.get('target_ms', ''):>7}{mark} {row.get('images_per_s', ''):>11}")
    return summary
