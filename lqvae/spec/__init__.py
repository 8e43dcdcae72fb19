"""The facts both packages need, written once and torch-free.

``attacks`` (every attack and threat model), ``datasets`` (data sets, class names, η), ``defenses`` (purifiers,
hardened classifiers, Defense-GAN's search), ``paper`` (the paper's numbers), ``results`` (the typed ``Analysis``
and ``Theorem1``), ``records`` (evaluation records old and new), ``errors`` (``Cancelled``, ``Refusal``).
``lqvae.attacks`` and ``lqvae.evaluate`` build on these entries; the app (which must not import torch at
start-up) imports them directly. Nothing here imports torch, numpy or Qt (tests/engine/test_spec.py).
"""

from lqvae.spec.attacks import ATTACKS, END_TO_END, PRESET_NAMES, THREATS, AttackInfo, ThreatInfo
from lqvae.spec.datasets import CLASS_NAMES, DATASET_LABELS, DATASETS, ETA_MEDIAN, short_name
from lqvae.spec.defenses import DEFENSEGAN_SEARCH, HARDENINGS, PURIFIER_LABELS

__all__ = ["ATTACKS", "THREATS", "END_TO_END", "PRESET_NAMES", "AttackInfo", "ThreatInfo", "DATASETS",
           "DATASET_LABELS", "CLASS_NAMES", "ETA_MEDIAN", "short_name", "PURIFIER_LABELS", "HARDENINGS",
           "DEFENSEGAN_SEARCH"]
