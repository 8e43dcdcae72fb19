"""Read any image file a user drops on the window into a grey float array, or refuse it clearly.

Runs on a worker thread (decoding a big JPEG takes a while). Every file is hostile until proven
otherwise, so the checks run cheapest first and before anything is decoded:

1. what the path is: a missing file, a folder, a FIFO or a device (a FIFO would block the read
   forever, /dev/zero would never end) or an unreadable file each get their own message;
2. the size on disk, then the first bytes: a pickle or a torch checkpoint is named as such and
   never unpickled;
3. the pixel count from the header, so a 20000x20000 PNG of a few KB is refused without
   allocating 400 MB.

Decoding keeps memory bounded whatever the file claims: Pillow holds the decoded image in its own
compact storage (at most 4 bytes a pixel, 200 MB at ``MAX_PIXELS``; JPEGs are decoded at reduced
size), and the conversion to float grey runs on small pieces that are block-averaged on the spot,
so no full-size float array of a big image ever exists. Every mode is handled (1, L, P, LA, PA,
RGB, RGBA, CMYK, I;16, I, F, ...) and EXIF rotation is applied to the small result.

Decoders have bombs of their own that no header check sees (a GIF with ten million comment blocks,
a PNG with millions of private chunks, a progressive JPEG with thousands of scans, byte-by-byte
parsers of formats we refuse anyway). So the app never calls :func:`decode_image` itself:
:func:`app.input.sandbox.load_image` runs it in a separate process with capped memory and time.
"""

from __future__ import annotations

import io
import os
import pickletools
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np

from app.input.preprocess import block_factor, block_mean, shrink_to, should_invert
from lqvae.spec.errors import Refusal

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 50_000_000
WORK_SIDE = 1024  # decoded images are shrunk to this before any further work
FORMATS = ("PNG", "JPEG", "MPO", "BMP", "DIB", "GIF", "WEBP", "TIFF")
SUFFIXES = ("*.png", "*.jpg", "*.jpeg", "*.bmp", "*.gif", "*.webp", "*.tif", "*.tiff")
PIECE = 512  # side of the pieces a decoded image is converted in: bounds the float temporaries (~4 MB)
SNIFF_BYTES = 4096  # how much of the file is looked at before Pillow sees it
DECODE_BUDGET = 240 * 2**20  # bytes a decoder may allocate for one image: keeps a load under ~300 MB
_STORAGE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}  # Pillow: else 4 a pixel
_USE = "use PNG, JPEG, BMP, GIF, WebP or TIFF"
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8", b"GIF8", b"BM", b"II*\0", b"MM\0*", b"RIFF")


class ImageLoadError(Refusal):
    """A file that cannot be used as an input image; the message says why and what would work."""


@dataclass(frozen=True)
class LoadedImage:
    gray: np.ndarray  # (H, W) float32 in [0, 1], 0 = black; at most WORK_SIDE on the longer side
    invert: bool  # auto-detected: dark ink on light paper
    info: str  # "photo.jpg: JPEG 4032x3024 RGB"
    path: str


