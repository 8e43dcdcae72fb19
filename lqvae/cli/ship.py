"""``python -m lqvae.cli.ship SRC DST [--dtype float16]``: copy a trained checkpoint into ``checkpoints/``
for shipping, optionally stored as float16 (:func:`lqvae.train.ship.ship`)."""

from __future__ import annotations

import argparse

from lqvae.cli import errors_exit


def main(argv: list[str] | None = None) -> None:
    from lqvae.train.ship import DTYPES, ship

    ap = argparse.ArgumentParser(prog="python -m lqvae.cli.ship", description=__doc__)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    a = ap.parse_args(argv)
    with errors_exit():
        ship(a.src, a.dst, a.dtype)
    print(f"{a.src} -> {a.dst} ({a.dtype})")


if __name__ == "__main__":
    main()
