"""Hostile inputs to the image loader and the framing (issue 15): never a crash, never a misleading message.

Every outcome of ``decode_image`` is a ``LoadedImage`` whose grey is finite float32 2-D in [0, 1], or
an ``ImageLoadError`` naming the file and what is wrong. Big files are generated here; the memory
test loads one in a fresh interpreter and reads its peak RSS.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.input import image_io as image_io
from app.input.image_io import ImageLoadError, LoadedImage, decode_image, to_gray
from app.input.preprocess import block_mean, border_level, mnist_frame, shrink_to, to_model_input

ROOT = Path(__file__).resolve().parents[2]


def assert_valid(loaded: LoadedImage) -> None:
    g = loaded.gray
    assert isinstance(loaded, LoadedImage)
    assert g.ndim == 2 and g.size > 0 and g.dtype == np.float32
    assert np.isfinite(g).all() and g.min() >= 0.0 and g.max() <= 1.0
    assert max(g.shape) <= image_io.WORK_SIDE


def load_or_refuse(path: Path) -> LoadedImage | ImageLoadError:
    """The only two outcomes allowed; anything else fails the test with its own traceback."""
    try:
        loaded = decode_image(path)
    except ImageLoadError as exc:
        assert str(exc).strip() and path.name in str(exc), str(exc)
        return exc
    assert_valid(loaded)
    assert path.name in loaded.info
    return loaded


def save(im, path: Path, **kw) -> Path:
    im.save(path, **kw)
    return path


# --- 1. shapes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (5000, 1), (1, 5000), (100_000, 2), (2, 100_000), (3, 7), (5_000_000, 1)])
def test_any_aspect_ratio_loads_and_frames(tmp_path, size):
    from PIL import Image

    im = Image.new("L", size, 0)
    im.putpixel((size[0] // 2, size[1] // 2), 255)
    loaded = decode_image(save(im, tmp_path / "thin.png"))
    assert_valid(loaded)
    assert loaded.gray.max() > 0  # the one ink pixel survives the averaging
    img = to_model_input(loaded.gray, invert=loaded.invert)
    assert img.shape == (28, 28) and img.dtype == np.float32 and np.isfinite(img).all()


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (5, 0), (1, 1), (1, 5000), (5000, 1), (2, 3), (28, 1), (1, 28)])
def test_framing_functions_take_degenerate_arrays(shape):
    rng = np.random.default_rng(0)
    g = rng.random(shape, dtype=np.float32)
    small = shrink_to(g, 512)
    assert small.ndim == 2 and small.dtype == np.float32 and max(small.shape, default=0) <= 512
    assert (small.size == 0) == (g.size == 0)
    assert np.isfinite(border_level(g))
    for invert in (False, True):
        out = to_model_input(g, invert=invert)
        assert out.shape == (28, 28) and out.dtype == np.float32 and np.isfinite(out).all()
        assert out.min() >= 0 and out.max() <= 1
    assert mnist_frame(g).shape == (28, 28)


def test_block_mean_keeps_partial_blocks():
    a = np.arange(35, dtype=np.float32).reshape(7, 5)
    out = block_mean(a, 3)
    assert out.shape == (3, 2)
    assert out[0, 0] == a[:3, :3].mean() and out[2, 1] == a[6:, 3:].mean() and out[1, 1] == a[3:6, 3:].mean()
    assert block_mean(np.ones((1, 5000), bool), 2).shape == (1, 2500)


def test_nan_and_inf_arrays_give_a_finite_model_input():
    g = np.full((40, 30), np.nan, np.float32)
    g[5:30, 10:15] = np.inf
    g[0, 0] = -np.inf
    for invert in (False, True):
        out = to_model_input(g, invert=invert)
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert np.isfinite(mnist_frame(g)).all()


# --- 2. what the path is ---------------------------------------------------------------------------------


def load_with_timeout(path: Path, seconds: float = 10.0):
    """``decode_image`` in a thread, so that a loader that blocks on a FIFO fails the test instead of hanging it."""
    outcome: list = []

    def run():
        try:
            outcome.append(decode_image(path))
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"decode_image({path.name}) blocked for {seconds} s"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    err = load_with_timeout(tmp_path / "pipe.png")
    assert isinstance(err, ImageLoadError)
    assert "pipe.png" in str(err) and "not a regular file" in str(err) and "FIFO" in str(err)
    assert "folder" not in str(err)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_link_to_a_device_is_refused_without_reading(tmp_path):
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    err = load_with_timeout(tmp_path / "zero.png")
    assert isinstance(err, ImageLoadError)
    assert "zero.png" in str(err) and "not a regular file" in str(err) and "device" in str(err)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")
def test_socket_is_refused(tmp_path):
    path = tmp_path / "s.png"
    if len(str(path)) > 100:
        pytest.skip("temporary path too long for a unix socket")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(ImageLoadError, match="s.png: is not a regular file \\(a socket\\)"):
            decode_image(path)


def test_links_folders_and_missing_files(tmp_path):
    from PIL import Image

    good = save(Image.new("L", (40, 30), 0), tmp_path / "good.png")
    (tmp_path / "link.png").symlink_to(good)
    assert_valid(decode_image(tmp_path / "link.png"))
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(ImageLoadError, match="dangling.png: is a link to a file that does not exist"):
        decode_image(tmp_path / "dangling.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageLoadError, match="dir.png: is a folder"):
        decode_image(tmp_path / "dir.png")
    with pytest.raises(ImageLoadError, match="nowhere.png: no such file"):
        decode_image(tmp_path / "nowhere.png")
    with pytest.raises(ImageLoadError, match="nul\x00byte.png: is not a valid file name"):
        decode_image(tmp_path / "nul\x00byte.png")


def test_unreadable_file_says_permission_not_damaged(tmp_path, monkeypatch):
    from PIL import Image

    path = save(Image.new("L", (40, 30), 0), tmp_path / "locked.png")
    path.chmod(0)  # enough when not root; root reads anything, so opening is refused below as well
    real_open, real_os_open = builtins.open, os.open

    def refuse(target):
        if os.fspath(target) == str(path):
            raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: refuse(f) or real_open(f, *a, **k))
    monkeypatch.setattr(os, "open", lambda f, *a, **k: refuse(f) or real_os_open(f, *a, **k))
    with pytest.raises(ImageLoadError) as info:
        decode_image(path)
    message = str(info.value)
    assert "locked.png" in message and "permission" in message.lower() and "damaged" not in message


PICKLES = {
    "protocol0.png": b"(lp0\nI1\na.",
    "protocol2.png": pickle.dumps([1, 2], protocol=2),
    "protocol5.jpg": pickle.dumps({"weights": list(range(100))}, protocol=5),
    "legacy_torch.pt": b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19." + b"\0" * 100,
}


@pytest.mark.parametrize("name", sorted(PICKLES))
def test_pickle_is_named_and_never_unpickled(tmp_path, monkeypatch, name):
    def unpickling(*_args, **_kwargs):
        raise AssertionError("the loader unpickled a user's file")

    monkeypatch.setattr(pickle, "loads", unpickling)
    monkeypatch.setattr(pickle, "load", unpickling)
    (tmp_path / name).write_bytes(PICKLES[name])
    with pytest.raises(ImageLoadError) as info:
        decode_image(tmp_path / name)
    message = str(info.value)
    assert name in message and "pickle" in message and "not an image" in message and "not opened" in message


def test_malicious_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    (tmp_path / "evil.png").write_bytes(payload)
    with pytest.raises(ImageLoadError, match="pickle"):
        decode_image(tmp_path / "evil.png")
    assert not marker.exists()


def test_torch_zip_checkpoint_is_named(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # the layout torch.save writes
        archive.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
        archive.writestr("archive/version", "3\n")
    (tmp_path / "model.pth").write_bytes(buffer.getvalue())
    with pytest.raises(ImageLoadError, match="model.pth: looks like a torch checkpoint .*not an image; it was not"):
        decode_image(tmp_path / "model.pth")


@pytest.mark.parametrize("suffix", [".jpg", ".dat", ""])
def test_image_with_the_wrong_suffix_loads(tmp_path, suffix):
    from PIL import Image

    path = save(Image.new("RGB", (30, 20), (200, 10, 10)), tmp_path / f"really_a_png{suffix}", format="PNG")
    assert "PNG" in decode_image(path).info


def test_file_names_are_kept_whole(tmp_path):
    from PIL import Image

    good = save(Image.new("L", (30, 20), 0), tmp_path / "scan: page 2 <b>.png")
    assert decode_image(good).info.startswith("scan: page 2 <b>.png: PNG 30x20")
    (tmp_path / "a:b:c.png").write_text("not an image")
    with pytest.raises(ImageLoadError, match="^a:b:c.png: not an image"):
        decode_image(tmp_path / "a:b:c.png")


# --- 3. memory -------------------------------------------------------------------------------------------

PEAK_SCRIPT = """
import resource, sys, time
import numpy, PIL.Image, PIL.PngImagePlugin, PIL.TiffImagePlugin
from app.input.image_io import decode_image
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
gray = decode_image(sys.argv[1]).gray
seconds = time.perf_counter() - start
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base, seconds, gray.shape[0], gray.shape[1], gray.max())
"""


def big_file(kind: str, folder: Path) -> Path:
    """A 7000 x 7000 (49 MP) image that compresses to well under 1 MB: a bar of ink on a blank field."""
    from PIL import Image, ImageDraw

    side, bar = 7000, (3000, 1000, 3500, 6000)
    if kind == "RGBA":  # the worst case for Pillow's storage (4 bytes a pixel) and for compositing
        im = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        ImageDraw.Draw(im).rectangle(bar, fill=(255, 255, 255, 255))
        return save(im, folder / "big.png", compress_level=1)
    im = Image.new("F", (side, side), 0.0)  # 32-bit float TIFF: the path that works in float64
    ImageDraw.Draw(im).rectangle(bar, fill=7.0)
    im.putpixel((0, 0), float("nan"))
    im.putpixel((1, 0), float("inf"))
    return save(im, folder / "big.tiff", compression="tiff_adobe_deflate")


@pytest.mark.skipif(sys.platform == "win32", reason="resource.getrusage is POSIX")
@pytest.mark.parametrize("kind", ["RGBA", "F"])
def test_big_image_loads_in_bounded_memory(tmp_path, kind):
    path = big_file(kind, tmp_path)
    assert path.stat().st_size < 2 * 2**20
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path)], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    kb, seconds, h, w, peak = out.stdout.split()
    assert int(kb) < 300 * 1024, f"loading a 49 MP {kind} image took {int(kb) // 1024} MB"
    assert float(seconds) < 20
    assert (int(h), int(w)) == (1024, 1024) and float(peak) > 0.5  # the bar is still there


def decode_cost_files(folder: Path) -> dict[str, tuple[Path, bool]]:
    """600 x 600 files whose decoders hold more than Pillow's storage (True: over the budget set below)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (600, 600), (0, 0, 0))
    ImageDraw.Draw(im).rectangle((200, 100, 300, 500), fill=(255, 255, 255))
    return {
        "baseline.jpg": (save(im, folder / "baseline.jpg"), False),
        "progressive.jpg": (save(im, folder / "progressive.jpg", progressive=True), True),
        "strips.tiff": (save(im, folder / "strips.tiff", compression="tiff_adobe_deflate", tiffinfo={278: 8}), False),
        "one_strip.tiff": (save(im, folder / "one_strip.tiff", compression="tiff_adobe_deflate",
                                tiffinfo={278: 600}), True),
        "photo.webp": (save(im, folder / "photo.webp"), True),
        "plain.png": (save(im, folder / "plain.png"), False),
    }