def _not_regular(mode: int) -> str | None:
    """Why a file of this ``st_mode`` cannot be an image file, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not an image file"
    kinds = ((stat.S_ISFIFO, "a FIFO / named pipe"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    what = next((text for test, text in kinds if test(mode)), "a special file")
    return f"is not a regular file ({what}); open an image file saved on disk"


def _cannot_read(name: str, exc: OSError) -> ImageLoadError:
    if isinstance(exc, PermissionError):
        return ImageLoadError(f"{name}: cannot be read: permission denied; check the file's permissions "
                              "or copy it somewhere you can read")
    if isinstance(exc, FileNotFoundError):
        return ImageLoadError(f"{name}: no such file")
    return ImageLoadError(f"{name}: cannot be read ({exc.strerror or exc})")


def _open_regular(p: Path, name: str) -> tuple[BinaryIO, int]:
    """Open ``p`` for reading if it is a regular file; return the file and its size.

    The kind of file is checked before opening (opening a FIFO for reading blocks until a writer
    comes), and again on the open descriptor, which is opened non-blocking so that a path swapped
    for a FIFO in between cannot hang the worker either.
    """
    try:
        st = os.stat(p)
    except ValueError:  # an embedded NUL: no file can have this name
        raise ImageLoadError(f"{name}: is not a valid file name") from None
    except FileNotFoundError:
        if os.path.islink(p):
            raise ImageLoadError(f"{name}: is a link to a file that does not exist") from None
        raise ImageLoadError(f"{name}: no such file") from None
    except OSError as exc:
        raise _cannot_read(name, exc) from None
    reason = _not_regular(st.st_mode)
    if reason:
        raise ImageLoadError(f"{name}: {reason}")
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _cannot_read(name, exc) from None
    fh = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    reason = _not_regular(st.st_mode)
    if reason:
        fh.close()
        raise ImageLoadError(f"{name}: {reason}")
    return fh, st.st_size


def _looks_like_pickle(head: bytes) -> bool:
    """True for the start of a pickle. Only parsed (``pickletools`` checks opcodes and stack), never run."""
    if head[:1] == b"\x80":  # PROTO opcode: protocol 2 and later, and legacy torch.save files
        return len(head) > 1 and 2 <= head[1] <= 5
    try:
        pickletools.dis(head, out=io.StringIO())
    except Exception:  # not a complete, consistent pickle within the head (or not one at all)
        return False
    return True


def _not_an_image(head: bytes) -> str | None:
    """Why the first bytes show a file is something other than an image (never handed to a decoder)."""
    if head.startswith(_IMAGE_MAGIC):
        return None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return ("looks like a torch checkpoint or another zip archive (.pt, .npz, .zip), not an image; "
                f"it was not opened; {_USE}")
    if _looks_like_pickle(head):
        return f"looks like a Python pickle / torch checkpoint, not an image; it was not opened; {_USE}"
    return None


def _plain_values(piece) -> tuple[np.ndarray, float]:
    """A piece without transparency or an unknown value range -> (integer grey, its full-scale value)."""
    mode = piece.mode
    if mode == "1":
        return np.asarray(piece), 1.0
    if mode == "L":
        return np.asarray(piece), 255.0
    if mode.startswith("I;16"):
        return np.asarray(piece), 65535.0
    rgb = piece if mode == "RGB" else piece.convert("RGB")
    return np.asarray(rgb.convert("L")), 255.0  # ITU-R 601-2 luma: 0.299 R + 0.587 G + 0.114 B


def _scale_range(full: np.ndarray, mode: str, lo: float, hi: float) -> np.ndarray:
    """32-bit int or float values -> [0, 1], in place: the range is guessed from the values ``lo``..``hi``."""
    if lo >= 0 and hi <= 1:
        return full
    if mode == "I" and lo >= 0 and hi <= 255:
        full /= 255.0
    elif mode == "I" and lo >= 0 and hi <= 65535:
        full /= 65535.0
    else:
        full -= lo
        full /= max(hi - lo, 1e-12)
    return full


def _pieces(width: int, height: int, step: int) -> Iterator[tuple[int, int, int, int]]:
    """Crop boxes (left, top, right, bottom) of at most ``step`` x ``step`` px covering the image."""
    for top in range(0, height, step):
        for left in range(0, width, step):
            yield left, top, min(left + step, width), min(top + step, height)


def _reduced_gray(im, factor: int) -> np.ndarray:
    """A loaded Pillow image of any mode -> float32 grey in [0, 1], block-averaged by ``factor``.

    Converted piece by piece (``PIECE`` px, a multiple of ``factor``), each piece averaged at once,
    so the float temporaries stay a few MB whatever the image size. Averaging commutes with what
    follows: transparency is composited from the averaged premultiplied grey and alpha, and 32-bit
    values are scaled by the range of the whole image after averaging.
    """
    mode = im.mode
    kind = "alpha" if mode in ("P", "PA", "LA", "La", "RGBA", "RGBa") else "range" if mode in ("I", "F") else "plain"
    width, height = im.size
    step = factor * -(-PIECE // factor)
    out_shape = (-(-height // factor), -(-width // factor))
    planes = [np.zeros(out_shape, np.float64 if kind == "range" else np.float32) for _ in range(1 + (kind == "alpha"))]
    ink_sum, ink_count, lo, hi = 0.0, 0, np.inf, -np.inf
    for box in _pieces(width, height, step):
        piece = im.crop(box)
        if kind == "alpha":  # integer work in Pillow and numpy: grey+alpha in 8 bits each
            la = np.asarray(piece.convert("LA") if mode in ("LA", "La") else piece.convert("RGBA").convert("LA"))
            lum, alpha = la[..., 0], la[..., 1]
            opaque = alpha > 127
            ink_sum, ink_count = ink_sum + int(lum[opaque].sum()) / 255.0, ink_count + int(opaque.sum())
            values = ((lum.astype(np.uint16) * alpha, 255.0 * 255.0), (alpha, 255.0))  # premultiplied grey
        elif kind == "range":
            raw = np.nan_to_num(np.asarray(piece, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            lo, hi = min(lo, float(raw.min())), max(hi, float(raw.max()))
            values = ((raw, 1.0),)
        else:
            values = (_plain_values(piece),)
        row, col = box[1] // factor, box[0] // factor
        for plane, (value, full_scale) in zip(planes, values):
            small = block_mean(value, factor) / full_scale
            plane[row:row + small.shape[0], col:col + small.shape[1]] = small
    if kind == "alpha":  # grey * alpha + background * (1 - alpha), in place (these planes can be 4 MP)
        background = 0.0 if ink_count and ink_sum / ink_count > 0.5 else 1.0  # white ink -> black paper
        gray, alpha = planes
        if background:
            alpha -= 1.0
            gray -= alpha
        return gray
    if kind == "range":
        return _scale_range(planes[0], mode, lo, hi).astype(np.float32)
    return planes[0]


def to_gray(im) -> np.ndarray:
    """A decoded Pillow image of any mode -> (H, W) float32 grey in [0, 1]."""
    return _reduced_gray(im, 1)


_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {  # EXIF orientation -> the array op that undoes it
    2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud, 5: np.transpose,
    6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).T, 8: lambda a: np.rot90(a, 1),
}


def _decode_bytes(im, width: int, height: int) -> tuple[int, str]:
    """What decoding ``im`` (``width`` x ``height`` in the file) will allocate, from its header, and why.

    Pillow's own storage of the decoded image, plus the buffers some decoders hold at full size
    whatever size we ask for: a progressive JPEG keeps every DCT coefficient (2 bytes each), libtiff
    a whole strip or tile, and Pillow's WebP decoder three RGBA copies of the frame.
    """
    w, h = im.size
    cost, why = w * h * _STORAGE_BYTES.get(im.mode, 4), ""
    if im.format in ("JPEG", "MPO") and im.info.get("progressive"):
        layers = getattr(im, "layer", None) or [("", 1, 1, 0)] * 3
        h_max, v_max = max(max(1, int(c[1])) for c in layers), max(max(1, int(c[2])) for c in layers)
        blocks = sum(-(-width * max(1, int(c[1])) // (8 * h_max)) * -(-height * max(1, int(c[2])) // (8 * v_max))
                     for c in layers)
        cost, why = cost + blocks * 64 * 2, "a progressive JPEG is decoded at full size"
    elif im.format == "TIFF":
        tags = im.tag_v2
        bits = tags.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        # libtiff unpacks a strip as stored, or (JPEG, YCbCr) as RGBA: count at least 4 bytes a pixel
        pixel_bytes = max(4, -(-int(sum(bits) if len(bits) > 1 else int(bits[0]) * int(tags.get(277, 1))) // 8))
        if 322 in tags:
            block = int(tags[322]) * int(tags.get(323, height))
        else:
            block = width * min(height, int(tags.get(278, height)))
        cost, why = cost + block * pixel_bytes, "this TIFF's strips or tiles are decoded whole"
    elif im.format == "WEBP":
        cost, why = cost + 3 * w * h * 4, "a WebP image is decoded at full size, several times over"
    return cost, why


def _orientation(im) -> int:
    """The EXIF orientation (1 = as stored); a broken EXIF block counts as none."""
    try:
        value = im.getexif().get(0x0112, 1)
        return int(value) if int(value) in _ORIENT else 1
    except Exception:
        return 1


def _decode(fh: BinaryIO, name: str) -> tuple[np.ndarray, str]:
    """Decode the open file straight to grey at most ``2 * WORK_SIDE`` px on the longer side."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning: we check the size ourselves
        Image.init()  # every plugin registered, so ``formats`` below can name them
        openers = [f for f in FORMATS if f in Image.OPEN]  # MPO opens through the JPEG plugin
        with Image.open(fh, formats=openers) as im:  # no other parser runs (EPS and PPM parse byte by byte)
            if im.format not in FORMATS:
                raise ImageLoadError(f"{name}: {im.format} files are not supported; {_USE}")
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageLoadError(f"{name}: {w}x{h} px ({w * h / 1e6:.0f} megapixels) is more than the "
                                     f"{MAX_PIXELS // 1_000_000} megapixels allowed; scale it down first")
            if w < 1 or h < 1:
                raise ImageLoadError(f"{name}: the image has no pixels ({w}x{h})")
            info = f"{name}: {im.format} {w}x{h} {im.mode}"
            im.seek(0)  # first frame of an animation
            if im.format in ("JPEG", "MPO"):
                im.draft(im.mode, (WORK_SIDE, WORK_SIDE))  # decode at reduced size: fast and small
            cost, why = _decode_bytes(im, w, h)
            if cost > DECODE_BUDGET:
                raise ImageLoadError(f"{name}: decoding this {w}x{h} image would take about {cost / 2**20:.0f} MB "
                                     f"({why}), more than the {DECODE_BUDGET // 2**20} MB allowed for one image; "
                                     "save a smaller copy, or save it as PNG")
            im.load()
            gray = _reduced_gray(im, block_factor(im.size[1], im.size[0], WORK_SIDE))
            gray = _ORIENT.get(_orientation(im), np.asarray)(gray)
    return gray, info


