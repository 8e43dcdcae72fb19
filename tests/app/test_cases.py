"""Cases: an exported result (PNG + JSON) reopens with File → Open case… or ``main.py --case`` and gives the same
predictions and bit codes; a wrong or broken case file is refused, naming the file and what is wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.panels.cases import open_case
from app.state.case_file import MAX_CASE_BYTES, CaseError, read_case
from tests.app.helpers import child_env, run_main, wait_settled


def predictions(result) -> dict[str, int | None]:
    slots = {"original": result.probs_original, "adversarial": result.probs_adversarial,
             "purified_original": result.probs_purified_original,
             "purified_adversarial": result.probs_purified_adversarial}
    return {k: None if p is None else int(np.argmax(p)) for k, p in slots.items()}


def exported(qtbot, window, tmp_path, *, sample: int = 5, eps: float = 0.2):
    s = window.state
    window.inputs.samples.select(sample)
    s.set_attack(attack="pgd", eps_linf=eps, threat="bpda", seed=3)
    s.request_run(False)
    wait_settled(qtbot, window)
    assert s.result is not None and s.request.attack.threat == "bpda"
    png, js = window.export_current(str(tmp_path / "case.png"))
    return s.request, s.result, png, js


@pytest.mark.parametrize("open_the", ["json", "png"])
def test_a_reopened_case_gives_the_same_predictions_and_bits(qtbot, window, tmp_path, open_the):
    s = window.state
    request, result, png, js = exported(qtbot, window, tmp_path)
    data = json.loads(js.read_text())
    assert data["schema"] == "lqvae-studio-case" and data["version"] == 1
    assert data["threat"] == "bpda" and data["eps"] == 0.2 and data["seed"] == 3 and data["dataset"] == "mnist"
    assert data["image"]["label"] == request.image.label and len(data["class_names"]) == 10
    window.inputs.samples.select(9)  # somewhere else entirely
    s.set_attack(attack="fgsm", eps_linf=0.05, threat="whitebox")
    wait_settled(qtbot, window)
    said: list[str] = []
    s.message.connect(lambda level, text: said.append(text))
    case = open_case(s, js if open_the == "json" else png)
    assert case is not None
    wait_settled(qtbot, window)
    assert s.request.attack == request.attack and s.request.defense == request.defense
    assert s.request.models.classifier == request.models.classifier
    assert np.array_equal(s.image.pixels, request.image.pixels) and s.image.label == request.image.label
    assert predictions(s.result) == {k: (None if v is None else v["class"]) for k, v in data["predictions"].items()}
    assert np.array_equal(s.result.bits_original, np.asarray(data["bits_original"]))
    assert np.array_equal(s.result.bits_adversarial, np.asarray(data["bits_adversarial"]))
    assert any("same predictions and bits as recorded" in t for t in said)
    assert s.result_is_current() and s.history[-1].request is s.request  # the same panels, and a history entry


def test_the_menu_offers_open_case(window):
    assert any("Open case" in a.text() for a in window.menu_file.actions())


def good_case(tmp_path) -> dict:
    """A valid case written by the export's own function (no window needed)."""
    from app.render.export import result_summary
    from app.state.settings import AnalysisRequest, AttackSettings, DefenseSettings, InputImage, ModelSettings
    from lqvae.spec.results import Analysis

    pixels = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    request = AnalysisRequest(1, InputImage(pixels, 3, "sample 3", "mnist"), ModelSettings(),
                              AttackSettings(attack="pgd", threat="bpda"), DefenseSettings())
    result = Analysis(original=pixels[None], probs_original=np.eye(10, dtype=np.float32)[3])
    return json.loads(json.dumps(result_summary(request, result, [str(i) for i in range(10)]), default=str))


def test_a_case_round_trips_its_run_exactly(tmp_path):
    data = good_case(tmp_path)
    path = tmp_path / "good.json"
    path.write_text(json.dumps(data))
    case = read_case(path)
    req = case.run.request
    assert req.attack.threat == "bpda" and req.image.label == 3 and req.models.dataset == "mnist"
    assert req.image.pixels.dtype == np.float32 and req.image.pixels.shape == (28, 28)
    assert np.array_equal(req.image.pixels, np.random.default_rng(0).random((28, 28)).astype(np.float32))  # exactly
    assert case.predictions["original"] == 3


def set_field(data: dict, field: str, value) -> dict:
    *parents, key = field.split(".")
    target = data
    for p in parents:
        target = target[p]
    target[key] = value
    return data


