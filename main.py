"""LQ-VAE Studio: ``python main.py`` opens the window; ``--screenshot PATH`` renders it headless and exits."""

from __future__ import annotations

import argparse
import os
import sys

from app.state.settings import ATTACK_LABELS, DATASETS, THREAT_LABELS


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
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--timeout", type=float, default=300, help="--screenshot: give up waiting after this many seconds")
    p.add_argument("--bench-startup", action="store_true", help=argparse.SUPPRESS)  # used by python -m app.bench
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from app.session import apply_cli, install_excepthook, take_screenshot

    if args.bench_startup:
        from app.session import bench_startup

        return bench_startup(args)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LQ-VAE Studio")
    app.setStyle("Fusion")
    window = MainWindow()
    install_excepthook(window)
    apply_cli(window, args)
    window.show()
    window.start()
    if args.screenshot:
        return take_screenshot(app, window, args)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
