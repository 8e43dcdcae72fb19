"""How long a run has left, and how long the last run of the same kind took. Plain Python: no Qt, no torch.

The engine reports progress as the share of its expected model calls done (``lqvae.attacks.runners``), so
the measured pace (share per second) times the share still to do is the per-step cost times the steps
left. The pace is measured from the first report with some work done, so the set-up before the first step
(classifying and purifying the clean image, a Defense-GAN search) does not count as attack steps. Steps can
slow down half way (another program takes the CPU): the pace of the last ``RECENT_S`` seconds counts too,
and the slower of the two paces gives the estimate, so it errs on the side of finishing early.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from typing import Callable, Hashable

from app.state.settings import AnalysisRequest, EvaluationRequest

SHOW_AFTER_S = 2.0  # a run this short needs no estimate: it is done before anyone reads one
RECENT_S = 10.0  # the recent pace is measured over about this many seconds


def seconds_left(elapsed: float, fraction: float, start_fraction: float = 0.0) -> float | None:
    """Seconds until ``fraction`` reaches 1 at the pace of ``elapsed`` seconds for ``start_fraction`` → ``fraction``.

    None while nothing is measured (no progress, no time, or a fraction that did not grow); 0 once done.
    """
    if not (math.isfinite(elapsed) and math.isfinite(fraction) and math.isfinite(start_fraction)):
        return None
    if fraction >= 1.0:
        return 0.0
    done = fraction - start_fraction
    if done <= 0.0 or elapsed <= 0.0:
        return None
    return elapsed * (1.0 - fraction) / done


def _round_seconds(seconds: float) -> int:
    return round(seconds) if seconds < 20 else 5 * round(seconds / 5)


def describe_duration(seconds: float) -> str:
    """"8 s", "40 s", "3 min", "1.5 h": rounded the way one says it."""
    if seconds < 90:
        return f"{max(1, _round_seconds(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def describe_left(seconds: float | None) -> str:
    """"about 40 s left"; "almost done" in the last second; "" when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    if seconds < 1.5:
        return "almost done"
    return f"about {describe_duration(seconds)} left"


def progress_line(text: str, fraction: float, left: float | None, elapsed: float) -> str:
    """"attack + search · 47 % · about 40 s left", once a run has gone on for ``SHOW_AFTER_S``; "" before."""
    if elapsed < SHOW_AFTER_S:
        return ""
    parts = (text, f"{100 * min(max(fraction, 0.0), 1.0):.0f} %", describe_left(left))
    return " · ".join(p for p in parts if p)


class Pace:
    """The time left of one run, from its progress reports (``now`` is ``time.monotonic`` unless given)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self._base: tuple[float, float] | None = None  # (time, fraction) of the first report with work done
        self._recent: deque[tuple[float, float]] = deque()  # (time, fraction) of the last RECENT_S seconds

    def update(self, fraction: float) -> float | None:
        """Seconds left after a report of ``fraction`` done (None: not measurable yet)."""
        now = self.clock()
        if fraction >= 1.0:
            return 0.0
        if fraction <= 0.0:
            return None
        self._recent.append((now, fraction))
        while len(self._recent) > 2 and now - self._recent[1][0] >= RECENT_S:
            self._recent.popleft()
        if self._base is None:
            self._base = (now, fraction)
            return seconds_left(now - self.started, fraction)  # one report: the set-up counts, a rough first guess
        (t0, f0), (t1, f1) = self._base, self._recent[0]
        paces = [x for x in (seconds_left(now - t0, fraction, f0), seconds_left(now - t1, fraction, f1))
                 if x is not None]
        return max(paces) if paces else seconds_left(now - self.started, fraction)

    def elapsed(self) -> float:
        return self.clock() - self.started


def run_kind(request: AnalysisRequest | EvaluationRequest) -> Hashable:
    """What decides a run's cost: models, defense and attack settings, not the image, ε or the target."""
    if isinstance(request, EvaluationRequest):
        return ("evaluation", request.n, request.attacks, len(request.eps), request.threat, request.preset,
                request.models, request.defense)
    attack = request.attack
    if attack is not None:
        attack = dataclasses.replace(attack, eps_linf=0.0, eps_l2=None, target=0, seed=0)
    return ("analysis", request.models, request.defense, attack)


class RunCosts:
    """Seconds the last run of each kind took (this session), to say before a slow run how long it takes."""

    def __init__(self) -> None:
        self._seconds: dict[Hashable, float] = {}

    def record(self, request: AnalysisRequest | EvaluationRequest, seconds: float) -> None:
        if math.isfinite(seconds) and seconds > 0:
            self._seconds[run_kind(request)] = seconds

    def expected(self, request: AnalysisRequest | EvaluationRequest) -> float | None:
        return self._seconds.get(run_kind(request))

    def expected_text(self, request: AnalysisRequest | EvaluationRequest) -> str:
        """"about 65 s (the last run of this kind)", or "" when none ran yet."""
        seconds = self.expected(request)
        return "" if seconds is None else f"about {describe_duration(seconds)} (the last run of this kind)"


__all__ = ["Pace", "RunCosts", "SHOW_AFTER_S", "describe_duration", "describe_left", "progress_line", "run_kind",
           "seconds_left"]
