"""The typed results the engine hands the app and the evaluation: Theorem 1's prediction and one image's analysis.

Torch-free and numpy-free at import (the app imports this at start-up): :class:`Theorem1` holds plain
numbers, :class:`Analysis` holds the numpy arrays the engine made. The numbers are computed in one place,
:func:`lqvae.core.theory.theorem1` (one image) and :func:`lqvae.core.theory.theorem1_batch` (a batch);
this module only says what they mean, how they go to and from JSON, and, for an analysis, which of its
pictures exist (the "no attack" / "no purifier" rule every panel shows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Mapping

from lqvae.spec.datasets import ETA_MEDIAN

if TYPE_CHECKING:  # the arrays are numpy's; importing it is the engine's business, not this module's
    import numpy as np

FLIP_SHARE = 0.06  # paper Figure 3: ~90 % of adversaries flip fewer than 6 % of the bits


@dataclass(frozen=True)
class FlipReading:
    """Theorem 1 with one |δz| for every coordinate: the flip count is Binomial(M, p).

    Attributes:
        delta_z: the |δz| plugged in.
        p_flip: p = Φ(η + |δz|) − Φ(η − |δz|), the flip probability of each bit.
        expected_flips: M · p.
        prob_observed: P(exactly the observed flips) (a batch: the mean over images of each image's
            P(exactly its own count)); None when not recorded (older result files).
        share_below_6pct: P(flips < 6 % of M), in percent; None when not recorded.
    """

    delta_z: float
    p_flip: float
    expected_flips: float
    prob_observed: float | None = None
    share_below_6pct: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> FlipReading | None:
        if not d:
            return None
        return cls(delta_z=float(d["delta_z"]), p_flip=float(d["p_flip"]), expected_flips=float(d["expected_flips"]),
                   prob_observed=_opt(d.get("prob_observed")), share_below_6pct=_opt(d.get("share_below_6pct")))


# Theorem1's readings: (attribute, what |δz| it plugs in). The JSON keys are the attribute names.
READINGS = {
    "bound": "K·‖δ‖₂, the theorem's bound with the perturbation's L2 size",
    "bound_measured_lipschitz": "L̂·‖δ‖₂ with L̂ the encoder's measured gradient norm (median)",
    "paper_plugin": "K·‖δ‖∞, the paper's plug-in (an L∞ size in an L2 bound)",
    "mean_shift": "the mean measured |δz_i|, the same for every coordinate",
}


@dataclass(frozen=True)
class Theorem1:
    """Theorem 1's prediction beside the observed bit flips, for one image or averaged over a batch.

    The headline prediction gives each coordinate i its own flip probability p_i = Φ(η + |δz_i|) −
    Φ(η − |δz_i|) from the measured latent shift |δz_i| = |μ_adv,i − μ_i|, so the flip count is
    Poisson-binomial. A batch averages every number over its images (``n_images`` of them). The
    ``FlipReading`` fields are the theorem with one |δz| for every bit (see ``READINGS``); each is None
    when its inputs were not given.

    Attributes:
        latent_dim: M, the number of bits.
        eta: η, the quantization threshold.
        observed_flips: the bits that flipped (a batch: the mean over images).
        shift_mean: the mean measured |δz_i| (over coordinates, and images).
        shift_max: the largest measured |δz_i|; None in older batch files.
        p_flip: the mean p_i; None in batch files written before the per-coordinate reading existed.
        expected_flips: Σ_i p_i, the expected flip count (a batch: its mean); None as ``p_flip``.
        prob_observed: P(exactly the observed flips) (a batch: the mean over images of each image's
            P(exactly its own count)); None when not recorded.
        prob_at_least_observed: P(at least the observed flips), the same way; None when not recorded.
        share_below_6pct: P(flips < 6 % of M) in percent (a batch: the mean over images); None when not recorded.
        observed_share_below_6pct: the share of images with fewer than 6 % of the bits flipped, in percent
            (paper Figure 3); None when not recorded.
        n_images: images the numbers are averaged over (1 for one image); None when not recorded.
        l2, linf: the perturbation's L2 and L∞ size (a batch: the mean); None when not given.
        lipschitz_target: K, the encoder's Lipschitz constant the theorem assumes.
        lipschitz_measured: L̂, the measured encoder gradient norm.
        bound, bound_measured_lipschitz, paper_plugin, mean_shift: see ``READINGS``.
    """

    latent_dim: int
    eta: float
    observed_flips: float
    shift_mean: float
    shift_max: float | None = None
    p_flip: float | None = None
    expected_flips: float | None = None
    prob_observed: float | None = None
    prob_at_least_observed: float | None = None
    share_below_6pct: float | None = None
    observed_share_below_6pct: float | None = None
    n_images: int | None = 1
    l2: float | None = None
    linf: float | None = None
    lipschitz_target: float | None = None
    lipschitz_measured: float | None = None
    bound: FlipReading | None = None
    bound_measured_lipschitz: FlipReading | None = None
    paper_plugin: FlipReading | None = None
    mean_shift: FlipReading | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields by name, the readings as nested dicts (None when absent)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, latent_dim: int | None = None, eta: float | None = None) -> Theorem1:
        """Read :meth:`to_dict`'s output, or the two older shapes still in ``docs/results/*.json`` and caches:

        * the flat dict of the old per-image ``theorem1_prediction`` (``delta_z``, ``p_flip``,
          ``observed_flips``, ``l2_*``, ``paper_*`` keys; what the app's export wrote);
        * the nested dict of the old batch evaluation (``paper``, ``measured``, ``per_coordinate``,
          ``l2_target``, ``l2_bound``, ``observed`` readings). It recorded neither M nor η: M is taken from
          ``latent_dim`` or worked out from a reading (expected_flips / p_flip), η from ``eta`` or ETA_MEDIAN.

        Raises:
            ValueError: ``d`` is none of these shapes, or M cannot be worked out; the message says which key.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"theorem1: expected a dict, got {type(d).__name__}")
        if "shift_mean" in d:
            names = {f.name for f in fields(cls)}
            kw = {k: v for k, v in d.items() if k in names}
            for name in READINGS:
                kw[name] = FlipReading.from_dict(d.get(name))
            return cls(**kw)
        if "observed_flips" in d and "delta_z" in d:
            return _from_flat(d, latent_dim=latent_dim, eta=eta)
        if isinstance(d.get("paper"), Mapping) or isinstance(d.get("measured"), Mapping):
            return _from_nested(d, latent_dim=latent_dim, eta=eta)
        raise ValueError(f"theorem1: not a Theorem 1 result (keys {sorted(d)[:8]}); expected 'shift_mean' "
                         "(current), 'delta_z' + 'observed_flips' (old per-image) or 'paper'/'measured' (old batch)")


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)


