"""The defense selector: purifier-side and classifier-side defenses, Defense-GAN's search setting, and
analyses through the purifiers without a bit code (the VAE ablation and Defense-GAN)."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
from tests.app.helpers import MADRY, ROOT, SHIPPED, choose, wait_settled
from PySide6.QtCore import Qt

from app.state.app_state import AppState
from app.state.settings import (AnalysisRequest, AttackSettings, DefenseSettings, EngineInfo, EvaluationRequest,
                                InputImage, ModelSettings)

ADVTR = "FGSM adversarial training (Adv Tr)"


def fake_info() -> EngineInfo:
    return EngineInfo(dataset="mnist", class_names=[str(i) for i in range(10)],
                      classifiers=["A", "A_advtr", "A_madry", "B", "B_madry", "C"],
                      purifiers=["defensegan", "lqvae", "vae"],
                      purifier_kinds={"defensegan": "defensegan", "lqvae": "lqvae", "vae": "vae"},
                      classifier_notes={"A_madry": "1 epoch of PGD-7 training at ε = 0.3"})


@pytest.fixture
def panels(qtbot):
    from app.panels.defense import DefensePanel
    from app.panels.models import ModelsPanel

    state = AppState()
    defense, models = DefensePanel(state), ModelsPanel(state)
    for w in (defense, models):
        qtbot.addWidget(w)
    state.set_engine_info(fake_info())
    return state, defense, models


def texts(combo) -> list[str]:
    return [combo.itemText(k) for k in range(combo.count()) if combo.itemText(k)]


# ----------------------------------------------------------------------------- the selector
def test_choosing_madry_swaps_the_classifier_and_clears_the_purifier(panels):
    state, defense, models = panels
    assert state.defense.purifier == "lqvae" and state.models.classifier == "A"
    choose(defense.purifier, MADRY)
    assert state.models.classifier == "A_madry" and state.defense.purifier is None
    assert models.classifier.currentText() == "A"  # the Models panel names the architecture
    tip = defense.purifier.itemData(defense.purifier.currentIndex(), Qt.ItemDataRole.ToolTipRole)
    assert "PGD" in tip and "partial" in tip and "1 epoch of PGD-7" in tip
    choose(defense.purifier, ADVTR)
    assert state.models.classifier == "A_advtr" and state.defense.purifier is None


def test_choosing_a_purifier_or_none_restores_the_base_classifier(panels):
    state, defense, _ = panels
    choose(defense.purifier, MADRY)
    choose(defense.purifier, "Defense-GAN")
    assert state.models.classifier == "A" and state.defense.purifier == "defensegan"
    choose(defense.purifier, MADRY)
    choose(defense.purifier, "none (classifier alone)")
    assert state.models.classifier == "A" and state.defense.purifier is None


def test_hardened_entries_follow_the_architecture(panels):
    state, defense, models = panels
    assert texts(models.classifier) == ["A", "B", "C"]  # hardened versions are not architectures
    choose(defense.purifier, MADRY)
    choose(models.classifier, "B")  # B has a Madry checkpoint: the defense is kept
    assert state.models.classifier == "B_madry" and defense.purifier.currentText() == MADRY
    assert MADRY in texts(defense.purifier) and ADVTR not in texts(defense.purifier)
    messages = []
    state.message.connect(lambda level, text: messages.append(text))
    choose(models.classifier, "C")  # C has none: plain C, no defense, and the user is told
    assert state.models.classifier == "C" and state.defense.purifier is None
    assert defense.purifier.currentText() == "none (classifier alone)"
    assert MADRY not in texts(defense.purifier) and "classifier_C_madry" in messages[-1]


def test_a_classifier_set_elsewhere_shows_in_the_defense_combo(panels):
    state, defense, models = panels
    state.set_defense(purifier=None)
    state.set_models(classifier="A_advtr")  # e.g. a restored history entry
    assert defense.purifier.currentText() == ADVTR and models.classifier.currentText() == "A"


def test_mode_and_search_rows_follow_the_defense(panels):
    state, defense, _ = panels
    assert defense.sto.isEnabled() and not defense.search.isVisibleTo(defense)
    state.set_defense(mode="stochastic")
    choose(defense.purifier, "VAE (no quantization)")
    assert state.defense.mode == "deterministic"  # the engine runs the VAE as z = mu only
    assert defense.det.isEnabled() and not defense.sto.isEnabled() and "no sampling" in defense.note.text()
    choose(defense.purifier, "Defense-GAN")
    assert not defense.sto.isEnabled() and "restarts" in defense.note.text()
    assert defense.search.isVisibleTo(defense) and not state.defense_is_slow()
    defense.search.setCurrentIndex(defense.search.findData("paper"))
    assert state.defense.search == "paper" and state.defense.search_steps_restarts == (200, 10)
    assert state.defense_is_slow()
    choose(defense.purifier, MADRY)
    assert not defense.det.isEnabled() and not defense.sto.isEnabled() and not defense.search.isVisibleTo(defense)
    assert "hardened classifier has no purifier" in defense.note.text()


def test_bpda_through_defensegan_runs_on_demand():
    state = AppState()
    state.set_engine_info(fake_info())
    state.set_defense(purifier="defensegan")
    state.set_attack(attack="pgd", threat="whitebox")
    assert not state.attack_is_slow()
    state.set_attack(threat="bpda")  # a latent search at every attack step
    assert state.attack_is_slow()
    state.set_defense(purifier="lqvae")
    assert not state.attack_is_slow()


def test_a_missing_purifier_falls_back_to_the_lqvae_not_the_first_name(qtbot):
    from app.engine.controller import Controller

    state = AppState()
    controller = Controller(state)
    state.set_defense(purifier="lqvae_robust")  # not in this info; its purifiers would sort Defense-GAN first
    info = dataclasses.replace(fake_info(), dataset="fashion_mnist", classifiers=[])  # [] loads nothing
    controller._on_booted(info, controller._boot_generation)
    assert state.defense.purifier == "lqvae"


ADV_LABEL = "LQ-VAE adversarially fine-tuned"


def test_purifiers_are_ordered_paper_then_ours_then_baselines():
    from app.state.settings import purifier_order

    names = ["defensegan", "lqvae", "lqvae_adv", "lqvae_robust", "my_purifier", "vae"]
    assert purifier_order(names) == ["lqvae", "lqvae_robust", "lqvae_adv", "vae", "defensegan", "my_purifier"]


def test_an_adversarially_fine_tuned_lqvae_on_disk_is_listed_labelled_apart_and_compared_to_the_paper(
        qtbot, tmp_path, monkeypatch, app_env):
    from app.engine import adapter as engine_adapter
    from app.state import paper_claims as paper_claims
    from app.panels.defense import DefensePanel
    from app.panels.honesty import HonestyPanel

    shutil.copytree(app_env["LQVAE_CHECKPOINTS"], tmp_path / "ckpt")
    folder = tmp_path / "ckpt" / "mnist"
    for name in ("lqvae_adv", "lqvae_robust"):  # same kind and architecture as the paper's LQ-VAE: a copy will do
        shutil.copy(folder / "lqvae.safetensors", folder / f"{name}.safetensors")
    monkeypatch.setenv("LQVAE_CHECKPOINTS", str(tmp_path / "ckpt"))
    info = engine_adapter.boot("mnist")
    assert info.purifier_kinds["lqvae_adv"] == "lqvae"
    state = AppState()
    defense, honesty = DefensePanel(state), HonestyPanel(state)
    for w in (defense, honesty):
        qtbot.addWidget(w)
    state.set_engine_info(info)
    assert texts(defense.purifier) == ["none (classifier alone)", "LQ-VAE (paper)", "LQ-VAE robust", ADV_LABEL]
    choose(defense.purifier, ADV_LABEL)
    assert state.defense.purifier == "lqvae_adv" and defense.sto.isEnabled()  # an LQ-VAE: it has bits and σ
    tip = defense.purifier.itemData(defense.purifier.currentIndex(), Qt.ItemDataRole.ToolTipRole)
    assert "not the paper's method" in tip and "Trained on adversarial examples" in tip
    assert "adaptive BPDA PGD still breaks it" in tip
    state.set_attack(attack="fgsm", threat="whitebox", eps_linf=0.3, enabled=True)
    text = honesty.text.text()
    assert ADV_LABEL in text and "Paper claims: <b>89.17 %</b>" in text  # Table 2, the paper's LQ-VAE column
    assert f"{ADV_LABEL}: compared against the paper's LQ-VAE claim" in text and "trained on adversarial" in text
    state.set_attack(threat="bpda")
    assert "Paper claims: <b>83.70 %</b>" in honesty.text.text()  # Table 7's LQ-VAE
    assert paper_claims.defense_column("lqvae_adv", "A") == "lqvae"
    choose(defense.purifier, "LQ-VAE (paper)")
    assert "compared against" not in honesty.text.text()  # the paper's own defense needs no such note


# ----------------------------------------------------------------------------- the engine through the adapter
@pytest.fixture
def shipped(monkeypatch):
    if not (SHIPPED / "mnist" / "defensegan.safetensors").exists():
        pytest.skip("shipped Defense-GAN checkpoint missing")
    monkeypatch.setenv("LQVAE_CHECKPOINTS", str(SHIPPED))
    monkeypatch.setenv("LQVAE_SAMPLES", str(ROOT / "resources" / "samples"))
    from app.engine.adapter import ModelCache

    return ModelCache()


def sample_request(defense: DefenseSettings, attack: AttackSettings | None = None, index: int = 0,
                   classifier: str = "A") -> AnalysisRequest:
    from lqvae.io.data import load_samples

    split = load_samples("mnist", ROOT / "resources" / "samples")
    image = InputImage(split.images[index] / np.float32(255), int(split.labels[index]), f"sample {index}", "mnist")
    return AnalysisRequest(1, image, ModelSettings("mnist", classifier, "cpu"), attack, defense)


def test_search_setting_maps_onto_the_purifier_the_adapter_uses(shipped):
    from lqvae.core.config import DefenseGANConfig
    from lqvae.core.defensegan import DefenseGAN

    from app.engine import adapter as engine_adapter
    from app.state.settings import DEFENSEGAN_SEARCH

    assert DEFENSEGAN_SEARCH["live"] == DefenseGAN.LIVE
    assert DEFENSEGAN_SEARCH["paper"] == (DefenseGANConfig().search_steps, DefenseGANConfig().restarts)
    purifier = shipped.get("mnist", "purifier", "defensegan", "cpu")
    assert "L = 200, R = 10" in engine_adapter.configure_purifier(purifier, "paper")
    assert (purifier.search_steps, purifier.restarts) == (200, 10)
    engine_adapter.analyze(sample_request(DefenseSettings("defensegan", search="live")), shipped)
    assert (purifier.search_steps, purifier.restarts) == (50, 2)  # the analysis set it back to live
    lqvae = shipped.get("mnist", "purifier", "lqvae", "cpu")
    assert engine_adapter.configure_purifier(lqvae, "paper") == "" and not hasattr(lqvae, "restarts")


@pytest.mark.parametrize("name", ["vae", "defensegan"])
def test_analysis_through_a_purifier_without_bits(qtbot, shipped, name):
    from lqvae.evaluate.analysis import Analysis

    from app.engine import adapter as engine_adapter
    from app.panels.bits import BitsPanel

    request = sample_request(DefenseSettings(name), AttackSettings(attack="fgsm", eps_linf=0.3))
    result = engine_adapter.analyze(request, shipped)
    for image, probs in ((result.purified_original, result.probs_purified_original),
                         (result.purified_adversarial, result.probs_purified_adversarial)):
        assert image.shape == (1, 28, 28) and 0 <= image.min() and image.max() <= 1
        assert probs.shape == (10,) and abs(float(probs.sum()) - 1) < 1e-4
    assert not np.allclose(result.purified_original, result.original, atol=1e-3)  # it did purify
    assert int(result.probs_purified_original.argmax()) == request.image.label
    assert result.bits_original is None and result.hamming is None
    # the bits panel drops the previous defense's bits and says why there are none
    state = AppState()
    panel = BitsPanel(state)
    qtbot.addWidget(panel)
    bits = np.where(np.arange(64) % 3 == 0, 1.0, -1.0)
    lq = Analysis(original=result.original, bits_original=bits, bits_adversarial=-bits, z_original=np.zeros(64),
                  z_adversarial=np.ones(64), hamming=64)
    state.set_result(sample_request(DefenseSettings("lqvae")), lq)
    assert panel.clean.bits is not None and not panel.zplot.isHidden()
    state.set_defense(purifier=name)  # chosen: the old bits go at once, before any result
    assert panel.clean.bits is None and "has no bit code" in panel.hamming.text()
    assert panel.zplot.isHidden()  # no empty μ axes beside the explanation
    state.set_result(sample_request(DefenseSettings("lqvae")), lq)
    state.set_result(request, result)
    assert panel.clean.bits is None and panel.adv.bits is None
    assert "has no bit code" in panel.hamming.text()


def test_evaluation_uses_the_search_setting_and_the_hardened_classifier(shipped, monkeypatch):
    from lqvae.io.data import load_samples

    from app.engine import adapter as engine_adapter

    eng = engine_adapter.engine()
    seen = []

    def spy(spec, images, labels, *, classifier, purifier=None, **kwargs):
        seen.append((getattr(purifier, "search_steps", None), getattr(purifier, "restarts", None)))
        return eng.evaluate_batch(spec, images, labels, classifier=classifier, purifier=purifier, **kwargs)

    monkeypatch.setattr(engine_adapter, "_engine", dataclasses.replace(eng, evaluate_batch=spy))
    split = load_samples("mnist", ROOT / "resources" / "samples")
    request = EvaluationRequest(n=10, attacks=("fgsm",), eps=(0.3,)).with_models(
        ModelSettings("mnist", "A", "cpu"), DefenseSettings("defensegan", search="live"), "B", split.images,
        split.labels)
    (row,) = engine_adapter.evaluate(request)
    assert seen == [(50, 2)] and row["defense"] == "defensegan" and row["search"] == "live"
    assert row["purified_clean_accuracy"] is not None and row["n"] == 10
    assert row["defended_accuracy"] is not None and row["undefended_accuracy"] is not None
    madry = dataclasses.replace(request, models=ModelSettings("mnist", "A_madry", "cpu"),
                                defense=DefenseSettings(None))
    (row,) = engine_adapter.evaluate(madry)
    assert seen[-1] == (None, None) and row["defense"] == "madry" and row["defended_accuracy"] is None


def test_evaluate_tab_names_the_classifier_side_defense(qtbot):
    from app.panels.evaluate_tab import EvaluateTab

    tab = EvaluateTab(AppState())
    qtbot.addWidget(tab)
    row = {"attack": "fgsm", "eps": 0.3, "n": 10, "clean_accuracy": 90.0, "undefended_accuracy": 60.0,
           "purified_clean_accuracy": None, "defended_accuracy": None, "defense": "madry", "search": None}
    tab.show_rows([row])
    assert tab.table.horizontalHeaderItem(4).text() == "Madry\nclassifier %"
    assert "Madry adversarial training (the hardened classifier alone)" in tab.note.text()
    tab.show_rows([dict(row, defense="defensegan", search="paper", defended_accuracy=70.0)])
    assert tab.table.horizontalHeaderItem(4).text() == "No defense\n%"
    assert "Defense-GAN (paper search: L = 200, R = 10)" in tab.note.text()


# ----------------------------------------------------------------------------- the window
def test_window_defensegan_paper_search_runs_on_demand_then_madry(qtbot, defended_window, monkeypatch):
    window = defended_window
    from app.state import settings as state_module

    s, panel = window.state, window.defense
    assert s.engine.purifier_kinds == {"defensegan": "defensegan", "lqvae": "lqvae", "vae": "vae"}
    assert "20.0 % under PGD-20" in s.engine.classifier_notes["A_madry"]
    s.set_attack(attack="fgsm", eps_linf=0.3, threat="whitebox", enabled=True)
    choose(panel.purifier, "Defense-GAN")
    wait_settled(qtbot, window)
    assert s.request.defense.purifier == "defensegan" and s.result.purified_adversarial is not None
    assert "has no bit code" in window.bits.hamming.text() and window.bits.clean.bits is None
    quick = {**state_module.DEFENSEGAN_SEARCH, "paper": (3, 2)}  # "paper" without its seconds (the spec's is read-only)
    from app.engine import adapter as adapter_module, controller as controller_module

    for module in (state_module, adapter_module, controller_module):
        monkeypatch.setattr(module, "DEFENSEGAN_SEARCH", quick)
    panel.search.setCurrentIndex(panel.search.findData("paper"))
    wait_settled(qtbot, window)
    before = s.request.id
    window.inputs.samples.select(5)
    wait_settled(qtbot, window)
    assert s.request.id == before and "press Run" in window.statusBar().currentMessage()  # nothing ran by itself
    assert window.attack.hint.text() == "slow: press Run"
    status = []
    s.analysisStarted.connect(lambda _r: status.append(window.statusBar().currentMessage()))
    with qtbot.waitSignal(s.resultChanged, timeout=30_000):
        s.request_run(False)
    assert s.request.image.source == "sample 5" and s.request.defense.search == "paper"
    assert "Defense-GAN is searching" in status[-1] and "L = 3" in status[-1]
    purifier = window.controller.cache.get("mnist", "purifier", "defensegan", s.models_info.device)
    assert (purifier.search_steps, purifier.restarts) == (3, 2)
    choose(panel.purifier, MADRY)
    wait_settled(qtbot, window)
    assert s.request.models.classifier == "A_madry" and s.request.defense.purifier is None
    assert "classifier_A_madry" in window.models.status.text()
    assert "hardens the classifier itself" in window.bits.hamming.text()
    assert "Madry adversarial training" in window.honesty.text.text()
