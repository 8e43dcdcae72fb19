"""``load_image`` decodes in a separate process with capped memory and time (issue 15).

Decoder bombs that pass every header check: a GIF with millions of comment blocks (Pillow keeps a
list entry per block: 2.2 GB for a 60 MB file), a PNG with millions of private chunks, a progressive
JPEG with thousands of scans, formats parsed byte by byte before they are refused. Whatever the file
does, the app's process must not grow and the refusal must come within the deadline.
"""

from __future__ import annotations

import resource
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from app.input.image_io import ImageLoadError, decode_image
from app.input.sandbox import load_image


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_the_sandbox_returns_what_the_decoder_does(tmp_path):
    img = np.zeros((40, 30), np.uint8)
    img[5:35, 12:18] = 255
    path = tmp_path / "digit\nwith newline: and <b>.png"
    Image.fromarray(255 - img).save(path, format="PNG")
    direct, sandboxed = decode_image(path), load_image(path)
    np.testing.assert_array_equal(direct.gray, sandboxed.gray)
    assert (direct.info, direct.invert, direct.path) == (sandboxed.info, sandboxed.invert, sandboxed.path)


def test_a_refusal_inside_the_sandbox_keeps_its_message(tmp_path):
    path = tmp_path / "notes.png"
    path.write_bytes(b"just some text, not an image")
    with pytest.raises(ImageLoadError, match="notes.png: not an image"):
        load_image(path)


def test_a_gif_comment_bomb_is_stopped_by_the_memory_cap_not_the_app(tmp_path):
    buf = tmp_path / "small.gif"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(buf, format="GIF")
    data = buf.read_bytes()
    flags = data[10]
    table = 3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0
    at = 13 + table  # after the header, the screen descriptor and the global colour table
    bomb = tmp_path / "comments.gif"
    bomb.write_bytes(data[:at] + b"!\xfe\x02xy\x00" * 3_000_000 + data[at:])  # 18 MB: ~700 MB inside Pillow
    before = _rss_mb()
    t0 = time.monotonic()
    with pytest.raises(ImageLoadError, match="comments.gif: decoding needed more"):
        load_image(bomb)
    assert time.monotonic() - t0 < 30
    assert _rss_mb() - before < 50  # the test process itself did not grow


def test_a_png_private_chunk_bomb_is_stopped(tmp_path):
    raw = b"".join(b"\0" + bytes(28) for _ in range(28))
    png = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
           + _chunk(b"abcd", b"") * 2_500_000 + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))
    path = tmp_path / "chunks.png"
    path.write_bytes(png)
    with pytest.raises(ImageLoadError, match="chunks.png: decoding needed more"):
        load_image(path)


def test_a_decoder_that_stalls_is_stopped_at_the_deadline(tmp_path):
    path = tmp_path / "slow.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(path)
    with pytest.raises(ImageLoadError, match="slow.png: decoding took longer than 0.01 s"):
        load_image(path, timeout_s=0.01)


def test_formats_we_refuse_are_never_parsed(tmp_path):
    """EPS and PPM parsers read byte by byte: 12-14 s for a 60 MB file before the format was refused."""
    eps = tmp_path / "scan.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 1 1\n%%EndComments\n" + (b"x" * 200 + b"\n") * 40_000)
    ppm = tmp_path / "photo.png"
    ppm.write_bytes(b"P5\n#" + b"x" * 8_000_000 + b"\n28 28\n255\n" + b"\x80" * 784)
    for path in (eps, ppm):
        t0 = time.monotonic()
        with pytest.raises(ImageLoadError, match="not an image"):
            decode_image(path)
        assert time.monotonic() - t0 < 1.0, path.name
