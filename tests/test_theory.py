import pytest

from lqvae.theory import flip_probability, predicted_flips, prob_at_least_k_flips, prob_k_flips


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
