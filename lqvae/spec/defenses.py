"""The defenses the app and the evaluation offer, written once (torch-free).

Purifiers sit in front of the classifier (checkpoint ``<name>.safetensors``); classifier-side hardenings
replace the classifier by a fine-tuned copy, checkpoint ``classifier_<base>_<key>`` beside the plain
``classifier_<base>``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

# in the app's Defense box order: the paper's LQ-VAE, our fine-tunes of it, then the baselines
PURIFIER_LABELS: Mapping[str, str] = MappingProxyType({
    "lqvae": "LQ-VAE (paper)", "lqvae_robust": "LQ-VAE robust", "lqvae_adv": "LQ-VAE adversarially fine-tuned",
    "vae": "VAE (no quantization)", "defensegan": "Defense-GAN"})

# classifier-side defenses (train.py's --adv): key -> label
HARDENING_LABELS: Mapping[str, str] = MappingProxyType({
    "madry": "Madry adversarial training", "advtr": "FGSM adversarial training (Adv Tr)"})
HARDENINGS: tuple[str, ...] = tuple(HARDENING_LABELS)
HARDENING_SHORT: Mapping[str, str] = MappingProxyType({"madry": "Madry", "advtr": "Adv Tr"})  # table columns

# Defense-GAN's latent search, (L gradient steps, R random restarts): interactive, and the authors'
DEFENSEGAN_SEARCH: Mapping[str, tuple[int, int]] = MappingProxyType({"live": (50, 2), "paper": (200, 10)})


def purifier_order(names) -> list[str]:
    """Purifier names in PURIFIER_LABELS order, names it does not know after them alphabetically."""
    known = list(PURIFIER_LABELS)
    return sorted(names, key=lambda n: (known.index(n), "") if n in known else (len(known), n))


def hardened_name(base: str, hardening: str | None) -> str:
    """The classifier checkpoint name: ("A", "madry") -> "A_madry", ("A", None) -> "A"."""
    return f"{base}_{hardening}" if hardening else base


def split_classifier(name: str) -> tuple[str, str | None]:
    """The base architecture and the classifier-side defense: "A_madry" -> ("A", "madry"), "A" -> ("A", None)."""
    base, _, suffix = name.rpartition("_")
    return (base, suffix) if base and suffix in HARDENING_LABELS else (name, None)


__all__ = ["PURIFIER_LABELS", "HARDENING_LABELS", "HARDENINGS", "HARDENING_SHORT", "DEFENSEGAN_SEARCH",
           "purifier_order", "hardened_name", "split_classifier"]
