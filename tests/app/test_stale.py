"""Issue 17, items 2 and 3: a shown result never sits under labels it was not computed for, the adaptive threat
on a classifier-side defense runs as the white-box attack, and messages never move the window's widgets."""

from __future__ import annotations

import dataclasses

import numpy as np
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication
from tests.app.helpers import wait_settled
from tests.app.helpers import MADRY, choose


def computed_for_selection(s) -> bool:
    """The shown result's request is the selected settings (written out here, not read from the state's rule)."""
    req = s.request
    attack = s.attack if s.attack.enabled else None
    if attack is not None and s.defense.purifier is None and s.models.hardening and attack.threat.startswith("bpda"):
        attack = dataclasses.replace(attack, threat="whitebox")
    return (req.image is s.image and req.models == s.models and req.defense == s.defense
            and (req.attack is None or req.attack == attack))


def assert_never_stale_unmarked(win, step: str) -> None:
    s = win.state
    if s.result is None:
        return  # nothing shown, nothing under a wrong label
    images, probs, bits, history = win.images, win.probs, win.bits, win.history
    title = probs.charts["probs_original"].getPlotItem().titleLabel.text
    honesty = win.honesty.text.text()
    marked = {"image row": getattr(images, "stale", False) and bool(getattr(images, "stale_note", images).text())
              and images.views["adversarial"].stale == (images.views["adversarial"].image is not None),
              "probabilities": getattr(probs, "stale", False) and "out of date" in title,
              "bits": getattr(bits, "stale", False)
              and "Out of date" in getattr(bits, "stale_note", bits.hamming).text(),
              "honesty": "Out of date" in honesty and "This image was" not in honesty,
              "history": getattr(history, "highlighted_row", lambda: 0)() == -1}
    if computed_for_selection(s):
        assert not any(marked[k] for k in ("image row", "probabilities", "bits", "honesty")), (step, marked)
    else:
        assert all(marked.values()), (step, marked)


def test_no_sequence_of_setting_changes_leaves_an_unmarked_stale_result(qtbot, defended_window):
    win, s = defended_window, defended_window.state
    # the sequence: Defense-GAN under BPDA, then the classifier-side defenses
    s.set_attack(attack="fgsm", eps_linf=0.3, threat="bpda", enabled=True)
    choose(win.defense.purifier, "Defense-GAN")
    s.request_run(False)
    wait_settled(qtbot, win)
    assert s.request.defense.purifier == "defensegan"
    assert_never_stale_unmarked(win, "Defense-GAN, BPDA")
    choose(win.defense.purifier, MADRY)
    assert_never_stale_unmarked(win, "Madry chosen, not yet run")
    wait_settled(qtbot, win)
    assert s.request.models.classifier == "A_madry"  # re-run, not refused
    assert_never_stale_unmarked(win, "Madry with BPDA")
    # a fast attack, then a slow one: C&W runs on demand, so the PGD images must be marked until Run
    s.set_models(classifier="A")
    s.set_defense(purifier="lqvae")
    s.set_attack(attack="pgd", threat="whitebox", steps=5)
    wait_settled(qtbot, win)
    assert s.request.attack.attack == "pgd" and computed_for_selection(s)
    assert_never_stale_unmarked(win, "PGD")
    s.set_attack(attack="cw", steps=10, eps_l2=None)
    wait_settled(qtbot, win)
    assert s.request.attack.attack == "pgd"  # nothing ran by itself ...
    assert not computed_for_selection(s)  # ... so the PGD images are out of date
    assert_never_stale_unmarked(win, "C&W chosen")
    with qtbot.waitSignal(s.resultChanged, timeout=60_000):
        s.request_run(False)
    wait_settled(qtbot, win)
    assert s.request.attack.attack == "cw"
    assert_never_stale_unmarked(win, "C&W run")
    s.set_attack(eps_l2=1.5)  # ε of a slow attack: no re-run, so marked
    wait_settled(qtbot, win)
    assert_never_stale_unmarked(win, "C&W ε changed")
    assert "press Run" in win.images.stale_note.text()
    # a refused run keeps the mark and gives the reason
    s.set_attack(attack="fgsm", threat="bpda", steps=None)
    wait_settled(qtbot, win)
    assert_never_stale_unmarked(win, "FGSM through the LQ-VAE")
    s.set_defense(purifier=None)
    wait_settled(qtbot, win)
    assert_never_stale_unmarked(win, "BPDA without a purifier")
    assert "choose a purifier" in win.images.stale_note.text()
    # the dataset
    s.set_defense(purifier="lqvae")
    s.set_attack(threat="whitebox")
    wait_settled(qtbot, win)
    assert_never_stale_unmarked(win, "back to FGSM")
    s.set_models(dataset="fashion_mnist")
    assert_never_stale_unmarked(win, "dataset switched")
    qtbot.waitUntil(lambda: s.engine.dataset == "fashion_mnist", timeout=30_000)
    wait_settled(qtbot, win)
    assert_never_stale_unmarked(win, "dataset loaded")


