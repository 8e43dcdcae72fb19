"""What each shipped defense costs, measured in one run (``python -m lqvae.bench defenses``).

Per purifier of the dataset (LQ-VAE, its robust and adversarially fine-tuned variants, the VAE
ablation, Defense-GAN at the authors' L = 200, R = 10 and at the live L = 50, R = 2; those not shipped
for the dataset are skipped): the median milliseconds to purify one image and the images per second
for a batch of 64, plus the ratio Defense-GAN / LQ-VAE for one image (``defensegan_over_lqvae_single``)
and for the batch. The adversarially trained classifiers cost nothing beyond a classifier's forward
pass, reported as ``classifier_forward_ms``. Defense-GAN's restarts run as one batch (see
``lqvae.core.defensegan``), so the ratio is that of a fair implementation.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from lqvae.bench.engine import timed
from lqvae.core.device import resolve_device
from lqvae.io.registry import inventory, load_named

BATCH = 64


def _images(dataset: str, n: int) -> torch.Tensor:
    try:
        from lqvae.io.data import load_samples

        x = load_samples(dataset).tensors()[0]
    except Exception:  # no bundled samples: timing does not depend on the pixels
        x = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return x.repeat((n + len(x) - 1) // len(x), 1, 1, 1)[:n]


def bench_defenses(*, dataset: str = "mnist", checkpoints: str | None = None, calls: int = 50, repeats: int = 10,
                   dg_calls: int = 5, dg_repeats: int = 3, device: str | torch.device = "auto") -> dict[str, Any]:
    """Per shipped purifier: median ms for one image (``calls``), images/s for a batch of 64 (``repeats``);
    Defense-GAN at L = 200, R = 10 uses ``dg_calls``/``dg_repeats`` (it is ~1,000x slower)."""
    device = resolve_device(device)
    inv = inventory(dataset, checkpoints)
    batch = _images(dataset, BATCH).to(device)
    one = batch[:1]
    out: dict[str, Any] = {"dataset": dataset, "threads": torch.get_num_threads(), "batch_size": BATCH}
    runs: list[tuple[str, str, tuple[int, int] | None]] = []
    for name in ("lqvae", "lqvae_robust", "lqvae_adv", "vae"):
        if name in inv.purifiers:  # a checkpoint not shipped for this dataset is skipped
            runs.append((name, name, None))
    if "defensegan" in inv.purifiers:
        runs.append(("defensegan", "defensegan", None))  # the config's L = 200, R = 10
        runs.append(("defensegan_live", "defensegan", (50, 2)))
    for label, name, search in runs:
        model = load_named(dataset, name, kind="purifier", device=device, root=checkpoints).model
        slow = name == "defensegan"
        if search is not None:
            model.search_steps, model.restarts = search  # type: ignore[assignment]
        if slow:
            out[f"{label}_search"] = f"L={model.search_steps}, R={model.restarts}"  # type: ignore[attr-defined]
        calls = dg_calls if slow and search is None else calls
        repeats = dg_repeats if slow and search is None else repeats
        with torch.inference_mode(mode=not slow):  # the latent search needs autograd
            single = timed(lambda: model.purify(one), max(1, calls), warmup=1 if slow else 10)
            batched = timed(lambda: model.purify(batch), max(1, repeats), warmup=1)
        out[f"{label}_single_ms_median"] = statistics.median(single) * 1e3
        out[f"{label}_batch_images_per_s"] = BATCH / statistics.median(batched)
        out[f"{label}_calls"] = len(single)
    if "A" in inv.classifiers:
        clf = load_named(dataset, "A", kind="classifier", device=device, root=checkpoints).model
        with torch.inference_mode():
            out["classifier_forward_ms"] = statistics.median(timed(lambda: clf(one), calls, warmup=10)) * 1e3
    if "defensegan_single_ms_median" in out and "lqvae_single_ms_median" in out:
        out["defensegan_over_lqvae_single"] = out["defensegan_single_ms_median"] / out["lqvae_single_ms_median"]
        out["defensegan_over_lqvae_batch"] = out["lqvae_batch_images_per_s"] / out["defensegan_batch_images_per_s"]
    if "defensegan_live_single_ms_median" in out and "lqvae_single_ms_median" in out:
        out["defensegan_live_over_lqvae_single"] = (out["defensegan_live_single_ms_median"]
                                                    / out["lqvae_single_ms_median"])
    return out
