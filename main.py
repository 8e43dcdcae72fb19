"""LQ-VAE Studio: ``python main.py`` opens the window; ``--screenshot PATH`` renders it headless and exits."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from app.state.settings import ATTACK_LABELS, DATASETS, THREAT_LABELS


if TYPE_CHECKING:
    from app.state.case_file import Case


def case_arg(path: str) -> Case:
    """--case: the case read and checked now, so a broken file stops here with what is wrong with it."""
    from app.state.case_file import CaseError, read_case

    try:
        return read_case(path)
    except CaseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def window_size(text: str) -> tuple[int, int]:
    """``--size``: "1920x1080" -> (1920, 1080), within what a screen can be."""
    try:
        width, height = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels, e.g. 1920x1080, got {text!r}") from None
    if not (640 <= width <= 7680 and 480 <= height <= 4320):
        raise argparse.ArgumentTypeError(f"{width}x{height} is outside 640x480 … 7680x4320")
    return width, height


def zoom_factor(text: str) -> float:
    """``--zoom``: a factor between 0.5 and 4."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1.5, got {text!r}") from None
    if not 0.5 <= value <= 4:
        raise argparse.ArgumentTypeError(f"zoom {value:g} is outside 0.5 … 4")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--screenshot", metavar="PATH",
                   help="run offscreen, wait for the attack, save the window as PNG, exit")
    p.add_argument("--dataset", choices=DATASETS)
    p.add_argument("--sample", type=int, metavar="N", help="bundled sample index to show")
    p.add_argument("--attack", choices=list(ATTACK_LABELS))
    p.add_argument("--eps", type=float, help="attack budget (L-inf, or L2 for L2 attacks)")
    p.add_argument("--steps", type=int, help="iterations of an iterative attack (default: the preset's)")
    p.add_argument("--threat", choices=list(THREAT_LABELS))
    p.add_argument("--defense", help="purifier name, or 'none'")
    p.add_argument("--tab", choices=("explore", "evaluate"))
    p.add_argument("--case", type=case_arg, metavar="FILE",
                   help="reopen an exported case (its .json, or the .png beside it) and run it again")
    p.add_argument("--image", metavar="FILE", help="open this image file (drawn digit, photo, scan) at start")
    p.add_argument("--label", type=int, choices=range(10), metavar="N", help="--image: its true class")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--size", type=window_size, metavar="WxH",
                   help="window size in screen pixels, e.g. 1920x1080 (QT_SCALE_FACTOR=s lays out W/s × H/s)")
    p.add_argument("--zoom", type=zoom_factor, metavar="Z", help="text size factor, 0.5 to 4 (View → Zoom)")
    p.add_argument("--presentation", action="store_true", help="start in the presentation layout (View, F10)")
    p.add_argument("--timeout", type=float, default=300, help="--screenshot: give up waiting after this many seconds")
    p.add_argument("--bench-startup", action="store_true", help=argparse.SUPPRESS)  # used by python -m app.bench
    args = p.parse_args(argv)
    if args.label is not None and not args.image:
        p.error(f"--label {args.label} needs --image FILE: it is the true class of that image (a bundled sample "
                "already has its label; pick one with --sample N)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow, fit_to_screen
    from app.session import apply_cli, install_excepthook, keep_history, take_screenshot
    from app.state.history_store import CONFIG_ENV

    if args.bench_startup:
        from app.session import bench_startup

        return bench_startup(args)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LQ-VAE Studio")
    app.setStyle("Fusion")
    window = MainWindow()
    install_excepthook(window)
    if not args.screenshot or os.environ.get(CONFIG_ENV):  # a headless render keeps off your history
        keep_history(window)
    if not args.screenshot:
        fit_to_screen(window)  # a 1280x800 projector sees the whole window (--size still wins, below)
    apply_cli(window, args)
    window.show()
    window.start()
    if args.screenshot:
        return take_screenshot(app, window, args)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