@pytest.mark.parametrize("field, value, words", [
    ("schema", "something-else", "not an LQ-VAE Studio case"),
    ("version", 7, "version"),
    ("dataset", "cifar10", "unknown dataset"),
    ("models.dataset", "fashion_mnist", "is not the dataset"),
    ("attack.attack", "laser", "unknown attack"),
    ("attack.threat", "psychic", "unknown threat"),
    ("attack.eps_linf", 5.0, "eps_linf"),
    ("attack.seed", -1, "seed"),
    ("defense.purifier", "<script>", "not a model name"),
    ("image.label", 10, "image.label"),
    ("image.pixels", [[0] * 28] * 27, "28 rows of 28"),
    ("image.pixels", [[0.5] * 28] * 28, "0-255"),
    ("image.pixels.shape", [32, 32], "28x28"),
    ("image.pixels.base64", "!!not base64!!", "not base64"),
    ("image.pixels.base64", "AAAA", "expected 784"),
])
def test_a_wrong_case_is_refused_naming_the_file_and_the_problem(tmp_path, field, value, words):
    path = tmp_path / "lecture case.json"
    path.write_text(json.dumps(set_field(good_case(tmp_path), field, value)))
    with pytest.raises(CaseError) as info:
        read_case(path)
    assert str(path) in str(info.value) and words in str(info.value)


def test_pixels_out_of_range_are_refused(tmp_path):
    import base64

    data = good_case(tmp_path)
    data["image"]["pixels"]["base64"] = base64.b64encode(np.full(784, 2.0, "<f4").tobytes()).decode()
    path = tmp_path / "bright.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CaseError, match=r"bright.json.*\[0, 1\]"):
        read_case(path)


@pytest.mark.parametrize("kind, words", [("missing", "cannot read"), ("not_json", "not valid JSON"),
                                         ("too_big", "too big"), ("lonely_png", "no case file beside it"),
                                         ("old_export", "older exports hold no input pixels")])
def test_a_broken_case_file_is_refused(tmp_path, kind, words):
    path = tmp_path / "case.json"
    if kind == "not_json":
        path.write_text("{nope")
    elif kind == "too_big":
        path.write_bytes(b" " * (MAX_CASE_BYTES + 1))
    elif kind == "lonely_png":
        path = tmp_path / "picture.png"
        path.write_bytes(b"\x89PNG")
    elif kind == "old_export":
        data = good_case(tmp_path)
        for key in ("schema", "version", "image"):
            data.pop(key)
        path.write_text(json.dumps(data))
    with pytest.raises(CaseError) as info:
        read_case(path)
    assert path.name in str(info.value) and words in str(info.value)


def test_opening_a_broken_case_says_so_and_changes_nothing(qtbot, window, tmp_path):
    s = window.state
    image, attack = s.image, s.attack
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(set_field(good_case(tmp_path), "attack.attack", "laser")))
    said: list[tuple[str, str]] = []
    s.message.connect(lambda level, text: said.append((level, text)))
    assert open_case(s, path) is None
    assert said and said[-1][0] == "error" and "broken.json" in said[-1][1] and "unknown attack" in said[-1][1]
    assert s.image is image and s.attack == attack


def test_main_refuses_a_broken_case_before_opening_a_window(tmp_path, app_env):
    path = tmp_path / "broken.json"
    path.write_text("{nope")
    done = run_main(["--case", str(path), "--screenshot", str(tmp_path / "x.png")], child_env(app_env), timeout=60)
    assert done.returncode == 2
    assert "broken.json" in done.stderr and "not valid JSON" in done.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow  # ~5-14 s: in make test-all; the default run keeps a faster check of the same code
def test_main_case_runs_the_case_again(tmp_path, app_env):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(set_field(good_case(tmp_path), "attack.threat", "whitebox")))
    config = tmp_path / "config"
    env = child_env(app_env, LQVAE_CONFIG_DIR=str(config))
    done = run_main(["--case", str(path), "--screenshot", str(tmp_path / "shot.png")], env)
    assert done.returncode == 0, done.stderr
    entry = json.loads((config / "history.json").read_text())["entries"][-1]  # the run, as the history kept it
    assert entry["image"]["source"] == "sample 3" and entry["image"]["label"] == 3
    assert entry["attack"]["attack"] == "pgd" and entry["image"]["pixels"] == good_case(tmp_path)["image"]["pixels"]


def test_a_dropped_case_json_is_reopened(qtbot, window, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    path = tmp_path / "dropped.json"
    path.write_text(json.dumps(set_field(good_case(tmp_path), "attack.threat", "whitebox")))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    window.dropEvent(QDropEvent(QPointF(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                                Qt.KeyboardModifier.NoModifier))
    wait_settled(qtbot, window)
    s = window.state
    assert s.image.source == "sample 3" and s.image.label == 3 and s.request.attack.attack == "pgd"


def test_a_clean_only_case_turns_the_attack_off(tmp_path, qtbot):
    from app.state.app_state import AppState

    data = good_case(tmp_path)
    data["attack"] = None
    path = tmp_path / "clean.json"
    path.write_text(json.dumps(data))
    state = AppState()
    with qtbot.waitSignal(state.runRequested):
        open_case(state, path)
    assert not state.attack.enabled and state.image.label == 3 and state.image.source == "sample 3"
