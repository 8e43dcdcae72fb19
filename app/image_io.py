"""Read any image file a user drops on the window into a grey float array, or refuse it clearly.

Runs on a worker thread (decoding a big JPEG takes a while). Limits are checked before decoding:
the file size on disk, then the pixel count from the header, so a 20000x20000 PNG of a few KB is
refused without allocating 400 MB. Pillow decodes; every mode is handled (1, L, P, LA, PA, RGB,
RGBA, CMYK, I;16, I, F) and EXIF rotation is applied.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.preprocess import shrink_to, should_invert

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 50_000_000
WORK_SIDE = 1024  # decoded images are shrunk to this before any further work
FORMATS = ("PNG", "JPEG", "MPO", "BMP", "DIB", "GIF", "WEBP", "TIFF")
SUFFIXES = ("*.png", "*.jpg", "*.jpeg", "*.bmp", "*.gif", "*.webp", "*.tif", "*.tiff")


class ImageLoadError(ValueError):
    """A file that cannot be used as an input image; the message says why and what would work."""


@dataclass(frozen=True)
class LoadedImage:
    gray: np.ndarray  # (H, W) float32 in [0, 1], 0 = black; at most WORK_SIDE on the longer side
    invert: bool  # auto-detected: dark ink on light paper
    info: str  # "photo.jpg: JPEG 4032x3024 RGB"
    path: str


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _composite(rgba: np.ndarray) -> np.ndarray:
    """Flatten an image with transparency onto the background that contrasts with its opaque ink."""
    lum, alpha = _luminance(rgba[..., :3]), rgba[..., 3]
    opaque = alpha > 0.5
    ink_level = float(lum[opaque].mean()) if opaque.any() else 0.0
    background = 0.0 if ink_level > 0.5 else 1.0  # white ink -> black paper, dark ink -> white paper
    return lum * alpha + background * (1.0 - alpha)


def to_gray(im) -> np.ndarray:
    """A decoded Pillow image of any mode -> (H, W) float32 grey in [0, 1]."""
    mode = im.mode
    if mode in ("P", "PA"):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("LA", "La", "RGBA", "RGBa"):
        arr = np.asarray(im.convert("RGBA"), np.float32) / 255.0
        return _composite(arr).astype(np.float32)
    if mode == "1":
        return np.asarray(im, np.float32)
    if mode == "L":
        return np.asarray(im, np.float32) / 255.0
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.float32) / 65535.0
    if mode in ("I", "F"):  # 32-bit int or float: guess the range from the values
        full = np.nan_to_num(np.asarray(im).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(full.min()), float(full.max())
        if lo >= 0 and hi <= 1:
            return full.astype(np.float32)
        if mode == "I" and lo >= 0 and hi <= 255:
            return (full / 255.0).astype(np.float32)
        if mode == "I" and lo >= 0 and hi <= 65535:
            return (full / 65535.0).astype(np.float32)
        return ((full - lo) / max(hi - lo, 1e-12)).astype(np.float32)
    return (_luminance(np.asarray(im.convert("RGB"), np.float32)) / 255.0).astype(np.float32)


def load_image(path: str | Path) -> LoadedImage:
    """Decode ``path`` into a grey array, or raise ``ImageLoadError`` saying what is wrong."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    name = p.name or str(p)
    if not p.exists():
        raise ImageLoadError(f"{name}: no such file")
    if not p.is_file():
        raise ImageLoadError(f"{name}: is a folder, not an image file")
    size = p.stat().st_size
    if size == 0:
        raise ImageLoadError(f"{name}: the file is empty (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise ImageLoadError(f"{name}: {size / 2**20:.0f} MB is larger than the {MAX_FILE_BYTES // 2**20} MB "
                             "this app opens; save a smaller copy (any size above 28x28 px works)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: we check the size ourselves
            with Image.open(p) as im:
                if im.format not in FORMATS:
                    raise ImageLoadError(f"{name}: {im.format} files are not supported; use PNG, JPEG, BMP, GIF, "
                                         "WebP or TIFF")
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
                im.load()
                im = ImageOps.exif_transpose(im)
                gray = to_gray(im)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError:  # Pillow refuses > 2x its own limit while reading the header
        raise ImageLoadError(f"{name}: the image has far more than the {MAX_PIXELS // 1_000_000} megapixels "
                             "allowed; scale it down first") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image file (or a format this app cannot read); "
                             "use PNG, JPEG, BMP, GIF, WebP or TIFF") from None
    except MemoryError:
        raise ImageLoadError(f"{name}: not enough memory to decode this image; scale it down first") from None
    except Exception as exc:  # truncated data, bad headers, codec errors: Pillow raises many kinds
        raise ImageLoadError(f"{name}: the file is damaged or truncated and cannot be decoded "
                             f"({type(exc).__name__}: {exc})") from None
    if not np.isfinite(gray).all():
        gray = np.nan_to_num(gray)
    gray = shrink_to(gray, WORK_SIDE)
    return LoadedImage(gray=gray, invert=should_invert(gray), info=info, path=str(p))


__all__ = ["FORMATS", "ImageLoadError", "LoadedImage", "MAX_FILE_BYTES", "MAX_PIXELS", "SUFFIXES", "load_image",
           "to_gray"]
