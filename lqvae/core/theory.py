"""Theorem 1 of the paper: how likely a latent bit flips, and how likely k of M bits flip.

For a latent coordinate z ~ N(0, 1) moved by |delta_z|, the bit H(z) flips with probability
``p = Phi(eta + |delta_z|) - Phi(eta - |delta_z|)`` (eq. 3/8), and the number of flipped bits among M
independent coordinates is Binomial(M, p), or Poisson-binomial when each coordinate has its own shift.
The paper plugs |delta_z| = K |delta| = 0.1 x 0.3, i.e. the L-infinity size of the perturbation, into a
bound that needs its L2 size (up to 0.3 x 28 = 8.4 for a 28x28 image).

:func:`theorem1` (one image) and :func:`theorem1_batch` (a batch) are the one place the prediction is
computed; both return a :class:`lqvae.spec.results.Theorem1` (fields documented there)::

    theorem1(mu, mu_adv, observed, *, eta, l2=None, linf=None, lipschitz_target=None,
             lipschitz_measured=None) -> Theorem1
        mu, mu_adv: (M,) latent means of the clean and adversarial image (numpy or torch);
        observed: the bits that flipped; l2, linf: the perturbation's sizes (floats).

    theorem1_batch(shift, observed, *, eta, l2=None, linf=None, lipschitz_target=None,
                   lipschitz_measured=None) -> Theorem1
        shift: (N, M) measured latent shifts mu_adv - mu (numpy or torch, sign ignored);
        observed: (N,) flip counts; l2, linf: (N,) perturbation sizes. Every number is the mean over
        the N images; the one-|delta_z| readings use the mean L2 / L-inf size.

Readings (``Theorem1`` attributes): the headline fields give coordinate i its own p_i from |shift_i|;
``bound`` uses |delta_z| = K * mean ||delta||_2 (the theorem's bound, needs ``l2`` and
``lipschitz_target``); ``bound_measured_lipschitz`` uses L_measured * mean ||delta||_2 (needs ``l2`` and
``lipschitz_measured``); ``paper_plugin`` uses K * mean ||delta||_inf (needs ``linf`` and
``lipschitz_target``); ``mean_shift`` uses the mean measured shift for every coordinate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lqvae.spec.datasets import ETA_MEDIAN
from lqvae.spec.results import FLIP_SHARE, FlipReading, Theorem1

_erf = np.frompyfunc(math.erf, 1, 1)


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def flip_probability(delta_z: float, eta: float = ETA_MEDIAN) -> float:
    """Per-bit flip probability p(eta, |delta_z|) for z ~ N(0, 1) (Theorem 1, eq. 3)."""
    d = abs(float(delta_z))
    return normal_cdf(eta + d) - normal_cdf(eta - d)


def flip_probabilities(delta_z: np.ndarray, eta: float = ETA_MEDIAN) -> np.ndarray:
    """:func:`flip_probability` of every entry of an array of shifts (float64, same shape)."""
    d = np.abs(np.asarray(delta_z, np.float64))
    return _normal_cdf_array(eta + d) - _normal_cdf_array(eta - d)


def _normal_cdf_array(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def prob_k_flips(k: int, m: int, p: float) -> float:
    """Binomial probability of exactly k flips among m bits with per-bit probability p."""
    if not 0 <= k <= m:
        raise ValueError(f"expected 0 <= k <= m, got k={k}, m={m}")
    return math.comb(m, k) * p ** k * (1.0 - p) ** (m - k)


def prob_at_least_k_flips(k: int, m: int, p: float) -> float:
    return sum(prob_k_flips(j, m, p) for j in range(max(k, 0), m + 1))


def poisson_binomial_pmf(ps: Sequence[float] | np.ndarray) -> np.ndarray:
    """P(exactly k flips) for k = 0..M when bit i flips independently with probability ``ps[i]``.

    Theorem 1 with a measured shift per coordinate: each bit has its own p_i, so the count is
    Poisson-binomial rather than Binomial(M, p). ``ps`` (M,) gives (M + 1,); (N, M) gives (N, M + 1),
    one pmf per row.
    """
    p = np.asarray(ps, np.float64)
    rows = np.atleast_2d(p)  # (N, M)
    pmf = np.zeros((rows.shape[0], rows.shape[1] + 1))  # (N, M + 1)
    pmf[:, 0] = 1.0
    for j in range(rows.shape[1]):
        pj = rows[:, j:j + 1]  # (N, 1)
        nxt = pmf * (1.0 - pj)
        nxt[:, 1:] += pmf[:, :-1] * pj
        pmf = nxt
    return pmf if p.ndim == 2 else pmf[0]


def predicted_flips(lipschitz: float, delta: float, m: int = 64, eta: float = ETA_MEDIAN) -> dict[str, float]:
    """Theorem 1's prediction for an input perturbation of size ``delta`` and Lipschitz constant ``lipschitz``."""
    p = flip_probability(lipschitz * delta, eta)
    return {"delta_z": lipschitz * delta, "p_flip": p, "expected_flips": m * p}


