"""The guided lesson and the panels' "?" help: the steps name real settings, a clicker walks the lesson through
the state's setters, the text shown is each step's plain text, and it all works after a switch of dataset."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QToolButton
from tests.app.helpers import both_datasets, open_window, wait_settled

from app.panels.lesson import LessonPanel
from app.state.app_state import AppState
from app.state.lesson import (PANEL_HELP, POPULATION_ROWS, STEPS, THREAT_SHORT, LessonStep, population_lines,
                              step_text)
from app.state.results import Results
from app.state.settings import DATASET_LABELS, classifier_name
from lqvae.spec.attacks import ATTACKS, THREATS
from lqvae.spec.defenses import HARDENING_LABELS, PURIFIER_LABELS

WINDOW_PANELS = {"Models", "Defense", "Input", "Attack", "Predictions", "Latent bits",
                 "Honesty", "History"}


def sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


# ---------------------------------------------------------------------- the step data
@pytest.mark.parametrize("step", STEPS, ids=[s.title for s in STEPS])
def test_every_step_names_settings_the_spec_knows(step: LessonStep):
    s = step.settings
    assert s.attack is None or s.attack in ATTACKS
    assert s.threat in THREATS and s.mode in ("deterministic", "stochastic")
    assert s.purifier is None or s.purifier in PURIFIER_LABELS
    assert s.hardening is None or s.hardening in HARDENING_LABELS
    assert not (s.purifier and s.hardening), "a step defends with a purifier or a hardened classifier, not both"
    assert not (THREATS[s.threat].needs_purifier and not s.purifier), "BPDA needs a purifier to attack through"
    assert s.mode == "deterministic" or s.purifier, "the stochastic mode is a purifier's"
    assert step.panel in PANEL_HELP
    assert 3 <= sentences(step.text) <= 5, step.text
    assert not step.missing or s.hardening, "only a hardened classifier can be missing"
    text = step_text(step, AppState())  # every placeholder resolves
    assert "{" not in text and "}" not in text


def test_the_lesson_covers_the_story_in_order():
    s = [step.settings for step in STEPS]
    assert s[0].attack is None  # a clean image first
    assert (s[1].attack, s[1].threat, s[1].purifier) == ("fgsm", "whitebox", None)  # the undefended classifier
    assert (s[2].attack, s[2].threat, s[2].purifier) == ("fgsm", "whitebox", "lqvae")  # the same, purified
    assert THREATS[s[3].threat].end_to_end and not THREATS[s[3].threat].stochastic  # BPDA
    assert s[4].attack == "pgd" and THREATS[s[4].threat].stochastic and s[4].mode == "stochastic"  # PGD + EOT
    assert STEPS[5].numbers  # the population numbers
    assert s[6].hardening == "madry" and s[6].purifier is None  # a hardened classifier for contrast
    assert sum(step.numbers for step in STEPS) == 1


def test_help_texts_and_number_rows_use_known_names():
    assert set(PANEL_HELP) == WINDOW_PANELS
    for topic in PANEL_HELP.values():
        assert 2 <= sentences(topic.text) <= 5, topic.text
    assert set(THREAT_SHORT) == set(THREATS)
    for hardening, purifier, attack, threat in POPULATION_ROWS:
        assert attack in ATTACKS and threat in THREATS
        assert hardening is None or hardening in HARDENING_LABELS
        assert purifier is None or purifier in PURIFIER_LABELS


def test_numbers_come_from_the_results_and_the_paper_and_say_when_unmeasured():
    state = AppState()
    record = {"dataset": "mnist", "classifier": "A", "defense": "lqvae", "attack": "fgsm", "threat": "bpda",
              "eps": 0.3, "n": 1234, "attacked_accuracy": 12.345}
    lines = population_lines(state, Results(records=[record]))
    assert lines[0].startswith(DATASET_LABELS["mnist"])
    bpda = next(line for line in lines if "FGSM BPDA:" in line)
    assert "12.3 % measured (n = 1234)" in bpda and "paper 83.70 %" in bpda  # the paper's Table 7, from the spec
    assert "not measured yet" in next(line for line in lines if "FGSM grey-box" in line)
    assert all("not measured yet" in line for line in population_lines(state, Results())[1:])


def test_the_text_is_plain_and_names_are_never_rendered(qtbot):
    state = AppState()
    state.set_models(classifier="<h1>A</h1><a href='x'>y</a>")
    panel = LessonPanel(state)
    qtbot.addWidget(panel)
    panel.go(len(STEPS) - 1)  # the hardened classifier is missing: its text names the classifier it looked for
    for label in (panel.counter, panel.heading, panel.body, panel.numbers):
        assert label.textFormat() == Qt.TextFormat.PlainText
    assert "classifier_<h1>A</h1><a href='x'>y</a>_madry" in panel.body.text()
    panel.go(next(i for i, s in enumerate(STEPS) if s.numbers))
    assert "classifier <h1>A</h1>" in panel.numbers.text()


def test_the_lesson_text_is_large_and_follows_the_zoom(qtbot):
    panel = LessonPanel(AppState())
    qtbot.addWidget(panel)
    base = panel.font().pointSizeF()
    assert panel.body.font().pointSizeF() >= 1.5 * base and panel.heading.font().pointSizeF() >= 2 * base
    bigger = panel.font()
    bigger.setPointSizeF(2 * base)
    panel.setFont(bigger)  # what zooming the window does to it
    assert panel.body.font().pointSizeF() >= 3 * base


# ---------------------------------------------------------------------- in the window
def _lesson(window) -> LessonPanel:
    panel = window.findChild(LessonPanel)
    assert panel is not None, "the lesson is not installed"
    return panel


def _open_lesson(window) -> None:
    action = next(a for a in window.menu_help.actions() if a.text() == "Lesson")
    assert action.shortcut().toString() == "F1"
    action.trigger()


def _problems(state) -> list[str]:
    seen: list[str] = []
    state.message.connect(lambda level, text: seen.append(f"{level}: {text}") if level != "info" else None)
    return seen


def _check_step(window, index: int) -> None:
    s, step, panel = window.state, STEPS[index], _lesson(window)
    want = step.settings
    assert panel.index == index
    assert s.attack.enabled == (want.attack is not None)
    if want.attack is not None:
        assert (s.attack.attack, s.attack.threat, s.attack.eps_linf) == (want.attack, want.threat, want.eps)
    installed = classifier_name(s.models.base, want.hardening) in s.engine.classifiers
    assert s.models.classifier == classifier_name(s.models.base, want.hardening if installed else None)
    assert s.defense.purifier == want.purifier and s.defense.mode == want.mode
    assert panel.heading.text() == step.title
    assert panel.body.text() == step_text(step, s)
    assert panel.body.text().startswith((step.text if installed else step.missing).split("{")[0])
    assert panel.numbers.isVisible() == step.numbers
    assert panel.marked is not None and panel.marked.title() == step.panel and panel.marked.isVisible()
    assert not s.stale, f"step {index + 1} shows an out-of-date result: {s.stale_text(reason=True)}"


def _walk(qtbot, window, key: Qt.Key, indices) -> None:
    for index in indices:
        qtbot.keyClick(window, key)
        wait_settled(qtbot, window, timeout=60_000)
        _check_step(window, index)


@pytest.mark.slow  # ~5-14 s: in make test-all; the default run keeps a faster check of the same code
def test_the_clicker_walks_the_lesson_to_the_end_and_back(qtbot, window):
    s = window.state
    problems = _problems(s)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_PageDown)  # the lesson is closed: Page Down is not taken
    assert _lesson(window).index is None
    _open_lesson(window)
    dock = _lesson(window).parentWidget()
    assert dock.isVisible()
    wait_settled(qtbot, window)
    _check_step(window, 0)
    assert s.result.adversarial is None  # the clean image
    _walk(qtbot, window, Qt.Key.Key_PageDown, range(1, len(STEPS)))
    assert "not installed" in _lesson(window).body.text()  # the tiny models have no Madry classifier
    qtbot.keyClick(window, Qt.Key.Key_PageDown)  # past the end: stays on the last step
    _check_step(window, len(STEPS) - 1)
    window.show_tab("evaluate")  # each step brings its panel into view, on the Explore tab too
    _walk(qtbot, window, Qt.Key.Key_PageUp, reversed(range(len(STEPS) - 1)))
    assert problems == []
    source = s.image.source
    qtbot.keyClick(window, Qt.Key.Key_N)  # next sample: still N while the lesson is open
    assert s.image.source != source
    dock.close()
    qtbot.keyClick(window, Qt.Key.Key_PageDown)
    assert _lesson(window).index == 0 and _lesson(window).marked is None


def test_the_eot_step_runs_the_slow_attack_itself(qtbot, window):
    panel = _lesson(window)
    _open_lesson(window)
    eot = next(i for i, step in enumerate(STEPS) if THREATS[step.settings.threat].stochastic)
    with qtbot.waitSignal(window.state.resultChanged, timeout=60_000,
                          check_params_cb=lambda request, result: request.attack is not None):
        panel.go(eot)
    assert window.state.request.attack.threat == STEPS[eot].settings.threat
    assert window.state.result.stochastic_probs is not None


def test_each_question_mark_opens_its_panel_explanation(qtbot, window):
    panel = _lesson(window)
    boxes = {box.title(): box for box in window.findChildren(QGroupBox) if box.title() in PANEL_HELP}
    assert set(boxes) == WINDOW_PANELS
    settings = (window.state.models, window.state.attack, window.state.defense)
    for title, box in boxes.items():
        button = next(b for b in box.findChildren(QToolButton) if b.text() == "?")
        assert button.isVisible() and button.geometry().right() <= box.width()
        button.click()
        assert panel.parentWidget().isVisible()
        assert panel.heading.text() == PANEL_HELP[title].heading and panel.body.text() == PANEL_HELP[title].text
        assert panel.marked is box
    assert (window.state.models, window.state.attack, window.state.defense) == settings  # help changes nothing
    panel.resume.click()  # "Start the lesson"
    wait_settled(qtbot, window)
    _check_step(window, 0)


def test_madry_step_uses_the_hardened_classifier_and_back_restores_the_plain_one(qtbot, defended_window):
    window = defended_window
    panel = _lesson(window)
    _open_lesson(window)
    last = len(STEPS) - 1
    panel.go(last)
    wait_settled(qtbot, window, timeout=60_000)
    _check_step(window, last)
    assert window.state.models.classifier == "A_madry" and "not installed" not in panel.body.text()
    panel.go_back()
    wait_settled(qtbot, window, timeout=60_000)
    _check_step(window, last - 1)
    assert window.state.models.classifier == "A"


@pytest.fixture
def two_dataset_window(qtbot, tmp_path, monkeypatch, app_env, model_cache):
    """A window whose tiny MNIST models and samples are also offered as Fashion-MNIST's."""
    both_datasets(tmp_path, app_env, monkeypatch)
    win = open_window(qtbot, model_cache)
    yield win
    win.controller.shutdown()