def test_decoders_that_hold_full_size_buffers_are_refused_from_the_header(tmp_path, monkeypatch):
    monkeypatch.setattr(image_io, "DECODE_BUDGET", int(600 * 600 * 4 * 1.5))  # storage fits, a second copy not
    for name, (path, refused) in decode_cost_files(tmp_path).items():
        if refused:
            with pytest.raises(ImageLoadError, match=f"{name}: decoding this 600x600 image would take about"):
                decode_image(path)
        else:
            assert_valid(decode_image(path))


# --- 4. pixel values -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["F", "I"])
def test_nan_inf_and_odd_ranges_decode_deterministically(tmp_path, mode):
    from PIL import Image

    a = np.zeros((40, 30), np.float32 if mode == "F" else np.int32)
    a[5:35, 12:18] = 70_000 if mode == "I" else 3.5
    a[0, 0] = -5
    if mode == "F":
        a[1, 1], a[2, 2], a[3, 3] = np.nan, np.inf, -np.inf
    path = save(Image.fromarray(a, mode), tmp_path / f"odd_{mode}.tiff")
    first, second = decode_image(path), decode_image(path)
    assert_valid(first)
    assert np.array_equal(first.gray, second.gray)
    assert first.gray[20, 15] == 1.0 and first.gray[20, 5] < first.gray[20, 15]