def _numpy(x: Any) -> np.ndarray:
    """A numpy view of a numpy array, a sequence or a torch tensor (without importing torch)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def theorem1(mu: Any, mu_adv: Any, observed: int, *, eta: float, l2: float | None = None,
             linf: float | None = None, lipschitz_target: float | None = None,
             lipschitz_measured: float | None = None) -> Theorem1:
    """Theorem 1 for one image from its measured per-coordinate latent shift, beside the observed flips.

    Args:
        mu, mu_adv: (M,) latent means of the clean and adversarial image (numpy or torch).
        observed: bits that actually flipped (the Hamming distance of the codes).
        eta: quantization threshold.
        l2, linf: the perturbation's L2 and L-inf size (None = skip the readings that need them).
        lipschitz_target: K, the encoder's Lipschitz constant the theorem assumes.
        lipschitz_measured: the measured encoder gradient norm.
    """
    shift = (_numpy(mu_adv) - _numpy(mu)).reshape(1, -1)  # (1, M), subtracted in the latents' own dtype
    return theorem1_batch(shift, [observed], eta=eta, l2=None if l2 is None else [l2],
                          linf=None if linf is None else [linf], lipschitz_target=lipschitz_target,
                          lipschitz_measured=lipschitz_measured)


def theorem1_batch(shift: Any, observed: Any, *, eta: float, l2: Any = None, linf: Any = None,
                   lipschitz_target: float | None = None, lipschitz_measured: float | None = None) -> Theorem1:
    """Theorem 1 for N images, every number the mean over them (see the module doc for the readings).

    Args:
        shift: (N, M) measured latent shifts mu_adv - mu (numpy or torch; the sign is ignored).
        observed: (N,) bits that flipped per image.
        eta: quantization threshold.
        l2, linf: (N,) perturbation sizes (None = skip the readings that need them).
        lipschitz_target: K, the encoder's Lipschitz constant the theorem assumes.
        lipschitz_measured: the measured encoder gradient norm (median), for ``bound_measured_lipschitz``.

    Raises:
        ValueError: ``shift`` is not (N >= 1, M >= 1) or ``observed`` is not N counts.
    """
    d = np.abs(_numpy(shift).astype(np.float64))  # (N, M) |delta_z_ij|
    if d.ndim != 2 or 0 in d.shape:
        raise ValueError(f"theorem1_batch: expected shift of shape (N >= 1, M >= 1), got {d.shape}")
    n, m = d.shape
    obs = _numpy(observed).reshape(-1)
    if len(obs) != n:
        raise ValueError(f"theorem1_batch: expected {n} observed counts (one per row of shift), got {len(obs)}")
    k = np.rint(obs).astype(np.int64)  # (N,)
    inside, kc, rows = (k >= 0) & (k <= m), np.clip(k, 0, m), np.arange(n)
    below = math.ceil(FLIP_SHARE * m)  # counts 0 .. below-1 are < 6 % of M

    p = flip_probabilities(d, eta)  # (N, M)
    pmf = poisson_binomial_pmf(p)  # (N, M + 1)
    tail = np.cumsum(pmf[:, ::-1], axis=1)[:, ::-1]  # tail[:, j] = P(flips >= j)
    at_least = np.where(k <= 0, 1.0, np.where(k > m, 0.0, tail[rows, kc]))

    def reading(delta_z: float) -> FlipReading:
        pr = flip_probability(delta_z, eta)
        binom = poisson_binomial_pmf(np.full(m, pr))  # Binomial(M, pr), by the same code
        return FlipReading(delta_z=float(delta_z), p_flip=pr, expected_flips=m * pr,
                           prob_observed=float(np.where(inside, binom[kc], 0.0).mean()),
                           share_below_6pct=float(binom[:below].sum() * 100))

    l2m = None if l2 is None else float(np.mean(_numpy(l2)))
    linfm = None if linf is None else float(np.mean(_numpy(linf)))
    k_ok = lipschitz_target is not None
    return Theorem1(
        latent_dim=m, eta=float(eta), observed_flips=int(k[0]) if n == 1 else float(obs.mean()),
        shift_mean=float(d.mean()), shift_max=float(d.max()), p_flip=float(p.mean()),
        expected_flips=float(p.sum(1).mean()),
        prob_observed=float(np.where(inside, pmf[rows, kc], 0.0).mean()),
        prob_at_least_observed=min(1.0, float(at_least.mean())),
        share_below_6pct=float(pmf[:, :below].sum(1).mean() * 100),
        observed_share_below_6pct=float((obs < FLIP_SHARE * m).mean() * 100), n_images=n, l2=l2m, linf=linfm,
        lipschitz_target=lipschitz_target, lipschitz_measured=lipschitz_measured,
        bound=reading(lipschitz_target * l2m) if k_ok and l2m is not None else None,
        bound_measured_lipschitz=(reading(lipschitz_measured * l2m)
                                  if lipschitz_measured is not None and l2m is not None else None),
        paper_plugin=reading(lipschitz_target * linfm) if k_ok and linfm is not None else None,
        mean_shift=reading(float(d.mean())),
    )


__all__ = ["normal_cdf", "flip_probability", "flip_probabilities", "prob_k_flips", "prob_at_least_k_flips",
           "poisson_binomial_pmf", "predicted_flips", "theorem1", "theorem1_batch", "Theorem1", "FlipReading"]
