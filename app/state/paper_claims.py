"""The paper's numbers (Saha et al., AAAI 2020), for the honesty panel and the figures. Plain data.

Accuracies in percent. Columns of Tables 1, 2, 4, 5: no attack, no defense, LQ-VAE, Defense-GAN,
Madry, adversarial training. White-box FGSM uses ε = 0.3 (L∞); DeepFool and C&W are unbounded.
"""

from __future__ import annotations

COLUMNS = ("clean", "none", "lqvae", "defensegan", "madry", "advtr")
COLUMN_LABELS = {"clean": "no attack", "none": "no defense", "lqvae": "LQ-VAE", "defensegan": "Defense-GAN",
                 "madry": "Madry", "advtr": "Adv. training"}

# (dataset, attack) -> classifier -> one value per COLUMNS entry
WHITEBOX = {
    ("mnist", "fgsm"): {"A": (99.40, 20.16, 89.17, 90.43, 96.85, 67.95),
                        "B": (99.41, 13.17, 86.70, 88.52, 96.20, 49.49),
                        "C": (98.37, 5.66, 83.02, 86.7, 84.71, 80.75)},
    ("mnist", "deepfool"): {"A": (99.40, 7.38, 97.60, 95.41, 67.82, 3.10),
                            "B": (99.41, 5.88, 97.74, 93.03, 66.35, 5.75),
                            "C": (98.37, 48.24, 97.42, 92.32, 62.38, 10.97)},
    ("mnist", "cw"): {"A": (99.40, 8.85, 97.66, 94.37, 69.15, 1.20),
                      "B": (99.41, 5.07, 97.20, 90.56, 71.35, 1.45),
                      "C": (98.37, 8.44, 97.36, 92.5, 58.65, 2.15)},
    ("fashion_mnist", "fgsm"): {"A": (92.76, 11.50, 77.00, 69.75, 78.87, 53.72),
                                "B": (91.17, 10.14, 69.41, 56.72, 76.94, 59.79),
                                "C": (89.06, 11.60, 67.07, 56.34, 64.16, 66.43)},
    ("fashion_mnist", "deepfool"): {"A": (92.76, 5.29, 79.30, 77.48, 57.17, 6.52),
                                    "B": (91.17, 6.54, 79.41, 74.97, 52.58, 14.74),
                                    "C": (89.06, 7.65, 79.89, 74.82, 39.93, 24.71)},
    ("fashion_mnist", "cw"): {"A": (92.76, 5.41, 80.64, 78.75, 62.55, 5.35),
                              "B": (91.17, 6.61, 81.58, 78.18, 56.48, 6.35),
                              "C": (89.06, 7.89, 82.31, 78.58, 43.72, 8.00)},
}
WHITEBOX_TABLE = {"mnist": "Table 2", "fashion_mnist": "Table 1"}

# (dataset, attack) -> "classifier/substitute" -> COLUMNS values (Table 4: MNIST FGSM; Table 5: F-MNIST DeepFool)
BLACKBOX = {
    ("mnist", "fgsm"): {"A/B": (99.40, 33.32, 88.09, 89.14, 97.17, 95.78),
                        "A/C": (99.40, 45.35, 90.60, 90.08, 98.27, 96.82),
                        "B/A": (99.41, 42.22, 90.63, 91.40, 97.38, 94.64),
                        "B/C": (99.41, 38.73, 89.92, 89.89, 98.03, 95.30),
                        "C/A": (98.37, 28.93, 91.98, 90.90, 90.59, 32.12),
                        "C/B": (98.37, 18.01, 89.38, 88.73, 89.14, 21.79)},
    ("fashion_mnist", "deepfool"): {"A/B": (92.76, 29.14, 77.74, 74.41, 60.11, 48.27),
                                    "A/C": (92.76, 35.44, 77.11, 74.11, 62.58, 57.53),
                                    "B/A": (91.17, 67.82, 81.33, 77.97, 80.71, 76.61),
                                    "B/C": (91.17, 45.55, 78.83, 74.5, 69.19, 64.05),
                                    "C/A": (89.06, 79.11, 82.12, 78.82, 80.99, 81.84),
                                    "C/B": (89.06, 47.26, 80.76, 76.6, 67.46, 59.64)},
}
BLACKBOX_TABLE = {"mnist": "Table 4", "fashion_mnist": "Table 5"}

# Table 7: end-to-end white-box FGSM through LQ-VAE + classifier with BPDA (classifier not stated)
BPDA = {"mnist": {"lqvae": 83.70, "defensegan": 55.17}, "fashion_mnist": {"lqvae": 57.41, "defensegan": 39.41}}

FIGURE3 = "about 90 % of C&W adversaries on MNIST flip fewer than 6 % of the 64 bits (Figure 3)"
THEOREM1 = "P(6 of 64 bits flip) = 1.177e-3 for |δz| = K·|δ| = 0.1 × 0.3 (Theorem 1)"

# our fine-tunes of the LQ-VAE: compared against the paper's LQ-VAE column, with how each differs from it
LQVAE_VARIANTS = {
    "lqvae_robust": "fine-tuned on uniform noise, no adversarial example",
    "lqvae_adv": "trained on adversarial examples, unlike the paper's LQ-VAE, so not the paper's method",
}


def defense_column(purifier: str | None, classifier: str) -> str | None:
    """Which paper column the app's selection corresponds to (None: the paper has no such column)."""
    if classifier.endswith("_madry"):
        return "madry"
    if classifier.endswith(("_advtr", "_adv")):
        return "advtr"
    if purifier is None:
        return "none"
    if purifier == "lqvae" or purifier in LQVAE_VARIANTS:
        return "lqvae"  # the variants are compared against the paper's LQ-VAE claim (see comparison_note)
    return purifier if purifier in COLUMNS else None


def comparison_note(purifier: str | None) -> str | None:
    """What the paper's number is for when the selection is not the paper's own defense (None: it is)."""
    if purifier not in LQVAE_VARIANTS:
        return None
    return f"compared against the paper's LQ-VAE claim; this purifier is {LQVAE_VARIANTS[purifier]}"


def claim(dataset: str, classifier: str, purifier: str | None, attack: str, threat: str,
          substitute: str = "B") -> tuple[float, str] | None:
    """The paper's accuracy under attack for this selection, and where it is from; None if it has none."""
    col = defense_column(purifier, classifier)
    base = classifier[:1]
    if col is None:
        return None
    i = COLUMNS.index(col)
    if threat == "whitebox" and (dataset, attack) in WHITEBOX:
        row = WHITEBOX[(dataset, attack)].get(base)
        if row:
            return row[i], f"{WHITEBOX_TABLE[dataset]}, {attack.upper()} on classifier {base}"
    if threat == "blackbox" and (dataset, attack) in BLACKBOX:
        row = BLACKBOX[(dataset, attack)].get(f"{base}/{substitute[:1]}")
        if row:
            return row[i], f"{BLACKBOX_TABLE[dataset]}, {attack.upper()} from substitute {substitute[:1]}"
    if threat == "bpda" and attack == "fgsm" and col in BPDA.get(dataset, {}):
        return BPDA[dataset][col], "Table 7, BPDA FGSM end to end"
    return None


def clean_claim(dataset: str, classifier: str) -> float | None:
    row = WHITEBOX.get((dataset, "fgsm"), {}).get(classifier[:1])
    return row[0] if row else None
