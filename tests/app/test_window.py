"""The main window with tiny random models: worker signals reach the panels, cancel works, bad files are refused."""

from __future__ import annotations

import time

import numpy as np
import pytest
from tests.app.helpers import broken_files, wait_settled

from app.input.preprocess import ink_bbox
from app.state.settings import EvaluationRequest


def test_window_boots_loads_models_and_shows_first_sample(window):
    s = window.state
    assert s.engine is not None and s.engine.classifiers == ["A", "B", "C"] and s.engine.purifiers == ["lqvae"]
    assert s.models_info.ok and "purifier" in s.models_info.loaded
    assert s.image is not None and s.image.source == "sample 0"
    assert "classifier_A" in window.models.status.text()


def test_sample_and_fgsm_update_panels_through_worker_signals(qtbot, window):
    s = window.state
    s.set_attack(attack="fgsm", eps_linf=0.25, threat="whitebox", enabled=True)
    with qtbot.waitSignals([s.analysisStarted, s.busyChanged, s.resultChanged], order="strict", timeout=30_000):
        window.inputs.samples.select(7)
    request, result = s.request, s.result
    assert request.image.source == "sample 7" and request.attack.attack == "fgsm"
    assert result.adversarial is not None and result.purified_adversarial is not None
    assert abs(result.linf - 0.25) < 1e-4
    views = window.images.views
    for key in ("original", "adversarial", "perturbation", "purified_adversarial", "purified_original"):
        assert views[key].image is not None, key
        assert not views[key].stale, key
    assert "L∞ 0.250" in window.images.captions["perturbation"].text()
    # the bit grids show exactly the flips of this result
    flipped = window.bits.adv.flipped
    assert int(flipped.sum()) == result.hamming
    assert np.array_equal(window.bits.clean.bits, result.bits_original)
    assert f"Hamming distance: {result.hamming} of 64 bits" in window.bits.hamming.text()
    # Theorem 1 is read from this image's per-dimension latent shift and this perturbation's L2 size
    theorem = window.bits.theorem.text()
    assert f"expect <b>{result.theorem1.expected_flips:.1f}</b> flips" in theorem and "per dimension" in theorem
    assert f"‖δ‖₂ = {result.l2:.3g}" in theorem and f"K·‖δ‖₂ = {0.1 * result.l2:.3g}" in theorem
    assert window.history.list.count() >= 1


def test_eps_slider_reruns_fast_attack_debounced(qtbot, window):
    s = window.state
    s.set_attack(attack="fgsm", eps_linf=0.3)
    wait_settled(qtbot, window)
    first = s.request.id
    for value in (20, 30, 40):  # three quick moves -> one run with the last value
        window.attack.eps.setValue(value)
    with qtbot.waitSignal(s.resultChanged, timeout=30_000):
        pass
    wait_settled(qtbot, window)
    assert s.request.attack.eps_linf == 0.2 and s.request.id > first
    assert abs(s.result.linf - 0.2) < 1e-4


def test_cancel_stops_a_long_attack_and_app_stays_responsive(qtbot, window):
    s = window.state
    s.set_attack(attack="cw", steps=5000, eps_l2=None)
    wait_settled(qtbot, window)
    ticks = []
    timer_ = __import__("PySide6.QtCore", fromlist=["QTimer"]).QTimer()
    timer_.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer_.start(10)
    with qtbot.waitSignal(s.analysisProgress, timeout=30_000):
        s.request_run(False)
    qtbot.wait(300)
    assert s.busy
    t0 = time.perf_counter()
    with qtbot.waitSignal(s.busyChanged, timeout=5_000) as blocker:
        window.attack.cancel.click()
    elapsed = time.perf_counter() - t0
    timer_.stop()
    assert blocker.args == [False]
    assert elapsed < 1.5, f"cancel took {elapsed:.2f} s"
    gaps = np.diff(ticks)
    assert len(ticks) > 10 and gaps.max() < 0.5, f"event loop stalled {gaps.max():.2f} s"
    assert s.request.attack is None or s.request.attack.attack != "cw" or s.result is not None
    # still responsive: a fast attack runs afterwards
    s.set_attack(attack="fgsm", steps=None)
    with qtbot.waitSignal(s.resultChanged, timeout=30_000):
        s.request_run(False)
    assert s.result.adversarial is not None


