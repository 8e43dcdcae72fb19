"""The typed analysis result the panels read: which pictures exist and what stands in for the missing ones."""

from __future__ import annotations

import numpy as np
import pytest

from lqvae.spec.results import IMAGE_SLOTS, Analysis

IMG = np.zeros((1, 28, 28), np.float32)


def probs(k: int) -> np.ndarray:
    return np.eye(10, dtype=np.float32)[k]


def result(*, attack: bool, purifier: bool, bits: bool = False) -> Analysis:
    a = Analysis(original=IMG, probs_original=probs(3))
    if attack:
        a.adversarial, a.probs_adversarial = IMG, probs(5)
    if purifier:
        a.purified_original, a.probs_purified_original = IMG, probs(3)
        if attack:
            a.purified_adversarial, a.probs_purified_adversarial = IMG, probs(3)
    if bits:
        a.bits_original = np.ones(64)
    return a


@pytest.mark.parametrize("attack, purifier, hardened, expected", [
    (True, True, False, {}),
    (False, True, False, {"adversarial": "no attack", "perturbation": "no attack",
                          "purified_adversarial": "no attack"}),
    (True, False, False, {"purified_adversarial": "no defense", "purified_original": "no defense"}),
    (True, False, True, {"purified_adversarial": "no purifier", "purified_original": "no purifier"}),
    (False, False, False, {"adversarial": "no attack", "perturbation": "no attack",
                           "purified_adversarial": "no defense", "purified_original": "no defense"}),
])
def test_placeholder_says_what_is_missing_once_for_every_panel(attack, purifier, hardened, expected):
    a = result(attack=attack, purifier=purifier)
    assert (a.has_attack, a.has_purifier) == (attack, purifier)
    for slot in IMAGE_SLOTS:
        assert a.placeholder(slot, hardened=hardened) == expected.get(slot, ""), slot
        if slot != "perturbation":  # the probability charts ask the same question by field name
            assert a.placeholder(f"probs_{slot}", hardened=hardened) == expected.get(slot, ""), slot
    with pytest.raises(ValueError, match="unknown slot"):
        a.placeholder("bits")


def test_predictions_follow_the_attacked_path_and_the_verdict_needs_an_attack_and_a_label():
    defended = result(attack=True, purifier=True, bits=True)
    assert defended.predictions == (3, 5, 3) and defended.final_prediction == 3 and defended.has_bits
    assert defended.survived(3) is True and defended.survived(None) is None
    undefended = result(attack=True, purifier=False)
    assert undefended.predictions == (3, 5) and undefended.survived(3) is False and not undefended.has_bits
    clean = result(attack=False, purifier=True)
    assert clean.predictions == (3,) and clean.survived(3) is None  # no attack: nothing survived or fell
