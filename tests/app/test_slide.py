"""File → Save figure…: the run as a slide figure (PNG 300 dpi, SVG, PDF), drawn from the data."""

from __future__ import annotations

import re
import types
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage, QKeySequence

from app.render import slide
from app.state.app_state import AppState
from app.state.settings import AnalysisRequest, AttackSettings, DefenseSettings, InputImage, ModelSettings
from lqvae.spec.results import Analysis


def _svg_text(path) -> str:
    """Every <text> of the SVG, in order, one space apart (wrapped lines are separate elements)."""
    texts = [el.text or "" for el in ET.parse(path).iter() if el.tag.endswith("text")]
    return " ".join(" ".join(t.split()) for t in texts)


def _pdf_title(path) -> str:
    data = path.read_bytes()
    raw = re.search(rb"/Title \((.*?)(?<!\\)\)", data, re.S).group(1)
    raw = re.sub(rb"\\(.)", rb"\1", raw, flags=re.S)  # PDF string escapes: \( \) \\
    return raw.decode("utf-16")


def _flat(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split())


@pytest.fixture
def attacked(qtbot, window):
    s = window.state
    s.set_attack(attack="fgsm", threat="whitebox", eps_linf=0.3)
    from tests.app.helpers import wait_settled

    wait_settled(qtbot, window)
    assert s.result is not None and s.result.adversarial is not None
    return window


def test_the_menu_has_save_figure_with_its_shortcut(window):
    actions = {a.text(): a for a in window.menu_file.actions()}
    assert actions["Save figure…"].shortcut() == QKeySequence("Ctrl+Shift+S")


def test_png_is_300_dpi_slide_sized_and_drawn_from_the_data(attacked, tmp_path):
    s = attacked.state
    out = slide.save_figure(attacked, str(tmp_path / "figure.png"))
    assert out == tmp_path / "figure.png"
    image = QImage(str(out))
    assert (image.width(), image.height()) == (slide.WIDTH, slide.HEIGHT) == (3000, 1450)
    assert image.dotsPerMeterX() == image.dotsPerMeterY() == 11811  # 300 dpi
    assert 16 / 9 * 0.6 < image.width() / image.height() < 16 / 9 * 1.6  # fits a 16:9 slide's width with a title
    # the first tile is the original image itself, pixel for pixel (not a screen grab of the window)
    box = slide.tile_box(0)
    left, top, cell = box.left(), box.top(), box.width() / 28
    original = np.asarray(s.result.original).reshape(28, 28)
    for r, c in ((5, 5), (14, 14), (20, 9)):
        grey = QColor(image.pixel(int(left + (c + 0.5) * cell), int(top + (r + 0.5) * cell))).red()
        assert abs(grey - original[r, c] * 255) <= 2


def test_svg_and_pdf_carry_the_caption_and_the_honesty_line(attacked, tmp_path):
    s = attacked.state
    figure = slide.build_figure(s.request, s.result, s.class_names())
    svg = slide.save_figure(attacked, str(tmp_path / "figure.svg"))
    pdf = slide.save_figure(attacked, str(tmp_path / "figure.pdf"))
    assert svg.stat().st_size > 5000 and pdf.stat().st_size > 5000
    text = _svg_text(svg)
    for part in ("FGSM", "White-box on classifier", "LQ-VAE (paper)", "MNIST, classifier A", "ε = 0.3",
                 "Original", "Purified adversarial", "One image, not a population",
                 "White-box on the classifier is not an attack on the defense", slide.LEGEND):
        assert part in text, part
    assert _flat(figure.caption) in _flat(text)
    assert pdf.read_bytes().startswith(b"%PDF") and b"/Page" in pdf.read_bytes()
    title = _flat(_pdf_title(pdf))
    assert _flat(figure.caption) in title and "One image, not a population" in title


def test_text_is_big_enough_for_a_lecture_hall_and_never_cut_off(qtbot):
    # 24 pt on a 13.33-in slide is a cap height of 1.75 % of its width (the figure's, pasted full width)
    assert slide.cap_height(slide.CAPTION_CAP) / slide.WIDTH >= 0.0175
    assert slide.cap_height(slide.PREDICTION_CAP, bold=True) / slide.WIDTH >= 0.024
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    probs = np.full(10, 0.01, np.float32)
    probs[9] = 0.91
    img = np.random.default_rng(0).random((1, 28, 28), dtype=np.float32)
    result = Analysis(img, img, img, img, probs, probs, probs, probs, linf=0.3, l2=5.1, hamming=3)
    request = AnalysisRequest(1, InputImage(img[0], 9, "a rather long file name of a photo.png", "fashion_mnist"),
                              ModelSettings("fashion_mnist", "A_madry"),
                              AttackSettings(attack="hsj", threat="whitebox", steps=5000),
                              DefenseSettings("lqvae_adv"))
    figure = slide.build_figure(request, result, names, "Over n\u00a0=\u00a010000 images, ε 0.3: 99.9\u00a0% "
                                                        "accurate under this attack.")
    assert "white-box on the classifier is not an attack" in figure.honesty.lower()
    image, bottom = slide.render(figure)
    assert slide.HEIGHT < image.height() < 1.3 * slide.HEIGHT and bottom <= image.height() - 5  # taller, not cut
    assert slide.figure_height(slide.build_figure(request, result, names)) < image.height()
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QFontMetricsF

    metrics = QFontMetricsF(slide._font(slide.TITLE_CAP))
    slot = (slide.WIDTH - 2 * slide.MARGIN) / len(figure.tiles)
    for tile in figure.tiles:  # the titles get two lines above their tiles: a third would be drawn off the top
        height = metrics.boundingRect(QRectF(0, 0, slot, 1e6), int(Qt.TextFlag.TextWordWrap), tile.title).height()
        assert height <= 2 * metrics.lineSpacing() + 1, tile.title
    wide = slide.fitted("Ankle boot", slide.PREDICTION_CAP, (slide.WIDTH - 2 * slide.MARGIN) / 5 - 60, bold=True)
    assert slide.cap_height(slide.MIN_CAP) <= wide.pixelSize() * 0.8  # shrunk to its tile, not below the floor


def test_nothing_to_save_says_so(qtbot, window):
    state = AppState()
    assert slide.save_figure(types.SimpleNamespace(state=state), "/tmp/never.png") is None
    said: list[tuple[str, str]] = []
    window.state.message.connect(lambda level, text: said.append((level, text)))
    window.state.clear_result()
    actions = {a.text(): a for a in window.menu_file.actions()}
    actions["Save figure…"].trigger()  # no dialog: there is nothing to save
    assert said[-1] == ("warning", slide.NOTHING_TO_SAVE)


@pytest.mark.parametrize("name, why", [("missing/figure.png", "No such file or directory"),
                                       ("a_folder.pdf", "Is a directory"),
                                       ("figure.jpg", "choose .png, .svg or .pdf")])
def test_an_unwritable_path_is_a_clear_message_not_a_crash(attacked, tmp_path, name, why):
    (tmp_path / "a_folder.pdf").mkdir()
    said: list[tuple[str, str]] = []
    attacked.state.message.connect(lambda level, text: said.append((level, text)))
    assert slide.save_figure(attacked, str(tmp_path / name)) is None
    level, text = said[-1]
    assert level == "error" and text.startswith("The figure was not saved.") and why in text
    assert not (tmp_path / "figure.jpg").exists()
