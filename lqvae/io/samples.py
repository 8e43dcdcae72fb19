"""Make the bundled samples (``python -m lqvae.cli.samples --dataset mnist --data-dir DIR``).

Writes ``resources/samples/<dataset>.npz`` with 1,000 test-set images (the first 100 of each class,
in test-set order), ``images`` uint8 (1000, 28, 28), ``labels`` int64 and ``test_index`` (their
positions in the test set). Loadable with ``np.load(..., allow_pickle=False)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lqvae.io.data import load_split

OUT = Path(__file__).resolve().parents[2] / "resources" / "samples"


def make_samples(dataset: str, data_dir: str | None, per_class: int = 100, out: Path = OUT) -> Path:
    test = load_split(dataset, "test", data_dir)
    index = np.concatenate([np.flatnonzero(test.labels == c)[:per_class] for c in range(10)])
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{dataset}.npz"
    np.savez_compressed(path, images=test.images[index], labels=test.labels[index].astype(np.int64),
                        test_index=index.astype(np.int64))
    return path

