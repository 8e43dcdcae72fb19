"""Scoring one attack on a batch: accuracies, failures, norms, bit flips and Theorem 1's prediction.

``evaluate_batch`` attacks a batch once (:func:`attack_in_chunks`) and scores it with ``score``. Accuracies are in percent, all on the same images:

* ``clean_accuracy``: the classifier on the clean images;
* ``undefended_accuracy``: the classifier alone on the adversarial images;
* ``clean_accuracy_defended`` and ``defended_accuracy`` (with a purifier only): purifier -> classifier on
  the clean and on the adversarial images; ``defended_accuracy_stochastic`` for ``bpda_eot`` averages
  fresh stochastic purifications.

Files written before these names have ``attacked_accuracy`` (the defended accuracy when there was a
purifier, else the undefended one) and ``attacked_accuracy_undefended``; :mod:`lqvae.spec.records`
reads both.

With a binary LQ-VAE the result also holds the bit-flip statistics of paper Figure 3 (``bits``: Hamming
distance between the codes of clean and adversarial images) and Theorem 1's prediction beside the
observation (``theorem1``: :meth:`lqvae.spec.results.Theorem1.to_dict` of
:func:`lqvae.core.theory.theorem1_batch`, fed with every image's and coordinate's measured latent shift;
its readings with one |delta_z| for every bit are described there).

Images are attacked in fixed chunks of the global index (:func:`attack_in_chunks`), chunk ``k`` with the
seed ``chunk_seed(spec.seed, k)``, so a result does not depend on how many processes share the work:
under ``torchrun`` each rank attacks whole chunks (:mod:`lqvae.core.distributed`), the per-image
outcomes are gathered in global order and every rank scores the same merged result, which is exactly
what one process gives. (Before issue 19 one seed drew the random starts of the whole run, so results
of more than one chunk written then differ from today's by the random starts' luck.)
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from lqvae.attacks.runners import AttackResult, AttackSpec, run_attack
from lqvae.attacks.settings import attack_params, attack_setup
from lqvae.core import distributed
from lqvae.core.fast import optimize_for_inference
from lqvae.core.device import device_of
from lqvae.core.models import LQVAE, StochasticPurifier
from lqvae.core.theory import theorem1_batch
from lqvae.io import validate as check
from lqvae.spec.attacks import EOT_CHECK_SAMPLES, THREATS
from lqvae.spec.results import FLIP_SHARE

LIPSCHITZ_IMAGES = 64  # clean images used to measure the encoder's gradient norm


@torch.inference_mode()
def predictions(classifier: nn.Module, images: Tensor, purifier: nn.Module | None = None, *,
                batch_size: int = 500) -> Tensor:
    """Predicted classes of ``classifier`` on ``images`` (purified first when ``purifier`` is given)."""
    device = device_of(classifier)
    classifier.eval()
    if purifier is not None:  # no gradient here: the fused path, whose codes and predictions are identical
        purifier = optimize_for_inference(purifier.eval())  # (tests/engine/test_fast_path.py); attacks keep eager
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device)
        out.append(classifier(purifier(x) if purifier is not None else x).argmax(1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


@torch.inference_mode()
def stochastic_predictions(classifier: nn.Module, images: Tensor, purifier: LQVAE, *, samples: int = EOT_CHECK_SAMPLES,
                           batch_size: int = 64, seed: int = 1) -> Tensor:
    """Argmax of the mean class probability over ``samples`` stochastic purifications per image."""
    device = device_of(classifier)
    stoch = StochasticPurifier(purifier).eval()
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            probs = sum(torch.softmax(classifier(stoch(x)), -1) for _ in range(samples))
            out.append(probs.argmax(1).cpu())  # type: ignore[union-attr]
    return torch.cat(out)


@torch.inference_mode()
def latent_means(purifier: LQVAE, images: Tensor, batch_size: int = 500) -> Tensor:
    device = device_of(purifier)
    return torch.cat([purifier.encoder(images[i:i + batch_size].to(device))[0].cpu()
                      for i in range(0, len(images), batch_size)])


def accuracy(pred: Tensor, labels: Tensor) -> float:
    return float((pred == labels).float().mean() * 100) if len(labels) else float("nan")


def bit_flip_stats(hamming: np.ndarray, latent_dim: int) -> dict[str, Any]:
    """Histogram (index = bits flipped), mean/median flips and the share under 6 % of the bits."""
    hist = np.bincount(hamming.astype(np.int64), minlength=latent_dim + 1)[: latent_dim + 1]
    n = len(hamming)
    return {
        "n_images": int(n), "latent_dim": int(latent_dim), "hamming_histogram": hist.tolist(),
        "mean_flips": float(hamming.mean()) if n else None, "median_flips": float(np.median(hamming)) if n else None,
        "share_below_6pct": float((hamming < FLIP_SHARE * latent_dim).mean() * 100) if n else None,
    }


def _norm_stats(values: np.ndarray) -> tuple[float | None, float | None]:
    return (float(values.mean()), float(np.median(values))) if len(values) else (None, None)


def score(result: AttackResult, images: Tensor, labels: Tensor, *, classifier: nn.Module,
          purifier: nn.Module | None = None, stochastic: bool = False, lipschitz: float | None = None,
          clean_pred: Tensor | None = None, clean_defended_pred: Tensor | None = None) -> dict[str, Any]:
    """Accuracies, failures, norms and bit statistics of one attack result against one defense.

    Args:
        result: the attack's output on ``images``.
        images, labels: the clean batch.
        classifier: the classifier the defense protects (scored on raw and purified images).
        purifier: the defense, or None for the undefended classifier.
        stochastic: also score the stochastic purification (mean over fresh draws).
        lipschitz: the measured encoder gradient norm for Theorem 1's L2 reading (None = skip it).
        clean_pred: the classifier's clean predictions if already known.
        clean_defended_pred: its predictions on purified clean images if already known.
    """
    adv = torch.from_numpy(result.adversarial)
    ok = ~result.failed
    if clean_pred is None:
        clean_pred = predictions(classifier, images)
    out: dict[str, Any] = {
        "n": len(labels), "clean_accuracy": accuracy(clean_pred, labels),
        "undefended_accuracy": accuracy(predictions(classifier, adv), labels),
        "attack_failures": int(result.failed.sum()), "attack_success_rate": float(ok.mean() * 100) if len(ok) else None,
        "failure_reasons": dict(Counter(m for m in result.messages if m).most_common(5)),
    }
    out["mean_linf"], out["median_linf"] = _norm_stats(result.linf[ok])
    out["mean_l2"], out["median_l2"] = _norm_stats(result.l2[ok])
    if purifier is None:
        return out
    if clean_defended_pred is None:
        clean_defended_pred = predictions(classifier, images, purifier)
    out["clean_accuracy_defended"] = accuracy(clean_defended_pred, labels)
    out["defended_accuracy"] = accuracy(predictions(classifier, adv, purifier), labels)
    if stochastic and isinstance(purifier, LQVAE):
        out["defended_accuracy_stochastic"] = accuracy(stochastic_predictions(classifier, adv, purifier), labels)
    if isinstance(purifier, LQVAE) and purifier.quantized:  # bit flips: only a binary code has bits
        sel = torch.from_numpy(ok)
        mu, mu_adv = latent_means(purifier, images[sel]), latent_means(purifier, adv[sel])
        eta = purifier.cfg.eta
        hamming = ((mu.abs() <= eta) != (mu_adv.abs() <= eta)).sum(1).numpy()
        out["bits"] = bit_flip_stats(hamming, mu.shape[1] if len(mu) else purifier.cfg.latent_dim)
        if len(mu):  # Theorem 1 fed with each image's and coordinate's measured shift, beside the flips seen
            out["theorem1"] = theorem1_batch(mu_adv - mu, hamming, eta=eta, l2=result.l2[ok], linf=result.linf[ok],
                                             lipschitz_target=purifier.cfg.lipschitz_target,
                                             lipschitz_measured=lipschitz).to_dict()
    return out


def subset_result(result: AttackResult, k: int) -> AttackResult:
    """The first ``k`` images of an attack result (a cell scored on fewer images than were attacked)."""
    return dataclasses.replace(result, adversarial=result.adversarial[:k], success=result.success[:k],
                               failed=result.failed[:k], linf=result.linf[:k], l2=result.l2[:k],
                               messages=result.messages[:k])


def measured_lipschitz(purifier: nn.Module | None, images: Tensor) -> float | None:
    """Median ||grad_x sum_j mu_j(x)||_2 over a few clean images (the quantity the penalty targets)."""
    if not isinstance(purifier, LQVAE) or not len(images):
        return None
    from lqvae.core.diagnostics import lipschitz_norms

    return float(lipschitz_norms(purifier, images[:LIPSCHITZ_IMAGES].to(device_of(purifier))).median())


def default_batch_size(spec: AttackSpec) -> int:
    """Images per foolbox call: 250 on a classifier alone, 100 through the purifier, 128 / S with EOT."""
    return {"whitebox": 250, "blackbox": 250, "bpda": 100}.get(spec.threat, 128)


def chunk_size(spec: AttackSpec, batch_size: int) -> int:
    """Images per chunk: one foolbox call of :func:`run_attack` (``batch_size / eot_samples`` for EOT)."""
    return max(1, batch_size // spec.eot_samples) if THREATS[spec.threat].stochastic else max(1, batch_size)


def chunk_seed(seed: int, k: int) -> int:
    """The seed of chunk ``k``'s random starts and draws: ``seed`` itself for the first chunk."""
    return (seed * 1_000_003 + k) % 2**63


