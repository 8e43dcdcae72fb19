"""Copy a trained checkpoint into ``checkpoints/`` for shipping, optionally stored as float16.

``python -m lqvae.cli.ship SRC DST [--dtype float16]`` keeps every metadata field (training command,
epochs, seed, wall time, metrics) and records the storage dtype. Models always compute in float32:
float16 only halves the file; ``python -m lqvae.evaluate clean`` shows the metrics are unchanged.
"""

from __future__ import annotations

import torch

from lqvae.io.checkpoint import load_checkpoint, save_checkpoint

DTYPES = {"float32": torch.float32, "float16": torch.float16}


def ship(src: str, dst: str, dtype: str = "float32") -> None:
    """Copy checkpoint ``src`` to ``dst`` stored as ``dtype`` (a key of ``DTYPES``).

    Raises:
        ValueError: ``dtype`` is not a key of ``DTYPES``.
        lqvae.io.checkpoint.CheckpointError: ``src`` is missing or refused.
    """
    if dtype not in DTYPES:
        raise ValueError(f"expected dtype in {tuple(DTYPES)}, got {dtype!r}")
    ck = load_checkpoint(src)
    meta = ck.metadata
    extra = {k: v for k, v in meta.items() if k not in {"format", "kind", "config", "dataset", "command", "args",
                                                        "epochs", "metrics", "created", "dtype"}}
    extra["source_created"] = meta.get("created", "")
    save_checkpoint(dst, ck.model, kind=ck.kind, dataset=meta["dataset"], command=meta["command"], args=meta["args"],
                    epochs=meta["epochs"], metrics=meta["metrics"], dtype=DTYPES[dtype], extra=extra)

