"""The paper's claim for the app's selection, for the honesty panel. Plain data, no Qt, no torch.

The numbers themselves are in :mod:`lqvae.spec.paper` (one copy, shared with the evaluation's table
reproductions); this module only maps the app's selection (classifier, purifier, attack, threat) to the
paper's table, row and column.
"""

from __future__ import annotations

from lqvae.spec import paper
from lqvae.spec.attacks import END_TO_END
from lqvae.spec.defenses import split_classifier

# our fine-tunes of the LQ-VAE: compared against the paper's LQ-VAE column, with how each differs from it
LQVAE_VARIANTS = {
    "lqvae_robust": "fine-tuned on uniform noise, no adversarial example",
    "lqvae_adv": "trained on adversarial examples, unlike the paper's LQ-VAE, so not the paper's method",
}
_HARDENING_COLUMNS = {"madry": "madry", "advtr": "adv_tr"}  # classifier-side defense -> the paper's column


def defense_column(purifier: str | None, classifier: str) -> str | None:
    """Which paper column (:data:`lqvae.spec.paper.COLUMNS`) the selection corresponds to (None: none)."""
    _, hardening = split_classifier(classifier)
    if hardening is not None:
        return _HARDENING_COLUMNS.get(hardening)
    if purifier is None:
        return "no_defense"
    if purifier == "lqvae" or purifier in LQVAE_VARIANTS:
        return "lqvae"  # the variants are compared against the paper's LQ-VAE claim (see comparison_note)
    return purifier if purifier in paper.COLUMNS else None


def comparison_note(purifier: str | None) -> str | None:
    """What the paper's number is for when the selection is not the paper's own defense (None: it is)."""
    if purifier not in LQVAE_VARIANTS:
        return None
    return f"compared against the paper's LQ-VAE claim; this purifier is {LQVAE_VARIANTS[purifier]}"


def threat_caveat(purifier: str | None, threat: str) -> str | None:
    """What a number measured under ``threat`` against ``purifier`` does not show (None: nothing to warn of).

    One text for every place that shows such a number (Explore's honesty panel, the Evaluate tab, the figure).
    """
    if purifier and threat == "whitebox":
        return "White-box on the classifier is not an attack on the defense; choose BPDA for the adaptive one."
    return None


UPPER_BOUND = ("An upper bound: one attack measured it, and stronger attacks lower such numbers (the suite of "
               "issue 18, docs/results/suite).")


def upper_bound_note(purifier: str | None, classifier: str, threat: str) -> str | None:
    """What a measured robust accuracy under one attack is (None: the number claims no robustness).

    An attack that knows the defense (end to end through a purifier, or white-box on a hardened classifier)
    measures robustness only from above: the per-image worst case over a suite of strong attacks is lower."""
    _, hardening = split_classifier(classifier)
    if (purifier and threat in END_TO_END) or (hardening is not None and threat == "whitebox"):
        return UPPER_BOUND
    return None


def claim(dataset: str, classifier: str, purifier: str | None, attack: str, threat: str,
          substitute: str | None = "B") -> tuple[float, str] | None:
    """The paper's accuracy under attack for this selection, and where it is printed; None if it has none."""
    column = defense_column(purifier, classifier)
    if column is None:
        return None
    base, _ = split_classifier(classifier)
    sub = split_classifier(substitute)[0] if substitute else None
    return paper.claim(dataset, attack, threat, base, column, substitute=sub)