def test_each_broken_file_shows_error_and_keeps_previous_image(qtbot, window, tmp_path):
    s = window.state
    before = s.image
    for kind, (path, words) in broken_files(tmp_path / "broken").items():
        with qtbot.waitSignal(s.fileFailed, timeout=10_000) as blocker:
            s.request_open(str(path))
        assert words.lower() in blocker.args[0].lower(), kind
        assert s.image is before, kind
        assert window.messages.isVisible() and path.name in window.messages.label.text(), kind
        assert words.lower() in window.inputs.file.info.text().lower(), kind


def test_good_file_is_opened_inverted_and_framed(qtbot, window, tmp_path):
    from PIL import Image

    paper = np.full((300, 200, 3), 240, np.uint8)
    paper[60:240, 90:110] = 10
    Image.fromarray(paper).save(tmp_path / "one.png")
    s = window.state
    with qtbot.waitSignal(s.imageChanged, timeout=10_000):
        s.request_open(str(tmp_path / "one.png"))
    assert s.image.source == "one.png" and s.image.label is None
    assert window.inputs.file.invert.isChecked()
    top, bottom, _, _ = ink_bbox(s.image.pixels)
    assert bottom - top == 20
    wait_settled(qtbot, window)
    assert s.result is not None and s.request.image is s.image


def test_drawn_strokes_become_the_centred_input(qtbot, window):
    s = window.state
    panel = window.inputs.draw
    with qtbot.waitSignal(s.imageChanged, timeout=5_000):
        panel.canvas.stroke([(60, 30), (60, 250)], width=20)
    img = s.image.pixels
    assert s.image.source == "drawing"
    top, bottom, left, right = ink_bbox(img)
    assert bottom - top == 20 and right - left <= 5
    ys, xs = np.indices(img.shape)
    assert abs((xs * img).sum() / img.sum() - 13.5) < 0.6
    panel.canvas.undo()
    assert panel.canvas.is_blank()


def test_history_click_restores_without_rerun(qtbot, window):
    s = window.state
    s.set_attack(attack="fgsm", eps_linf=0.1)
    wait_settled(qtbot, window)
    s.set_attack(eps_linf=0.2)
    wait_settled(qtbot, window)
    n = len(s.history)
    assert n >= 2
    first_eps = s.history[-2].request.attack.eps_linf
    runs_before = s.request.id
    s.restore(n - 2)
    wait_settled(qtbot, window)
    assert s.request.id == s.history[-2].request.id < runs_before
    assert s.attack.eps_linf == first_eps and len(s.history) == n


def test_export_writes_png_and_json(qtbot, window, tmp_path):
    import json

    from PySide6.QtGui import QImage

    from app.state.settings import as_dict

    s = window.state
    png, js = window.export_current(str(tmp_path / "out.png"))
    assert (png, js) == (tmp_path / "out.png", tmp_path / "out.json")
    image = QImage(str(png))
    assert not image.isNull() and image.size() == window.images.grab().size()  # the image row, decoded
    data = json.loads(js.read_text())
    assert data["attack"] == as_dict(s.request.attack) and data["source"] == s.request.image.source
    assert data["hamming"] == s.result.hamming and data["linf"] == pytest.approx(s.result.linf)
    assert data["predictions"]["adversarial"]["class"] == int(np.argmax(s.result.probs_adversarial))


def test_missing_checkpoints_are_reported_and_app_keeps_working(qtbot, tmp_path, monkeypatch, app_env):
    from app.main_window import MainWindow

    monkeypatch.setenv("LQVAE_CHECKPOINTS", str(tmp_path / "nothing"))
    monkeypatch.setenv("LQVAE_SAMPLES", str(tmp_path / "nothing"))
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.start()
    qtbot.waitUntil(lambda: win.state.engine is not None, timeout=30_000)
    wait_settled(qtbot, win)
    assert "No checkpoints" in win.models.status.text()
    assert win.messages.isVisible() and "classifier" in win.messages.label.text().lower()
    assert "missing" in win.inputs.samples.info.text()
    win.inputs.draw.canvas.stroke([(100, 40), (100, 240)], width=20)  # drawing still works
    wait_settled(qtbot, win)
    assert win.state.image.source == "drawing" and win.state.result is None
    win.controller.shutdown()


@pytest.mark.parametrize("damage", ["truncated_header", "truncated_tensors"])
def test_damaged_purifier_checkpoint_is_reported_and_defense_turns_off(qtbot, tmp_path, monkeypatch, app_env, damage):
    import shutil
    from pathlib import Path

    from app.main_window import MainWindow

    root = tmp_path / "ckpt"
    shutil.copytree(Path(app_env["LQVAE_CHECKPOINTS"]), root)
    path = root / "mnist" / "lqvae.safetensors"
    data = path.read_bytes()
    # cut inside the header, or keep the header intact and cut the tensor data short
    path.write_bytes(data[:1000] if damage == "truncated_header" else data[: len(data) - 4096])
    monkeypatch.setenv("LQVAE_CHECKPOINTS", str(root))
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.start()
    qtbot.waitUntil(lambda: win.controller.models_ready, timeout=30_000)
    wait_settled(qtbot, win)
    assert "lqvae.safetensors" in win.models.status.text() + win.messages.label.text()
    assert win.state.defense.purifier is None  # the defense is off, classification still works
    assert win.state.result is not None and win.state.result.adversarial is not None
    win.controller.shutdown()


