"""Batched evaluation of attacks and defenses, and the ``run``/``table`` commands of ``lqvae.cli.evaluate``.

``evaluate_batch`` attacks a batch once (:func:`lqvae.attacks.runners.run_attack`) and scores it: clean and
attacked accuracy (percent), attack failures, achieved norms, the bit-flip statistics of paper
Figure 3 (Hamming distance between the codes of clean and adversarial images) and Theorem 1's
prediction beside the observation, read three ways:

* ``paper``: |delta_z| = K * ||delta||_inf, the paper's plug-in (an L-inf size in an L2 bound);
* ``l2_bound``: |delta_z| = L * ||delta||_2 with L the measured encoder gradient norm (median);
* ``measured``: |delta_z| = mean_j |mu_adv_j - mu_j|, the latent shift the attack actually caused;
* ``per_coordinate``: every image's and coordinate's own shift |mu_adv_ij - mu_ij| (Poisson-binomial);
* ``l2_target``: |delta_z| = K * ||delta||_2, the theorem's bound with the perturbation's real size.

``python -m lqvae.evaluate run`` evaluates one attack/threat/defense and writes JSON;
``python -m lqvae.evaluate table --paper-table 1|2|4|5|7`` reproduces a paper table, resumable
(finished attack runs are kept in ``<out>/cache/``), writing Markdown, CSV and JSON with the paper's
numbers alongside. Baseline columns (Defense-GAN, Madry, adversarial training) are filled when
their checkpoints exist (``BASELINE_PURIFIERS``, ``BASELINE_CLASSIFIERS``) and shown as "—" otherwise.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from lqvae.io import validate as check
from lqvae.attacks.runners import (ATTACKS, EOT_CHECK_SAMPLES, PRESET_NAMES, THREATS, AttackResult, AttackSpec,
                           attack_params, run_attack)
from lqvae.io.checkpoint import CheckpointError, atomic_write, load_checkpoint
from lqvae.io.data import DATASETS, load_samples, load_split
from lqvae.core.device import DEVICE_CHOICES, resolve_device
from lqvae.core.models import LQVAE, StochasticPurifier
from lqvae.io.registry import checkpoint_root, inventory
from lqvae.core.theory import flip_probability, prob_k_flips

FLIP_SHARE = 0.06  # paper Figure 3: share of images with fewer than 6 % of the bits flipped
LIPSCHITZ_IMAGES = 64  # clean images used to measure the encoder's gradient norm
BASELINE_PURIFIERS = {"vae": "vae", "defensegan": "defensegan"}  # table column -> purifier checkpoint name
BASELINE_CLASSIFIERS = {"madry": "{}_madry", "adv_tr": "{}_advtr"}  # column -> classifier name pattern
# --defense names that swap the classifier instead of purifying (classifier A -> A_madry, ...)
CLASSIFIER_DEFENSES = {"madry": "{}_madry", "advtr": "{}_advtr"}
DEFENSEGAN_N = 100  # default images per Defense-GAN cell: its search (L = 200, R = 10) is ~1,000x an LQ-VAE


# ----------------------------------------------------------------------------- scoring
@torch.inference_mode()
def predictions(classifier: nn.Module, images: Tensor, purifier: nn.Module | None = None, *,
                batch_size: int = 500) -> Tensor:
    """Predicted classes of ``classifier`` on ``images`` (purified first when ``purifier`` is given)."""
    device = _device_of(classifier)
    classifier.eval()
    if purifier is not None:
        purifier.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device)
        out.append(classifier(purifier(x) if purifier is not None else x).argmax(1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


@torch.inference_mode()
def stochastic_predictions(classifier: nn.Module, images: Tensor, purifier: LQVAE, *, samples: int = EOT_CHECK_SAMPLES,
                           batch_size: int = 64, seed: int = 1) -> Tensor:
    """Argmax of the mean class probability over ``samples`` stochastic purifications per image."""
    device = _device_of(classifier)
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
    device = _device_of(purifier)
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


def _binomial_reading(delta_z: float, m: int, eta: float) -> dict[str, float]:
    p = flip_probability(delta_z, eta)
    below = sum(prob_k_flips(k, m, p) for k in range(m + 1) if k < FLIP_SHARE * m)
    return {"delta_z": float(delta_z), "p_flip": p, "expected_flips": m * p, "share_below_6pct": below * 100}


def _per_coordinate_reading(shift: Tensor, eta: float) -> dict[str, float]:
    """Theorem 1 with each image's and coordinate's own measured |delta_z_ij| (shift (N, M)): bit j of
    image i flips with p_ij = Phi(eta + d) - Phi(eta - d); the count per image is Poisson-binomial."""
    d = shift.abs().double()
    p = torch.special.ndtr(eta + d) - torch.special.ndtr(eta - d)  # (N, M)
    m = p.shape[1]
    pmf = torch.zeros(p.shape[0], m + 1, dtype=torch.float64)
    pmf[:, 0] = 1.0
    for j in range(m):  # Poisson-binomial pmf of every image at once
        pj = p[:, j:j + 1]
        pmf = torch.cat([pmf[:, :1] * (1 - pj), pmf[:, 1:] * (1 - pj) + pmf[:, :-1] * pj], dim=1)
    below = pmf[:, :math.ceil(FLIP_SHARE * m)].sum(1)  # P(flips < 6 % of m)
    return {"delta_z": float(d.mean()), "p_flip": float(p.mean()), "expected_flips": float(p.sum(1).mean()),
            "share_below_6pct": float(below.mean() * 100)}


def theorem1_batch(mu: Tensor, mu_adv: Tensor, linf: np.ndarray, l2: np.ndarray, *, eta: float, lipschitz_target: float,
                   lipschitz_measured: float | None) -> dict[str, Any]:
    """Theorem 1's flip predictions, several readings of |delta_z| (see the module doc), averaged over images.

    ``per_coordinate`` is the theorem fed with what the attack did: each image's measured shift of each
    coordinate. ``l2_target`` is the theorem's own bound for this perturbation, |delta_z| <= K * ||delta||_2,
    with the L2 size the attack actually used (``paper`` plugs in the L-inf size instead).
    """
    m = mu.shape[1]
    out: dict[str, Any] = {
        "paper": _binomial_reading(lipschitz_target * float(linf.mean()), m, eta),
        "measured": _binomial_reading(float((mu_adv - mu).abs().mean()), m, eta),
        "per_coordinate": _per_coordinate_reading(mu_adv - mu, eta),
        "l2_target": _binomial_reading(lipschitz_target * float(l2.mean()), m, eta),
        "lipschitz_target": lipschitz_target, "lipschitz_measured": lipschitz_measured,
    }
    if lipschitz_measured is not None:
        out["l2_bound"] = _binomial_reading(lipschitz_measured * float(l2.mean()), m, eta)
    return out


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
        "attacked_accuracy_undefended": accuracy(predictions(classifier, adv), labels),
        "attack_failures": int(result.failed.sum()), "attack_success_rate": float(ok.mean() * 100) if len(ok) else None,
        "failure_reasons": dict(Counter(m for m in result.messages if m).most_common(5)),
    }
    out["mean_linf"], out["median_linf"] = _norm_stats(result.linf[ok])
    out["mean_l2"], out["median_l2"] = _norm_stats(result.l2[ok])
    if purifier is None:
        out["attacked_accuracy"] = out["attacked_accuracy_undefended"]
        return out
    if clean_defended_pred is None:
        clean_defended_pred = predictions(classifier, images, purifier)
    out["clean_accuracy_defended"] = accuracy(clean_defended_pred, labels)
    out["attacked_accuracy"] = accuracy(predictions(classifier, adv, purifier), labels)
    if stochastic and isinstance(purifier, LQVAE):
        out["attacked_accuracy_stochastic"] = accuracy(stochastic_predictions(classifier, adv, purifier), labels)
    if isinstance(purifier, LQVAE) and purifier.quantized:  # bit flips: only a binary code has bits
        sel = torch.from_numpy(ok)
        mu, mu_adv = latent_means(purifier, images[sel]), latent_means(purifier, adv[sel])
        eta = purifier.cfg.eta
        hamming = ((mu.abs() <= eta) != (mu_adv.abs() <= eta)).sum(1).numpy()
        out["bits"] = bit_flip_stats(hamming, mu.shape[1] if len(mu) else purifier.cfg.latent_dim)
        if len(mu):
            out["theorem1"] = theorem1_batch(mu, mu_adv, result.linf[ok], result.l2[ok], eta=eta,
                                             lipschitz_target=purifier.cfg.lipschitz_target,
                                             lipschitz_measured=lipschitz)
            out["theorem1"]["observed"] = {"mean_flips": out["bits"]["mean_flips"],
                                           "share_below_6pct": out["bits"]["share_below_6pct"]}
    return out


def subset_result(result: AttackResult, k: int) -> AttackResult:
    """The first ``k`` images of an attack result (a cell scored on fewer images than were attacked)."""
    return dataclasses.replace(result, adversarial=result.adversarial[:k], success=result.success[:k],
                               failed=result.failed[:k], linf=result.linf[:k], l2=result.l2[:k],
                               messages=result.messages[:k])


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def measured_lipschitz(purifier: nn.Module | None, images: Tensor) -> float | None:
    """Median ||grad_x sum_j mu_j(x)||_2 over a few clean images (the quantity the penalty targets)."""
    if not isinstance(purifier, LQVAE) or not len(images):
        return None
    from lqvae.evaluate.diagnostics import lipschitz_norms

    return float(lipschitz_norms(purifier, images[:LIPSCHITZ_IMAGES].to(_device_of(purifier))).median())


def default_batch_size(spec: AttackSpec) -> int:
    """Images per foolbox call: 250 on a classifier alone, 100 through the purifier, 128 / S with EOT."""
    return {"whitebox": 250, "blackbox": 250, "bpda": 100}.get(spec.threat, 128)


def evaluate_batch(spec: AttackSpec, images: Tensor, labels: Tensor, *, classifier: nn.Module,
                   purifier: nn.Module | None = None, substitute: nn.Module | None = None,
                   batch_size: int | None = None, should_stop: Callable[[], bool] | None = None,
                   progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Attack once with ``spec`` and score against ``purifier`` -> ``classifier`` (or the classifier alone).

    Returns a JSON-ready dict: ``attack, threat, preset, params, n, clean_accuracy, attacked_accuracy``
    (defended when there is a purifier), ``attacked_accuracy_undefended, attack_failures, mean_linf,
    mean_l2, seconds``, and with an LQ-VAE ``clean_accuracy_defended, bits, theorem1`` (plus
    ``attacked_accuracy_stochastic`` for ``bpda_eot``). Accuracies in percent.

    Raises:
        lqvae.io.validate.InputError: ``images`` is not (N >= 1, C, H, W) of the models' shape, finite, in [0, 1]
            (or uint8), ``labels`` not N class indices, or ``spec`` does not fit the models given.
    """
    images, labels = _check_batch(spec, images, labels, classifier=classifier, purifier=purifier,
                                  substitute=substitute, batch_size=batch_size)
    t0 = time.perf_counter()
    result = run_attack(spec, images, labels, classifier=classifier, purifier=purifier,  # type: ignore[arg-type]
                        substitute=substitute, should_stop=should_stop, progress=progress,
                        batch_size=batch_size or default_batch_size(spec))
    out: dict[str, Any] = {"attack": spec.attack, "threat": spec.threat, "preset": spec.preset,
                           "params": result.params, "attack_seconds": round(result.seconds, 3)}
    out.update(score(result, images, labels, classifier=classifier, purifier=purifier,
                     stochastic=spec.threat == "bpda_eot", lipschitz=measured_lipschitz(purifier, images)))
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _check_batch(spec: AttackSpec, images: Tensor, labels: Tensor, *, classifier: nn.Module,
                 purifier: nn.Module | None, substitute: nn.Module | None,
                 batch_size: int | None) -> tuple[Tensor, Tensor]:
    """``evaluate_batch``'s arguments checked before any attack runs (:mod:`lqvae.io.validate`)."""
    shape = check.model_image_shape(classifier=classifier, purifier=purifier, substitute=substitute)
    images = check.images(images, shape=shape)
    k = check.declared_classes(classifier)
    if k is None:  # no cfg.num_classes: the classifier's output width (its refusal is the images' shape)
        k = check.probe_classes(classifier, images[:1].to(_device_of(classifier)))
    labels = check.labels(labels, n=len(images), num_classes=k)
    check.attack_setup(spec, purifier=purifier, substitute=substitute, num_classes=k, pixels=images[0].numel())
    if batch_size is not None:
        check.integer(batch_size, "batch_size", low=1)
    return images, labels