def test_all_nan_float_image_is_blank_not_broken(tmp_path):
    from PIL import Image

    path = save(Image.fromarray(np.full((20, 20), np.nan, np.float32), "F"), tmp_path / "nan.tiff")
    loaded = decode_image(path)
    assert_valid(loaded)
    assert not to_model_input(loaded.gray, invert=loaded.invert).any()


def modes_image(mode: str, seed: int = 0):
    """A small image of ``mode`` with ink, noise and (where the mode has one) transparency."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = (rng.random((23, 37)) * 255).astype(np.uint8)
    base[4:20, 10:16] = 255
    if mode in ("RGBA", "RGBa", "La"):
        rgba = np.dstack([base, base[::-1], base[:, ::-1], (rng.random((23, 37)) * 255).astype(np.uint8)])
        im = Image.fromarray(rgba, "RGBA")
        return im.convert("LA").convert("La") if mode == "La" else im.convert(mode)
    if mode == "P_transparent":
        im = Image.fromarray(base).convert("P")
        im.info["transparency"] = int(im.getpixel((0, 0)))
        return im
    if mode == "I;16":
        return Image.fromarray(base.astype(np.uint16) * 257)
    if mode == "F":
        return Image.fromarray(base.astype(np.float32) * 3.0 - 100.0, "F")
    return Image.fromarray(base).convert(mode)


@pytest.mark.parametrize("mode", ["1", "L", "P", "P_transparent", "LA", "PA", "RGB", "RGBA", "CMYK", "I;16", "I",
                                  "F", "YCbCr", "La", "RGBa"])
def test_piecewise_conversion_equals_whole_image_conversion(monkeypatch, mode):
    im = modes_image(mode)
    whole = block_mean(to_gray(im), 3)  # convert everything, then average
    monkeypatch.setattr(image_io, "PIECE", 5)  # many pieces, none aligned with the image's edges
    pieced = image_io._reduced_gray(im, 3)
    assert pieced.shape == whole.shape == (8, 13) and pieced.dtype == np.float32
    np.testing.assert_allclose(pieced, whole, atol=1e-5)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_rotation_is_applied(tmp_path, orientation):
    from PIL import Image, ImageOps

    im = modes_image("L")
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(im, tmp_path / f"rot{orientation}.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)), np.float32) / 255.0
    np.testing.assert_allclose(decode_image(path).gray, expected, atol=1e-6)


# --- 5. property tests -----------------------------------------------------------------------------------

MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"\xff\xd8\xff", b"GIF89a", b"GIF87a",
         b"BM", b"II*\x00", b"MM\x00*", b"RIFF\x00\x01\x00\x00WEBPVP8 ", b"RIFF\x00\x01\x00\x00WEBPVP8L",
         b"(", b"\x80\x04", b"PK\x03\x04"]
NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"), min_size=1, max_size=20)
SUFFIX = st.sampled_from(["", ".png", ".jpg", ".gif", ".bmp", ".tif", ".webp", ".bin"])
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def write(folder: Path, stem: str, suffix: str, data: bytes) -> Path:
    for old in folder.iterdir():
        old.unlink()
    name = (stem + suffix).strip() or "x"
    path = folder / ("_" + name if name in (".", "..") else name)
    path.write_bytes(data)
    return path


@SETTINGS
@given(prefix=st.sampled_from(MAGIC), body=st.binary(max_size=600), stem=NAMES, suffix=SUFFIX)
def test_random_bytes_load_or_are_refused_by_name(tmp_path, prefix, body, stem, suffix):
    load_or_refuse(write(tmp_path, stem, suffix, prefix + body))


IMAGE_FORMATS = {  # format -> modes it can save
    "PNG": ["1", "L", "P", "LA", "RGB", "RGBA", "I;16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "GIF": ["L", "P"],
    "BMP": ["1", "L", "P", "RGB", "RGBA"],
    "TIFF": ["1", "L", "P", "LA", "RGB", "RGBA", "CMYK", "I;16", "I", "F"],
    "WEBP": ["RGB", "RGBA"],
}


@st.composite
def real_images(draw):
    from PIL import Image

    fmt = draw(st.sampled_from(sorted(IMAGE_FORMATS)))
    mode = draw(st.sampled_from(IMAGE_FORMATS[fmt]))
    w, h = draw(st.integers(1, 70)), draw(st.integers(1, 70))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = (rng.random((h, w)) * 255).astype(np.uint8)
    if mode in ("I", "F"):
        im = Image.fromarray((base.astype(np.float32) * draw(st.sampled_from([1.0, 1e6, -3.0]))).astype(
            np.int32 if mode == "I" else np.float32), mode)
    elif mode == "I;16":
        im = Image.fromarray(base.astype(np.uint16) * 257)
    elif mode in ("RGB", "RGBA", "CMYK"):
        im = Image.fromarray((rng.random((h, w, len(mode))) * 255).astype(np.uint8), mode)
    else:
        im = Image.fromarray(base).convert(mode)
    buffer = io.BytesIO()
    im.save(buffer, format=fmt)
    return fmt, buffer.getvalue()


@SETTINGS
@given(image=real_images(), cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                                                    max_size=3), stem=NAMES, suffix=SUFFIX)
def test_real_images_whole_truncated_or_corrupted(tmp_path, image, cut, flips, stem, suffix):
    fmt, data = image
    path = write(tmp_path, stem, suffix, data)
    whole = load_or_refuse(path)
    assert isinstance(whole, LoadedImage), f"a valid {fmt} was refused: {whole}"
    broken = bytearray(data[: max(1, int(len(data) * cut))])
    for where, value in flips:
        broken[min(int(where * len(broken)), len(broken) - 1)] = value
    load_or_refuse(write(tmp_path, stem, suffix, bytes(broken)))


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 300), w=st.integers(1, 300), seed=st.integers(0, 2**32 - 1),
       pattern=st.sampled_from(["uniform", "blob", "constant", "sparse", "binary"]), invert=st.booleans(),
       dataset=st.sampled_from(["mnist", "fashion_mnist"]))
def test_model_input_is_always_a_finite_28x28(h, w, seed, pattern, invert, dataset):
    rng = np.random.default_rng(seed)
    if pattern == "uniform":
        g = rng.random((h, w))
    elif pattern == "constant":
        g = np.full((h, w), rng.random())
    elif pattern == "binary":
        g = (rng.random((h, w)) > 0.5).astype(np.float64)
    else:
        g = np.zeros((h, w))
        count = 1 if pattern == "sparse" else max(1, h * w // 10)
        g[rng.integers(0, h, count), rng.integers(0, w, count)] = rng.random(count)
    out = to_model_input(g.astype(np.float32), invert=invert, dataset=dataset)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
