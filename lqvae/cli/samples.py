"""``python -m lqvae.cli.samples --dataset mnist --data-dir DIR``: write the bundled samples
``resources/samples/<dataset>.npz`` (:func:`lqvae.io.samples.make_samples`)."""

from __future__ import annotations

import argparse

from lqvae.cli import errors_exit
from lqvae.spec.datasets import DATASETS


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lqvae.cli.samples", description=__doc__)
    ap.add_argument("--dataset", choices=DATASETS, required=True)
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args(argv)
    from lqvae.io.samples import make_samples

    with errors_exit():
        print(make_samples(a.dataset, a.data_dir))


if __name__ == "__main__":
    main()
