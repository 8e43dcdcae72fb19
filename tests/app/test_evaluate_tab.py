"""The Evaluate tab cannot mislead: adaptive threat by default, Explore's caveat, every column explained,
and a progress line that fits and says how long is left."""

from __future__ import annotations

import pytest

import time

from PySide6.QtGui import QFontMetrics

from app.panels import evaluate_tab
from app.panels.evaluate_tab import COLUMNS, EvaluateTab
from app.panels.honesty import HonestyPanel
from app.state import paper_claims
from app.state.app_state import AppState
from app.state.settings import adaptive_threat

ROW = {"attack": "fgsm", "eps": 0.3, "n": 100, "clean_accuracy": 98.0, "undefended_accuracy": 2.0,
       "purified_clean_accuracy": 97.0, "defended_accuracy": 60.0, "attack_failures": 3, "seconds": 4.2,
       "defense": "lqvae", "search": None, "threat": "whitebox", "hamming": [1, 2, 3, 9]}


def _tab(qtbot, state: AppState | None = None) -> EvaluateTab:
    tab = EvaluateTab(state or AppState())
    qtbot.addWidget(tab)
    return tab


def test_the_threat_starts_adaptive_against_a_purifier_and_follows_the_defense(qtbot):
    state = AppState()  # the LQ-VAE purifier is selected
    tab = _tab(qtbot, state)
    assert tab.threat.currentData() == "bpda" == adaptive_threat("lqvae")
    with qtbot.waitSignal(state.evaluateRequested) as blocker:
        tab.start()
    assert blocker.args[0].threat == "bpda"
    state.set_defense(purifier=None)  # nothing to differentiate through: white-box is the adaptive attack
    assert tab.threat.currentData() == "whitebox"
    state.set_defense(purifier="vae")
    assert tab.threat.currentData() == "bpda"


def test_a_threat_the_user_picks_is_kept_when_the_defense_changes(qtbot):
    state = AppState()
    tab = _tab(qtbot, state)
    tab.threat.setCurrentIndex(tab.threat.findData("whitebox"))
    tab.threat.activated.emit(tab.threat.currentIndex())  # what a click does
    state.set_defense(purifier="vae")
    assert tab.threat.currentData() == "whitebox"
    state.set_defense(purifier=None)
    tab.threat.setCurrentIndex(tab.threat.findData("bpda"))
    tab.threat.activated.emit(tab.threat.currentIndex())
    state.set_defense(purifier=None, mode="stochastic")  # BPDA without a purifier cannot run: back to white-box
    assert tab.threat.currentData() == "whitebox"


def test_white_box_on_a_purifier_shows_explores_caveat_from_one_source(qtbot, monkeypatch):
    state = AppState()
    tab = _tab(qtbot, state)
    tab.show()
    assert tab.caveat.isHidden()  # BPDA: the number is about the defense
    monkeypatch.setattr(paper_claims, "threat_caveat",
                        lambda purifier, threat: f"ONE SOURCE {threat}" if purifier and threat == "whitebox" else None)
    tab.threat.setCurrentIndex(tab.threat.findData("whitebox"))
    assert tab.caveat.isVisible() and tab.caveat.text() == "ONE SOURCE whitebox"
    honesty = HonestyPanel(state)  # Explore says the same words, from the same function
    qtbot.addWidget(honesty)
    state.set_attack(threat="whitebox")
    honesty.refresh()
    assert "ONE SOURCE whitebox" in honesty.text.text()


def test_rows_measured_white_box_keep_the_caveat_whatever_is_selected_now(qtbot):
    tab = _tab(qtbot)
    tab.show()
    assert tab.threat.currentData() == "bpda"
    tab.show_rows([ROW])
    assert tab.caveat.isVisible()
    assert tab.caveat.text() == ("The rows below were measured under “White-box on classifier”. "
                                 + paper_claims.threat_caveat("lqvae", "whitebox"))
    assert "White-box on classifier" in tab.note.text()
    tab.show_rows([dict(ROW, threat="bpda", defended_accuracy=5.0)])
    assert tab.caveat.isHidden()


def test_every_column_is_explained_and_failures_in_plain_words(qtbot):
    tab = _tab(qtbot)
    tab.show()
    for j, (key, _) in enumerate(COLUMNS):
        assert len(tab.table.horizontalHeaderItem(j).toolTip()) > 20, key
    tab.show_rows([ROW])  # headers are rebuilt after a run: the tooltips stay
    failures = [j for j, (key, _) in enumerate(COLUMNS) if key == "attack_failures"][0]
    tip = tab.table.horizontalHeaderItem(failures).toolTip()
    assert "found no adversarial example" in tip and "clean pixels" in tip and "held" in tip
    legend = tab.legend.text()
    assert tab.legend.isVisible()
    for word in ("Clean", "No defense", "Purified clean", "Defended", "Failures"):
        assert f"<b>{word}</b>" in legend
    assert "found no adversarial example" in legend


def test_progress_text_beside_the_bar_fits_and_says_the_time_left(qtbot, monkeypatch):
    state = AppState()
    tab = _tab(qtbot, state)
    tab.resize(1100, 800)
    tab.show()
    state.evaluationStarted.emit()
    tab._progress = ("", 0.0, time.monotonic() - 30)  # a run 30 s along
    state.evaluationProgress.emit(0.47, "pgd ε=0.3")
    state.evaluationRemaining.emit(41.0)
    line = tab.progress_text.text()
    assert line == "pgd ε=0.3 · 47 % · about 40 s left" and tab.progress_text.toolTip() == line
    assert tab.progress.format() == "%p%" and tab.progress.value() == 47  # the bar keeps only what fits in it
    assert QFontMetrics(tab.progress_text.font()).horizontalAdvance(line) <= tab.progress_text.width()
    state.evaluationFinished.emit([ROW])
    assert tab.progress_text.text() == "done in 30 s"


@pytest.mark.slow  # ~5-14 s: in make test-all; the default run keeps a faster check of the same code
def test_the_estimate_is_measured_on_a_real_evaluation(qtbot, window):
    tab, s = window.evaluate, window.state
    window.show_tab("evaluate")
    tab.n.setValue(10)
    for name, box in tab.attack_boxes.items():
        box.setChecked(name == "pgd")
    tab.eps.setText("0.1, 0.2, 0.3")
    lefts: list[float] = []
    s.evaluationRemaining.connect(lefts.append)
    with qtbot.waitSignal(s.evaluationFinished, timeout=120_000) as blocker:
        tab.start()
    rows = blocker.args[0]
    assert all(r["threat"] == "bpda" for r in rows)  # the adaptive attack by default
    assert lefts and lefts[-1] == 0.0 and any(x > 0 for x in lefts)
    assert tab.caveat.isHidden()
    assert evaluate_tab.FAILURES.startswith("Failures: ")


def test_attack_choices_are_named_in_plain_words(window):
    """The Evaluate tab's attack boxes say "DeepFool L∞", not the key "DEEPFOOL_LINF"."""
    from app.state.settings import ATTACK_NAMES

    for key, box in window.evaluate.attack_boxes.items():
        assert box.text() == ATTACK_NAMES[key] and "_" not in box.text(), (key, box.text())
