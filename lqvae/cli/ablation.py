"""``python -m lqvae.cli.ablation run|table``: issue 7's ablation of purifier variants (:mod:`lqvae.evaluate.ablation`).

``run --dataset mnist --variant NAME --purifier CKPT`` measures one purifier checkpoint under the
ablation's cells and writes one JSON per cell to ``docs/results/ablation/<dataset>/<variant>/``;
``table --dataset mnist`` prints the Markdown table of every measured variant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lqvae.cli import ProgressBar, errors_exit, fail
from lqvae.core.device import DEVICE_CHOICES, resolve_device
from lqvae.evaluate.ablation import CELL_KEYS, RESULTS, ablation_table, run_cells, select_cells
from lqvae.spec.datasets import DATASETS


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m lqvae.cli.ablation", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="measure one purifier checkpoint under the ablation's cells")
    r.add_argument("--dataset", choices=DATASETS, required=True)
    r.add_argument("--variant", required=True, help="row name (a folder under docs/results/ablation/<dataset>/)")
    r.add_argument("--purifier", required=True, help="LQ-VAE checkpoint file")
    r.add_argument("--description", default="", help="one line for the table")
    r.add_argument("--cells", default=",".join(CELL_KEYS), help=f"comma-separated subset of {', '.join(CELL_KEYS)}")
    r.add_argument("--n", action="append", default=[], metavar="CELL=N", help="override a cell's n (repeatable)")
    r.add_argument("--shipped-as", default=None, help="the checkpoint name this file was shipped as (e.g. lqvae_adv)")
    r.add_argument("--classifier", default="A")
    r.add_argument("--data-dir", default=None)
    r.add_argument("--out", default=str(RESULTS))
    r.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--quiet", action="store_true")
    t = sub.add_parser("table", help="print the ablation table of one dataset (Markdown)")
    t.add_argument("--dataset", choices=DATASETS, required=True)
    t.add_argument("--out", default=str(RESULTS))
    return ap


def _n_overrides(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not value.isdigit():
            raise fail(f"--n expects CELL=N with CELL in {', '.join(CELL_KEYS)} and N >= 1, got {item!r}")
        out[key] = int(value)
    return out


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if a.cmd == "table":
        table = ablation_table(a.dataset, Path(a.out))
        print(table or f"no ablation records for {a.dataset} in {a.out}")
        return 0 if table else 1
    with errors_exit():
        cells = select_cells([k.strip() for k in a.cells.split(",") if k.strip()], _n_overrides(a.n))
        if a.threads:
            import torch

            torch.set_num_threads(a.threads)
        run_cells(a.dataset, a.variant, Path(a.purifier), cells=cells, classifier_name=a.classifier,
                  data_dir=a.data_dir, device=resolve_device(a.device), out=Path(a.out), description=a.description,
                  quiet=a.quiet, shipped_as=a.shipped_as, progress=ProgressBar, log=lambda line: print(line, file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
