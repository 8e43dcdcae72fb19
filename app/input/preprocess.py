"""Turn any grey image into the 28x28 input the models were trained on. numpy (and scipy.ndimage); no Qt, no torch.

MNIST was made like this (LeCun et al.): crop the ink's bounding box, scale the longer side to 20 px
keeping the aspect ratio (anti-aliased), then place it in a 28x28 field so that the centre of mass of
the ink sits at the centre. Its writers used one kind of pen, so a bold printed digit (whose thick strokes
fill the loops of a 6 or a 9) or a hairline drawing has its strokes thinned or thickened to MNIST's width
first (``normalize_stroke``). Fashion-MNIST items fill the frame instead (longer side 28 px, centred by
their box). ``to_model_input`` does that for a drawing or a loaded file; arrays are float32 in [0, 1]
with ink high (white on black), like the datasets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 28


@dataclass(frozen=True)
class Framing:
    """How a dataset's images were framed: ``box`` px for the longer side, centred by ``center``; ``stroke``
    the pen width (px of the framed image) strokes are thinned or thickened to, None to keep them as drawn."""

    box: int = 20
    center: str = "mass"  # "mass" (MNIST) or "box" (Fashion-MNIST)
    stroke: float | None = None


# MNIST's pen: the median stroke width (``stroke_width`` at 4x) of the bundled test digits is 2.25 px (p10-p90
# 1.55-3.25 px). Fashion-MNIST items are filled shapes, not strokes.
MNIST_STROKE = 2.25
FRAMING = {"mnist": Framing(20, "mass", MNIST_STROKE), "fashion_mnist": Framing(28, "box")}
STROKE_SCALE = 4  # strokes are measured and reshaped at 4x the framed size (a 20 px box becomes 80 px)
STROKE_TOLERANCE = 0.35  # relative: widths within 35 % of the target are left alone


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights: area averaging when shrinking, linear interpolation when enlarging."""
    if n_out <= n_in:  # box filter: each output pixel averages the input interval it covers
        edges = np.linspace(0.0, n_in, n_out + 1)
        w = np.zeros((n_out, n_in), np.float64)
        for i in range(n_out):
            lo, hi = edges[i], edges[i + 1]
            for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
                w[i, j] = min(hi, j + 1) - max(lo, j)
        return (w / w.sum(1, keepdims=True)).astype(np.float32)
    pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5  # pixel centres mapped back to the input
    pos = np.clip(pos, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    w = np.zeros((n_out, n_in), np.float32)
    w[np.arange(n_out), lo] += 1 - frac
    w[np.arange(n_out), hi] += frac
    return w


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Anti-aliased resize of a 2-D float array (separable, exact area averaging when shrinking)."""
    rows = _resample_matrix(img.shape[0], height)
    cols = _resample_matrix(img.shape[1], width)
    return rows @ img.astype(np.float32) @ cols.T


def block_factor(height: int, width: int, max_side: int) -> int:
    """The integer block size that brings the longer side to at most ``2 * max_side`` (1 = no blocking).

    Block means are cheap (O(pixels), no weight matrices); the exact area-averaging ``resize`` then
    takes the at most 2x-too-big result down to ``max_side``.
    """
    return max(1, -(-max(height, width) // (2 * max_side)))


def _block_sums(img: np.ndarray, factor: int, axis: int) -> np.ndarray:
    """float64 sums over runs of ``factor`` along ``axis``; the last run may be shorter."""
    a = np.moveaxis(img, axis, 0)
    n = a.shape[0]
    whole = n - n % factor
    parts = []
    if whole:
        parts.append(a[:whole].reshape(whole // factor, factor, *a.shape[1:]).sum(1, dtype=np.float64))
    if whole < n:
        parts.append(a[whole:].sum(0, keepdims=True, dtype=np.float64))
    return np.moveaxis(np.concatenate(parts) if len(parts) > 1 else parts[0], 0, axis)


def block_mean(img: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks of the first two axes; the last block of a side may be partial.

    Partial blocks keep every pixel and every shape: a 1 x 5000 strip becomes 1 x 2500, never 0 x 2500.
    Any numeric or bool input; sums are taken in float64, the result is float32 (float64 stays float64).
    """
    img = np.asarray(img)
    dtype = np.float64 if img.dtype == np.float64 else np.float32
    if factor <= 1 or img.size == 0:
        return img.astype(dtype, copy=False)
    h, w = img.shape[:2]
    sums = _block_sums(_block_sums(img, factor, 0), factor, 1)
    rows, cols = np.full(sums.shape[0], factor), np.full(sums.shape[1], factor)
    rows[-1], cols[-1] = h - factor * (len(rows) - 1), w - factor * (len(cols) - 1)
    counts = np.outer(rows, cols).reshape(len(rows), len(cols), *(1,) * (img.ndim - 2))
    return (sums / counts).astype(dtype)


def shrink_to(img: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the longer side is at most ``max_side`` (block means first, so huge inputs stay cheap).

    Any 2-D shape works, including 1 x N and empty arrays (returned empty).
    """
    img = np.asarray(img, np.float32)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got an array of shape {img.shape}")
    if img.size == 0:
        return img
    img = block_mean(img, block_factor(*img.shape, max_side))
    h, w = img.shape
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        img = resize(img, max(1, round(h * s)), max(1, round(w * s)))
    return img.astype(np.float32)


def center_of_mass(img: np.ndarray) -> tuple[float, float]:
    total = float(img.sum())
    if total <= 0:
        return (img.shape[0] - 1) / 2, (img.shape[1] - 1) / 2
    ys, xs = np.indices(img.shape)
    return float((ys * img).sum() / total), float((xs * img).sum() / total)


def ink_bbox(ink: np.ndarray, threshold: float = 0.1) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), bottom/right exclusive, of pixels above ``threshold`` x max; None if blank."""
    peak = float(ink.max()) if ink.size else 0.0
    if peak <= 1e-6:
        return None
    mask = ink > threshold * peak
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def stroke_widths(ink: np.ndarray) -> np.ndarray:
    """The pen width at every point of the strokes' centre lines, in px: twice the distance to the paper at the
    ridge of the distance transform of the ink above half its peak. A filled blob adds only a few ridge points,
    so the median is the pen's width even when a loop is inked shut. Empty for a blank image."""
    from scipy import ndimage

    peak = float(ink.max()) if ink.size else 0.0
    if peak <= 1e-6:
        return np.zeros(0, np.float32)
    mask = np.pad(ink > 0.5 * peak, 1)
    dist = ndimage.distance_transform_edt(mask)
    ridge = mask & (dist >= ndimage.maximum_filter(dist, size=3))
    return (2.0 * dist[ridge] - 1.0).astype(np.float32)


def stroke_width(ink: np.ndarray) -> float:
    """The median pen width of ``stroke_widths`` (0.0 for a blank image)."""
    widths = stroke_widths(ink)
    return float(np.median(widths)) if widths.size else 0.0


def _disk(radius: int) -> np.ndarray:
    ys, xs = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return ys * ys + xs * xs <= radius * radius + radius  # a digital disk (a plus sign for radius 1)


def normalize_stroke(crop: np.ndarray, box: int, stroke: float) -> np.ndarray:
    """Thin or thicken the strokes of a cropped digit so that, framed in a ``box`` px box, they are ``stroke``
    px wide (MNIST's pen); returns the re-cropped ink, at ``STROKE_SCALE`` x the framed size when it changed.

    Grey erosion / dilation by a disk. Thinning never takes more than the thinnest tenth of the strokes
    can lose (a serif or a hairline stays), so a digit inked shut stays shut rather than falling apart.
    """
    from scipy import ndimage

    h, w = crop.shape
    scale = box * STROKE_SCALE / max(h, w)
    work = np.clip(resize(crop, max(1, round(h * scale)), max(1, round(w * scale))), 0.0, 1.0)
    widths = stroke_widths(work)
    if not widths.size:
        return crop
    target = stroke * STROKE_SCALE
    width = float(np.median(widths))
    if abs(width - target) <= STROKE_TOLERANCE * target:
        return crop
    if width > target:
        thinnest = float(np.percentile(widths, 10))
        radius = int(min(width - target, thinnest - STROKE_SCALE) // 2)
    else:
        radius = int(round((target - width) / 2))
    if radius <= 0:
        return crop
    pad = np.pad(work, radius + 1)
    morph = ndimage.grey_erosion if width > target else ndimage.grey_dilation
    shaped = morph(pad, footprint=_disk(radius))
    found = ink_bbox(shaped)
    if found is None:
        return crop
    top, bottom, left, right = found
    return shaped[top:bottom, left:right] / float(shaped.max())  # a thickened hairline gets MNIST's full ink


def mnist_frame(ink: np.ndarray, framing: Framing = FRAMING["mnist"], size: int = SIZE) -> np.ndarray:
    """Crop the ink, bring its strokes to ``framing.stroke`` (if set), scale its longer side to ``framing.box``
    and centre it in a ``size`` field.

    ``ink`` is any 2-D array, ink high; the result is float32 (size, size) in [0, 1], all zero for a
    blank (or empty) input; NaN counts as no ink.
    """
    ink = np.clip(np.nan_to_num(np.asarray(ink, np.float32), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    out = np.zeros((size, size), np.float32)
    box = ink_bbox(ink)
    if box is None:
        return out
    top, bottom, left, right = box
    crop = ink[top:bottom, left:right]
    if framing.stroke is not None:
        crop = normalize_stroke(crop, framing.box, framing.stroke)
    h, w = crop.shape
    scale = framing.box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.clip(resize(crop, nh, nw), 0.0, 1.0)
    if framing.center == "mass":
        cy, cx = center_of_mass(small)
        oy, ox = round((size - 1) / 2 - cy), round((size - 1) / 2 - cx)
    else:
        oy, ox = (size - nh) // 2, (size - nw) // 2
    oy = min(max(oy, 0), size - nh)  # keep the whole digit inside the field
    ox = min(max(ox, 0), size - nw)
    out[oy:oy + nh, ox:ox + nw] = small
    return out


def border_level(gray: np.ndarray) -> float:
    """Median of the outermost pixels: the paper/background level of a scanned or photographed digit."""
    g = np.asarray(gray, np.float32)
    if g.size == 0:
        return 0.0
    if g.shape[0] < 3 or g.shape[1] < 3:
        return float(np.median(g))
    edge = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])
    return float(np.median(edge))


def should_invert(gray: np.ndarray) -> bool:
    """True for dark ink on light paper (a light border), which must become white on black."""
    return border_level(gray) > 0.5


def to_ink(gray: np.ndarray, invert: bool) -> np.ndarray:
    """Grey [0, 1] -> ink [0, 1]: invert if asked, subtract the background, stretch the ink to 1."""
    v = 1.0 - np.asarray(gray, np.float32) if invert else np.asarray(gray, np.float32)
    if v.size == 0:
        return v
    bg = border_level(v)
    span = float(v.max()) - bg
    if span <= 1e-3:
        return np.zeros_like(v)
    return np.clip((v - bg) / span, 0.0, 1.0)


def to_model_input(gray: np.ndarray, *, invert: bool, dataset: str = "mnist") -> np.ndarray:
    """A loaded grey image (any size, [0, 1]) -> the (28, 28) float32 model input.

    A 28x28 image is taken as already framed (only inverted if asked); anything else is cleaned
    (background removed) and framed the way ``dataset`` was. Any 2-D shape works (1 x N, empty: a
    blank input); NaN reads as black and infinities are clipped, so the result is always finite.
    """
    g = np.asarray(gray, np.float32)
    if g.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got an array of shape {g.shape}")
    g = np.clip(np.nan_to_num(g, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    if g.shape == (SIZE, SIZE):
        return np.clip(1.0 - g if invert else g, 0.0, 1.0).astype(np.float32)
    return mnist_frame(to_ink(shrink_to(g, 512), invert), FRAMING.get(dataset, FRAMING["mnist"]))


__all__ = ["FRAMING", "Framing", "MNIST_STROKE", "SIZE", "block_factor", "block_mean", "center_of_mass", "ink_bbox",
           "mnist_frame", "normalize_stroke", "resize", "should_invert", "shrink_to", "stroke_width",
           "stroke_widths", "to_ink", "to_model_input"]