def test_dropping_a_file_on_the_window_opens_it(qtbot, window, tmp_path):
    from PIL import Image
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    img = np.zeros((56, 56), np.uint8)
    img[8:48, 24:32] = 255
    Image.fromarray(img).save(tmp_path / "dropped.png")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "dropped.png"))])
    event = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.state.imageChanged, timeout=10_000):
        window.dropEvent(event)
    assert window.state.image.source == "dropped.png"


def test_next_sample_shortcut(qtbot, window):
    from PySide6.QtCore import Qt

    window.activateWindow()
    window.inputs.samples.select(3)
    qtbot.keyClick(window, Qt.Key.Key_N)
    assert window.state.image.source == "sample 4"


def test_switching_to_a_dataset_without_checkpoints_clears_the_result(qtbot, window):
    s = window.state
    assert s.result is not None
    s.set_models(dataset="fashion_mnist")
    qtbot.waitUntil(lambda: s.engine.dataset == "fashion_mnist", timeout=30_000)
    wait_settled(qtbot, window)
    assert s.result is None and window.images.views["adversarial"].image is None
    assert "No checkpoints" in window.models.status.text()
    assert "fashion_mnist" in window.messages.label.text()
    s.set_models(dataset="mnist")  # and back: everything works again
    qtbot.waitUntil(lambda: window.controller.models_ready and s.result is not None, timeout=30_000)
    assert s.image.source.startswith("sample") and s.result.adversarial is not None


def test_evaluate_tab_runs_a_batch_and_exports(qtbot, window, tmp_path):
    tab = window.evaluate
    window.show_tab("evaluate")
    tab.n.setValue(10)
    for name, box in tab.attack_boxes.items():
        box.setChecked(name == "fgsm")
    tab.eps.setText("0.1, 0.3")
    tab.threat.setCurrentIndex(tab.threat.findData("whitebox"))  # the tab starts adaptive (BPDA); see test_evaluate_tab
    asked: list[EvaluationRequest] = []
    window.state.evaluateRequested.connect(asked.append)
    with qtbot.waitSignal(window.state.evaluationFinished, timeout=60_000) as blocker:
        tab.start()
    assert asked == [EvaluationRequest(n=10, attacks=("fgsm",), eps=(0.1, 0.3))]  # typed, frozen: no loose dict
    rows = blocker.args[0]
    assert [r["eps"] for r in rows] == [0.1, 0.3] and all(r["n"] == 10 for r in rows)
    assert all(len(r["hamming"]) == 10 for r in rows)
    assert all(r["defense"] == "lqvae" and r["defended_accuracy"] is not None for r in rows)  # the engine's keys
    assert all(r["undefended_accuracy"] is not None for r in rows)
    assert tab.table.rowCount() == 2 and tab.table.item(1, 1).text() == "0.3"
    csv = tab.save_csv(str(tmp_path / "eval.csv"))
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("attack,eps,n") and len(lines) == 3
    assert "undefended_accuracy" in lines[0].split(",") and "defended_accuracy" in lines[0].split(",")
    assert tab.save_png(str(tmp_path / "eval.png")).stat().st_size > 1000


def test_stochastic_defense_shows_the_spread(qtbot, window):
    s = window.state
    s.set_attack(attack="fgsm", eps_linf=0.3)
    s.set_defense(mode="stochastic", n_samples=6)
    wait_settled(qtbot, window)
    assert s.request.defense.mode == "stochastic"
    assert s.result.stochastic_probs.shape == (6, 10)
    assert "6 samples:" in window.images.captions["purified_adversarial"].text()
    assert window.probs.charts["probs_purified_adversarial"].errors is not None


def test_bpda_without_a_purifier_explains_instead_of_running(qtbot, window):
    s = window.state
    s.set_defense(purifier=None)
    wait_settled(qtbot, window)
    before = s.request.id
    s.set_attack(attack="fgsm", threat="bpda")
    wait_settled(qtbot, window)
    assert s.request.id == before
    assert "choose a purifier" in window.messages.label.text()
