import pytest

from lqvae.core.theory import (flip_probability, poisson_binomial_pmf, predicted_flips, prob_at_least_k_flips,
                          prob_k_flips)


def test_theorem1_values_of_the_paper():
    p = flip_probability(0.1 * 0.3)
    assert p == pytest.approx(0.01906, abs=1e-5)
    assert prob_k_flips(6, 64, 0.01906) == pytest.approx(1.177e-3, rel=1e-3)


def test_flip_probability_grows_with_delta_and_binomial_sums_to_one():
    assert flip_probability(0.0) == 0.0
    assert flip_probability(0.1) < flip_probability(0.5) < flip_probability(2.0)
    assert sum(prob_k_flips(k, 64, 0.2) for k in range(65)) == pytest.approx(1.0)
    assert prob_at_least_k_flips(0, 64, 0.3) == pytest.approx(1.0)


def test_l2_sized_perturbation_changes_the_prediction():
    linf = predicted_flips(0.1, 0.3)["expected_flips"]
    l2 = predicted_flips(0.1, 0.3 * 28)["expected_flips"]
    assert l2 > 10 * linf
    with pytest.raises(ValueError, match="0 <= k <= m"):
        prob_k_flips(65, 64, 0.1)


def test_poisson_binomial_is_the_binomial_for_equal_probabilities_and_counts_each_bit_otherwise():
    pmf = poisson_binomial_pmf([0.2] * 64)
    assert len(pmf) == 65 and sum(pmf) == pytest.approx(1.0)
    assert pmf[6] == pytest.approx(prob_k_flips(6, 64, 0.2))
    mixed = poisson_binomial_pmf([1.0, 0.5, 0.0])  # one sure flip, one coin, one that never flips
    assert mixed == pytest.approx([0.0, 0.5, 0.5, 0.0])


def test_evaluation_theorem1_per_coordinate_reading_uses_each_coordinate_shift():
    import numpy as np
    import torch

    from lqvae.evaluate.scoring import theorem1_batch
    from lqvae.core.theory import flip_probability, poisson_binomial_pmf

    mu = torch.zeros(2, 4)
    shift = torch.tensor([[0.0, 0.0, 0.0, 2.0], [0.5, 0.5, 0.5, 0.5]])
    out = theorem1_batch(mu, mu + shift, np.array([0.3, 0.3]), np.array([5.0, 7.0]), eta=0.67449,
                         lipschitz_target=0.1, lipschitz_measured=None)
    per = out["per_coordinate"]
    expected = [sum(flip_probability(float(d)) for d in row) for row in shift]
    assert abs(per["expected_flips"] - sum(expected) / 2) < 1e-9
    # one big shift is not four medium ones: the averaged-shift binomial reading differs
    assert abs(out["measured"]["expected_flips"] - per["expected_flips"]) > 0.1
    below = [sum(poisson_binomial_pmf([flip_probability(float(d)) for d in row])[:1]) for row in shift]
    assert abs(per["share_below_6pct"] - 100 * sum(below) / 2) < 1e-9  # 6 % of 4 bits: zero flips
    assert abs(out["l2_target"]["delta_z"] - 0.1 * 6.0) < 1e-9  # K times the mean L2 size, not K * 0.3
