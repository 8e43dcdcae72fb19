"""The guided lesson and the panels' help: every word an audience reads, in one reviewable place. No widgets.

``STEPS`` is the lesson a lecturer walks through with Next / Back (or a clicker's Page Down / Page Up): each
:class:`LessonStep` names the settings it shows (:class:`StepSettings`, names from :mod:`lqvae.spec`) and one
short paragraph. ``apply_step`` puts a step's settings on the ``AppState`` through its setters, with the names
the loaded models really have. ``population_lines`` writes the measured numbers beside the paper's claims,
read from the same sources as the Honesty panel (:mod:`app.state.results`, :mod:`app.state.paper_claims`):
the lesson text itself holds no number of a result. ``PANEL_HELP`` explains each panel, keyed by the title
of its group box.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from app.state import paper_claims
from app.state.app_state import AppState
from app.state.results import Results, matching
from app.state.settings import (ATTACK_NAMES, DATASET_LABELS, PURIFIER_LABELS, THREAT_SHORT, classifier_name,
                                fool_candidates)
from lqvae.spec.attacks import ATTACKS, THREATS
from lqvae.spec.defenses import HARDENING_SHORT

PAPER_EPS: float = ATTACKS["fgsm"].presets["paper"]["eps"]  # the paper's L-inf budget, 0.3
PAPER_PURIFIER = "lqvae"  # the paper's LQ-VAE (a PURIFIER_LABELS key)
MADRY = "madry"  # Madry adversarial training (a CLASSIFIER_DEFENSES key)


@dataclass(frozen=True)
class StepSettings:
    """What a step shows. Every name is a key of :mod:`lqvae.spec` (a test checks it).

    Args:
        attack: an ``ATTACKS`` key; None turns the attack off (the clean analysis only).
        threat: a ``THREATS`` key.
        purifier: a ``PURIFIER_LABELS`` key; None for no purifier.
        hardening: a ``CLASSIFIER_DEFENSES`` key (the classifier-side defense), None for the plain classifier.
        mode: the purifier's ``"deterministic"`` or ``"stochastic"`` mode.
        eps: the L-inf budget.
        fooled: show the first bundled sample from the current one on that the attack fools ("Next fooled"),
            so the step never lands on an image the attack happens to fail on.
    """

    attack: str | None
    threat: str = "whitebox"
    purifier: str | None = PAPER_PURIFIER
    hardening: str | None = None
    mode: str = "deterministic"
    eps: float = PAPER_EPS
    fooled: bool = False


@dataclass(frozen=True)
class LessonStep:
    """One step: a title, one paragraph of plain words, the settings it shows and the panel it talks about.

    ``text`` may name ``{eps}``, ``{steps}`` (the attack's live steps) and ``{eot}`` (EOT's draws); ``missing``
    replaces the text when the step's hardened classifier is not installed (and may name ``{name}``, the
    classifier it looked for); ``numbers``: the step also shows ``population_lines``."""

    title: str
    text: str
    settings: StepSettings
    panel: str  # the title of the group box the step points at (a PANEL_HELP key)
    numbers: bool = False
    missing: str = ""


STEPS: tuple[LessonStep, ...] = (
    LessonStep(
        "A clean image and its 64 bits",
        "This is a clean test image, with no attack. The LQ-VAE purifier encodes it into 64 numbers μ and turns "
        "each one into a single bit: +1 when μ lies within ±η of zero, −1 otherwise. The decoder rebuilds the "
        "image from those 64 bits alone, and the classifier only ever sees that rebuilt image. The grid under "
        "Latent bits shows the 64 bits; the image row shows the original and its purified copy.",
        StepSettings(attack=None), panel="Latent bits"),
    LessonStep(
        "FGSM fools the undefended classifier",
        "Now an attacker changes every pixel by at most {eps}, in the direction that raises the classifier's "
        "loss: one step along the sign of its gradient (FGSM). Nothing stands in front of the classifier. The "
        "change is easy to see, yet the classifier usually names another class, and with confidence. The lesson "
        "shows the first sample from here on that the attack fools (Shift+N finds the next one).",
        StepSettings(attack="fgsm", purifier=None, fooled=True), panel="Predictions"),
    LessonStep(
        "The same attack, purified (grey-box)",
        "The same attack, but the image now passes through the LQ-VAE before the classifier. The attacker did "
        "not know about the purifier: the perturbation was made against the classifier alone (grey-box). Most of "
        "the 64 bits stay as they were, so the decoder rebuilds something close to the clean image and the "
        "prediction often comes back. Theorem 1 says why: if the encoder is Lipschitz, a small perturbation moves "
        "each μ only a little, so a bit flips only when its μ was already close to the threshold η. Under the "
        "bit grids, the flips counted on this image stand beside the theorem's prediction for it.",
        StepSettings(attack="fgsm"), panel="Latent bits"),
    LessonStep(
        "The adaptive attack: BPDA",
        "A real attacker knows the defense and attacks purifier and classifier together. The hard quantizer "
        "has no useful gradient, and that, not robustness, is what kept gradient attacks out. BPDA uses the hard "
        "bits on the way forward and a smooth stand-in for the quantizer (H~) on the way back, so the gradient "
        "flows through the purifier again and the attack aims at the bits. One FGSM step through the stand-in is "
        "still a weak attack, so some images survive it: the lesson shows the first sample from here on that it "
        "fools, and the next step takes many steps.",
        StepSettings(attack="fgsm", threat="bpda", fooled=True), panel="Attack"),
    LessonStep(
        "Many steps and many draws: PGD with EOT",
        "PGD takes {steps} small gradient steps from a random start, always staying within ±{eps} of the "
        "original. The purifier now runs in stochastic mode: it samples its code around μ, so every run differs "
        "a little and a single gradient can mislead. EOT (Expectation over Transformation) averages the gradient "
        "over {eot} draws of the purifier, and success is checked again on fresh draws. This attack is slow, so "
        "the lesson starts it for you: watch the progress bar.",
        StepSettings(attack="pgd", threat="bpda_eot", mode="stochastic"), panel="Attack"),
    LessonStep(
        "Many images: measured against the paper",
        "One image proves nothing either way, so the evaluation ran these attacks over many test images. The "
        "Honesty panel shows the accuracy we measured beside the paper's claim for whatever is selected: now the "
        "paper's own adaptive test, one BPDA FGSM step. The Evaluate tab (Ctrl+2) measures it again on the bundled "
        "samples. Below, the numbers from the results files beside the paper's:",
        StepSettings(attack="fgsm", threat="bpda"), panel="Honesty", numbers=True),
    LessonStep(
        "For contrast: a hardened classifier (Madry)",
        "Madry adversarial training hardens the classifier itself: it is trained on PGD examples, and no purifier "
        "stands in front of it. There is nothing to approximate, so the attacker's gradient is exact and white-box "
        "PGD is the full adaptive attack. It keeps part of its accuracy under this attack, and pays for it in "
        "clean accuracy. Compare its measured number in the Honesty panel with the LQ-VAE's under PGD.",
        StepSettings(attack="pgd", purifier=None, hardening=MADRY), panel="Defense",
        missing="A Madry adversarially trained classifier is not installed for this dataset (no checkpoint "
                "classifier_{name}), so this step shows white-box PGD on the plain classifier: with nothing to "
                "defend it, it falls. Train one with the --adv madry option (see checkpoints/README.md) to show "
                "the contrast."),
)


@dataclass(frozen=True)
class HelpTopic:
    heading: str
    text: str


INTRO = HelpTopic(  # shown when the lesson panel opens on a "?" before the lesson has started
    "Attack, purify, watch the bits flip",
    "Press Start the lesson, or Page Down on a presenter's clicker, to begin. Each step sets the controls for you "
    "and explains what the audience sees. The ? in the corner of each panel explains that panel here.")

PANEL_HELP: Mapping[str, HelpTopic] = MappingProxyType({
    "Models": HelpTopic(
        "Models",
        "Choose the dataset (handwritten digits or clothing) and the classifier that is attacked. Classifiers A, "
        "B and C are the paper's three architectures. The lines below list what was loaded from the checkpoint "
        "folder, and say plainly what is missing."),
    "Defense": HelpTopic(
        "Defense",
        "What protects the classifier. A purifier such as the LQ-VAE cleans the image before the classifier sees "
        "it; a hardened classifier (Madry, Adv Tr) was itself trained on adversarial examples. Deterministic mode "
        "always gives the same code for the same image; stochastic mode samples several codes around μ and "
        "averages their images."),
    "Input": HelpTopic(
        "Input",
        "The image to attack: a bundled test sample (N and P step through them), a digit you draw, or an image "
        "file. Every input is turned into a 28 × 28 grey image, as the models expect."),
    "Attack": HelpTopic(
        "Attack",
        "The attack, its budget ε (how far each pixel may move) and the threat model: what the attacker knows. "
        "White-box attacks the classifier alone and lets the defense clean the result; Black-box transfers an "
        "attack made on another classifier; Adaptive BPDA attacks purifier and classifier together, and BPDA + EOT "
        "also averages over the stochastic purifier. Fast attacks follow the controls; slow ones run when you press "
        "Run."),
    "Predictions": HelpTopic(
        "Predictions",
        "The classifier's confidence for each class, for the original, the attacked image and their purified "
        "copies. The attack succeeds when the bar of the true class is no longer the tallest. In stochastic mode "
        "the error bars show how much the answer varies from draw to draw."),
    "Latent bits": HelpTopic(
        "Latent bits",
        "The 64 bits the LQ-VAE encodes the image into, as an 8 × 8 grid for the clean and for the attacked image; "
        "flipped bits are marked. The plot shows each μ against the thresholds ±η, where a bit flips. Beside the "
        "count of flips stands Theorem 1's prediction for this image and this perturbation."),
    "Honesty": HelpTopic(
        "Honesty: measured vs claimed",
        "One image is one example, not a result. This panel shows the accuracy measured over many test images for "
        "the selected setting, beside the number the paper reports for it, or says that it was not measured. The "
        "numbers are read from the evaluation's results files, never typed in by hand."),
    "History": HelpTopic(
        "History",
        "Every attacked run, as a small picture. Click one to show it again with its settings, without running it "
        "again; Export saves the current result as a picture and a JSON file."),
})


def step_text(step: LessonStep, state: AppState) -> str:
    """The step's paragraph, its placeholders filled from the settings (plain text: shown, never rendered)."""
    info = ATTACKS.get(step.settings.attack or "")
    values = {"eps": f"{step.settings.eps:g}", "steps": (info.live_steps if info else None) or 1,
              "eot": state.attack.eot_samples, "name": classifier_name(state.models.base, step.settings.hardening)}
    if _purifier_missing(step, state):
        end_to_end = step.settings.attack is not None and THREATS[step.settings.threat].end_to_end
        return NO_PURIFIER.format(purifier=step.settings.purifier,
                                  then=NO_PURIFIER_BPDA if end_to_end else NO_PURIFIER_RUNS)
    return (step.missing if _hardening_missing(step, state) else step.text).format(**values)


