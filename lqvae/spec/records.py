"""The accuracies of an evaluation record under their current names, from files old and new (torch-free).

``lqvae.evaluate.scoring`` writes ``undefended_accuracy`` (the classifier alone on the adversarial
images) and, with a purifier, ``defended_accuracy`` (purifier -> classifier on them). Files written
before those names hold ``attacked_accuracy``, which was the defended accuracy when there was a
purifier and the undefended one otherwise, and ``attacked_accuracy_undefended``. The readers (the
report, the ablation table, the app's results) go through these functions, so both kinds still read.
"""

from __future__ import annotations

from typing import Any, Mapping

# old name -> new name (attacked_accuracy is the defended accuracy only when the record has a purifier)
RENAMED = {"attacked_accuracy_undefended": "undefended_accuracy", "attacked_accuracy": "defended_accuracy",
           "attacked_accuracy_stochastic": "defended_accuracy_stochastic"}


def _number(rec: Mapping[str, Any], key: str) -> float | None:
    v = rec.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def undefended_accuracy(rec: Mapping[str, Any]) -> float | None:
    """The classifier alone on the adversarial images."""
    for key in ("undefended_accuracy", "attacked_accuracy_undefended"):
        if _number(rec, key) is not None:
            return _number(rec, key)
    if "clean_accuracy_defended" not in rec:  # an old record without a purifier: attacked_accuracy is this
        return _number(rec, "attacked_accuracy")
    return None


def defended_accuracy(rec: Mapping[str, Any]) -> float | None:
    """Purifier -> classifier on the adversarial images (None: the record has no purifier)."""
    if _number(rec, "defended_accuracy") is not None:
        return _number(rec, "defended_accuracy")
    if "undefended_accuracy" in rec:  # a new record without a purifier
        return None
    if "clean_accuracy_defended" in rec or "attacked_accuracy_stochastic" in rec:
        return _number(rec, "attacked_accuracy")  # an old record with a purifier
    return None


def defended_accuracy_stochastic(rec: Mapping[str, Any]) -> float | None:
    """The stochastic purification's accuracy on the adversarial images (``bpda_eot`` only)."""
    for key in ("defended_accuracy_stochastic", "attacked_accuracy_stochastic"):
        if _number(rec, key) is not None:
            return _number(rec, key)
    return None


def accuracy_under_attack(rec: Mapping[str, Any]) -> float | None:
    """The record's own defense under attack: defended when it has a purifier, else undefended."""
    defended = defended_accuracy(rec)
    return defended if defended is not None else undefended_accuracy(rec)


def has_accuracy(rec: Mapping[str, Any]) -> bool:
    """Whether ``rec`` is an attack record with an accuracy under attack (under either naming)."""
    return any(k in rec for k in ("defended_accuracy", "undefended_accuracy", "attacked_accuracy"))


__all__ = ["RENAMED", "undefended_accuracy", "defended_accuracy", "defended_accuracy_stochastic",
           "accuracy_under_attack", "has_accuracy"]