@pytest.mark.slow  # ~5-14 s: in make test-all; the default run keeps a faster check of the same code
def test_the_lesson_works_after_a_dataset_switch(qtbot, two_dataset_window):
    window, s = two_dataset_window, two_dataset_window.state
    panel = _lesson(window)
    _open_lesson(window)
    panel.go(2)
    wait_settled(qtbot, window)
    s.set_models(dataset="fashion_mnist")
    qtbot.waitUntil(lambda: s.engine.dataset == "fashion_mnist" and window.controller.models_ready
                    and s.result is not None, timeout=60_000)
    wait_settled(qtbot, window)
    problems = _problems(s)
    panel.go(0)
    wait_settled(qtbot, window)
    for index in range(len(STEPS)):
        _check_step(window, index)
        if STEPS[index].numbers:
            assert panel.numbers.text().startswith(DATASET_LABELS["fashion_mnist"])
        panel.go_next()
        wait_settled(qtbot, window, timeout=60_000)
    assert problems == []


def test_the_attack_steps_land_on_a_sample_the_attack_fools(qtbot, window):
    """Step 2 (FGSM on the undefended classifier) never starts on an image the attack fails on: the tiny classifier
    calls everything a 6, so from sample 0 the lesson moves on to the first six (see tests/app/test_next_fooled.py);
    through the random purifier nothing is fooled, and step 4 says so and stays on the image."""
    from app.state.settings import is_fooled

    s, panel = window.state, _lesson(window)
    messages: list[str] = []
    s.message.connect(lambda level, text: messages.append(text))
    assert s.image.sample_index == 0
    _open_lesson(window)
    wait_settled(qtbot, window)
    fooled = next(i for i, step in enumerate(STEPS) if step.settings.attack == "fgsm" and not step.settings.purifier)
    panel.go(fooled)
    wait_settled(qtbot, window, timeout=60_000)
    _check_step(window, fooled)
    assert s.image.sample_index == 60 and int(s.engine.samples[1][60]) == 6
    assert is_fooled(s.result, s.image.label)
    bpda = next(i for i, step in enumerate(STEPS) if step.settings.fooled and THREATS[step.settings.threat].end_to_end)
    panel.go(bpda)
    wait_settled(qtbot, window, timeout=120_000)
    _check_step(window, bpda)
    assert s.image.sample_index == 60 and not is_fooled(s.result, s.image.label)
    assert any("fools none of the" in m for m in messages), messages


def test_without_a_purifier_the_purifier_steps_say_it_is_not_installed():
    from app.state.settings import EngineInfo

    state = AppState()
    state.set_engine_info(EngineInfo("mnist", [str(k) for k in range(10)], classifiers=["A", "A_madry"], purifiers=[]))
    for step in STEPS:
        text = step_text(step, state)
        if step.settings.purifier is None:
            assert "not installed" not in text  # the purifier is not theirs to miss (and Madry is installed here)
            continue
        assert text.startswith("The LQ-VAE purifier is not installed for this dataset"), text
        assert "lqvae.safetensors" in text
        bpda = step.settings.attack is not None and THREATS[step.settings.threat].end_to_end
        assert ("cannot run" in text) == bpda and ("no defense at all" in text) != bpda
