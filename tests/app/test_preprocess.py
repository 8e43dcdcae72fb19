"""Pure functions of the app: MNIST-style framing and image decoding (no window needed)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.app.helpers import SHIPPED, broken_files, write_png_header  # noqa: F401

from app.input.image_io import MAX_PIXELS, ImageLoadError
from app.input.sandbox import load_image
from app.input.preprocess import center_of_mass, ink_bbox, mnist_frame, to_model_input


def vertical_stroke(h: int = 280, w: int = 280, x: int = 100, top: int = 40, bottom: int = 250, width: int = 18):
    canvas = np.zeros((h, w), np.float32)
    canvas[top:bottom, x - width // 2:x + width // 2] = 1.0
    return canvas


def test_stroke_is_cropped_scaled_to_20px_and_centred_by_mass():
    out = mnist_frame(vertical_stroke())
    assert out.shape == (28, 28) and out.dtype == np.float32
    top, bottom, left, right = ink_bbox(out)
    assert bottom - top == 20  # the longer side fills the 20 px box
    assert right - left <= 4  # aspect ratio kept: a thin bar stays thin
    cy, cx = center_of_mass(out)
    assert abs(cy - 13.5) <= 0.6 and abs(cx - 13.5) <= 0.6
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_framing_ignores_where_on_the_canvas_the_digit_was_drawn():
    a = mnist_frame(vertical_stroke(x=60, top=20, bottom=230))
    b = mnist_frame(vertical_stroke(x=220, top=60, bottom=270))
    assert np.abs(a - b).max() < 0.05


def test_blank_canvas_gives_blank_image():
    assert not mnist_frame(np.zeros((280, 280))).any()


def test_wide_shape_scales_its_width_to_20():
    canvas = np.zeros((280, 280), np.float32)
    canvas[130:150, 20:260] = 1  # a horizontal bar
    top, bottom, left, right = ink_bbox(mnist_frame(canvas))
    assert right - left == 20 and bottom - top <= 4


def test_dark_ink_on_light_paper_photo_is_inverted_and_framed(tmp_path):
    from PIL import Image

    paper = np.full((600, 400), 230, np.uint8)
    paper[100:500, 190:215] = 20  # a dark "1" on light paper
    Image.fromarray(paper).save(tmp_path / "one.jpg", quality=90)
    loaded = load_image(tmp_path / "one.jpg")
    assert loaded.invert
    img = to_model_input(loaded.gray, invert=loaded.invert)
    top, bottom, _, _ = ink_bbox(img)
    assert bottom - top == 20 and img.max() > 0.9 and img[0, 0] == 0


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "LA", "1"])
def test_every_pixel_mode_decodes_to_grey_in_unit_range(tmp_path, mode):
    from PIL import Image

    base = np.zeros((40, 30), np.uint8)
    base[8:32, 12:18] = 255
    if mode == "I;16":
        im = Image.fromarray(base.astype(np.uint16) * 257)
    elif mode == "RGBA":  # white ink on a transparent background
        rgba = np.zeros((40, 30, 4), np.uint8)
        rgba[..., :3] = 255
        rgba[..., 3] = base
        im = Image.fromarray(rgba)
    else:
        im = Image.fromarray(base).convert(mode)
    path = tmp_path / f"img_{mode.replace(';', '')}.png"
    im.save(path)
    loaded = load_image(path)
    assert loaded.gray.dtype == np.float32 and 0 <= loaded.gray.min() and loaded.gray.max() <= 1
    img = to_model_input(loaded.gray, invert=loaded.invert)
    assert img[15, 13:15].mean() > 0.5 or img.max() > 0.9  # the bar survived as ink
    assert not loaded.invert  # light ink on dark (or transparent) background


def test_broken_files_are_refused_with_a_reason(tmp_path):
    for kind, (path, words) in broken_files(tmp_path / "broken").items():
        with pytest.raises(ImageLoadError, match=words):
            load_image(path)


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    write_png_header(tmp_path / "big.png", 8000, 8000)
    assert 8000 * 8000 > MAX_PIXELS
    with pytest.raises(ImageLoadError, match="megapixels"):
        load_image(tmp_path / "big.png")


DRAWN = {  # strokes in canvas pixels (280 x 280), drawn the way a person would
    1: [[(140, 40), (140, 240)]],
    7: [[(80, 50), (200, 50), (120, 250)]],
    0: [[(140 + 70 * np.sin(t), 140 - 100 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 40)]],
}


@pytest.mark.skipif(not (SHIPPED / "mnist" / "classifier_A.safetensors").is_file(),
                    reason="shipped MNIST classifier A not present yet")
@pytest.mark.parametrize("digit", sorted(DRAWN))
def test_drawn_digit_is_classified_by_the_shipped_classifier(qtbot, digit):
    import torch

    from app.panels.draw import DrawCanvas
    from lqvae.io.checkpoint import load_checkpoint

    canvas = DrawCanvas()
    qtbot.addWidget(canvas)
    for stroke in DRAWN[digit]:
        canvas.stroke(stroke, width=22)
    img = mnist_frame(canvas.array())
    model = load_checkpoint(SHIPPED / "mnist" / "classifier_A.safetensors", kind="classifier").model
    with torch.no_grad():
        pred = int(model(torch.from_numpy(img).view(1, 1, 28, 28)).argmax(1))
    assert pred == digit


# ----------------------------------------------------------------------------- stroke width (MNIST's pen)
def bold_digit(digit: str, extra: int, font: str = "DejaVuSans-Bold", size: int = 200) -> np.ndarray:
    """A printed digit at heavy weight: a bold face, its strokes thickened by ``extra`` px (PIL's text stroke)."""
    from PIL import Image, ImageDraw, ImageFont

    path = f"/usr/share/fonts/truetype/dejavu/{font}.ttf"
    try:
        face = ImageFont.truetype(path, size)
    except OSError:
        pytest.skip(f"font {path} not installed")
    img = Image.new("L", (400, 400), 0)
    ImageDraw.Draw(img).text((200, 200), digit, fill=255, font=face, anchor="mm", stroke_width=extra, stroke_fill=255)
    return np.asarray(img, np.float32) / 255.0


def framed_width(img28: np.ndarray) -> float:
    """The pen width of a framed 28x28 digit, measured at 4x as MNIST_STROKE was."""
    from app.input.preprocess import resize, stroke_width

    return stroke_width(resize(img28, 112, 112)) / 4


def test_stroke_width_measures_the_pen():
    from app.input.preprocess import stroke_width

    for width in (6, 12, 24):
        assert stroke_width(vertical_stroke(width=width)) == pytest.approx(width, abs=1.5)
    assert stroke_width(np.zeros((10, 10))) == 0.0


def test_a_bold_printed_six_is_thinned_to_mnist_width():
    from app.input.preprocess import FRAMING, MNIST_STROKE, Framing

    bold = bold_digit("6", extra=10)
    before = framed_width(mnist_frame(bold, Framing(20, "mass", None)))
    after = framed_width(mnist_frame(bold, FRAMING["mnist"]))
    assert before > 1.5 * MNIST_STROKE  # thick strokes that close the loop
    assert abs(after - MNIST_STROKE) < 0.35 * MNIST_STROKE
    framed = mnist_frame(bold)
    top, bottom, left, right = ink_bbox(framed)
    assert max(bottom - top, right - left) == 20  # still framed as MNIST was


def test_a_hairline_drawing_is_thickened_and_a_normal_one_left_alone():
    from app.input.preprocess import FRAMING, MNIST_STROKE, Framing

    thin = np.clip(vertical_stroke(width=2) + np.rot90(vertical_stroke(width=2)), 0, 1)  # a 0.2 px pen when framed
    before, after = mnist_frame(thin, Framing(20, "mass", None)), mnist_frame(thin)
    assert framed_width(before) < 0.5 * MNIST_STROKE < framed_width(after)
    assert after.sum() > 2 * before.sum() and after.max() == pytest.approx(1.0, abs=0.05)  # full ink, like MNIST
    normal = vertical_stroke(width=24) + np.rot90(vertical_stroke(width=24))  # the canvas's default brush, ~2 px
    assert np.array_equal(mnist_frame(normal), mnist_frame(normal, Framing(20, "mass", None)))
    assert FRAMING["fashion_mnist"].stroke is None  # clothes are filled shapes, not strokes


@pytest.mark.skipif(not (SHIPPED / "mnist" / "classifier_A.safetensors").is_file(),
                    reason="shipped MNIST classifier A not present yet")
def test_bold_printed_six_and_nine_are_read_better_after_stroke_normalisation():
    import torch

    from app.input.preprocess import Framing
    from lqvae.io.checkpoint import load_checkpoint

    digits = [(d, font, 12) for d in "69" for font in ("DejaVuSans-Bold", "DejaVuSerif-Bold", "DejaVuSansMono-Bold")]
    inks = [bold_digit(d, extra, font) for d, font, extra in digits]
    labels = torch.tensor([int(d) for d, _, _ in digits])
    model = load_checkpoint(SHIPPED / "mnist" / "classifier_A.safetensors", kind="classifier").model.eval()

    def accuracy(framing) -> float:
        x = torch.from_numpy(np.stack([mnist_frame(ink, framing) for ink in inks]))[:, None]
        with torch.no_grad():
            return float((model(x).argmax(1) == labels).float().mean())

    before, after = accuracy(Framing(20, "mass", None)), accuracy(mnist_frame.__defaults__[0])
    assert after >= before + 0.5 and after >= 0.8, (before, after)  # measured: 0 / 6 before, 6 / 6 after