def _from_flat(d: Mapping[str, Any], *, latent_dim: int | None, eta: float | None) -> Theorem1:
    """The old per-image dict of ``lqvae.evaluate.analysis.theorem1_prediction``."""
    m = int(d.get("latent_dim") or latent_dim or 0)
    if m <= 0:
        raise ValueError("theorem1: the old per-image dict has no 'latent_dim'; pass latent_dim=")
    bound = paper = None
    if d.get("l2_p_flip") is not None:
        bound = FlipReading(delta_z=float(d["l2_delta_z"]), p_flip=float(d["l2_p_flip"]),
                            expected_flips=float(d["l2_expected_flips"]), prob_observed=_opt(d.get("l2_prob_observed")))
    if d.get("paper_p_flip") is not None:
        paper = FlipReading(delta_z=float(d["paper_delta_z"]), p_flip=float(d["paper_p_flip"]),
                            expected_flips=float(d["paper_expected_flips"]),
                            prob_observed=_opt(d.get("paper_prob_observed")))
    k = d.get("lipschitz_target")
    linf = d.get("linf")
    if linf is None and paper is not None and k:
        linf = paper.delta_z / float(k)
    return Theorem1(latent_dim=m, eta=float(d.get("eta") or eta or ETA_MEDIAN), observed_flips=d["observed_flips"],
                    shift_mean=float(d["delta_z"]), shift_max=_opt(d.get("delta_z_max")), p_flip=_opt(d.get("p_flip")),
                    expected_flips=_opt(d.get("expected_flips")), prob_observed=_opt(d.get("prob_observed")),
                    prob_at_least_observed=_opt(d.get("prob_at_least_observed")), n_images=1, l2=_opt(d.get("l2")),
                    linf=_opt(linf), lipschitz_target=_opt(k), bound=bound, paper_plugin=paper)


def _from_nested(d: Mapping[str, Any], *, latent_dim: int | None, eta: float | None) -> Theorem1:
    """The old batch dict of ``lqvae.evaluate.scoring.theorem1_batch`` (plus its ``observed`` entry)."""
    per = d.get("per_coordinate") or {}
    mean_shift = FlipReading.from_dict(d.get("measured"))
    bound = FlipReading.from_dict(d.get("l2_target"))
    paper = FlipReading.from_dict(d.get("paper"))
    measured_bound = FlipReading.from_dict(d.get("l2_bound"))  # the old "l2_bound" used the measured L̂, not K
    m = latent_dim
    for r in (paper, mean_shift, bound, measured_bound):
        if m is None and r is not None and r.p_flip > 0:
            m = round(r.expected_flips / r.p_flip)
    if not m:
        raise ValueError("theorem1: the old batch dict records no latent size and no reading with p_flip > 0 "
                         "to work it out from; pass latent_dim=")
    observed = d.get("observed") or {}
    if observed.get("mean_flips") is None:
        raise ValueError("theorem1: the old batch dict has no 'observed': {'mean_flips': ...} entry")
    k = _opt(d.get("lipschitz_target"))
    shift = per.get("delta_z", mean_shift.delta_z if mean_shift else None)
    if shift is None:
        raise ValueError("theorem1: the old batch dict has neither 'per_coordinate' nor 'measured' delta_z")
    return Theorem1(latent_dim=int(m), eta=float(eta or ETA_MEDIAN), observed_flips=float(observed["mean_flips"]),
                    shift_mean=float(shift), p_flip=_opt(per.get("p_flip")),
                    expected_flips=_opt(per.get("expected_flips")),
                    share_below_6pct=_opt(per.get("share_below_6pct")),
                    observed_share_below_6pct=_opt(observed.get("share_below_6pct")), n_images=None,
                    l2=bound.delta_z / k if bound is not None and k else None,
                    linf=paper.delta_z / k if paper is not None and k else None,
                    lipschitz_target=k, lipschitz_measured=_opt(d.get("lipschitz_measured")), bound=bound,
                    bound_measured_lipschitz=measured_bound, paper_plugin=paper, mean_shift=mean_shift)


