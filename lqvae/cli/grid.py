"""``python -m lqvae.cli.grid --dataset mnist --out docs/purified_mnist.png``: a PNG of bundled samples over
their LQ-VAE purifications (:func:`lqvae.evaluate.grid.purified_grid`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lqvae.cli import errors_exit
from lqvae.spec.datasets import DATASETS


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lqvae.cli.grid", description=__doc__)
    ap.add_argument("--dataset", choices=DATASETS, required=True)
    ap.add_argument("--purifier", default="lqvae")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    from PIL import Image

    from lqvae.evaluate.grid import purified_grid

    with errors_exit():
        grid = purified_grid(a.dataset, purifier=a.purifier)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
