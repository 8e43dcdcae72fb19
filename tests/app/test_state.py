"""The app state on its own: ``quiet()`` (changes shown without starting an analysis) and the frozen
``EvaluationRequest`` the Evaluate tab hands the controller. No engine is started: the controller's debounce
timer says whether a change asked for a run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.engine.controller import Controller
from app.state.app_state import AppState
from app.state.settings import AnalysisRequest, DefenseSettings, EvaluationRequest, InputImage, ModelSettings
from lqvae.spec.attacks import ATTACKS, SLOW_ATTACKS
from lqvae.spec.results import Analysis


@pytest.fixture
def state_and_controller(qapp):
    state = AppState()
    controller = Controller(state)  # not started: nothing runs, but it reacts to every change
    yield state, controller
    controller.shutdown()


def scheduled(controller: Controller) -> bool:
    """Whether the last changes asked for an auto run (the debounce timer is waiting to start it)."""
    return controller._debounce.isActive()


def test_quiet_changes_schedule_no_run_and_the_next_change_does(state_and_controller):
    s, c = state_and_controller
    seen: list[float] = []
    s.attackSettingsChanged.connect(lambda a: seen.append(a.eps_linf))
    with s.quiet():
        assert s.is_quiet
        s.set_attack(eps_linf=0.1)
        s.set_image(np.zeros((28, 28)), 3, "sample 3")
    assert seen == [0.1] and s.image.label == 3  # the change is applied and announced (panels redraw) ...
    assert not scheduled(c)  # ... but asks for no analysis
    assert not s.is_quiet
    s.set_attack(eps_linf=0.2)
    assert scheduled(c)


def test_quiet_ends_even_when_the_block_raises_and_nests(state_and_controller):
    s, c = state_and_controller
    with pytest.raises(RuntimeError, match="boom"):
        with s.quiet():
            with s.quiet():
                pass
            assert s.is_quiet  # the inner block's end does not end the outer one
            raise RuntimeError("boom")
    assert not s.is_quiet
    s.set_attack(eps_linf=0.2)
    assert scheduled(c)


def test_restoring_a_history_entry_runs_nothing_and_keeps_its_result(state_and_controller):
    s, c = state_and_controller
    image = InputImage(np.zeros((28, 28), np.float32), 7, "sample 7", "mnist")
    request = AnalysisRequest(1, image, ModelSettings(), s.attack, DefenseSettings())
    result = Analysis(original=np.zeros((1, 28, 28), np.float32))
    s.set_result(request, result)
    s.set_attack(eps_linf=0.05)
    c._debounce.stop()
    s.restore(0)
    assert not scheduled(c) and not s.is_quiet
    assert s.result is result and s.image is image and s.attack == request.attack


def test_the_evaluation_request_is_frozen_and_names_its_cells():
    request = EvaluationRequest(n=10, attacks=("fgsm", "cw"), eps=(0.1, 0.3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.n = 20  # type: ignore[misc]
    assert request.cells == [("fgsm", 0.1), ("fgsm", 0.3), ("cw", None)]  # an L2 attack: one unbounded row
    hardened = request.with_models(ModelSettings(classifier="A_madry"), DefenseSettings(None), "B",
                                   np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.int64))
    assert hardened.defense_name == "madry" and request.images is None  # a new request, the tab's is unchanged
    assert request.with_models(ModelSettings(), DefenseSettings("lqvae"), "B", None, None).defense_name == "lqvae"


def test_the_evaluate_tab_offers_every_attack_and_asks_with_a_request(qtbot):
    from app.panels.evaluate_tab import EvaluateTab

    state = AppState()
    tab = EvaluateTab(state)
    qtbot.addWidget(tab)
    assert tuple(tab.attack_boxes) == tuple(ATTACKS) and "hsj" in tab.attack_boxes
    assert not any(tab.attack_boxes[a].isChecked() for a in SLOW_ATTACKS)  # slow ones start unticked
    tab.eps.setText("0.3, 0.1, nonsense, 2")
    with qtbot.waitSignal(state.evaluateRequested) as blocker:
        tab.start()
    (request,) = blocker.args
    assert isinstance(request, EvaluationRequest)
    assert request.attacks == ("fgsm", "pgd") and request.eps == (0.1, 0.3) and request.threat == "bpda"  # adaptive
