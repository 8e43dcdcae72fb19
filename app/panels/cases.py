"""Cases: File → Open case… (and ``main.py --case``) reopens an exported result and runs it again.

A case is the JSON the export writes beside its PNG (``app.render.export``); either file can be chosen.
Reopening puts the case's data set, classifier, defense, attack settings and input image on the state and
runs the analysis, so the same panels appear. When the run is done it is compared with what the case
recorded: a different prediction or bit code (other checkpoints, another machine) is said, not hidden.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog

from app.state.app_state import AppState
from app.state.case_file import Case, CaseError, read_case
from app.state.settings import AnalysisRequest
from lqvae.spec.results import Analysis

SLOTS = {"original": "probs_original", "adversarial": "probs_adversarial",
         "purified_original": "probs_purified_original", "purified_adversarial": "probs_purified_adversarial"}


def install(window) -> None:
    """File → Open case… (Ctrl+Shift+O)."""
    window.menu_file.addAction("Open case (exported PNG or JSON)…", QKeySequence("Ctrl+Shift+O"),
                               lambda: choose_case(window))


def choose_case(window) -> Case | None:
    path, _ = QFileDialog.getOpenFileName(window, "Open a case", "", "Cases (*.json *.png);;All files (*)")
    return open_case(window.state, path) if path else None


def open_case(state: AppState, path: str | Path) -> Case | None:
    """Read the case at ``path`` and run it again; a file that is not a usable case is refused in the message
    bar (the file and what is wrong with it) and nothing changes."""
    try:
        case = read_case(path)
    except CaseError as exc:
        state.notify(f"Could not open the case: {exc}.", "error")
        return None
    reopen(state, case)
    return case


def reopen(state: AppState, case: Case) -> None:
    """Put ``case`` on the state, run it, and compare the run with the case once it is drawn."""
    state.rerun(case.run.request)
    image = state.image

    def check(request: AnalysisRequest, result: Analysis) -> None:
        if request.image is not image:
            if state.image is not image:  # the user moved on before the run landed
                state.resultChanged.disconnect(check)
            return
        state.resultChanged.disconnect(check)
        saved = case.run.request
        if (request.models.classifier, request.defense, request.attack) != (saved.models.classifier, saved.defense,
                                                                              saved.attack):
            return  # run with other settings (changed on purpose, or a checkpoint is missing): nothing to compare
        changed = differences(case, result)
        if changed:
            state.notify(f"Case {case.path.name} reopened, but this run differs from what it recorded: "
                         f"{'; '.join(changed)} (other checkpoints?).", "warning")
        else:
            state.notify(f"Case {case.path.name} reopened: the same predictions and bits as recorded.", "info")

    state.resultChanged.connect(check)


def differences(case: Case, result: Analysis) -> list[str]:
    """What ``result`` shows differently from the case's recorded predictions and bit codes (empty: the same)."""
    names = case.run.class_names
    out = []
    for slot, recorded in case.predictions.items():
        probs = getattr(result, SLOTS[slot])
        now = None if probs is None else int(np.argmax(probs))
        if recorded is not None and now != recorded:
            shown = "none" if now is None else names[now]
            out.append(f"{slot.replace('_', ' ')} {names[recorded]} → now {shown}")
    for key, recorded_bits in case.bits.items():
        bits = getattr(result, key)
        if recorded_bits is not None and (bits is None or not np.array_equal(np.sign(bits), recorded_bits)):
            out.append(f"{key.replace('_', ' ')} differ")
    return out


__all__ = ["differences", "install", "open_case", "reopen"]