NO_PURIFIER = ("The LQ-VAE purifier is not installed for this dataset (no checkpoint {purifier}.safetensors in the "
               "checkpoint folder), so {then} Train one with python -m lqvae.train (see checkpoints/README.md) to "
               "show this step.")
NO_PURIFIER_BPDA = ("this step cannot run: the adaptive attack goes through the purifier, and there is none to go "
                    "through.")
NO_PURIFIER_RUNS = "this step runs with no defense at all: what you see is the undefended classifier."


def _purifier_missing(step: LessonStep, state: AppState) -> bool:
    """The step shows a purifier, and the engine has booted without any LQ-VAE to show."""
    return step.settings.purifier is not None and state.engine is not None and _purifier(
        step.settings.purifier, state) is None


def _hardening_missing(step: LessonStep, state: AppState) -> bool:
    h = step.settings.hardening
    return bool(h) and classifier_name(state.models.base, h) not in (state.engine.classifiers if state.engine else [])


def _purifier(wanted: str | None, state: AppState) -> str | None:
    """The purifier to use for ``wanted``: itself when installed, else another LQ-VAE, else None (none installed)."""
    if wanted is None or state.engine is None:
        return wanted
    if wanted in state.engine.purifiers:
        return wanted
    return next((p for p in state.engine.purifiers if state.purifier_kind(p) == "lqvae"), None)


