""""Next fooled" (Shift+N): the next bundled sample that the selected attack, threat and defense fool, searched on a
worker, bounded, cancellable, with progress, and saying so when there is none.

The tiny random models of ``conftest.py`` call every image a 6: with no defense, FGSM at ε = 0.3 fools exactly the
sixes (samples 60-69, the only ones the classifier gets right), and nothing is fooled through the random LQ-VAE
(its output is a 6 whatever comes in). Each test works out the expected answer with the engine's own analysis
(``app.engine.adapter.analyze``, outside the window) and checks that the window found exactly that one.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.engine import adapter as engine_adapter
from app.state.settings import MAX_FOOL_SEARCH, fool_candidates, is_fooled
from lqvae.spec.results import Analysis
from tests.app.helpers import wait_settled


def _press(qtbot, window, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    qtbot.keyClick(window, key, modifier)


def _expected(window, indices) -> int | None:
    """The first of ``indices`` that a normal analysis with the window's settings finds fooled (outside the window)."""
    s = window.state
    images, labels = s.engine.samples
    base = s.make_request()
    for index in indices:
        s.set_image(images[index] / 255.0, int(labels[index]), f"sample {index}")
        request = s.make_request()
        assert request.attack == base.attack and request.defense == base.defense
        if is_fooled(engine_adapter.analyze(request, window.controller.cache), int(labels[index])):
            return index
    return None


def _messages(state) -> list[str]:
    seen: list[str] = []
    state.message.connect(lambda level, text: seen.append(text))
    return seen


# ---------------------------------------------------------------------- the pure parts
def test_candidates_run_from_the_current_sample_within_the_filter_and_wrap():
    assert fool_candidates(range(10), 3, include_start=False) == (4, 5, 6, 7, 8, 9, 0, 1, 2)
    assert fool_candidates(range(10), 3, include_start=True)[:3] == (3, 4, 5)
    assert fool_candidates([2, 5, 9], 4, include_start=False) == (5, 9, 2)  # a sample outside the class filter
    assert fool_candidates([2, 5, 9], None, include_start=False) == (2, 5, 9)  # a drawing: from the start
    assert len(fool_candidates(range(1000), 0, include_start=True)) == MAX_FOOL_SEARCH


def test_fooled_is_the_last_tiles_verdict_on_an_image_the_classifier_got_right():
    def result(*probs) -> Analysis:
        eye = np.eye(3, dtype=np.float32)
        slots = dict(zip(("probs_original", "probs_adversarial", "probs_purified_adversarial"), (eye[k] for k in probs)))
        return Analysis(original=np.zeros((1, 28, 28), np.float32), adversarial=np.zeros((1, 28, 28), np.float32),
                        **slots)

    assert is_fooled(result(0, 1), 0)  # no defense: the classifier was fooled
    assert not is_fooled(result(0, 1, 0), 0)  # the purifier brought it back: the defense held
    assert is_fooled(result(0, 0, 2), 0)  # through the purifier
    assert not is_fooled(result(1, 2), 0)  # wrong before the attack: nothing to fool
    assert not is_fooled(result(0, 1), None)  # no true label: no verdict


# ---------------------------------------------------------------------- in the window
def test_shift_n_shows_the_next_sample_the_attack_fools(qtbot, window, monkeypatch):
    s = window.state
    threads: list[threading.Thread] = []
    search = engine_adapter.find_fooled

    def spy(*args, **kwargs):
        threads.append(threading.current_thread())
        return search(*args, **kwargs)

    monkeypatch.setattr(engine_adapter, "find_fooled", spy)
    s.set_defense(purifier=None)
    s.set_attack(attack="fgsm", threat="whitebox", eps_linf=0.3, enabled=True)
    wait_settled(qtbot, window)
    assert s.image.sample_index == 0 and not is_fooled(s.result, s.image.label)
    indices = fool_candidates(range(len(s.engine.samples[1])), 0, include_start=False)
    expected = _expected(window, indices)
    assert expected is not None  # FGSM fools the sixes (see the module's docstring)
    s.set_image(s.engine.samples[0][0] / 255.0, int(s.engine.samples[1][0]), "sample 0")
    wait_settled(qtbot, window)
    progress: list[str] = []
    s.analysisProgress.connect(lambda _f, text: progress.append(text))
    _press(qtbot, window, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    wait_settled(qtbot, window, timeout=60_000)
    assert threads and threads[0] is not threading.main_thread()  # searched on a worker
    assert s.image.sample_index == expected and not s.stale
    assert s.request.image is s.image and is_fooled(s.result, s.image.label)  # the result shown is the found run
    assert window.inputs.samples.index.value() == expected
    assert any("looking for a fooled sample" in text for text in progress)
    assert s.history[-1].request is s.request  # it is a run like any other
    shown = s.result.predictions
    s.request_run(False)  # a normal run of the found sample agrees with the search
    wait_settled(qtbot, window)
    assert s.result.predictions == shown and is_fooled(s.result, s.image.label)


def test_the_button_keeps_to_the_class_filter_and_says_when_none_is_fooled(qtbot, window):
    s, samples = window.state, window.inputs.samples
    messages = _messages(s)
    s.set_defense(purifier=None)
    s.set_attack(attack="fgsm", threat="whitebox", eps_linf=0.3, enabled=True)
    samples.filter.setCurrentIndex(samples.filter.findData(3))  # the threes: never a 6, never right, never fooled
    wait_settled(qtbot, window)
    start = s.image.sample_index
    indices = fool_candidates(samples.order, start, include_start=False)
    assert set(int(s.engine.samples[1][i]) for i in indices) == {3}
    assert _expected(window, indices) is None
    s.set_image(s.engine.samples[0][start] / 255.0, 3, f"sample {start}")
    wait_settled(qtbot, window)
    samples.fooled.click()
    wait_settled(qtbot, window, timeout=60_000)
    assert s.image.sample_index == start and not s.stale and s.result.has_attack  # the current image, run
    assert any(f"fools none of the {len(indices)} samples tried" in m for m in messages), messages


def test_the_search_is_cancelled_with_esc(qtbot, window):
    s = window.state
    messages = _messages(s)
    s.set_attack(attack="pgd", threat="bpda", eps_linf=0.0001, enabled=True)  # slow enough, and never fooled
    wait_settled(qtbot, window, timeout=60_000)
    source = s.image.source
    with qtbot.waitSignal(s.analysisProgress, timeout=30_000):
        window.inputs.samples.next_fooled()
    assert s.busy
    with qtbot.waitSignal(s.analysisFailed, timeout=10_000, check_params_cb=lambda m: m == "cancelled"):
        _press(qtbot, window, Qt.Key.Key_Escape)
    wait_settled(qtbot, window)
    assert not s.busy and s.image.source == source and "Search cancelled." in messages


@pytest.mark.parametrize("why", ["attack off", "no purifier for BPDA"])
def test_a_search_that_cannot_run_says_why(qtbot, window, why):
    s = window.state
    messages = _messages(s)
    if why == "attack off":
        s.set_attack(enabled=False)
    else:
        s.set_defense(purifier=None)
        s.set_attack(attack="fgsm", threat="bpda", enabled=True)
    wait_settled(qtbot, window)
    window.inputs.samples.next_fooled()
    wait_settled(qtbot, window)
    assert messages and ("turn the attack on" in messages[-1] or "choose a purifier" in messages[-1]), messages