# ----------------------------------------------------------------------------- one image's analysis
IMAGE_SLOTS = ("original", "adversarial", "perturbation", "purified_adversarial", "purified_original")


@dataclass
class Analysis:
    """Everything the app shows for one image; plain numpy arrays and numbers only.

    Images are (C, H, W) float32 in [0, 1]; probabilities (K,) are softmaxes of the classifier on
    the raw or purified image (in stochastic mode the mean over the draws); bits (M,) are +-1 codes
    H(mu), z (M,) is mu. Fields about the attack or the purifier are None when there is none.
    ``stochastic_probs`` (S, K) are the per-draw class probabilities of the purified adversarial
    image (stochastic mode with an attack only). Ask :attr:`has_attack`, :attr:`has_purifier`,
    :attr:`has_bits` and :meth:`placeholder` rather than testing fields for None.
    """

    original: np.ndarray  # (C, H, W)
    adversarial: np.ndarray | None = None  # (C, H, W)
    purified_original: np.ndarray | None = None
    purified_adversarial: np.ndarray | None = None
    probs_original: np.ndarray | None = None  # (K,); set by the engine for every result
    probs_adversarial: np.ndarray | None = None
    probs_purified_original: np.ndarray | None = None
    probs_purified_adversarial: np.ndarray | None = None
    bits_original: np.ndarray | None = None  # (M,) +-1
    bits_adversarial: np.ndarray | None = None
    z_original: np.ndarray | None = None  # (M,) mu
    z_adversarial: np.ndarray | None = None
    sigma_original: np.ndarray | None = None
    hamming: int | None = None
    linf: float | None = None
    l2: float | None = None
    attack_failed: bool = False
    message: str = ""
    theorem1: Theorem1 | None = None
    stochastic_probs: np.ndarray | None = None  # (S, K)
    attack_ms: float = 0.0
    purify_ms: float = 0.0
    label: int | None = None  # the label the attack used (the prediction when none was given)

    @property
    def has_attack(self) -> bool:
        """An attack ran (its image is there, even when it failed to fool the classifier)."""
        return self.adversarial is not None

    @property
    def has_purifier(self) -> bool:
        """A purifier (an image-to-image defense) ran on the images."""
        return self.purified_original is not None

    @property
    def has_bits(self) -> bool:
        """The purifier has a binary code (the LQ-VAE): clean bits are there, and adversarial ones with an attack."""
        return self.bits_original is not None

    def placeholder(self, slot: str, *, hardened: bool = False) -> str:
        """What to show instead of ``slot`` when this result has nothing there ("" when it has).

        ``slot`` is one of ``IMAGE_SLOTS`` or a ``probs_*`` field. Missing for want of an attack:
        "no attack"; for want of a purifier: "no purifier" when the classifier is ``hardened`` (the
        defense is in the classifier) and "no defense" otherwise.
        """
        key = slot.removeprefix("probs_")
        if key not in IMAGE_SLOTS:
            raise ValueError(f"placeholder: unknown slot {slot!r}; expected one of {IMAGE_SLOTS} or probs_<slot>")
        unpurified = "no purifier" if hardened else "no defense"
        if key in ("adversarial", "perturbation"):
            return "" if self.has_attack else "no attack"
        if key == "purified_original":
            return "" if self.has_purifier else unpurified
        if key == "purified_adversarial":
            return unpurified if not self.has_purifier else ("" if self.has_attack else "no attack")
        return ""

    @property
    def predictions(self) -> tuple[int, ...]:
        """The predicted class along the attacked path: original, adversarial (with an attack), purified
        adversarial (with an attack and a purifier)."""
        chain = (self.probs_original, self.probs_adversarial, self.probs_purified_adversarial)
        return tuple(int(p.argmax()) for p in chain if p is not None)

    @property
    def final_prediction(self) -> int | None:
        """What the defended system answers for the attacked image (the clean one without an attack)."""
        preds = self.predictions
        return preds[-1] if preds else None

    def survived(self, label: int | None) -> bool | None:
        """Whether the defended system still gives ``label`` under the attack; None without an attack or label."""
        if not self.has_attack or label is None or self.final_prediction is None:
            return None
        return self.final_prediction == label


__all__ = ["Theorem1", "FlipReading", "READINGS", "FLIP_SHARE", "Analysis", "IMAGE_SLOTS"]