def concat_results(parts: list[AttackResult], params: dict[str, Any], seconds: float) -> AttackResult:
    """Chunk results in order as one :class:`AttackResult`."""
    if not parts:
        raise ValueError("no attack results to concatenate")
    return AttackResult(
        adversarial=np.concatenate([p.adversarial for p in parts]), success=np.concatenate([p.success for p in parts]),
        failed=np.concatenate([p.failed for p in parts]), linf=np.concatenate([p.linf for p in parts]),
        l2=np.concatenate([p.l2 for p in parts]), seconds=seconds,
        messages=[m for p in parts for m in p.messages], params=params)


def attack_in_chunks(spec: AttackSpec, images: Tensor, labels: Tensor, *, classifier: nn.Module,
                     purifier: nn.Module | None = None, substitute: nn.Module | None = None, batch_size: int,
                     should_stop: Callable[[], bool] | None = None, progress: Callable[[float], None] | None = None,
                     runner: Callable[..., AttackResult] = run_attack) -> tuple[AttackResult, dict[str, Any]]:
    """:func:`run_attack` on fixed chunks of the images, each seeded alone, shared among the ranks.

    Chunk ``k`` is ``images[k * c:(k + 1) * c]`` with ``c = chunk_size(spec, batch_size)``, attacked with
    ``spec.seed`` replaced by ``chunk_seed(spec.seed, k)``; under ``torchrun`` rank ``r`` attacks the
    chunks ``k % world == r`` and the outcomes are gathered, so every rank returns the result one process
    gives. ``runner`` attacks one chunk (:func:`run_attack`; a test may replace it).

    Returns:
        The merged result (``seconds``: the slowest rank's attack time) and the distribution record
        ``{"world_size", "backend", "chunk_size", "images_per_rank"}``.
    """
    t0 = time.perf_counter()
    w = distributed.world()
    c = chunk_size(spec, batch_size)
    ranges = distributed.chunks(len(images), c)
    mine = distributed.shard(len(ranges), w)
    done: list[tuple[int, AttackResult]] = []
    for i, k in enumerate(mine):
        step = None if progress is None else (lambda frac, i=i: progress((i + frac) / len(mine)))
        r = ranges[k]
        done.append((k, runner(dataclasses.replace(spec, seed=chunk_seed(spec.seed, k)), images[r.start:r.stop],
                               labels[r.start:r.stop], classifier=classifier, purifier=purifier, substitute=substitute,
                               should_stop=should_stop, progress=step, batch_size=batch_size)))
    if progress is not None:
        progress(1.0)
    ranks = distributed.gather((done, time.perf_counter() - t0))
    by_chunk = dict(pair for rank_done, _ in ranks for pair in rank_done)
    assert sorted(by_chunk) == list(range(len(ranges))), "every chunk is attacked by exactly one rank"
    record = {**w.to_dict(), "chunk_size": c,
              "images_per_rank": [sum(len(ranges[k]) for k, _ in rank_done) for rank_done, _ in ranks]}
    seconds = max(s for _, s in ranks)
    if not ranges:  # no image: run_attack's own empty result (its checks still apply)
        return runner(spec, images, labels, classifier=classifier, purifier=purifier, substitute=substitute,
                      batch_size=batch_size), record
    return concat_results([by_chunk[k] for k in range(len(ranges))], attack_params(spec), seconds), record


