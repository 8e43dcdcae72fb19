"""Hostile names, racing requests, refused checkpoints and ``--screenshot`` failures in the app (issue 15)."""

from __future__ import annotations

import pytest

import shutil
import time
from pathlib import Path

import numpy as np
from tests.app.helpers import open_window, child_env, run_main, wait_settled

MARKUP_NAME = "<h1>BIG<a href='javascript:alert(1)'>x:y.png"


def _digit_png(path: Path, side: int = 56) -> Path:
    from PIL import Image

    img = np.zeros((side, side), np.uint8)
    img[side // 7: side - side // 7, side * 3 // 7: side * 4 // 7] = 255
    Image.fromarray(img).save(path, format="PNG")
    return path


def test_file_names_are_shown_as_plain_text_and_kept_whole(qtbot, window, tmp_path):
    path = _digit_png(tmp_path / MARKUP_NAME)
    with qtbot.waitSignal(window.state.imageChanged, timeout=10_000):
        window.state.request_open(str(path))
    wait_settled(qtbot, window)
    assert window.state.image.source == MARKUP_NAME  # not cut at the ':'
    info = window.inputs.file.info.text()
    assert "<h1>" not in info and "<a href" not in info
    assert "&lt;h1&gt;BIG&lt;a href=" in info
    tips = [window.history.list.item(i).toolTip() for i in range(window.history.list.count())]
    assert tips and all("<h1>" not in t for t in tips)


def test_a_refused_file_names_it_as_plain_text(qtbot, window, tmp_path):
    bad = tmp_path / "<b>bold<i>.png"
    bad.write_bytes(b"not an image at all")
    with qtbot.waitSignal(window.state.fileFailed, timeout=10_000):
        window.state.request_open(str(bad))
    info = window.inputs.file.info.text()
    assert "&lt;b&gt;bold&lt;i&gt;.png" in info and "<b>bold" not in info


def test_the_newest_file_request_wins_whatever_finishes_first(qtbot, window, tmp_path, monkeypatch):
    """A slow decode (a large image) started first must not replace a fast one requested after it."""
    import app.engine.adapter as adapter
    from app.input.sandbox import load_image

    slow, fast = _digit_png(tmp_path / "slow.png"), _digit_png(tmp_path / "fast.png", 84)

    def delayed(path):
        if Path(path).name == "slow.png":
            time.sleep(0.6)
        return load_image(path)

    monkeypatch.setattr(adapter, "load_image", delayed)
    loaded: list[str] = []
    window.state.fileLoaded.connect(lambda li: loaded.append(Path(li.path).name))
    window.state.request_open(str(slow))
    qtbot.wait(50)
    window.state.request_open(str(fast))
    qtbot.waitUntil(lambda: not window.controller.pool.busy(), timeout=10_000)
    qtbot.wait(100)
    wait_settled(qtbot, window)
    assert loaded == ["fast.png"]
    assert window.state.image.source == "fast.png"


def test_an_older_failure_does_not_report_over_a_newer_success(qtbot, window, tmp_path, monkeypatch):
    import app.engine.adapter as adapter
    from app.input.image_io import ImageLoadError
    from app.input.sandbox import load_image

    good = _digit_png(tmp_path / "good.png")

    def delayed(path):
        if Path(path).name == "broken.png":
            time.sleep(0.5)
            raise ImageLoadError("broken.png: damaged")
        return load_image(path)

    monkeypatch.setattr(adapter, "load_image", delayed)
    failed: list[str] = []
    window.state.fileFailed.connect(failed.append)
    window.state.request_open(str(tmp_path / "broken.png"))
    qtbot.wait(50)
    window.state.request_open(str(good))
    qtbot.waitUntil(lambda: not window.controller.pool.busy(), timeout=10_000)
    qtbot.wait(100)
    assert failed == [] and window.state.image.source == "good.png"


def _hostile_folder(tmp_path: Path, app_env) -> Path:
    """The test checkpoints plus files the registry must refuse one by one."""
    from safetensors.torch import save_file
    import torch

    root = tmp_path / "ckpt"
    shutil.copytree(Path(app_env["LQVAE_CHECKPOINTS"]), root)
    folder = root / "mnist"
    t = {"w": torch.zeros(2)}
    save_file(t, str(folder / "classifier_D.safetensors"), metadata={"format": "lqvae-studio/1"})  # no kind
    save_file(t, str(folder / "<i>evil<b>.safetensors"),
              metadata={"format": "lqvae-studio/1", "kind": "lqvae", "config": "[1, 2]"})
    (folder / "pickled.safetensors").write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    return root


def test_bad_checkpoints_are_listed_as_refused_and_the_rest_works(qtbot, tmp_path, monkeypatch, app_env):
    monkeypatch.setenv("LQVAE_CHECKPOINTS", str(_hostile_folder(tmp_path, app_env)))
    win = open_window(qtbot)
    status = win.models.status.text()
    for name in ("classifier_D.safetensors", "&lt;i&gt;evil&lt;b&gt;.safetensors", "pickled.safetensors"):
        assert name in status, status
    assert "<i>evil" not in status
    assert status.count("refused") >= 3
    assert sorted(win.state.engine.classifiers) == ["A", "B", "C"] and "lqvae" in win.state.engine.purifiers
    assert win.state.result.purified_original is not None  # the good purifier still works
    win.controller.shutdown()


def test_screenshot_exits_non_zero_when_the_models_cannot_load(tmp_path, app_env):
    root = tmp_path / "ckpt"
    (root / "mnist").mkdir(parents=True)
    src = Path(app_env["LQVAE_CHECKPOINTS"]) / "mnist"
    shutil.copy(src / "lqvae.safetensors", root / "mnist")
    (root / "mnist" / "classifier_A.safetensors").write_bytes(b"\x80\x04junk")  # the only classifier: refused
    out = tmp_path / "shot.png"
    proc = run_main(["--screenshot", str(out), "--sample", "3"], child_env(app_env, LQVAE_CHECKPOINTS=str(root)))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "failed:" in proc.stderr and "classifier" in proc.stderr.lower()
    assert out.exists()  # the picture of what went wrong is still written


@pytest.mark.slow  # ~5-14 s: in make test-all; the default run keeps a faster check of the same code
def test_screenshot_warns_but_succeeds_with_a_refused_extra_checkpoint(tmp_path, app_env):
    root = _hostile_folder(tmp_path, app_env)
    out = tmp_path / "shot.png"
    proc = run_main(["--screenshot", str(out), "--sample", "3", "--attack", "fgsm"],
                    child_env(app_env, LQVAE_CHECKPOINTS=str(root)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warning:" in proc.stderr and "classifier_D.safetensors" in proc.stderr


def test_a_file_named_like_a_sample_is_not_taken_for_one(qtbot, window, tmp_path):
    raised: list[BaseException] = []
    import sys

    old, sys.excepthook = sys.excepthook, lambda kind, value, tb: raised.append(value)
    try:
        path = _digit_png(tmp_path / "sample 7.png")
        with qtbot.waitSignal(window.state.imageChanged, timeout=10_000):
            window.state.request_open(str(path))
        wait_settled(qtbot, window)
    finally:
        sys.excepthook = old
    assert not raised, raised
    assert window.state.image.source == "sample 7.png" and window.state.image.sample_index is None


def test_a_failed_job_names_an_unexpected_error_by_its_type():
    from app.engine.workers import user_message
    from app.input.image_io import ImageLoadError

    assert user_message(KeyError("kind")) == "KeyError: 'kind'"
    assert user_message(AssertionError()) == "AssertionError"
    # a ValueError of numpy or torch is a bug, not our refusal: named by its type
    assert user_message(ValueError("operands could not be broadcast")) == "ValueError: operands could not be broadcast"
    assert user_message(ImageLoadError("x.png: not an image")) == "x.png: not an image"  # a Refusal: its sentence
    assert user_message(FileNotFoundError(2, "No such file", "x.png")).endswith("'x.png'")


def test_refusals_and_cancellations_share_the_spec_types():
    from lqvae.attacks.models import AttackCancelled
    from lqvae.io.checkpoint import CheckpointError
    from lqvae.io.validate import InputError
    from lqvae.spec.errors import Cancelled, Refusal

    from app.input.image_io import ImageLoadError

    assert issubclass(AttackCancelled, Cancelled)
    assert all(issubclass(cls, Refusal) and issubclass(cls, ValueError)
               for cls in (InputError, CheckpointError, ImageLoadError))


def run_job(job) -> list[str]:
    """Run ``job`` on a Worker in this thread; what it reported: "cancelled", "finished" or the failure's text."""
    from app.engine.workers import Worker

    seen: list[str] = []
    worker = Worker(job)
    worker.signals.cancelled.connect(lambda: seen.append("cancelled"))
    worker.signals.finished.connect(lambda result: seen.append("finished"))
    worker.signals.failed.connect(lambda message, tb: seen.append(message))
    worker.run()
    return seen


def test_a_worker_recognises_cancellation_by_type_not_by_name(qapp):
    from lqvae.spec.errors import Cancelled, Refusal

    class StoppedHalfway(Cancelled):  # any name: the type is what counts
        pass

    impostor = type("Cancelled", (RuntimeError,), {})  # the old name check's name, not the type: a bug

    def raising(exc):
        def job(*, should_stop, progress):  # every job takes both hooks, by keyword
            assert not should_stop()
            progress(0.5, "half way")
            raise exc
        return job

    assert run_job(raising(StoppedHalfway("step 3"))) == ["cancelled"]
    assert run_job(raising(impostor("oops"))) == ["Cancelled: oops"]
    assert run_job(raising(Refusal("x.png: not an image; use PNG"))) == ["x.png: not an image; use PNG"]
    assert run_job(raising(ValueError("bad shape"))) == ["ValueError: bad shape"]
    assert run_job(lambda *, should_stop, progress: 42) == ["finished"]


def test_a_target_equal_to_the_true_class_is_explained_not_run(qtbot, window):
    s = window.state
    label = s.image.label
    assert label is not None  # the first bundled sample
    messages: list[tuple[str, str]] = []
    s.message.connect(lambda level, text: messages.append((level, text)))
    started: list[object] = []
    s.analysisStarted.connect(started.append)
    s.set_attack(attack="fgsm", targeted=True, target=int(label))
    s.request_run(False)
    wait_settled(qtbot, window)
    assert not started
    assert any(level == "warning" and "true class already" in text for level, text in messages), messages
    assert not any(level == "error" for level, _ in messages), messages


def test_a_right_to_left_override_cannot_disguise_a_name():
    from app.panels.widgets import plain

    shown = plain("photo\u202egnp.exe")
    assert "\u202e" not in shown and "⟨U+202E⟩" in shown
    assert plain("<b>x</b>\nline") == "&lt;b&gt;x&lt;/b&gt;<br>line"