def apply_step(step: LessonStep, state: AppState) -> None:
    """Put the step's settings on the state through its setters; a slow attack is started at once."""
    s = step.settings
    purifier = _purifier(s.purifier, state)
    state.set_defense(purifier=purifier, mode=s.mode if state.purifier_kind(purifier) == "lqvae" else "deterministic")
    hardening = None if _hardening_missing(step, state) else s.hardening
    state.set_models(classifier=classifier_name(state.models.base, hardening))
    if s.attack is None:
        state.set_attack(enabled=False)
    else:
        state.set_attack(enabled=True, attack=s.attack, threat=s.threat, eps_linf=s.eps, steps=None, preset="live",
                         targeted=False)
    if s.fooled and _find_fooled(state):
        return  # the search shows its result
    if state.attack_is_slow() or state.defense_is_slow():
        state.request_run(False)  # the lecturer should not have to find the Run button


def _find_fooled(state: AppState) -> bool:
    """Ask for the first bundled sample from the shown one on (it included) that the attack fools; False when the
    image is not a bundled sample (the lecturer's own drawing or file stays) or there are none."""
    image, engine = state.image, state.engine
    if image is None or image.sample_index is None or engine is None or engine.samples is None:
        return False
    state.request_next_fooled(fool_candidates(range(len(engine.samples[1])), image.sample_index, include_start=True))
    return True


