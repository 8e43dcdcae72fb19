"""Theorem 1 of the paper: how likely a latent bit flips, and how likely k of M bits flip.

For a latent coordinate z ~ N(0, 1) moved by |delta_z|, the bit H(z) flips with probability
``p = Phi(eta + |delta_z|) - Phi(eta - |delta_z|)`` (eq. 3/8), and the number of flipped bits among M
independent coordinates is Binomial(M, p). The paper plugs |delta_z| = K |delta| = 0.1 x 0.3, i.e. the
L-infinity size of the perturbation, into a bound that needs its L2 size (up to 0.3 x 28 = 8.4 for
a 28x28 image); ``predicted_flips`` takes whichever |delta_z| the caller measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lqvae.core.config import ETA_MEDIAN


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def flip_probability(delta_z: float, eta: float = ETA_MEDIAN) -> float:
    """Per-bit flip probability p(eta, |delta_z|) for z ~ N(0, 1) (Theorem 1, eq. 3)."""
    d = abs(float(delta_z))
    return normal_cdf(eta + d) - normal_cdf(eta - d)


def prob_k_flips(k: int, m: int, p: float) -> float:
    """Binomial probability of exactly k flips among m bits with per-bit probability p."""
    if not 0 <= k <= m:
        raise ValueError(f"expected 0 <= k <= m, got k={k}, m={m}")
    return math.comb(m, k) * p ** k * (1.0 - p) ** (m - k)


def prob_at_least_k_flips(k: int, m: int, p: float) -> float:
    return sum(prob_k_flips(j, m, p) for j in range(max(k, 0), m + 1))


def poisson_binomial_pmf(ps: Sequence[float]) -> list[float]:
    """P(exactly k flips) for k = 0..M when bit i flips independently with probability ``ps[i]``.

    Theorem 1 with a measured shift per coordinate: each bit has its own p_i, so the count is
    Poisson-binomial rather than Binomial(M, p).
    """
    pmf = [1.0]
    for p in ps:
        nxt = [0.0] * (len(pmf) + 1)
        for k, q in enumerate(pmf):
            nxt[k] += q * (1.0 - p)
            nxt[k + 1] += q * p
        pmf = nxt
    return pmf


def predicted_flips(lipschitz: float, delta: float, m: int = 64, eta: float = ETA_MEDIAN) -> dict[str, float]:
    """Theorem 1's prediction for an input perturbation of size ``delta`` and Lipschitz constant ``lipschitz``."""
    p = flip_probability(lipschitz * delta, eta)
    return {"delta_z": lipschitz * delta, "p_flip": p, "expected_flips": m * p}
