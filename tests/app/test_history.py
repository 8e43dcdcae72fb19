"""The run history: each entry keeps its own data set and class names, names its threat, the newest is in view,
it survives a restart in the config folder (LQVAE_CONFIG_DIR here, never the real home), a damaged or hostile
history file is ignored with one line, and an entry of an earlier session is run again when clicked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.state.app_state import AppState
from app.state.history_store import (CONFIG_ENV, MAX_ENTRIES, MAX_HISTORY_BYTES, HistoryKeeper, entry_to_dict,
                                     history_path, load_history, save_history)
from app.state.settings import AnalysisRequest, AttackSettings, DefenseSettings, InputImage, ModelSettings
from lqvae.spec.results import Analysis
from tests.app.helpers import wait_settled

_ids = iter(range(1, 10_000))


def one_hot(k: int) -> np.ndarray:
    return np.eye(10, dtype=np.float32)[k]


def record_run(state: AppState, *, dataset: str = "mnist", preds=(7, 3, 7), threat: str = "whitebox",
               eps: float = 0.3, label: int | None = 7, source: str = "sample 1", seed: int = 0) -> AnalysisRequest:
    """A finished attacked run put on the state as the controller would (no engine)."""
    pixels = np.random.default_rng(seed).random((28, 28)).astype(np.float32)
    image = InputImage(pixels, label, source, dataset)
    request = AnalysisRequest(next(_ids), image, ModelSettings(dataset=dataset),
                              AttackSettings(attack="pgd", eps_linf=eps, threat=threat), DefenseSettings())
    result = Analysis(original=pixels[None], adversarial=pixels[None] * 0.5, purified_original=pixels[None],
                      purified_adversarial=pixels[None], probs_original=one_hot(preds[0]),
                      probs_adversarial=one_hot(preds[1]), probs_purified_adversarial=one_hot(preds[2]))
    state.set_result(request, result)
    return request


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    folder = tmp_path / "config"
    monkeypatch.setenv(CONFIG_ENV, str(folder))
    return folder


@pytest.fixture
def strip(qtbot):
    from app.panels.history import HistoryStrip

    state = AppState()
    widget = HistoryStrip(state)
    qtbot.addWidget(widget)
    return state, widget


def captions(widget) -> list[str]:
    return [widget.list.item(i).text() for i in range(widget.list.count())]


def test_an_entry_keeps_its_own_class_names_after_a_dataset_switch(strip):
    state, widget = strip
    record_run(state, dataset="mnist", preds=(7, 3, 7))
    state.set_models(dataset="fashion_mnist")  # the MNIST run must not become "Boot→Pull→Boot"
    record_run(state, dataset="fashion_mnist", preds=(0, 1, 0), label=0)
    assert captions(widget)[0].endswith("7→3→7")
    assert captions(widget)[1].endswith("Tee→Trous→Tee")
    assert "MNIST" in widget.list.item(0).toolTip() and "true 7" in widget.list.item(0).toolTip()


def test_the_caption_names_the_threat(strip):
    state, widget = strip
    record_run(state, threat="whitebox")
    record_run(state, threat="bpda")
    record_run(state, threat="bpda_eot")
    white, bpda, eot = captions(widget)
    assert "white-box" in white and "BPDA" in bpda and "BPDA+EOT" in eot
    assert len({white, bpda, eot}) == 3  # white-box and BPDA runs no longer look alike


def test_the_strip_scrolls_the_newest_entry_into_view(strip, qtbot):
    state, widget = strip
    widget.resize(500, 120)
    widget.show()
    for i in range(30):
        record_run(state, eps=0.01 * (i + 1), seed=i)
    last = widget.list.item(widget.list.count() - 1)
    viewport = widget.list.viewport().rect()
    qtbot.waitUntil(lambda: viewport.contains(widget.list.visualItemRect(last)), timeout=2000)
    assert widget.list.horizontalScrollBar().value() > 0


def test_the_history_survives_a_restart_in_the_config_folder(config_dir, qapp):
    assert history_path() == config_dir / "history.json"  # the override, not the real home
    first = AppState()
    HistoryKeeper(first, history_path())
    mnist = record_run(first, dataset="mnist", preds=(7, 3, 7), threat="bpda", eps=0.2, label=7, source="drawing")
    first.set_models(dataset="fashion_mnist")
    record_run(first, dataset="fashion_mnist", preds=(9, 5, 9), label=9, source="sample 4")
    first.findChild(HistoryKeeper).flush()

    second = AppState()  # the next session
    HistoryKeeper(second, history_path())
    assert len(second.history) == 2
    entry = second.history[0]
    assert entry.result is None and entry.predictions == (7, 3, 7)
    assert entry.class_names == tuple(str(i) for i in range(10))  # its own names, not Fashion-MNIST's
    assert entry.request.models.dataset == "mnist" and entry.request.attack == mnist.attack
    assert entry.request.attack.threat == "bpda" and entry.request.attack.eps == 0.2
    assert entry.request.image.label == 7 and entry.request.image.source == "drawing"
    assert np.array_equal(entry.request.image.pixels, mnist.image.pixels)  # exactly: a re-run sees the same input
    assert second.history[1].class_names[9] == "Ankle boot"


def test_the_history_file_is_bounded(config_dir, qapp):
    state = AppState()
    for i in range(MAX_ENTRIES + 10):
        record_run(state, eps=0.001 * i, seed=i)
    save_history(history_path(), state.history)
    data = json.loads(history_path().read_text())
    assert len(state.history) == MAX_ENTRIES and len(data["entries"]) == MAX_ENTRIES
    assert history_path().stat().st_size < MAX_HISTORY_BYTES / 2
    entries, message = load_history(history_path())
    assert len(entries) == MAX_ENTRIES and message == ""
    assert entries[-1].request.attack.eps_linf == pytest.approx(0.001 * (MAX_ENTRIES + 9))


def _good_entry(qapp) -> dict:
    state = AppState()
    record_run(state)
    return entry_to_dict(state.history[0])


@pytest.mark.parametrize("damage, words", [
    ("not_json", "not valid JSON"),
    ("pickle", "not valid JSON"),
    ("huge", "too big"),
    ("deep", "not valid JSON"),
    ("wrong_schema", "not an LQ-VAE Studio history"),
    ("a_list", "not an LQ-VAE Studio history"),
    ("future_version", "version"),
])
def test_a_damaged_history_file_is_ignored_with_one_line(config_dir, qapp, damage, words):
    path = history_path()
    path.parent.mkdir(parents=True)
    good = {"schema": "lqvae-studio-history", "version": 1, "entries": [_good_entry(qapp)]}
    content = {
        "not_json": b"{this is not json",
        "pickle": b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00.",
        "huge": b" " * (MAX_HISTORY_BYTES + 1),
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "wrong_schema": json.dumps({**good, "schema": "something else"}).encode(),
        "a_list": json.dumps([good]).encode(),
        "future_version": json.dumps({**good, "version": 99}).encode(),
    }[damage]
    path.write_bytes(content)
    state = AppState()
    said: list[tuple[str, str]] = []
    state.message.connect(lambda level, text: said.append((level, text)))
    HistoryKeeper(state, path)
    assert state.history == []
    assert len(said) == 1 and said[0][0] == "warning" and "\n" not in said[0][1]
    assert words in said[0][1] and str(path) in said[0][1]


@pytest.mark.parametrize("field, value, words", [
    ("dataset", "imagenet", "unknown dataset"),
    ("class_names", ["a"] * 3, "class_names"),
    ("predictions", [1, 2, 99], "predictions"),
    ("image.label", 12, "image.label"),
    ("image.pixels", {"shape": [28, 27], "dtype": "float32", "base64": "AAAA"}, "28x28"),
    ("image.pixels", [[300] * 28] * 28, "0-255"),
    ("attack.attack", "rm -rf", "unknown attack"),
    ("attack.threat", "telepathy", "unknown threat"),
    ("attack.eps_linf", float("nan"), "finite"),
    ("attack.eps_linf", "0.3", "must be a number"),
    ("attack.enabled", 1, "true/false"),
    ("models.classifier", "../../etc/passwd", "not a model name"),
    ("shown", "@@@", "thumbnail"),
])
def test_a_hostile_entry_is_skipped_and_the_others_kept(config_dir, qapp, field, value, words):
    good = _good_entry(qapp)
    bad = json.loads(json.dumps(good))
    *parents, key = field.split(".")
    target = bad
    for p in parents:
        target = target[p]
    target[key] = value
    path = history_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema": "lqvae-studio-history", "version": 1, "entries": [good, bad, good]}))
    entries, message = load_history(path)
    assert len(entries) == 2
    assert "skipped 1 damaged entry" in message and words in message and "entry 2" in message
    assert "\n" not in message


def test_names_from_the_file_are_shown_as_plain_text(strip, config_dir):
    state, widget = strip
    record_run(state, source="<h1>BIG</h1><a href='x'>.png")
    entries = [state.history[0]]
    save_history(history_path(), entries)
    loaded, _ = load_history(history_path())
    state.add_history(loaded)
    tip = widget.list.item(0).toolTip()
    assert "<h1>" not in tip and "&lt;h1&gt;BIG" in tip and "earlier session" in tip


def test_restoring_an_earlier_sessions_entry_runs_it_with_its_settings(config_dir, qapp, qtbot):
    first = AppState()
    request = record_run(first, threat="bpda", eps=0.15, label=4, source="digit.png")
    save_history(history_path(), first.history)
    state = AppState()
    HistoryKeeper(state, history_path())
    with qtbot.waitSignal(state.runRequested) as run:
        state.restore(0)
    assert run.args == [False]  # the Run button's request: a slow attack runs too
    assert state.attack == request.attack and state.defense == request.defense
    assert state.models.dataset == "mnist" and state.models.classifier == request.models.classifier
    assert state.image.label == 4 and state.image.source == "digit.png"
    assert np.array_equal(state.image.pixels, request.image.pixels)


def test_an_earlier_entry_run_again_shows_matching_labels_and_is_filled_in(qtbot, window, config_dir):
    s = window.state
    s.set_attack(attack="fgsm", eps_linf=0.2, threat="whitebox")
    wait_settled(qtbot, window)
    s.set_attack(eps_linf=0.1)
    wait_settled(qtbot, window)
    save_history(history_path(), s.history[-2:])
    saved, _ = load_history(history_path())
    s.clear_history()
    s.add_history(saved)  # as a new session would find them
    first = saved[0]
    s.restore(0)
    wait_settled(qtbot, window)
    assert s.result is not None and s.request.attack.eps_linf == 0.2
    assert s.result.predictions == first.predictions  # the shown result matches the entry's labels
    assert len(s.history) == 2 and s.history[0].result is s.result  # filled in where it was, not appended
    assert window.history.highlighted_row() == 0


def test_every_change_is_saved_soon_and_clear_forgets_the_file_too(config_dir, qapp, qtbot):
    state = AppState()
    HistoryKeeper(state, history_path())
    record_run(state)
    qtbot.waitUntil(lambda: history_path().exists(), timeout=3000)  # no quit needed: a crash keeps the runs
    assert len(load_history(history_path())[0]) == 1
    state.clear_history()
    qtbot.waitUntil(lambda: load_history(history_path())[0] == [], timeout=3000)


def test_a_history_that_cannot_be_written_is_said_once(tmp_path, qapp):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the config folder should be")
    state = AppState()
    said: list[str] = []
    state.message.connect(lambda level, text: said.append(text))
    keeper = HistoryKeeper(state, blocker / "history.json")
    record_run(state)
    keeper.flush()
    record_run(state, seed=1)
    keeper.flush()
    assert len(said) == 1 and "History not saved" in said[0] and len(state.history) == 2
