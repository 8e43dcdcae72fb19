"""Time estimates: the pure arithmetic, the worker that measures it, and the app that says it."""

from __future__ import annotations

import time

import pytest

from app.engine.workers import Worker
from app.state.estimate import (SHOW_AFTER_S, Pace, RunCosts, describe_left, progress_line, run_kind,
                                seconds_left)
from app.state.settings import AnalysisRequest, AttackSettings, DefenseSettings, InputImage, ModelSettings
from tests.app.helpers import wait_settled


# ----------------------------------------------------------------------------- the arithmetic
def test_seconds_left_is_the_pace_times_what_is_left():
    assert seconds_left(10.0, 0.25) == pytest.approx(30.0)
    assert seconds_left(10.0, 0.5, start_fraction=0.25) == pytest.approx(20.0)  # pace from the first report


@pytest.mark.parametrize("elapsed, fraction, start", [(10.0, 0.0, 0.0), (0.0, 0.5, 0.0), (5.0, 0.2, 0.2),
                                                      (5.0, 0.1, 0.2), (float("nan"), 0.5, 0.0),
                                                      (5.0, float("inf"), 0.0)])
def test_seconds_left_is_unknown_until_something_is_measured(elapsed, fraction, start):
    assert seconds_left(elapsed, fraction, start) is None


def test_seconds_left_goes_to_zero_near_the_end_and_is_zero_when_done():
    assert seconds_left(100.0, 0.999) == pytest.approx(0.1, rel=1e-2)
    assert seconds_left(100.0, 1.0) == 0.0 and seconds_left(100.0, 1.2) == 0.0


@pytest.mark.parametrize("seconds, text", [(None, ""), (-1.0, ""), (float("nan"), ""), (0.3, "almost done"),
                                           (8.4, "about 8 s left"), (41.0, "about 40 s left"),
                                           (150.0, "about 2 min left"), (7200.0, "about 2.0 h left")])
def test_the_estimate_is_said_the_way_one_says_it(seconds, text):
    assert describe_left(seconds) == text


def test_the_progress_line_waits_for_a_slow_run():
    assert progress_line("pgd ε=0.3", 0.5, 40.0, elapsed=0.5) == ""  # fast runs: nothing to read
    assert progress_line("pgd ε=0.3", 0.47, 41.0, elapsed=SHOW_AFTER_S) == "pgd ε=0.3 · 47 % · about 40 s left"
    assert progress_line("", 0.1, None, elapsed=10.0) == "10 %"


def test_pace_leaves_the_set_up_out_of_the_step_cost():
    now = [0.0]
    pace = Pace(clock=lambda: now[0])
    now[0] = 5.0  # five seconds of set-up (the clean image's purification) before the first step
    assert pace.update(0.0) is None
    now[0] = 6.0
    assert pace.update(0.1) == pytest.approx(54.0)  # one report: a rough guess, set-up included
    now[0] = 7.0
    assert pace.update(0.2) == pytest.approx(8.0)  # 0.1 per second from the first step on
    assert pace.update(1.0) == 0.0


def test_pace_follows_steps_that_slow_down_half_way():
    now = [0.0]
    pace = Pace(clock=lambda: now[0])
    for step in range(1, 51):  # 1 s a step for 50 of 100 steps ...
        now[0] = float(step)
        pace.update(step / 100)
    for step in range(51, 61):  # ... then 4 s a step (another program took the CPU)
        now[0] += 4.0
        left = pace.update(step / 100)
    assert left == pytest.approx(40 * 4.0, rel=0.15)  # the whole run's average pace would say about 70 s


def _request(**attack) -> AnalysisRequest:
    import numpy as np

    image = InputImage(np.zeros((28, 28), np.float32), 3, "sample 3", "mnist")
    return AnalysisRequest(1, image, ModelSettings(), AttackSettings(**attack), DefenseSettings("defensegan"))


def test_run_costs_are_kept_per_kind_of_run_not_per_image_or_budget():
    costs = RunCosts()
    pgd = _request(attack="pgd", threat="bpda", eps_linf=0.3)
    assert costs.expected(pgd) is None and costs.expected_text(pgd) == ""
    costs.record(pgd, 65.2)
    assert costs.expected(_request(attack="pgd", threat="bpda", eps_linf=0.1)) == 65.2  # ε does not set the cost
    assert costs.expected(_request(attack="pgd", threat="whitebox")) is None
    assert costs.expected_text(pgd) == "about 65 s (the last run of this kind)"
    assert run_kind(pgd) != run_kind(_request(attack="pgd", threat="bpda", steps=80))


# ----------------------------------------------------------------------------- the worker measures it
def _steps(n: int, seconds: float, *, should_stop, progress) -> int:
    time.sleep(0.3)  # set-up before the first step
    for i in range(n):
        time.sleep(seconds)
        progress((i + 1) / n, "step")
    return n


def test_the_worker_reports_the_time_left_of_a_job(qtbot):
    worker = Worker(_steps, 10, 0.12)
    seen: list[tuple[float, float]] = []
    worker.signals.remaining.connect(lambda s: seen.append((time.monotonic(), s)))
    with qtbot.waitSignal(worker.signals.ended, timeout=10_000):
        worker.run()  # on this thread: the signals are direct, the arithmetic the same
    done = time.monotonic()
    assert seen[-1][1] == 0.0
    known = [(t, s) for t, s in seen[:-1] if s >= 0]
    assert len(known) >= 5
    t, left = known[len(known) // 2]
    assert left == pytest.approx(done - t, abs=0.25)  # the set-up is not mistaken for step cost


# ----------------------------------------------------------------------------- the app says it
def test_a_slow_run_says_its_time_left_and_the_next_one_says_it_before(qtbot, window):
    s, bar = window.state, window.statusBar()
    s.set_defense(purifier="lqvae")
    s.set_attack(attack="pgd", threat="bpda", eps_linf=0.3, steps=41)  # > 40 steps through the purifier: slow
    wait_settled(qtbot, window)
    assert s.attack_is_slow()
    lefts: list[float] = []
    s.analysisRemaining.connect(lefts.append)
    messages: list[str] = []
    s.message.connect(lambda level, text: messages.append(text))
    with qtbot.waitSignal(s.resultChanged, timeout=60_000):
        s.request_run(False)
    wait_settled(qtbot, window)
    assert lefts and lefts[-1] == 0.0 and any(x > 0 for x in lefts)
    assert bar.progress.text() == ""  # the running line goes with the run
    assert not any("It takes" in m for m in messages)  # nothing measured yet: nothing claimed
    s.set_attack(eps_linf=0.2)  # another budget and another image, the same kind of run: its cost is known now
    s.set_image(s.image.pixels[::-1].copy(), None, "drawing")
    wait_settled(qtbot, window)
    assert "press Run" in messages[-1] and "It takes about" in messages[-1]
    assert "the last run of this kind" in messages[-1]
    with qtbot.waitSignal(s.resultChanged, timeout=60_000):
        s.request_run(False)
    assert any(m.startswith("Running PGD") and "It takes about" in m for m in messages[-3:])
    wait_settled(qtbot, window)