def test_history_restore_and_a_fresh_run_are_current(qtbot, window):
    s = window.state
    s.set_attack(attack="fgsm", eps_linf=0.2, threat="whitebox", enabled=True)
    wait_settled(qtbot, window)
    s.set_attack(eps_linf=0.3)
    wait_settled(qtbot, window)
    assert s.result_is_current() and not window.images.stale
    assert window.history.highlighted_row() == len(s.history) - 1
    s.restore(len(s.history) - 2)
    assert s.result_is_current() and not window.images.stale and s.attack.eps_linf == 0.2
    assert window.history.highlighted_row() == len(s.history) - 2


def test_adaptive_threat_on_madry_runs_the_whitebox_attack_and_says_so(qtbot, defended_window):
    win, s = defended_window, defended_window.state
    texts: list[str] = []
    s.message.connect(lambda level, text: texts.append(text))
    s.set_attack(attack="fgsm", eps_linf=0.3, threat="bpda", enabled=True)
    wait_settled(qtbot, win)
    choose(win.defense.purifier, MADRY)
    wait_settled(qtbot, win)
    req = s.request
    assert req.models.classifier == "A_madry" and req.defense.purifier is None
    assert req.attack is not None and req.attack.attack == "fgsm" and req.attack.threat == "whitebox"
    assert s.result.adversarial is not None and computed_for_selection(s)
    assert s.attack.threat == "bpda"  # the selection is kept; what runs is named
    said = [t for t in texts if "adaptive attack on it is the white-box attack" in t]
    assert said and "Madry" in said[-1], texts
    assert not any("hardens the classifier itself, there is" in t for t in texts)
    assert "adaptive attack on it is the white-box attack" in win.honesty.text.text()


def test_messages_do_not_move_the_window(qtbot, window):
    window.inputs.setCurrentWidget(window.inputs.samples)
    qtbot.wait(50)
    watched = {"next": window.inputs.samples.next, "random": window.inputs.samples.random,
               "run": window.attack.run,
               "image row": window.images, "tabs": window.tabs}

    def where() -> dict[str, tuple[int, int, int, int]]:
        QApplication.processEvents()
        out = {}
        for name, w in watched.items():
            p = w.mapToGlobal(QPoint(0, 0))
            out[name] = (p.x(), p.y(), w.width(), w.height())
        return out

    window.messages.dismiss()
    before = where()
    for level in ("warning", "error"):
        window.state.notify(f"A {level} long enough to wrap over several lines of the message area: " + "x " * 200,
                            level)
        assert where() == before, level
        assert f"A {level} long enough" in window.messages.label.text()
    window.messages.dismiss()
    assert where() == before and window.messages.label.text() == ""
    window.messages.show_message("warning", "one")
    window.messages.show_message("error", "two")
    assert window.messages.label.text().splitlines()[0].endswith("two")  # the newest first


def test_a_failed_attack_is_a_result_in_its_tile_not_a_warning(qtbot, window):
    s = window.state
    levels: list[tuple[str, str]] = []
    s.message.connect(lambda level, text: levels.append((level, text)))
    window.messages.dismiss()
    s.set_attack(attack="fgsm", eps_linf=0.001, threat="whitebox", enabled=True, targeted=False)
    wait_settled(qtbot, window)
    labels = s.engine.samples[1]
    for attempt in range(10):  # the random classifier gets most samples wrong already: find one it gets right
        if s.result.attack_failed:
            break
        candidates = np.flatnonzero(labels == int(s.result.probs_original.argmax()))  # the class it likes
        window.inputs.samples.select(int(candidates[attempt % len(candidates)]))
        wait_settled(qtbot, window)
    assert s.request.attack.eps_linf == 0.001 and s.result.attack_failed
    caption = window.images.captions["adversarial"].text()
    assert "attack failed: not adversarial within L∞ ε 0.001" in caption
    assert not any(level == "warning" for level, _ in levels), levels
    assert window.messages.label.text() == ""