# ---------------------------------------------------------------------- the population numbers (step 6)
# (classifier-side defense, purifier, attack, threat): the rows the numbers step lists, all at PAPER_EPS
POPULATION_ROWS: tuple[tuple[str | None, str | None, str, str], ...] = (
    (None, None, "fgsm", "whitebox"),
    (None, PAPER_PURIFIER, "fgsm", "whitebox"),
    (None, PAPER_PURIFIER, "fgsm", "bpda"),
    (None, PAPER_PURIFIER, "pgd", "bpda"),
    (None, PAPER_PURIFIER, "pgd", "bpda_eot"),
    (MADRY, None, "pgd", "whitebox"),
)
GREY_BOX = "grey-box"  # white-box on the classifier, with a purifier the attacker does not know


def population_lines(state: AppState, results: Results) -> list[str]:
    """A heading, then one line per ``POPULATION_ROWS`` entry for the selected dataset and classifier: the
    accuracy under attack measured in ``results`` (:func:`app.state.results.load_results`) and the paper's."""
    m = state.models
    lines = [f"{DATASET_LABELS[m.dataset]}, classifier {m.base}, ε = {PAPER_EPS:g}: accuracy under attack"]
    for hardening, purifier, attack, threat in POPULATION_ROWS:
        clf = classifier_name(m.base, hardening)
        defense = (PURIFIER_LABELS.get(purifier, purifier) if purifier
                   else HARDENING_SHORT[hardening] if hardening else "No defense")
        hits = matching(results, dataset=m.dataset, classifier=clf, purifier=purifier, attack=attack, threat=threat,
                        eps=PAPER_EPS)
        measured = (f"{float(hits[0]['attacked_accuracy']):.1f} % measured (n = {hits[0].get('n') or '?'})" if hits
                    else "not measured yet")
        c = paper_claims.claim(m.dataset, clf, purifier, attack, threat)
        claimed = f"paper {c[0]:.2f} %" if c else "no paper number"
        threat_name = GREY_BOX if purifier and threat == "whitebox" else THREAT_SHORT[threat]
        lines.append(f"• {defense}, {ATTACK_NAMES[attack]} {threat_name}: {measured}, {claimed}")
    return lines


__all__ = ["StepSettings", "LessonStep", "STEPS", "HelpTopic", "INTRO", "PANEL_HELP", "PAPER_EPS", "POPULATION_ROWS",
           "THREAT_SHORT", "step_text", "apply_step", "population_lines"]