# ----------------------------------------------------------------------------- loading
def load_images(dataset: str, n: int | None, *, data_dir: str | None = None, samples: bool = False) -> tuple[Tensor, Tensor]:
    """The first ``n`` test images, or ``n`` evenly spaced bundled samples (they are sorted by class),
    as float (N, 1, 28, 28) in [0, 1] and labels."""
    if not samples:
        return load_split(dataset, "test", data_dir).tensors(n)
    x, y = load_samples(dataset).tensors()
    if n is not None and n < len(x):
        idx = torch.from_numpy(np.linspace(0, len(x) - 1, n).round().astype(np.int64))
        x, y = x[idx], y[idx]
    return x, y


def load_classifier(dataset: str, name: str, *, device: torch.device, root: str | None = None) -> nn.Module:
    inv = inventory(dataset, root)
    if name not in inv.classifiers:
        folder = Path(root or checkpoint_root()) / dataset
        raise SystemExit(f"no classifier {name!r} for {dataset} in {folder} (found {sorted(inv.classifiers) or 'none'}"
                         f"{'; problems: ' + str(inv.errors) if inv.errors else ''}); train it with "
                         f"`python -m lqvae.train classifier --arch {name[:1]} --dataset {dataset}` or pass --checkpoints")
    return load_checkpoint(inv.classifiers[name], kind="classifier", device=device).model


