"""The sandbox of :func:`app.input.sandbox.load_image`: decode one image file in this separate process.

``python -I decode_child.py PATH`` caps its own address space at ``$LQVAE_DECODE_BYTES`` before importing
anything large, runs :func:`app.input.image_io.decode_image` and writes one JSON line to stdout —
``{"ok": true, "shape": [h, w], "invert": ..., "info": ...}`` followed by the h * w float32 pixels, or
``{"ok": false, "message": ...}``. Whatever the file does to the decoder stays in this process.
"""

import json
import os
import resource
import sys
from pathlib import Path


def main() -> int:
    limit = int(os.environ["LQVAE_DECODE_BYTES"])  # set by load_image (DECODE_MEMORY_BYTES)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from app.input.image_io import ImageLoadError, decode_image

    path = sys.argv[1]
    out = sys.stdout.buffer
    try:
        loaded = decode_image(path)
    except ImageLoadError as exc:
        reply, body = {"ok": False, "message": str(exc)}, b""
    except MemoryError:
        name = Path(path).name or path
        reply, body = {"ok": False, "message": f"{name}: decoding needed more than {limit // 2**20} MB and was "
                                               "stopped; the file is damaged or built to exhaust memory"}, b""
    else:
        gray = loaded.gray
        reply = {"ok": True, "shape": list(gray.shape), "invert": bool(loaded.invert), "info": loaded.info}
        body = gray.astype("<f4").tobytes()
    out.write(json.dumps(reply).encode() + b"\n" + body)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
