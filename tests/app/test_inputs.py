"""Inputs a lecturer brings: a true label for drawings and files (so the tiles judge them), ``--image`` and
``--label`` at start, and a plain note when the purifier changes a clean image's class."""

from __future__ import annotations

import pytest

import json

import numpy as np
from PIL import Image

from app.state.app_state import AppState
from app.state.settings import AnalysisRequest
from lqvae.spec.results import Analysis
from tests.app.helpers import child_env, choose, run_main, wait_settled


def digit_png(path, x: int = 30) -> str:
    img = np.zeros((64, 64), np.uint8)
    img[10:54, x:x + 6] = 255
    Image.fromarray(img).save(path)
    return str(path)


def test_a_drawing_gets_a_true_label_that_the_result_uses(qtbot, window):
    s, draw = window.state, window.inputs.draw
    window.inputs.setCurrentWidget(draw)
    draw.canvas.stroke([(140, 40), (140, 240)], width=20)
    wait_settled(qtbot, window)
    assert s.image.source == "drawing" and s.image.label is None
    assert draw.label.isEnabled() and draw.label.combo.currentText() == "unknown"
    assert s.result.survived(s.request.image.label) is None  # nothing to judge against
    choose(draw.label.combo, "7: 7")
    wait_settled(qtbot, window)
    assert s.image.label == 7 and s.request.image.label == 7  # re-run: the attack aims away from 7
    assert s.result.survived(7) is not None and s.result_is_current()
    draw.canvas.stroke([(100, 60), (180, 60)], width=20)  # the same drawing grows: it is still a 7
    wait_settled(qtbot, window)
    assert s.image.label == 7 and draw.label.combo.currentText() == "7: 7"
    draw.canvas.clear()
    draw.canvas.stroke([(140, 40), (140, 240)], width=20)  # a new drawing: no label yet
    wait_settled(qtbot, window)
    assert s.image.label is None and draw.label.combo.currentText() == "unknown"


def test_a_file_keeps_its_label_when_reframed_and_a_new_file_starts_unknown(qtbot, window, tmp_path):
    s, panel = window.state, window.inputs.file
    with qtbot.waitSignal(s.fileLoaded, timeout=10_000):
        s.request_open(digit_png(tmp_path / "one.png"))
    wait_settled(qtbot, window)
    choose(panel.label.combo, "1: 1")
    assert s.image.label == 1
    panel.invert.toggle()  # the same file framed again
    assert s.image.source == "one.png" and s.image.label == 1
    with qtbot.waitSignal(s.fileLoaded, timeout=10_000):
        s.request_open(digit_png(tmp_path / "other.png", x=20))
    wait_settled(qtbot, window)
    assert s.image.source == "other.png" and s.image.label is None
    assert panel.label.combo.currentText() == "unknown"


def test_a_sample_brings_its_label_and_the_box_is_locked(qtbot, window):
    window.inputs.samples.select(12)
    assert window.state.image.label is not None
    assert not window.inputs.draw.label.isEnabled()
    assert window.inputs.draw.label.combo.currentData() == window.state.image.label


def test_set_label_refuses_a_class_the_dataset_has_not(qapp):
    import pytest

    s = AppState()
    s.set_image(np.zeros((28, 28)), None, "drawing")
    with pytest.raises(ValueError, match="not a class"):
        s.set_label(10)
    s.set_label(3)
    assert s.image.label == 3 and s.image.source == "drawing"


@pytest.mark.slow  # ~5-14 s: in make test-all; the default run keeps a faster check of the same code
def test_main_image_and_label_open_a_file_at_start(tmp_path, app_env):
    config = tmp_path / "config"
    png = digit_png(tmp_path / "lecture digit.png")
    done = run_main(["--image", png, "--label", "1", "--attack", "fgsm", "--screenshot", str(tmp_path / "s.png")],
                    child_env(app_env, LQVAE_CONFIG_DIR=str(config)))
    assert done.returncode == 0, done.stderr
    entry = json.loads((config / "history.json").read_text())["entries"][-1]
    assert entry["image"]["source"] == "lecture digit.png" and entry["image"]["label"] == 1


def _result(state: AppState, original: int, purified: int) -> tuple[AnalysisRequest, Analysis]:
    """A clean-only result for the state's image (no engine)."""
    eye = np.eye(10, dtype=np.float32)
    pixels = np.zeros((1, 28, 28), np.float32)
    request = AnalysisRequest(1, state.image, state.models, None, state.defense)
    return request, Analysis(original=pixels, purified_original=pixels, probs_original=eye[original],
                             probs_purified_original=eye[purified])


def test_the_honesty_panel_says_when_the_purifier_changes_a_clean_class(qtbot):
    from app.panels.honesty import HonestyPanel

    state = AppState()
    panel = HonestyPanel(state)
    qtbot.addWidget(panel)
    state.set_image(np.zeros((28, 28)), None, "serif one.png")
    state.set_result(*_result(state, 1, 2))
    assert "The purifier changed this clean image's class: 1 → 2 — it is not MNIST-like" in panel.text.text()
    state.set_result(*_result(state, 1, 1))
    assert "purifier changed" not in panel.text.text()
