"""Theorem 1: the paper's numbers, the Poisson-binomial count, the one-image and batch predictions, old JSON."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from lqvae.core.theory import (flip_probability, poisson_binomial_pmf, predicted_flips, prob_at_least_k_flips,
                               prob_k_flips, theorem1, theorem1_batch)
from lqvae.spec.results import FlipReading, Theorem1

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


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


def test_theorem1_on_two_coordinates_matches_the_hand_computation():
    eta, shifts = 0.67449, (0.5, 2.0)
    p1, p2 = (flip_probability(d, eta) for d in shifts)
    t = theorem1(np.zeros(2), np.array([0.5, -2.0]), 1, eta=eta)  # the sign of a shift does not matter
    assert isinstance(t, Theorem1) and t.latent_dim == 2 and t.observed_flips == 1 and t.n_images == 1
    assert t.shift_mean == pytest.approx(1.25) and t.shift_max == pytest.approx(2.0)
    assert t.expected_flips == pytest.approx(p1 + p2) and t.p_flip == pytest.approx((p1 + p2) / 2)
    # brute force over the four outcomes of two independent bits
    brute = [0.0, 0.0, 0.0]
    for f1, f2 in itertools.product((0, 1), repeat=2):
        brute[f1 + f2] += (p1 if f1 else 1 - p1) * (p2 if f2 else 1 - p2)
    assert poisson_binomial_pmf([p1, p2]) == pytest.approx(brute)
    assert t.prob_observed == pytest.approx(brute[1]) and t.prob_at_least_observed == pytest.approx(brute[1] + brute[2])
    assert t.share_below_6pct == pytest.approx(100 * brute[0])  # 6 % of 2 bits: zero flips
    assert t.bound is None and t.paper_plugin is None  # no perturbation size given
    assert t.mean_shift.expected_flips == pytest.approx(2 * flip_probability(1.25, eta))


def test_theorem1_readings_use_the_l2_size_for_the_bound_and_the_linf_size_for_the_papers_plug_in():
    torch = pytest.importorskip("torch")
    t = theorem1(torch.zeros(64), torch.full((64,), 0.1), 6, eta=0.67449, l2=5.0, linf=0.3, lipschitz_target=0.1)
    assert t.bound.delta_z == pytest.approx(0.5) and t.l2 == 5.0 and t.linf == 0.3
    assert t.bound.expected_flips == pytest.approx(64 * flip_probability(0.5))
    assert t.bound.prob_observed == pytest.approx(prob_k_flips(6, 64, flip_probability(0.5)))
    assert t.paper_plugin.delta_z == pytest.approx(0.03)
    assert t.paper_plugin.prob_observed == pytest.approx(1.177e-3, rel=1e-2)  # the paper's number
    assert t.bound_measured_lipschitz is None  # no measured Lipschitz constant given


def test_theorem1_batch_averages_each_images_own_per_coordinate_prediction():
    shift = np.array([[0.0, 0.0, 0.0, 2.0], [0.5, 0.5, 0.5, 0.5]])
    t = theorem1_batch(shift, np.array([1, 2]), eta=0.67449, l2=np.array([5.0, 7.0]), linf=np.array([0.3, 0.3]),
                       lipschitz_target=0.1, lipschitz_measured=0.2)
    rows = [[flip_probability(float(d)) for d in row] for row in shift]
    pmfs = [poisson_binomial_pmf(ps) for ps in rows]
    assert t.n_images == 2 and t.observed_flips == 1.5 and t.latent_dim == 4
    assert t.expected_flips == pytest.approx(sum(map(sum, rows)) / 2)
    assert t.prob_observed == pytest.approx((pmfs[0][1] + pmfs[1][2]) / 2)  # each image's own count
    assert t.share_below_6pct == pytest.approx(100 * (pmfs[0][0] + pmfs[1][0]) / 2)
    assert t.observed_share_below_6pct == 0.0  # both images flipped at least one of 4 bits
    # one big shift is not four medium ones: the averaged-shift binomial reading differs
    assert abs(t.mean_shift.expected_flips - t.expected_flips) > 0.1
    assert t.bound.delta_z == pytest.approx(0.1 * 6.0)  # K times the mean L2 size, not K * 0.3
    assert t.bound_measured_lipschitz.delta_z == pytest.approx(0.2 * 6.0)
    one = theorem1(np.zeros(4), shift[1], 2, eta=0.67449)
    assert one.expected_flips == pytest.approx(sum(rows[1]))  # the one-image call is the batch of one
    with pytest.raises(ValueError, match="observed counts"):
        theorem1_batch(shift, [1], eta=0.67449)


def test_theorem1_round_trips_through_json():
    t = theorem1_batch(np.array([[0.1, 0.9, 0.0]]), [1], eta=0.67449, l2=[2.0], linf=[0.2], lipschitz_target=0.1)
    assert Theorem1.from_dict(json.loads(json.dumps(t.to_dict()))) == t


def test_theorem1_reads_the_old_batch_dict_of_a_shipped_result_file():
    path = RESULTS / "ablation" / "mnist" / "noise_margin" / "deepfool_greybox.json"
    old = json.loads(path.read_text())["theorem1"]
    t = Theorem1.from_dict(old)
    assert t.latent_dim == 64 and t.observed_flips == old["observed"]["mean_flips"]
    assert t.expected_flips == old["per_coordinate"]["expected_flips"] and t.shift_max is None
    assert t.mean_shift.expected_flips == old["measured"]["expected_flips"]
    assert t.bound.delta_z == old["l2_target"]["delta_z"]  # K * ||delta||_2
    assert t.bound_measured_lipschitz.delta_z == old["l2_bound"]["delta_z"]  # the old key used the measured L
    assert t.paper_plugin.p_flip == old["paper"]["p_flip"] and t.linf == pytest.approx(old["paper"]["delta_z"] / 0.1)
    assert t.observed_share_below_6pct == old["observed"]["share_below_6pct"]
    # files written before the per-coordinate reading: the headline is unknown, never a binomial stand-in
    older = json.loads((RESULTS / "seed1_mnist_robust_pgd_bpda.json").read_text())["theorem1"]
    t = Theorem1.from_dict(older)
    assert t.p_flip is None and t.expected_flips is None and t.shift_mean == older["measured"]["delta_z"]


def test_theorem1_reads_the_old_per_image_dict():
    old = {"delta_z": 0.1875, "delta_z_max": 3.0, "p_flip": 0.05, "expected_flips": 3.2, "prob_observed": 0.2,
           "prob_at_least_observed": 0.4, "observed_flips": 4, "latent_dim": 64, "eta": 0.67449,
           "lipschitz_target": 0.1, "l2": 5.0, "l2_delta_z": 0.5, "l2_p_flip": 0.3, "l2_expected_flips": 19.2,
           "l2_prob_observed": 1e-4, "paper_delta_z": 0.03, "paper_p_flip": 0.019, "paper_expected_flips": 1.22}
    t = Theorem1.from_dict(old)
    assert (t.shift_mean, t.shift_max, t.observed_flips, t.latent_dim) == (0.1875, 3.0, 4, 64)
    assert t.bound == FlipReading(delta_z=0.5, p_flip=0.3, expected_flips=19.2, prob_observed=1e-4)
    assert t.paper_plugin.expected_flips == 1.22 and t.linf == pytest.approx(0.3)
    with pytest.raises(ValueError, match="not a Theorem 1 result"):
        Theorem1.from_dict({"accuracy": 1})