def load_defense(dataset: str, name: str, *, device: torch.device, root: str | None = None) -> nn.Module | None:
    """``none`` -> None; otherwise the purifier checkpoint ``<name>.safetensors`` found by the registry."""
    if name in ("none", ""):
        return None
    inv = inventory(dataset, root)
    if name not in inv.purifiers:
        folder = Path(root or checkpoint_root()) / dataset
        raise SystemExit(f"no defense {name!r} for {dataset} in {folder} (purifiers found: "
                         f"{sorted(inv.purifiers) or 'none'}); pass --defense none or one of those, or --checkpoints DIR")
    try:
        return load_checkpoint(inv.purifiers[name], device=device).model
    except CheckpointError as exc:
        raise SystemExit(str(exc)) from None


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


class _Bar:
    """tqdm bar over 0..100 % fed by fractional progress callbacks."""

    def __init__(self, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=100, desc=desc, unit="%", bar_format="{l_bar}{bar}| {n}% [{elapsed}<{remaining}]")

    def __call__(self, frac: float) -> None:
        target = int(100.0 * frac)
        if target > self.bar.n:
            self.bar.update(target - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _write_json(path: str | Path, data: Any) -> None:
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


# ----------------------------------------------------------------------------- `run`
def spec_from_args(args: argparse.Namespace) -> AttackSpec:
    try:
        return AttackSpec(attack=args.attack, eps=args.eps, steps=args.steps, preset=args.preset,
                          targeted=args.target is not None, target=args.target, threat=args.threat,
                          bpda_backward=args.bpda_backward, eot_samples=args.eot_samples, restarts=args.restarts,
                          seed=args.seed)
    except ValueError as exc:
        raise SystemExit(f"invalid attack settings: {exc}") from None


def cmd_run(args: argparse.Namespace) -> dict[str, Any]:
    """``run``: one attack, threat model and defense on the first n test images; one line + JSON."""
    device = resolve_device(args.device)
    spec = spec_from_args(args)
    classifier_name, defense = args.classifier, args.defense
    if defense in CLASSIFIER_DEFENSES:  # a classifier-side defense: attack and score the hardened classifier
        if spec.threat in ("bpda", "bpda_eot"):
            raise SystemExit(f"--defense {defense} is an adversarially trained classifier, not a purifier: attack it "
                             "with --threat whitebox (that is already the fully adaptive attack)")
        classifier_name, defense = CLASSIFIER_DEFENSES[defense].format(args.classifier), "none"
    if spec.threat in ("bpda", "bpda_eot") and defense == "none":
        raise SystemExit(f"--threat {spec.threat} attacks a defense end to end; pass --defense lqvae "
                         "(or use --threat whitebox for the classifier alone)")
    if spec.threat == "blackbox" and not args.substitute:
        raise SystemExit("--threat blackbox needs --substitute A|B|C (the classifier the attack sees)")
    images, labels = load_images(args.dataset, args.n, data_dir=args.data_dir, samples=args.samples)
    classifier = load_classifier(args.dataset, classifier_name, device=device, root=args.checkpoints)
    purifier = load_defense(args.dataset, defense, device=device, root=args.checkpoints)
    if args.defensegan_steps is not None or args.defensegan_restarts is not None:
        if not hasattr(purifier, "restarts"):
            raise SystemExit("--defensegan-steps/--defensegan-restarts apply to --defense defensegan only")
        purifier.search_steps = args.defensegan_steps or purifier.search_steps  # type: ignore[union-attr]
        purifier.restarts = args.defensegan_restarts or purifier.restarts  # type: ignore[union-attr]
    substitute = (load_classifier(args.dataset, args.substitute, device=device, root=args.checkpoints)
                  if spec.threat == "blackbox" else None)
    bar = None if args.quiet else _Bar(f"{args.attack}/{args.threat}")
    try:
        res = evaluate_batch(spec, images, labels, classifier=classifier, purifier=purifier, substitute=substitute,
                             batch_size=args.batch_size, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    out = {"dataset": args.dataset, "classifier": classifier_name,
           "substitute": args.substitute if spec.threat == "blackbox" else None, "defense": args.defense, **res}
    if hasattr(purifier, "restarts"):
        out["defensegan_search"] = {"steps": purifier.search_steps, "restarts": purifier.restarts}  # type: ignore[union-attr]
    bits = out.get("bits") or {}
    print(f"{args.dataset} {classifier_name}+{args.defense} {args.attack}/{args.threat} ({args.preset}) n={out['n']}: "
          f"clean {_fmt(out['clean_accuracy'])}% -> attacked {_fmt(out['attacked_accuracy'])}% "
          f"(undefended {_fmt(out['attacked_accuracy_undefended'])}%), failures {out['attack_failures']}, "
          f"mean Linf {_fmt(out['mean_linf'], 3)} L2 {_fmt(out['mean_l2'], 3)}"
          + (f", flips mean {_fmt(bits.get('mean_flips'), 1)} (<6%: {_fmt(bits.get('share_below_6pct'), 1)}%)"
             if bits else "")
          + f", {out['seconds']:.1f} s")
    if args.json:
        _write_json(args.json, out)
    return out


# ----------------------------------------------------------------------------- `table`
COLUMNS = {"no_attack": "No Attack", "no_defense": "No Defense", "lqvae": "LQ-VAE", "defensegan": "Defense-GAN",
           "madry": "Madry", "adv_tr": "Adv Tr", "vae": "VAE (ablation, ours)"}
T7_COLUMNS = {"lqvae": "LQ-VAE (FGSM, BPDA dH~)", "defensegan": "Defense-GAN (FGSM, BPDA)",
              "vae": "VAE ablation (FGSM, exact gradient)", "vae_pgd": "VAE ablation (PGD, exact gradient)",
              "lqvae_wb": "LQ-VAE (FGSM on classifier only)", "lqvae_st": "LQ-VAE (FGSM, BPDA straight-through)",
              "lqvae_pgd": "LQ-VAE (PGD, BPDA dH~)", "lqvae_eot": "LQ-VAE (PGD, BPDA+EOT)"}
_WB_ROWS = [(a, c) for a in ("fgsm", "deepfool", "cw") for c in "ABC"]
_BB_ROWS = [("A", "B"), ("A", "C"), ("B", "A"), ("B", "C"), ("C", "A"), ("C", "B")]


def _rows(values: list[tuple[float, ...]], keys: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    return {"/".join(k): dict(zip(COLUMNS, v)) for k, v in zip(keys, values)}


# Paper values (the paper's captions: Table 1 is Fashion-MNIST, Table 2 MNIST).
PAPER_TABLES: dict[tuple[int, str], dict[str, dict[str, float]]] = {
    (1, "fashion_mnist"): _rows([
        (92.76, 11.50, 77.00, 69.75, 78.87, 53.72), (91.17, 10.14, 69.41, 56.72, 76.94, 59.79),
        (89.06, 11.60, 67.07, 56.34, 64.16, 66.43), (92.76, 5.29, 79.30, 77.48, 57.17, 6.52),
        (91.17, 6.54, 79.41, 74.97, 52.58, 14.74), (89.06, 7.65, 79.89, 74.82, 39.93, 24.71),
        (92.76, 5.41, 80.64, 78.75, 62.55, 5.35), (91.17, 6.61, 81.58, 78.18, 56.48, 6.35),
        (89.06, 7.89, 82.31, 78.58, 43.72, 8.00), (91.00, 8.07, 77.40, 71.73, 59.15, 27.29)],
        _WB_ROWS + [("Average", "")]),
    (2, "mnist"): _rows([
        (99.40, 20.16, 89.17, 90.43, 96.85, 67.95), (99.41, 13.17, 86.70, 88.52, 96.20, 49.49),
        (98.37, 5.66, 83.02, 86.7, 84.71, 80.75), (99.40, 7.38, 97.60, 95.41, 67.82, 3.10),
        (99.41, 5.88, 97.74, 93.03, 66.35, 5.75), (98.37, 48.24, 97.42, 92.32, 62.38, 10.97),
        (99.40, 8.85, 97.66, 94.37, 69.15, 1.20), (99.41, 5.07, 97.20, 90.56, 71.35, 1.45),
        (98.37, 8.44, 97.36, 92.5, 58.65, 2.15), (99.06, 13.65, 93.76, 91.54, 74.83, 24.76)],
        _WB_ROWS + [("Average", "")]),
    (4, "mnist"): _rows([
        (99.40, 33.32, 88.09, 89.14, 97.17, 95.78), (99.40, 45.35, 90.60, 90.08, 98.27, 96.82),
        (99.41, 42.22, 90.63, 91.40, 97.38, 94.64), (99.41, 38.73, 89.92, 89.89, 98.03, 95.30),
        (98.37, 28.93, 91.98, 90.90, 90.59, 32.12), (98.37, 18.01, 89.38, 88.73, 89.14, 21.79),
        (99.06, 34.43, 90.10, 90.02, 95.10, 72.74)], _BB_ROWS + [("Average", "")]),
    (5, "fashion_mnist"): _rows([
        (92.76, 29.14, 77.74, 74.41, 60.11, 48.27), (92.76, 35.44, 77.11, 74.11, 62.58, 57.53),
        (91.17, 67.82, 81.33, 77.97, 80.71, 76.61), (91.17, 45.55, 78.83, 74.5, 69.19, 64.05),
        (89.06, 79.11, 82.12, 78.82, 80.99, 81.84), (89.06, 47.26, 80.76, 76.6, 67.46, 59.64),
        (91.00, 50.72, 79.65, 76.07, 70.17, 64.66)], _BB_ROWS + [("Average", "")]),
    (7, "mnist"): {"mnist": {"lqvae": 83.70, "defensegan": 55.17}},
    (7, "fashion_mnist"): {"fashion_mnist": {"lqvae": 57.41, "defensegan": 39.41}},
}
PAPER_TABLES[(1, "mnist")] = PAPER_TABLES[(2, "mnist")]  # same layout: a white-box table on either dataset
PAPER_TABLES[(2, "fashion_mnist")] = PAPER_TABLES[(1, "fashion_mnist")]
TABLE_DATASETS = {1: ("fashion_mnist",), 2: ("mnist",), 4: ("mnist",), 5: ("fashion_mnist",), 7: DATASETS}
TABLE_TITLES = {1: "White-box attacks on the classifier", 2: "White-box attacks on the classifier",
                4: "FGSM black-box (transfer from a substitute)", 5: "DeepFool black-box (transfer from a substitute)",
                7: "End-to-end white-box attacks on LQ-VAE + classifier (BPDA)"}


@dataclass
class Cell:
    row: str
    column: str
    classifier: str  # classifier scored
    defense: str | None  # purifier name, None = raw classifier
    clean: bool = False  # the "No Attack" column: clean accuracy of the classifier
    limit: int | None = None  # score on the first ``limit`` attacked images only (Defense-GAN's cost)


@dataclass
class Job:
    """One attack run (a model attacked once) and the table cells scored from its adversarials."""

    key: str
    dataset: str
    spec: AttackSpec
    attacked: str  # classifier attacked (whitebox/bpda) or substitute (blackbox)
    defense: str | None  # purifier attacked through (bpda, bpda_eot)
    cells: list[Cell] = field(default_factory=list)
    n: int = 0


def table_jobs(table: int, dataset: str, *, classifier: str = "A", n: int, n_fast: int, preset: str,
               seed: int = 0, eot_samples: int = 8, restarts: int = 1,
               n_override: dict[str, int] | None = None, n_baseline: int | None = None,
               n_defensegan: int = DEFENSEGAN_N) -> list[Job]:
    """The attack runs a paper table needs on ``dataset`` (baseline cells included; skipped later if missing).

    ``n_override`` maps ``"attack/threat"``, a threat or an attack name to the number of images for
    those runs (most specific first), e.g. ``{"cw": 300, "pgd/bpda": 1000, "bpda_eot": 200}``.

    Baselines run as jobs of their own, so adding one never invalidates the cached LQ-VAE runs:
    ``n_baseline`` caps their images (every attack), and Defense-GAN cells score only the first
    ``n_defensegan`` attacked images.
    """
    fast = ("fgsm", "bim", "pgd")
    n_override = n_override or {}

    def mk(key: str, attack: str, threat: str, attacked: str, defense: str | None = None, *,
           baseline: bool = False, **kw: Any) -> Job:
        spec = AttackSpec(attack=attack, threat=threat, preset=preset, seed=seed, **kw)
        quick = attack in fast and threat != "bpda_eot"
        size = next((n_override[k] for k in (f"{attack}/{threat}", threat, attack) if k in n_override),
                    n_fast if quick else n)
        if baseline and n_baseline:
            size = min(size, n_baseline)
        return Job(key, dataset, spec, attacked, defense, n=size)

    def purifier_cells(row: str, clf: str) -> list[Cell]:
        return [Cell(row, col, clf, name, limit=n_defensegan if name == "defensegan" else None)
                for col, name in BASELINE_PURIFIERS.items()]

    jobs: list[Job] = []
    if table in (1, 2):
        for attack, clf in _WB_ROWS:
            row = f"{attack}/{clf}"
            job = mk(f"{dataset}/wb/{attack}/{clf}", attack, "whitebox", clf)
            job.cells = [Cell(row, "no_attack", clf, None, clean=True), Cell(row, "no_defense", clf, None),
                         Cell(row, "lqvae", clf, "lqvae")]
            jobs.append(job)
            pur = mk(f"{dataset}/wb/{attack}/{clf}/baseline-purifiers", attack, "whitebox", clf, baseline=True)
            pur.cells = purifier_cells(row, clf)
            jobs.append(pur)
            for col, pattern in BASELINE_CLASSIFIERS.items():
                name = pattern.format(clf)
                base = mk(f"{dataset}/wb/{attack}/{name}", attack, "whitebox", name, baseline=True)
                base.cells = [Cell(row, col, name, None)]
                jobs.append(base)
    elif table in (4, 5):
        attack = "fgsm" if table == 4 else "deepfool"
        for sub in "ABC":
            job = mk(f"{dataset}/bb/{attack}/{sub}", attack, "blackbox", sub)
            base = mk(f"{dataset}/bb/{attack}/{sub}/baselines", attack, "blackbox", sub, baseline=True)
            for clf, s in _BB_ROWS:
                if s != sub:
                    continue
                row = f"{clf}/{sub}"
                job.cells += [Cell(row, "no_attack", clf, None, clean=True), Cell(row, "no_defense", clf, None),
                              Cell(row, "lqvae", clf, "lqvae")]
                base.cells += purifier_cells(row, clf)
                base.cells += [Cell(row, col, pattern.format(clf), None) for col, pattern in BASELINE_CLASSIFIERS.items()]
            jobs += [job, base]
    elif table == 7:
        row, c = dataset, classifier
        specs = [("lqvae", "fgsm", "bpda", "lqvae", {}), ("defensegan", "fgsm", "bpda", "defensegan", {}),
                 ("lqvae_wb", "fgsm", "whitebox", None, {}),
                 ("lqvae_st", "fgsm", "bpda", "lqvae", {"bpda_backward": "straight_through"}),
                 ("lqvae_pgd", "pgd", "bpda", "lqvae", {}),
                 ("lqvae_eot", "pgd", "bpda_eot", "lqvae", {"eot_samples": eot_samples, "restarts": restarts})]
        specs += [("vae", "fgsm", "bpda", "vae", {}), ("vae_pgd", "pgd", "bpda", "vae", {})]
        for col, attack, threat, defense, kw in specs:
            job = mk(f"{dataset}/t7/{col}/{c}", attack, threat, c, defense, **kw)
            if defense == "defensegan":  # the search runs inside every forward pass: attack only n_defensegan
                job.n = min(job.n, n_defensegan)
            job.cells = [Cell(row, col, c, defense or "lqvae")]
            jobs.append(job)
    else:
        raise SystemExit(f"--paper-table must be one of 1, 2, 4, 5, 7 (3 and 6 are CelebA), got {table}")
    return jobs


class _Models:
    """Checkpoints of one dataset, loaded on first use; ``fingerprint`` identifies the files by content."""

    def __init__(self, dataset: str, device: torch.device, root: str | None) -> None:
        self.inv = inventory(dataset, root)
        self.dataset, self.device, self.root = dataset, device, root
        self._cache: dict[tuple[str, str], nn.Module] = {}
        self.clean_defended: dict[tuple[str, str, int], Tensor] = {}  # (classifier, purifier, n) -> predictions
        self._digests: dict[Path, str] = {}

    def has(self, name: str | None, kind: str) -> bool:
        return name is None or name in (self.inv.classifiers if kind == "classifier" else self.inv.purifiers)

    def get(self, name: str | None, kind: str) -> nn.Module | None:
        if name is None:
            return None
        if (kind, name) not in self._cache:
            loader = load_classifier if kind == "classifier" else load_defense
            model = loader(self.dataset, name, device=self.device, root=self.root)
            assert model is not None
            self._cache[(kind, name)] = model
        return self._cache[(kind, name)]

    def fingerprint(self, names: list[tuple[str, str]]) -> dict[str, str]:
        out = {}
        for kind, name in names:
            path = (self.inv.classifiers if kind == "classifier" else self.inv.purifiers).get(name)
            if path is not None:
                out[f"{kind}:{name}"] = self.digest(path)
        return out

    def digest(self, path: Path) -> str:
        """SHA-256 (first 16 hex digits) of the file: a clone, a copy or a touch keeps cached runs valid."""
        if path not in self._digests:
            self._digests[path] = file_sha256(path)[:16]
        return self._digests[path]


def _job_models(job: Job) -> list[tuple[str, str]]:
    names = {("classifier", job.attacked)}
    if job.defense:
        names.add(("purifier", job.defense))
    for c in job.cells:
        names.add(("classifier", c.classifier))
        if c.defense:
            names.add(("purifier", c.defense))
    return sorted(names)


def run_job(job: Job, models: _Models, images: Tensor, labels: Tensor, *, batch_size: int | None,
            progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Attack once, then score every cell whose checkpoints exist; missing cells are left out."""
    spec = job.spec
    attacked = models.get(job.attacked, "classifier")
    defense = models.get(job.defense, "purifier")
    t0 = time.perf_counter()
    if spec.threat == "blackbox":
        result = run_attack(spec, images, labels, classifier=attacked, substitute=attacked,  # type: ignore[arg-type]
                            progress=progress, batch_size=batch_size or default_batch_size(spec))
    else:
        result = run_attack(spec, images, labels, classifier=attacked, purifier=defense,  # type: ignore[arg-type]
                            progress=progress, batch_size=batch_size or default_batch_size(spec))
    cells: dict[str, Any] = {}
    clean_cache: dict[tuple[str, int], Tensor] = {}
    for cell in job.cells:
        if not (models.has(cell.classifier, "classifier") and models.has(cell.defense, "purifier")):
            continue
        clf = models.get(cell.classifier, "classifier")
        pur = models.get(cell.defense, "purifier")
        k = min(cell.limit or len(labels), len(labels))
        x, y, res = images[:k], labels[:k], (result if k == len(labels) else subset_result(result, k))
        if (cell.classifier, k) not in clean_cache:
            clean_cache[(cell.classifier, k)] = predictions(clf, x)  # type: ignore[arg-type]
        defended = None
        if pur is not None and not cell.clean:
            key = (cell.classifier, cell.defense or "", k)
            if key not in models.clean_defended:
                models.clean_defended[key] = predictions(clf, x, pur)  # type: ignore[arg-type]
            defended = models.clean_defended[key]
        s = score(res, x, y, classifier=clf, purifier=pur,  # type: ignore[arg-type]
                  stochastic=spec.threat == "bpda_eot", lipschitz=measured_lipschitz(pur, x),
                  clean_pred=clean_cache[(cell.classifier, k)], clean_defended_pred=defended)
        s["value"] = s["clean_accuracy"] if cell.clean else s["attacked_accuracy"]
        cells[f"{cell.row}|{cell.column}"] = s
    return {"key": job.key, "n": len(labels), "params": result.params, "attacked": job.attacked,
            "attacked_through": job.defense, "seconds": round(time.perf_counter() - t0, 2), "cells": cells,
            "fingerprint": models.fingerprint(_job_models(job))}


def _job_runnable(job: Job, models: _Models) -> bool:
    return (models.has(job.attacked, "classifier") and models.has(job.defense, "purifier")
            and any(models.has(c.classifier, "classifier") and models.has(c.defense, "purifier") for c in job.cells))


def _merged_cache(path: Path, new: dict[str, Any]) -> dict[str, Any]:
    """The cache on disk plus ``new``: two table runs (one per dataset) may share a cache file."""
    try:
        disk = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        disk = {}
    return {**disk, **new}


def parse_n_override(items: list[str]) -> dict[str, int]:
    """``["cw=300", "pgd/bpda=1000"]`` -> ``{"cw": 300, "pgd/bpda": 1000}``, with a clear error otherwise."""
    known = set(ATTACKS) | set(THREATS)
    out: dict[str, int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        parts = key.split("/")
        if not sep or not value.isdigit() or int(value) < 1 or not all(p in known for p in parts) or len(parts) > 2:
            raise SystemExit(f"--n-override expects ATTACK=N, THREAT=N or ATTACK/THREAT=N with N >= 1 "
                             f"(attacks {', '.join(ATTACKS)}; threats {', '.join(THREATS)}), got {item!r}")
        out[key] = int(value)
    return out


def cmd_table(args: argparse.Namespace) -> dict[str, Any]:
    """``table``: every attack run of a paper table, cached per run, then Markdown + CSV + JSON."""
    table = args.paper_table
    datasets = (args.dataset,) if args.dataset else TABLE_DATASETS.get(table, ())
    device = resolve_device(args.device)
    out_dir = Path(args.out)
    cache_path = out_dir / "cache" / f"table{table}_{args.preset}.json"
    cache = {} if args.fresh or not cache_path.exists() else json.loads(cache_path.read_text())
    source = "bundled samples" if args.samples else "test set"  # finished runs are reused for the same images only
    n_override = parse_n_override(args.n_override)
    all_jobs: list[tuple[Job, _Models]] = []
    data: dict[str, tuple[Tensor, Tensor]] = {}
    for ds in datasets:
        models = _Models(ds, device, args.checkpoints)
        jobs = table_jobs(table, ds, classifier=args.classifier, n=args.n, n_fast=args.n_fast or args.n,
                          n_override=n_override, preset=args.preset, seed=args.seed, eot_samples=args.eot_samples,
                          restarts=args.restarts, n_baseline=args.n_baseline, n_defensegan=args.n_defensegan)
        all_jobs += [(j, models) for j in jobs if _job_runnable(j, models)]
    from tqdm import tqdm

    bar = tqdm(total=len(all_jobs), desc=f"table {table}", unit="run")
    results: dict[str, Any] = {}
    try:
        for job, models in all_jobs:
            hit = cache.get(job.key)
            if (hit and hit["n"] == job.n and hit["params"] == attack_params(job.spec) and hit.get("source") == source
                    and hit["fingerprint"] == models.fingerprint(_job_models(job))):
                results[job.key] = hit
                bar.update(1)
                continue
            if job.dataset not in data or len(data[job.dataset][0]) < job.n:
                data[job.dataset] = load_images(job.dataset, max(args.n, args.n_fast or args.n, job.n),
                                                data_dir=args.data_dir, samples=args.samples)
            x, y = (t[:job.n] for t in data[job.dataset])
            bar.set_postfix_str(job.key)
            step = bar.n

            last = [0.0]

            def prog(frac: float, step: float = step, last: list[float] = last) -> None:
                now = time.monotonic()
                if now - last[0] >= 0.5:  # a redraw per model call would flood a log
                    last[0] = now
                    bar.n = round(step + min(frac, 0.99), 2)
                    bar.refresh()

            results[job.key] = run_job(job, models, x, y, batch_size=args.batch_size, progress=prog)
            results[job.key]["source"] = source
            _write_json(cache_path, _merged_cache(cache_path, {job.key: results[job.key]}))
            bar.n = step + 1
            bar.refresh()
    finally:
        bar.close()
    report = build_table(table, datasets, results, preset=args.preset)
    stem = f"table{table}" + (f"_{datasets[0]}" if len(datasets) == 1 else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / f"{stem}.md", lambda tmp: tmp.write_text(report["markdown"]))
    atomic_write(out_dir / f"{stem}.csv", lambda tmp: tmp.write_text(report["csv"]))
    _write_json(out_dir / f"{stem}.json", report["json"])
    print(report["markdown"])
    return report["json"]


def build_table(table: int, datasets: tuple[str, ...], results: dict[str, Any], *, preset: str) -> dict[str, Any]:
    """Markdown, CSV and JSON of a paper table from finished job results (missing cells are "—")."""
    cells: dict[str, dict[str, Any]] = {}
    for res in results.values():
        for key, value in res["cells"].items():
            cells[key] = {**value, "job": res["key"], "params": res["params"]}
    columns = T7_COLUMNS if table == 7 else COLUMNS
    if table in (1, 2):
        row_keys = [f"{a}/{c}" for a, c in _WB_ROWS]
    elif table in (4, 5):
        row_keys = [f"{c}/{s}" for c, s in _BB_ROWS]
    else:
        row_keys = list(datasets)
    paper: dict[str, dict[str, float]] = {}
    for ds in datasets:
        paper.update(PAPER_TABLES.get((table, ds), {}))
    rows = []
    for rk in row_keys:
        ours = {col: (cells.get(f"{rk}|{col}") or {}).get("value") for col in columns}
        rows.append({"row": rk, "ours": ours, "paper": {col: paper.get(rk, {}).get(col) for col in columns},
                     "n": {col: cells[f"{rk}|{col}"]["n"] for col in columns if f"{rk}|{col}" in cells}})
    if table != 7:
        avg = {col: (float(np.mean([r["ours"][col] for r in rows])) if all(r["ours"][col] is not None for r in rows)
                     else None) for col in columns}
        rows.append({"row": "Average", "ours": avg, "paper": {c: paper.get("Average", {}).get(c) for c in columns},
                     "n": {}})
    ds_label = ", ".join(datasets)
    header = ["Attack / Model" if table in (1, 2) else "Classifier / Substitute" if table in (4, 5) else "Dataset"]
    md = [f"# Table {table}: {TABLE_TITLES[table]} ({ds_label}, preset `{preset}`)", "",
          "Accuracy in percent, ours (paper). “—”: not measured (baseline checkpoint missing) or not in the paper.",
          "",
          "| " + " | ".join(header + list(columns.values())) + " |",
          "|" + "---|" * (len(columns) + 1)]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header + [h for col in columns for h in (col, f"{col}_paper", f"{col}_n")])
    for r in rows:
        label = r["row"].replace("/", " / ")
        md.append("| " + " | ".join([label] + [
            f"{_fmt(r['ours'][c])} ({_fmt(r['paper'][c])})" if r["paper"][c] is not None else _fmt(r["ours"][c])
            for c in columns]) + " |")
        writer.writerow([r["row"]] + [v for c in columns for v in (
            "" if r["ours"][c] is None else round(r["ours"][c], 2), "" if r["paper"][c] is None else r["paper"][c],
            r["n"].get(c, ""))])
    ns = sorted({c["n"] for c in cells.values()})
    params = {res["key"]: res["params"] for res in results.values()}
    md += ["", f"n per cell: {', '.join(map(str, ns)) or '—'} test images (per cell in the JSON).",
           "", "Attack settings (preset `" + preset + "`):", ""]
    seen = set()
    for p in params.values():
        desc = json.dumps({k: v for k, v in p.items() if k not in ("preset",)}, sort_keys=True)
        if desc not in seen:
            seen.add(desc)
            md.append(f"- `{desc}`")
    flips = [(k, c["bits"]) for k, c in cells.items() if c.get("bits") and c["bits"].get("n_images")]
    if flips:
        md += ["", "Bit flips between clean and adversarial codes (paper Figure 3; Theorem 1's prediction from "
                   "the measured latent shift):", "",
               "| Cell | mean flips | < 6 % flipped | predicted mean | predicted < 6 % |",
               "|---|---|---|---|---|"]
        for k, b in flips:
            t = cells[k].get("theorem1", {}).get("measured", {})
            md.append(f"| {k.replace('|', ' ')} | {_fmt(b['mean_flips'], 1)} | {_fmt(b['share_below_6pct'], 1)} % | "
                      f"{_fmt(t.get('expected_flips'), 1)} | {_fmt(t.get('share_below_6pct'), 1)} % |")
    return {"markdown": "\n".join(md) + "\n", "csv": buf.getvalue(),
            "json": {"table": table, "datasets": list(datasets), "preset": preset, "columns": columns, "rows": rows,
                     "cells": cells, "runs": results}}


# ----------------------------------------------------------------------------- argparse
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="folder with the idx files (default: search, see lqvae.io.data)")
    p.add_argument("--samples", action="store_true", help="use the bundled 1,000 samples instead of the test set")
    p.add_argument("--checkpoints", default=None, help="checkpoint root (default ./checkpoints or $LQVAE_CHECKPOINTS)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per foolbox call (default 250 on the classifier, 100 through the purifier)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eot-samples", type=int, default=8, help="draws per model call for bpda_eot")
    p.add_argument("--restarts", type=int, default=1, help="attack restarts (random starts)")


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``table`` to ``python -m lqvae.evaluate``."""
    r = sub.add_parser("run", help="one attack under one threat model against one defense; prints a line, writes JSON")
    r.add_argument("--dataset", choices=DATASETS, default="mnist")
    r.add_argument("--classifier", default="A", help="classifier checkpoint name (A, B, C, A_madry, ...)")
    r.add_argument("--substitute", default=None, help="substitute classifier for --threat blackbox")
    r.add_argument("--defense", default="lqvae",
                   help="none | lqvae | lqvae_robust | lqvae_adv | vae | defensegan (purifiers: checkpoint names; "
                        "lqvae_adv is fine-tuned on adversarial examples, not the paper's method) | madry | advtr "
                        "(adversarially trained classifiers: --classifier A becomes A_madry / A_advtr)")
    r.add_argument("--defensegan-steps", type=int, default=None, help="Defense-GAN search steps L (default 200)")
    r.add_argument("--defensegan-restarts", type=int, default=None, help="Defense-GAN restarts R (default 10)")
    r.add_argument("--attack", choices=ATTACKS, default="fgsm")
    r.add_argument("--threat", choices=THREATS, default="whitebox")
    r.add_argument("--preset", choices=PRESET_NAMES, default="paper")
    r.add_argument("--eps", type=float, default=None, help="budget (L-inf or L2 by attack); default the preset's")
    r.add_argument("--steps", type=int, default=None, help="iterations; default the preset's")
    r.add_argument("--bpda-backward", choices=("bpda", "straight_through"), default="bpda")
    r.add_argument("--target", type=int, default=None, help="target class (makes the attack targeted)")
    r.add_argument("--n", type=int, default=1000, help="first n test images")
    r.add_argument("--json", default=None, help="write the full result here")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    _common(r)
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("table", help="reproduce a paper table (resumable); writes Markdown, CSV and JSON")
    t.add_argument("--paper-table", type=int, choices=(1, 2, 4, 5, 7), required=True)
    t.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: the table's own (1, 5: fashion_mnist; 2, 4: mnist; 7: both)")
    t.add_argument("--classifier", default="A", help="classifier for table 7")
    t.add_argument("--n", type=int, default=1000, help="test images per cell")
    t.add_argument("--n-fast", type=int, default=None, help="test images for FGSM/BIM/PGD cells (default --n)")
    t.add_argument("--n-override", action="append", default=[], metavar="KEY=N",
                   help="images for the runs of one attack, threat or attack/threat, e.g. cw=300, pgd/bpda=1000 "
                        "(repeatable; most specific wins)")
    t.add_argument("--n-baseline", type=int, default=None,
                   help="cap on the images of every baseline run (VAE, Defense-GAN, Madry, Adv Tr)")
    t.add_argument("--n-defensegan", type=int, default=DEFENSEGAN_N,
                   help=f"images per Defense-GAN cell (default {DEFENSEGAN_N}; its search costs ~1 s an image)")
    t.add_argument("--preset", choices=PRESET_NAMES, default="paper")
    t.add_argument("--out", default="docs/results/")
    t.add_argument("--fresh", action="store_true", help="ignore the cache of finished runs")
    _common(t)
    t.set_defaults(func=cmd_table)


__all__ = ["evaluate_batch", "score", "bit_flip_stats", "theorem1_batch", "add_subcommands", "table_jobs",
           "build_table", "PAPER_TABLES", "load_defense", "load_classifier"]
