"""Copy a trained checkpoint into ``checkpoints/`` for shipping, optionally stored as float16.

``python -m lqvae.train.ship SRC DST [--dtype float16]`` keeps every metadata field (training command,
epochs, seed, wall time, metrics) and records the storage dtype. Models always compute in float32:
float16 only halves the file; ``python -m lqvae.evaluate clean`` shows the metrics are unchanged.
"""

from __future__ import annotations

import argparse

import torch

from lqvae.io.checkpoint import load_checkpoint, save_checkpoint

DTYPES = {"float32": torch.float32, "float16": torch.float16}


def ship(src: str, dst: str, dtype: str = "float32") -> None:
    ck = load_checkpoint(src)
    meta = ck.metadata
    extra = {k: v for k, v in meta.items() if k not in {"format", "kind", "config", "dataset", "command", "args",
                                                        "epochs", "metrics", "created", "dtype"}}
    extra["source_created"] = meta.get("created", "")
    save_checkpoint(dst, ck.model, kind=ck.kind, dataset=meta["dataset"], command=meta["command"], args=meta["args"],
                    epochs=meta["epochs"], metrics=meta["metrics"], dtype=DTYPES[dtype], extra=extra)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    a = ap.parse_args()
    ship(a.src, a.dst, a.dtype)
    print(f"{a.src} -> {a.dst} ({a.dtype})")
