"""Image files from users are decoded in a separate process, so no decoder bomb reaches the app.

Decoders have bombs of their own that no header check sees: a GIF with ten million comment blocks
(Pillow keeps a list entry per block: 2.2 GB for a 60 MB file), a PNG with millions of private chunks,
a progressive JPEG with thousands of scans. :func:`load_image` runs :func:`app.input.image_io.decode_image`
in ``decode_child.py`` with its address space capped at ``DECODE_MEMORY_BYTES`` and a ``DECODE_TIMEOUT_S``
deadline: whatever a file does to the decoder, the app's own memory does not grow and a refusal comes
within seconds. Costs ~0.15 s a file for the process start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from app.input.image_io import _USE, WORK_SIDE, ImageLoadError, LoadedImage

DECODE_MEMORY_BYTES = 384 * 2**20  # the decoding process's address space: ~110 MB is Python, numpy and Pillow; a
# 50-megapixel RGBA PNG or float TIFF then peaks at 270-280 MB resident, a decoder bomb is stopped
DECODE_TIMEOUT_S = 20.0  # the largest legitimate file decodes in ~3 s on a busy 2-core machine


def load_image(path: str | Path, *, timeout_s: float = DECODE_TIMEOUT_S,
               memory_bytes: int = DECODE_MEMORY_BYTES) -> LoadedImage:
    """Decode ``path`` in a separate process (bounded memory and time), or raise ``ImageLoadError``.

    The child runs :func:`decode_image`; its refusals come back with their own message, and a child
    that runs out of its ``memory_bytes`` or its ``timeout_s`` is refused here, naming the file.
    """
    p = Path(path)
    name = p.name or str(p)
    child = Path(__file__).with_name("decode_child.py")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "LQVAE_DECODE_BYTES": str(int(memory_bytes))}
    try:
        proc = subprocess.run([sys.executable, "-I", str(child), os.fsdecode(os.path.abspath(p))], env=env,
                              capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ImageLoadError(f"{name}: decoding took longer than {timeout_s:g} s and was stopped; the file is "
                             f"damaged or built to stall decoders; {_USE}") from None
    head, _, body = proc.stdout.partition(b"\n")
    try:
        reply = json.loads(head) if head else {}
    except ValueError:
        reply = {}
    if reply.get("ok") is False:
        raise ImageLoadError(str(reply.get("message") or f"{name}: cannot be decoded"))
    if reply.get("ok") is not True:
        if proc.returncode and proc.returncode < 0 or b"MemoryError" in proc.stderr:
            raise ImageLoadError(f"{name}: decoding needed more than {memory_bytes // 2**20} MB and was stopped; "
                                 f"the file is damaged or built to exhaust memory; {_USE}")
        raise ImageLoadError(f"{name}: the decoder failed (exit code {proc.returncode}); the file is damaged or "
                             f"not an image; {_USE}")
    h, w = (int(v) for v in reply["shape"])
    gray = np.frombuffer(body, dtype=np.float32, count=h * w).reshape(h, w).copy() if h * w * 4 == len(body) \
        else None
    if gray is None or not (0 < h <= WORK_SIDE and 0 < w <= WORK_SIDE):
        raise ImageLoadError(f"{name}: the decoder returned a malformed image; {_USE}")
    gray = np.clip(np.nan_to_num(gray, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return LoadedImage(gray=gray, invert=bool(reply["invert"]), info=str(reply["info"]), path=str(p))


__all__ = ["DECODE_MEMORY_BYTES", "DECODE_TIMEOUT_S", "load_image"]
