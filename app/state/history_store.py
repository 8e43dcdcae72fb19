"""The run history: one entry per attacked run, kept across sessions in the user's config folder. No widgets.

An entry keeps its own data set and class names, so a run on MNIST stays "7→3→7" after a switch to
Fashion-MNIST. The file (``history.json`` in ``config_dir()``) is plain JSON holding the last
``MAX_ENTRIES`` runs (``app.state.case_file`` format: settings, threat, ε, the input pixels, predictions and
a thumbnail); it is read at start and written shortly after every change. A file that is too big, not JSON
or not a history is ignored with a one-line message, and an entry with a bad field is skipped: the
file is the user's to edit or damage, and it can never stop the app.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QStandardPaths, QTimer

from app.state.case_file import CaseError, read_json, read_run, run_to_dict
from app.state.settings import AnalysisRequest
from lqvae.spec.results import Analysis

if TYPE_CHECKING:  # the state imports this module
    from app.state.app_state import AppState

CONFIG_ENV = "LQVAE_CONFIG_DIR"  # overrides the config folder (tests, portable installs)
HISTORY_FILE = "history.json"
HISTORY_SCHEMA = "lqvae-studio-history"
HISTORY_VERSION = 1
MAX_ENTRIES = 50
MAX_HISTORY_BYTES = 2_000_000  # 50 entries take ~350 KB
SAVE_DELAY_MS = 500


@dataclass
class HistoryEntry:
    """One run as the history strip shows it.

    ``result`` is the analysis of this session; None for an entry read from the history file, whose
    ``predictions`` and ``shown`` thumbnail were saved with it (restoring it runs it again).
    """

    request: AnalysisRequest
    class_names: tuple[str, ...]
    predictions: tuple[int, ...]  # along the attacked path, as Analysis.predictions
    shown: np.ndarray  # (28, 28) float32: the attacked image (the clean one without an attack)
    result: Analysis | None = None

    @classmethod
    def of(cls, request: AnalysisRequest, result: Analysis, class_names: list[str] | tuple[str, ...]) -> HistoryEntry:
        shown = result.adversarial if result.adversarial is not None else result.original
        return cls(request, tuple(class_names), result.predictions,
                   np.asarray(shown, np.float32).reshape(-1, 28, 28)[0], result)

    @property
    def final_prediction(self) -> int | None:
        return self.predictions[-1] if self.predictions else None

    def same_run(self, request: AnalysisRequest) -> bool:
        """``request`` repeats this entry's run: the same input, data set, classifier, defense and attack."""
        mine = self.request
        return (mine.models.dataset == request.models.dataset and mine.models.classifier == request.models.classifier
                and mine.defense == request.defense and mine.attack == request.attack
                and mine.image.label == request.image.label
                and np.array_equal(mine.image.pixels, request.image.pixels))


def config_dir() -> Path:
    """Where the app keeps its own files: ``$LQVAE_CONFIG_DIR``, else Qt's per-user config location."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppConfigLocation))


def history_path() -> Path:
    return config_dir() / HISTORY_FILE


# ----------------------------------------------------------------------------- the file
def entry_to_dict(entry: HistoryEntry) -> dict[str, Any]:
    thumb = np.clip(np.round(entry.shown * 255), 0, 255).astype(np.uint8)
    return {**run_to_dict(entry.request, entry.class_names), "predictions": list(entry.predictions),
            "shown": base64.b64encode(thumb.tobytes()).decode("ascii")}


def entry_from_dict(data: Any, where: str) -> HistoryEntry:
    run = read_run(data, where)
    k = len(run.class_names)
    preds = data.get("predictions")
    if not (isinstance(preds, list) and 1 <= len(preds) <= 3
            and all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p < k for p in preds)):
        raise CaseError(f"{where}: 'predictions' must be 1-3 classes 0-{k - 1}")
    try:
        raw = base64.b64decode(str(data.get("shown", ""))[:2000], validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 28 * 28:
        raise CaseError(f"{where}: 'shown' is not a 28x28 thumbnail")
    shown = np.frombuffer(raw, np.uint8).reshape(28, 28).astype(np.float32) / 255.0
    return HistoryEntry(run.request, run.class_names, tuple(preds), shown)


def save_history(path: Path, entries: list[HistoryEntry]) -> None:
    """Write the last ``MAX_ENTRIES`` entries (atomically: a crash leaves the old file whole)."""
    data = {"schema": HISTORY_SCHEMA, "version": HISTORY_VERSION,
            "entries": [entry_to_dict(e) for e in entries[-MAX_ENTRIES:]]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)


def load_history(path: Path) -> tuple[list[HistoryEntry], str]:
    """The saved entries and a one-line message ("" when all is well or there is no file yet).

    Never raises: a file that cannot be used gives no entries and says why; bad entries are skipped."""
    if not path.exists():
        return [], ""
    try:
        data = read_json(path, MAX_HISTORY_BYTES, "history file")
    except CaseError as exc:
        return [], f"History not restored: {exc}."
    if not (isinstance(data, dict) and data.get("schema") == HISTORY_SCHEMA and isinstance(data.get("entries"), list)):
        return [], f"History not restored: {path} is not an LQ-VAE Studio history file."
    if data.get("version") != HISTORY_VERSION:
        return [], f"History not restored: {path} has version {str(data.get('version'))[:10]}, not {HISTORY_VERSION}."
    entries, bad = [], []
    for i, item in enumerate(data["entries"][-MAX_ENTRIES:]):
        try:
            entries.append(entry_from_dict(item, f"{path} entry {i + 1}"))
        except CaseError as exc:
            bad.append(str(exc))
    message = f"History: skipped {len(bad)} damaged entr{'y' if len(bad) == 1 else 'ies'} ({bad[0]})." if bad else ""
    return entries, message


class HistoryKeeper(QObject):
    """Keeps ``state.history`` in ``path``: reads it once, writes it ``SAVE_DELAY_MS`` after each change and at
    ``flush()`` (the app calls it on quit). A write that fails is said once, and the app goes on."""

    def __init__(self, state: AppState, path: Path, parent: QObject | None = None) -> None:
        super().__init__(parent or state)
        self.state, self.path = state, path
        self._failed = False
        self._timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self._timer.timeout.connect(self.flush)
        entries, message = load_history(path)
        if message:
            state.notify(message, "warning")
        if entries:
            state.add_history(entries)
        state.historyChanged.connect(self._timer.start)

    def flush(self) -> None:
        self._timer.stop()
        try:
            save_history(self.path, self.state.history)
        except OSError as exc:
            if not self._failed:
                self.state.notify(f"History not saved to {self.path}: {exc.strerror or exc}.", "warning")
            self._failed = True


__all__ = ["CONFIG_ENV", "HistoryEntry", "HistoryKeeper", "MAX_ENTRIES", "config_dir", "history_path",
           "load_history", "save_history"]