def decode_image(path: str | Path) -> LoadedImage:
    """Decode ``path`` into a grey array in this process, or raise ``ImageLoadError`` saying what is wrong.

    Use :func:`load_image` for files from users; this is what its sandboxed child runs. The file name in
    messages is kept exactly as given (it may contain ':' or anything else).
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    name = p.name or str(p)
    fh, size = _open_regular(p, name)
    try:
        if size == 0:
            raise ImageLoadError(f"{name}: the file is empty (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise ImageLoadError(f"{name}: {size / 2**20:.0f} MB is larger than the {MAX_FILE_BYTES // 2**20} MB "
                                 "this app opens; save a smaller copy (any size above 28x28 px works)")
        head = fh.read(SNIFF_BYTES)
        fh.seek(0)
        reason = _not_an_image(head)
        if reason:
            raise ImageLoadError(f"{name}: {reason}")
        gray, info = _decode(fh, name)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError:  # Pillow refuses > 2x its own limit while reading the header
        raise ImageLoadError(f"{name}: the image has far more than the {MAX_PIXELS // 1_000_000} megapixels "
                             "allowed; scale it down first") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image file (or a format this app cannot read); {_USE}") from None
    except MemoryError:
        raise ImageLoadError(f"{name}: decoding needed more memory than one image may use; the file is too large, "
                             "damaged or built to exhaust memory; save a smaller copy as PNG") from None
    except OSError as exc:
        if exc.errno is not None:  # the disk or the OS failed, not the data (Pillow's own errors carry none)
            raise _cannot_read(name, exc) from None
        raise ImageLoadError(f"{name}: the file is damaged or truncated and cannot be decoded ({exc})") from None
    except Exception as exc:  # truncated data, bad headers, codec errors: Pillow raises many kinds
        raise ImageLoadError(f"{name}: the file is damaged or truncated and cannot be decoded "
                             f"({type(exc).__name__}: {exc})") from None
    finally:
        fh.close()
    gray = np.clip(shrink_to(np.nan_to_num(gray, nan=0.0, posinf=1.0, neginf=0.0), WORK_SIDE), 0.0, 1.0)
    assert gray.ndim == 2 and gray.size and gray.dtype == np.float32, (name, gray.shape, gray.dtype)
    assert np.isfinite(gray).all() and gray.min() >= 0.0 and gray.max() <= 1.0, name
    return LoadedImage(gray=gray, invert=should_invert(gray), info=info, path=str(p))


__all__ = ["FORMATS", "ImageLoadError", "LoadedImage", "MAX_FILE_BYTES", "MAX_PIXELS", "SUFFIXES", "decode_image",
           "to_gray"]