def evaluate_batch(spec: AttackSpec, images: Tensor, labels: Tensor, *, classifier: nn.Module,
                   purifier: nn.Module | None = None, substitute: nn.Module | None = None,
                   batch_size: int | None = None, should_stop: Callable[[], bool] | None = None,
                   progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Attack once with ``spec`` and score against ``purifier`` -> ``classifier`` (or the classifier alone).

    Returns a JSON-ready dict: ``attack, threat, preset, params, n, clean_accuracy, undefended_accuracy,
    attack_failures, mean_linf, mean_l2, seconds, distributed``; with a purifier also
    ``clean_accuracy_defended, defended_accuracy`` (plus ``defended_accuracy_stochastic`` for ``bpda_eot``),
    and with a binary LQ-VAE ``bits, theorem1``. Accuracies in percent (see the module doc).
    ``distributed`` records the world size and the images each rank attacked (:func:`attack_in_chunks`);
    under ``torchrun`` every rank returns the same result, equal to one process's but for the timings
    and that record.

    Raises:
        lqvae.io.validate.InputError: ``images`` is not (N >= 1, C, H, W) of the models' shape, finite, in [0, 1]
            (or uint8), ``labels`` not N class indices, or ``spec`` does not fit the models given.
    """
    images, labels = _check_batch(spec, images, labels, classifier=classifier, purifier=purifier,
                                  substitute=substitute, batch_size=batch_size)
    t0 = time.perf_counter()
    result, record = attack_in_chunks(spec, images, labels, classifier=classifier, purifier=purifier,
                                      substitute=substitute, should_stop=should_stop, progress=progress,
                                      batch_size=batch_size or default_batch_size(spec))
    out: dict[str, Any] = {"attack": spec.attack, "threat": spec.threat, "preset": spec.preset,
                           "params": result.params, "attack_seconds": round(result.seconds, 3)}
    out.update(score(result, images, labels, classifier=classifier, purifier=purifier,
                     stochastic=spec.threat == "bpda_eot", lipschitz=measured_lipschitz(purifier, images)))
    out["seconds"] = round(time.perf_counter() - t0, 3)
    out["distributed"] = record
    return out


def _check_batch(spec: AttackSpec, images: Tensor, labels: Tensor, *, classifier: nn.Module,
                 purifier: nn.Module | None, substitute: nn.Module | None,
                 batch_size: int | None) -> tuple[Tensor, Tensor]:
    """``evaluate_batch``'s arguments checked before any attack runs (:mod:`lqvae.io.validate`)."""
    shape = check.model_image_shape(classifier=classifier, purifier=purifier, substitute=substitute)
    images = check.images(images, shape=shape)
    k = check.declared_classes(classifier)
    if k is None:  # no cfg.num_classes: the classifier's output width (its refusal is the images' shape)
        k = check.probe_classes(classifier, images[:1].to(device_of(classifier)))
    labels = check.labels(labels, n=len(images), num_classes=k)
    attack_setup(spec, purifier=purifier, substitute=substitute, num_classes=k, pixels=images[0].numel())
    if batch_size is not None:
        check.integer(batch_size, "batch_size", low=1)
    return images, labels



def clean_metrics(dataset: str, images: Tensor, labels: Tensor, *, device: torch.device,
                  purifier: str = "lqvae", root: str | None = None) -> dict[str, Any]:
    """Every shipped classifier's clean accuracy and, when ``purifier`` is shipped, its accuracy on the
    purified images plus the purifier's bit statistics (``python -m lqvae.evaluate clean``).

    Raises:
        FileNotFoundError: no classifier checkpoint of ``dataset`` was found.
    """
    from lqvae.core.diagnostics import lqvae_report, predict, purify_all
    from lqvae.io.registry import checkpoint_root, inventory, load_named

    inv = inventory(dataset, root)
    if not inv.classifiers:
        folder = Path(root or checkpoint_root()) / dataset
        raise FileNotFoundError(f"no classifier checkpoints for {dataset} in {folder}"
                                f"{f' (refused: {inv.errors})' if inv.errors else ''}; pass --checkpoints DIR")
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


__all__ = ["predictions", "stochastic_predictions", "latent_means", "accuracy", "bit_flip_stats",
           "score", "subset_result", "measured_lipschitz", "default_batch_size", "chunk_size", "chunk_seed",
           "concat_results", "attack_in_chunks", "evaluate_batch", "clean_metrics"]
