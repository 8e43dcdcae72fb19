"""A monkey at the controls (issue 15): ~300 random user actions across every control of the window.

Recorded while it runs: every exception that reaches ``sys.excepthook`` (a slot that raised), every
worker failure whose error is not one of the engine's own refusal types (a bug surfacing as a message),
and the longest gap between two ticks of a 10 ms heartbeat timer (the GUI thread stalled). At the end
the window is closed in the middle of a running attack and must be gone within 5 s.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.app.helpers import both_datasets, open_window

ACTIONS = 300  # the full monkey (marked slow); the default run keeps a third of it as a smoke
SMOKE_ACTIONS = 40
MAX_STALL_S = 0.25
# Refusals the engine and loaders raise on purpose, with a message for the user; anything else is a bug.
OWN_ERRORS = ("ImageLoadError", "CheckpointError", "InputError")


class Heartbeat:
    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.last = time.monotonic()
        self.worst = 0.0
        self.where = ""
        self.timer = QTimer(interval=10)
        self.timer.timeout.connect(self.tick)

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last > self.worst:
            self.worst, self.where = now - self.last, Heartbeat.current
        self.last = now

    current = ""


def _files(tmp: Path) -> list[Path]:
    from PIL import Image

    img = np.zeros((64, 48), np.uint8)
    img[8:56, 20:28] = 255
    good = tmp / "digit.png"
    Image.fromarray(img).save(good)
    paper = tmp / "sample 7.png"  # a name the samples panel must not mistake for a bundled sample
    Image.fromarray(255 - img).save(paper)
    markup = tmp / "<h1>x<a href='y'>:z.jpg"
    Image.fromarray(img).convert("RGB").save(markup, format="JPEG")
    junk = tmp / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    wide = tmp / "wide.png"
    Image.fromarray(np.full((1, 3000), 200, np.uint8)).save(wide)
    return [good, paper, markup, junk, wide, tmp / "missing.png", tmp]


def _enabled_items(combo) -> list[int]:
    model = combo.model()
    out = []
    for i in range(combo.count()):
        item = model.item(i) if hasattr(model, "item") else None
        if item is None or item.isEnabled():
            out.append(i)
    return out


def _visible(widget) -> bool:
    return widget.isVisible() and widget.isEnabled()


@pytest.mark.parametrize("actions", [SMOKE_ACTIONS, pytest.param(ACTIONS, marks=pytest.mark.slow)])
def test_random_user_actions_never_raise_or_stall(actions, qtbot, tmp_path, monkeypatch, app_env, model_cache):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent
    from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QLineEdit, QPushButton, QSlider, QSpinBox,
                                   QTabWidget)

    import app.engine.workers as workers
    raised: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: raised.append(f"{kind.__name__}: {value}"))
    unexpected: list[str] = []
    start = workers.WorkerPool.start

    def recording_start(self, worker):
        def failed(message: str, tb: str) -> None:
            last = tb.strip().splitlines()[-1] if tb.strip() else ""
            if not any(name in last for name in OWN_ERRORS):
                unexpected.append(f"{worker.name}: {last}")
        worker.signals.failed.connect(failed)
        return start(self, worker)

    monkeypatch.setattr(workers.WorkerPool, "start", recording_start)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: ("", "")))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(tmp_path / "out.png"), "")))

    both_datasets(tmp_path, app_env, monkeypatch)
    win = open_window(qtbot, model_cache)
    state = win.state

    started: list[object] = []
    finished: list[object] = []
    state.analysisStarted.connect(started.append)
    state.resultChanged.connect(lambda req, res: finished.append(req))
    rng = random.Random(15)
    files = _files(tmp_path)
    beat = Heartbeat()
    beat.timer.start()

    def drop(path: Path) -> None:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        win.dropEvent(QDropEvent(QPointF(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                                 Qt.KeyboardModifier.NoModifier))

    def act() -> str:
        kind = rng.choice(["button", "combo", "combo", "check", "spin", "slider", "tab", "key", "draw", "file",
                           "drop", "history", "line", "run", "run"])
        if kind == "button":
            buttons = [b for b in win.findChildren(QPushButton) if _visible(b)]
            if buttons:
                b = rng.choice(buttons)
                b.click()
                return f"click {b.text()!r}"
        elif kind == "combo":
            combos = [c for c in win.findChildren(QComboBox) if _visible(c) and c.count()]
            if combos:
                c = rng.choice(combos)
                items = _enabled_items(c)
                if items:
                    i = rng.choice(items)
                    c.setCurrentIndex(i)
                    return f"combo {c.itemText(i)!r}"
        elif kind == "check":
            checks = [c for c in win.findChildren(QCheckBox) if _visible(c)]
            if checks:
                c = rng.choice(checks)
                c.click()
                return f"toggle {c.text()!r}"
        elif kind == "spin":
            spins = [s for s in win.findChildren(QSpinBox) if _visible(s)]
            if spins:
                s = rng.choice(spins)
                hi = min(s.maximum(), s.minimum() + 60)  # a user may type 10,000 steps; the monkey stays brief
                s.setValue(rng.randint(s.minimum(), hi))
                return f"spin {s.value()}"
        elif kind == "slider":
            sliders = [s for s in win.findChildren(QSlider) if _visible(s)]
            if sliders:
                s = rng.choice(sliders)
                s.setValue(rng.randint(s.minimum(), s.maximum()))
                return f"slider {s.value()}"
        elif kind == "tab":
            tabs = [t for t in win.findChildren(QTabWidget) if _visible(t)]
            if tabs:
                t = rng.choice(tabs)
                t.setCurrentIndex(rng.randrange(t.count()))
                return f"tab {t.currentIndex()}"
        elif kind == "key":
            key = rng.choice([Qt.Key.Key_N, Qt.Key.Key_P, Qt.Key.Key_Escape, Qt.Key.Key_F5, Qt.Key.Key_1, Qt.Key.Key_2])
            mod = Qt.KeyboardModifier.ControlModifier if key in (Qt.Key.Key_1, Qt.Key.Key_2) else \
                Qt.KeyboardModifier.NoModifier
            qtbot.keyClick(win, key, mod)
            return f"key {key}"
        elif kind == "draw":
            canvas = win.inputs.draw.canvas
            pts = [(rng.uniform(-20, canvas.width() + 20), rng.uniform(-20, canvas.height() + 20)) for _ in range(4)]
            canvas.stroke(pts, width=rng.randint(1, 40))
            return "draw"
        elif kind in ("file", "drop"):
            path = rng.choice(files)
            (drop if kind == "drop" else state.request_open)(path if kind == "drop" else str(path))
            return f"{kind} {path.name}"
        elif kind == "history":
            lst = win.history.list
            if lst.count():
                item = lst.item(rng.randrange(lst.count()))
                lst.itemClicked.emit(item)
                return "history"
        elif kind == "run":
            qtbot.keyClick(win, Qt.Key.Key_F5)  # Run: the slow attacks only run when asked
            return "run"
        elif kind == "line":
            lines = [e for e in win.findChildren(QLineEdit) if _visible(e) and not e.isReadOnly()]
            if lines:
                e = rng.choice(lines)
                e.setText(rng.choice(["0.1", "0.3, 0.05", "abc", "-1", "1e9", "", "nan", "0.1,,0.2", "∞"]))
                e.editingFinished.emit()
                return f"line {e.text()!r}"
        return "nothing"

    done: list[str] = []
    for _ in range(actions):
        Heartbeat.current = act()
        done.append(Heartbeat.current)
        qtbot.wait(rng.choice([0, 20, 100, 250]))
    Heartbeat.current = "settling"
    state.request_cancel()
    state.evaluationCancelRequested.emit()
    qtbot.waitUntil(lambda: not win.controller.pool.busy(), timeout=60_000)
    beat.timer.stop()

    assert min(len(started), len(finished)) >= actions // 10, "the monkey must exercise the engine, not only the widgets"
    assert not raised, f"exceptions in slots: {raised[:5]} (actions: {done[-10:]})"
    assert not unexpected, f"worker errors that are bugs, not refusals: {unexpected[:5]}"
    print(f"\nstress: worst stall {beat.worst * 1000:.0f} ms after {beat.where!r}; actions: {sorted(set(a.split()[0] for a in done))}; analyses started {len(started)}, drawn {len(finished)}")
    assert beat.worst < MAX_STALL_S, f"the GUI thread stalled {beat.worst * 1000:.0f} ms after {beat.where!r}"
    win.controller.shutdown()


def test_closing_during_a_running_attack_exits_within_5_s(qtbot, app_env, model_cache):
    win = open_window(qtbot, model_cache)
    state = win.state
    state.set_attack(attack="cw", threat="bpda", steps=5000)  # minutes of work if nobody stops it
    with qtbot.waitSignal(state.analysisStarted, timeout=10_000):
        state.request_run(False)
    qtbot.wait(300)
    assert win.controller.pool.busy()
    t0 = time.monotonic()
    win.close()
    closed = time.monotonic() - t0
    assert closed < 5.0, f"closing took {closed:.1f} s"
    assert not win.controller.pool.busy() or win.controller.pool.wait(0)
