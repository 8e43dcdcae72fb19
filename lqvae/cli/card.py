"""``python -m lqvae.cli.card``: regenerate the measured part of ``checkpoints/README.md`` (:mod:`lqvae.evaluate.card`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lqvae.cli import errors_exit
from lqvae.evaluate.card import ROOT, render, update


def main(argv: list[str] | None = None) -> None:
    from lqvae.evaluate import card

    ap = argparse.ArgumentParser(prog="python -m lqvae.cli.card", description=card.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--card", default=str(ROOT / "checkpoints" / "README.md"))
    a = ap.parse_args(argv)
    with errors_exit():
        update(Path(a.card), render())
    print(f"updated {a.card}")


if __name__ == "__main__":
    main()
