"""PNG grid of bundled test images (top row of each pair) and their LQ-VAE purifications (below).

``python -m lqvae.cli.grid --dataset mnist --out docs/purified_mnist.png`` uses the shipped checkpoint
and two samples per class; the deterministic purifier g(H(mu)).
"""

from __future__ import annotations

import numpy as np
import torch

from lqvae.io.data import load_samples
from lqvae.io.registry import load_named


def purified_grid(dataset: str, per_class: int = 2, purifier: str = "lqvae", scale: int = 3) -> np.ndarray:
    split = load_samples(dataset)
    index = np.concatenate([np.flatnonzero(split.labels == c)[:per_class] for c in range(10)])
    x = torch.from_numpy(split.images[index].copy()).float().div(255).unsqueeze(1)
    model = load_named(dataset, purifier, kind="lqvae").model
    with torch.inference_mode():
        y = model(x)
    rows = []
    for imgs in (x, y):
        row = torch.cat([torch.nn.functional.pad(im[0], (1, 1, 1, 1), value=0.5) for im in imgs], dim=1)
        rows.append(row)
    grid = torch.cat(rows, dim=0).numpy()
    grid = np.kron(grid, np.ones((scale, scale)))
    return (grid * 255).round().astype(np.uint8)

