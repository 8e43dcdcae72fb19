"""Command-line settings and the headless ``--screenshot`` mode of ``main.py``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication


def install_excepthook(window) -> None:
    """An unexpected error in a slot is shown in the window (and printed), never silently lost."""
    import traceback

    def hook(kind, value, tb) -> None:
        traceback.print_exception(kind, value, tb)
        try:
            window.state.notify(f"Internal error ({kind.__name__}: {value}); the app keeps running. "
                                "Please report it with the traceback printed in the terminal.", "error")
        except Exception:  # noqa: BLE001 - the window may be gone at shutdown
            pass

    sys.excepthook = hook


def apply_cli(window, args: argparse.Namespace) -> None:
    """Put the command line's choices into the state before the engine starts."""
    s = window.state
    if args.dataset:
        s.set_models(dataset=args.dataset)
    if args.device:
        s.set_models(device=args.device)
    changes = {}
    if args.attack:
        changes["attack"] = args.attack
    if args.threat:
        changes["threat"] = args.threat
    if getattr(args, "steps", None):
        changes["steps"] = args.steps
    if args.eps is not None:
        from app.state.settings import L2_ATTACKS

        key = "eps_l2" if (args.attack or s.attack.attack) in L2_ATTACKS else "eps_linf"
        changes[key] = args.eps
    if changes:
        s.set_attack(**changes)
    if args.defense:
        from app.state.settings import CLASSIFIER_DEFENSES, classifier_name

        hardening = args.defense if args.defense in CLASSIFIER_DEFENSES else None  # classifier-side: madry, advtr
        s.set_defense(purifier=None if args.defense == "none" or hardening else args.defense)
        s.set_models(classifier=classifier_name(s.models.base, hardening))
    if args.tab:
        window.show_tab(args.tab)
    if getattr(args, "size", None):  # screen pixels; the layout works in logical ones
        ratio = window.devicePixelRatioF()
        window.resize(round(args.size[0] / ratio), round(args.size[1] / ratio))
    if getattr(args, "presentation", False):
        window.presentation.set_active(True)
    if getattr(args, "zoom", None):
        window.presentation.set_zoom(args.zoom)
    if getattr(args, "case", None) is not None:
        from app.panels.cases import reopen

        reopen(s, args.case)
    if getattr(args, "image", None):
        if getattr(args, "label", None) is not None:
            def label(loaded, n=args.label) -> None:  # after the file panel has put the image on the state
                s.fileLoaded.disconnect(label)
                if s.image is not None and s.image.source == Path(loaded.path).name:
                    s.set_label(n)

            s.fileLoaded.connect(label)
        s.request_open(args.image)
    if args.sample is not None:
        def pick(info, n=args.sample) -> None:
            if info.samples is not None:
                images, labels = info.samples
                if 0 <= n < len(images):
                    s.set_image(images[n] / 255.0, int(labels[n]), f"sample {n}")
                else:
                    s.notify(f"--sample {n}: the bundled file has {len(images)} images", "warning")
            s.engineInfoChanged.disconnect(pick)

        s.engineInfoChanged.connect(pick)


def keep_history(window) -> None:
    """Read the run history from the user's config folder and keep it there (saved on every change and on quit)."""
    from app.state.history_store import HistoryKeeper, history_path

    keeper = HistoryKeeper(window.state, history_path(), window)
    QApplication.instance().aboutToQuit.connect(keeper.flush)


SCREENSHOT_FAILED = 2  # exit code: the engine, a model or the requested run failed (the PNG is still written)


def take_screenshot(app: QApplication, window, args: argparse.Namespace) -> int:
    """Wait until the requested attack (and evaluation, for --tab evaluate) is drawn, save the window, exit.

    Exit codes: 0 drawn as asked; 1 the PNG could not be written; 2 the engine, a model, the analysis or the
    evaluation failed (every reason is printed on stderr; a script or CI can tell a broken run from a good
    one); 3 timed out. Warnings (a refused extra checkpoint, an attack that found no adversarial) are
    printed and do not fail the run.
    """
    s, c = window.state, window.controller
    deadline = time.monotonic() + args.timeout
    phase = {"name": "boot", "code": 0}
    failures: list[str] = []
    timer = QTimer()

    def on_message(level: str, text: str) -> None:
        if level == "error":
            failures.append(text)
        elif level == "warning":
            print(f"--screenshot: warning: {text}", file=sys.stderr)

    s.message.connect(on_message)
    s.evaluationFailed.connect(lambda message: failures.append(f"Evaluation failed: {message}"))

    def finish(code: int) -> None:
        timer.stop()
        app.processEvents()
        window.repaint()
        app.processEvents()
        if code == 0 and s.result is None:
            failures.append("no result was drawn (no image, or the models never loaded)")
        ok = window.grab().save(args.screenshot, "PNG")
        if not ok:
            print(f"could not write {args.screenshot}", file=sys.stderr)
        for text in dict.fromkeys(failures):  # each reason once, in order
            print(f"--screenshot: failed: {text}", file=sys.stderr)
        if not ok:
            code = 1
        elif failures and code == 0:
            code = SCREENSHOT_FAILED
        phase["code"] = code
        app.exit(phase["code"])

    def tick() -> None:
        if time.monotonic() > deadline:
            print(f"--screenshot: gave up after {args.timeout:.0f} s ({phase['name']})", file=sys.stderr)
            finish(3)
            return
        if not c.settled():
            return
        if phase["name"] == "boot":
            wanted = s.attack if s.attack.enabled else None
            done = s.request is not None and s.request.attack == wanted
            if c.models_ready and s.image is not None and not done:
                phase["name"] = "attack"
                s.request_run(False)
                return
            phase["name"] = "attack"
        if phase["name"] == "attack":
            if args.tab == "evaluate" and c.models_ready and s.engine is not None and s.engine.samples is not None:
                phase["name"] = "evaluate"
                window.evaluate.n.setValue(50)
                window.evaluate.start()
                return
            phase["name"] = "draw"
            QTimer.singleShot(400, lambda: finish(0))  # let pyqtgraph lay out and paint
        elif phase["name"] == "evaluate":
            phase["name"] = "draw"
            QTimer.singleShot(400, lambda: finish(0))

    timer.timeout.connect(tick)
    timer.start(100)
    app.exec()
    c.shutdown()
    return phase["code"]


def bench_startup(args: argparse.Namespace) -> int:
    """For ``python -m app.bench``: print (monotonic clock) when the window was shown and the models loaded."""
    import json

    from app.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    window = MainWindow()
    window.show()
    app.processEvents()
    window.repaint()
    stamps = {"shown": time.monotonic()}
    window.start()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and not (window.controller.models_ready or
                                                (window.state.models_info is not None and
                                                 not window.state.models_info.ok)):
        app.processEvents()
        time.sleep(0.002)
    stamps["models_loaded"] = time.monotonic()
    stamps["models_ok"] = bool(window.controller.models_ready)
    print("BENCH " + json.dumps(stamps), flush=True)
    window.controller.shutdown()
    return 0
