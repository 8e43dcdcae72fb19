"""The main window fits the screens a lecture hall has, in the normal and the presentation layout.

Every check walks the real widget tree (tiny random models, the ``window`` fixture): no two visible widgets of
one layout overlap, none sticks out of its parent, no visible text is clipped (labels, buttons, combo boxes,
spin boxes, group titles, plot titles and tick labels), no text is smaller than the floor below, and the
images and bit grids stay large.

QT_SCALE_FACTOR cannot change inside one process, but a logical size of W/s × H/s at scale 1 is the same
layout as W×H at scale s, so the in-process tests use logical sizes; ``test_real_scale_factor_1_5`` runs the
same checks in a child process started with QT_SCALE_FACTOR=1.5, and a ``main.py --screenshot`` there.

Font floors (font pixel size, in logical pixels; a capital letter is about 0.7 of it):

- Desk (normal layout): 12 px, the platform's 9 pt at 96 dpi. At 60 cm from a 24-inch 1920×1080 monitor
  (0.28 mm per pixel) a capital is 2.3 mm high and subtends 13 arc minutes, above the ~10' that reading needs.
  Nothing may be smaller than that body text (the probability axis used a fixed 8 pt = 10.7 px).
- Projector (presentation layout): height / 40. A 2 m wide 16:10 image is 1.25 m high; with the common AV
  rule of thumb that the farthest seat is at most six image heights away, the back row sits at 7.5 m. About
  10 arc minutes is the usual lower limit for reading short labels (ergonomics standards such as ANSI/HFES 100
  ask 16' for continuous reading): 7.5 m × tan(10') = 22 mm, i.e. 22 / 1250 of the image height. A capital
  is 0.7 of the font's pixel size, so the font must be 22 / 1250 / 0.7 ≈ 1/40 of the height: 20 px at
  1280×800 (1.56 mm per pixel on that 2 m screen), 27 px at 1920×1080, whatever the scale factor (the fraction
  of the height is what the back row sees).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontInfo, QImage, QPainter
from PySide6.QtWidgets import (QAbstractButton, QAbstractSpinBox, QApplication, QComboBox, QGroupBox, QLabel,
                               QLayout, QLineEdit, QMenuBar, QPushButton, QScrollArea, QStyle, QStyleOptionComboBox,
                               QStyleOptionGroupBox, QTabBar, QToolButton, QWidget)

DESK_FLOOR_PX = 12
PROJECTOR_LINES = 40  # the projector floor is the window height / this

# (physical width, height, QT_SCALE_FACTOR): the logical window is width/scale × height/scale
SCREENS = ((1280, 800, 1.0), (1920, 1080, 1.0), (1920, 1080, 1.5), (3840, 2160, 2.0))


def floor_px(height: int, presenting: bool) -> int:
    return math.ceil(height / PROJECTOR_LINES) if presenting else DESK_FLOOR_PX


# ---------------------------------------------------------------------------------------------- the checks
def _layout_widgets(layout) -> list:
    found = []
    for i in range(layout.count()):
        item = layout.itemAt(i)
        child = item.layout()
        if item.widget() is not None:
            found.append(item.widget())
        elif isinstance(child, QLayout):
            found += _layout_widgets(child)
    return found


def _name(w) -> str:
    text = ""
    for attr in ("title", "text"):
        value = getattr(w, attr, None)
        if callable(value):
            try:
                value = value()
            except TypeError:
                continue
            if isinstance(value, str) and value:
                text = value[:40]
                break
    parent = w.parentWidget()
    return f"{type(w).__name__}{'(' + repr(text) + ')' if text else ''} in {type(parent).__name__ if parent else '-'}"


def _pt_to_px(size: str) -> float:
    """A pyqtgraph size string ("10pt", "14px") in pixels (96 logical dpi)."""
    size = size.strip()
    return float(size[:-2]) * (96 / 72 if size.endswith("pt") else 1)


def overlap_problems(window) -> list[str]:
    """Visible siblings placed by one layout must not overlap, and must lie inside their parent."""
    out = []
    for parent in [window, *window.findChildren(QWidget)]:
        layout = parent.layout()
        if not parent.isVisible() or layout is None:
            continue
        # PySide wraps QStatusBar's private layout as a QSpacerItem: take its direct children instead
        placed = _layout_widgets(layout) if isinstance(layout, QLayout) else \
            parent.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
        kids = [k for k in placed if k.isVisible() and not k.isWindow()]
        inside = parent.rect()
        for i, a in enumerate(kids):
            g = a.geometry()
            if not inside.contains(g):
                out.append(f"{_name(a)} at {g.getRect()} sticks out of its parent {inside.getRect()}")
            for b in kids[i + 1:]:
                cut = g.intersected(b.geometry())
                if cut.width() > 0 and cut.height() > 0:
                    out.append(f"{_name(a)} {g.getRect()} overlaps {_name(b)} {b.geometry().getRect()}")
    return out


def _elided_on_purpose(w, shown: str) -> bool:
    full = getattr(w, "full_text", None)
    return callable(full) and full() != shown and full() in w.toolTip()


def text_problems(window, floor: int) -> list[str]:
    """No visible text is clipped or smaller than ``floor`` pixels."""
    out = []
    for w in window.findChildren(QWidget):
        if not w.isVisible() or w.isWindow():
            continue
        shows_text = False
        if isinstance(w, QLabel) and w.text():
            shows_text = True
            if w.wordWrap():
                need = w.heightForWidth(w.width())
                if need > w.height() + 1:
                    out.append(f"{_name(w)} needs {need} px of height, has {w.height()}")
            else:
                hint = w.sizeHint()
                if (hint.width() > w.width() + 1 or hint.height() > w.height() + 1) \
                        and not _elided_on_purpose(w, w.text()):
                    out.append(f"{_name(w)} needs {hint.width()}×{hint.height()}, has {w.width()}×{w.height()}")
        elif isinstance(w, (QPushButton, QToolButton)) and w.text():
            shows_text = True
            fm = w.fontMetrics()
            if fm.horizontalAdvance(w.text()) + 2 > w.width() or fm.height() > w.height():
                out.append(f"{_name(w)} needs {fm.horizontalAdvance(w.text()) + 2}×{fm.height()} for its text, "
                           f"has {w.width()}×{w.height()}")
        elif isinstance(w, QAbstractButton) and w.text():  # check boxes, radio buttons: box + text
            shows_text = True
            need = w.minimumSizeHint()
            if need.width() > w.width() + 1 or need.height() > w.height() + 1:
                out.append(f"{_name(w)} needs {need.width()}×{need.height()}, has {w.width()}×{w.height()}")
        elif isinstance(w, QComboBox) and w.currentText():
            shows_text = True
            opt = QStyleOptionComboBox()
            w.initStyleOption(opt)
            field = w.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, opt,
                                             QStyle.SubControl.SC_ComboBoxEditField, w)
            need = w.fontMetrics().horizontalAdvance(w.currentText())
            if need > field.width() + 1 and w.toolTip() != w.currentText():
                out.append(f"{_name(w)} shows {w.currentText()!r} in {field.width()} px, needs {need}")
        elif isinstance(w, QAbstractSpinBox):
            shows_text = True
            edit = w.findChild(QLineEdit)
            need = edit.fontMetrics().horizontalAdvance(edit.text()) + 4
            if need > edit.width():
                out.append(f"{_name(w)} shows {edit.text()!r} in {edit.width()} px, needs {need}")
        elif isinstance(w, QGroupBox) and w.title():
            shows_text = True
            need = w.fontMetrics().horizontalAdvance(w.title()) + 16
            if need > w.width():
                out.append(f"{_name(w)} title needs {need} px, has {w.width()}")
        elif isinstance(w, (QTabBar, QMenuBar)):
            shows_text = True
        if shows_text:
            px = QFontInfo(w.font()).pixelSize()
            if px < floor:
                out.append(f"{_name(w)}: font {px} px < {floor} px")
    return out


def plot_problems(window, floor: int) -> list[str]:
    """pyqtgraph's titles, axis labels and tick labels: large enough, inside their plot, data area not a sliver."""
    import pyqtgraph as pg

    out = []
    image = QImage(8, 8, QImage.Format.Format_ARGB32)
    for plot in window.findChildren(pg.PlotWidget):
        if not plot.isVisible():
            continue
        item = plot.getPlotItem()
        title = item.titleLabel
        if title.isVisible() and title.text:
            px = _pt_to_px(title.opts.get("size", "9pt"))
            if px < floor:
                out.append(f"plot title {title.text[:30]!r}: {px:.1f} px < {floor} px")
            where = title.item.mapRectToScene(title.item.boundingRect())
            if where.left() < -1 or where.right() > plot.width() + 1:
                out.append(f"plot title {title.text[:30]!r} at {where.left():.0f}…{where.right():.0f} is cut by "
                           f"its plot (0…{plot.width()})")
        view = item.getViewBox().sceneBoundingRect()
        if view.height() < 4 * floor or view.width() < 4 * floor:
            out.append(f"plot {title.text[:30]!r}: data area {view.width():.0f}×{view.height():.0f} is a sliver")
        for side in ("left", "bottom"):
            axis = item.getAxis(side)
            if not axis.isVisible() or not axis.style["showValues"]:
                continue
            font = axis.style["tickFont"]
            px = QFontInfo(font).pixelSize() if font is not None else QFontInfo(plot.font()).pixelSize()
            if px < floor:
                out.append(f"plot {title.text[:30]!r} {side} ticks: font {px} px < {floor} px")
            if axis.label.isVisible():
                size = axis.labelStyle.get("font-size")
                if size is None or _pt_to_px(size) < floor:
                    out.append(f"plot {title.text[:30]!r} {side} label: font {size} < {floor} px")
            painter = QPainter(image)
            specs = axis.generateDrawSpecs(painter)
            painter.end()
            if specs is None:
                continue
            bounds = axis.mapRectFromParent(axis.geometry())
            for rect, _flags, text in specs[2]:  # across the axis: along it, end labels may overhang a little
                if (side == "left" and (rect.left() < bounds.left() - 1 or rect.right() > bounds.right() + 1)) or \
                        (side == "bottom" and (rect.top() < bounds.top() - 1 or rect.bottom() > bounds.bottom() + 1)):
                    out.append(f"plot {title.text[:30]!r} {side} tick {text!r} clipped: {rect.getRect()} "
                               f"outside {bounds.getRect()}")
    return out


def help_button_problems(window) -> list[str]:
    """A panel's "?" button never covers its group box's title."""
    out = []
    for box in window.findChildren(QGroupBox):
        if not box.isVisible() or not box.title():
            continue
        opt = QStyleOptionGroupBox()
        box.initStyleOption(opt)
        title = box.style().subControlRect(QStyle.ComplexControl.CC_GroupBox, opt, QStyle.SubControl.SC_GroupBoxLabel,
                                           box)
        for button in box.findChildren(QToolButton, options=Qt.FindChildOption.FindDirectChildrenOnly):
            cut = button.geometry().intersected(title)
            if button.isVisible() and cut.width() > 0 and cut.height() > 0:
                out.append(f"the {button.text()!r} of {_name(box)} {button.geometry().getRect()} covers its title "
                           f"{title.getRect()}")
    return out


def size_problems(window, height: int, presenting: bool) -> list[str]:
    """The images and the bit grids stay large: a share of the window height, more when presenting; nothing is
    cut at the side of a scroll area, and the presentation layout does not scroll at all."""
    out = []
    for area in window.findChildren(QScrollArea):
        if area.isVisible() and area.widget() is not None and area.widget().width() > area.viewport().width() \
                and area.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff:
            out.append(f"{_name(area.widget())} is {area.widget().width()} px wide in a {area.viewport().width()} "
                       "px scroll area that cannot scroll sideways")
    page = window.tabs.widget(0)
    if presenting and page.verticalScrollBar().isVisible():
        out.append("the presentation layout scrolls")
    tile_share, grid_share = (4.5, 6) if presenting else (10, 10)
    for key, view in window.images.views.items():
        side = min(view.width(), view.height())
        if side < height / tile_share:
            out.append(f"image {key}: {side} px < height / {tile_share}")
    for name, grid in (("clean", window.bits.clean), ("adversarial", window.bits.adv)):
        side = min(grid.width(), grid.height())
        if side < height / grid_share:
            out.append(f"bit grid {name}: {side} px < height / {grid_share}")
    return out


def layout_problems(window, app, width: int, height: int, presenting: bool, tiles: bool = True) -> list[str]:
    """Every check at ``width``×``height``; ``tiles``: also the sizes of the Explore tab's images and bit grids."""
    window.resize(width, height)
    for _ in range(3):  # lay out, paint (pyqtgraph sizes its axes while painting), lay out again
        app.processEvents()
        window.grab()
    app.processEvents()
    if os.environ.get("LAYOUT_SHOTS"):  # a folder: keep what was checked, to look at
        window.grab().save(os.path.join(os.environ["LAYOUT_SHOTS"],
                                        f"{width}x{height}{'-presentation' if presenting else ''}.png"))
    out = []
    if (window.width(), window.height()) != (width, height):
        out.append(f"the window cannot be {width}×{height}: it is {window.width()}×{window.height()} "
                   f"(minimum {window.minimumSizeHint().width()}×{window.minimumSizeHint().height()})")
    floor = floor_px(height, presenting)
    out += overlap_problems(window) + text_problems(window, floor) + plot_problems(window, floor)
    out += help_button_problems(window)
    if tiles:
        out += size_problems(window, height, presenting)
    return out


def _report(results: dict[str, list[str]]) -> str:
    return "\n".join(f"{where}: {p}" for where, problems in results.items() for p in problems[:12])


def _presentation(window):
    from app.panels import presentation

    return presentation.of(window)


# ---------------------------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("presenting", [False, True], ids=["normal", "presentation"])
def test_layout_fits_every_screen(qtbot, window, presenting):
    app = QApplication.instance()
    window.state.set_attack(attack="pgd", threat="bpda", enabled=True)
    qtbot.waitUntil(lambda: window.controller.settled() and window.state.result is not None
                    and window.state.result.has_attack, timeout=60_000)
    if presenting:
        _presentation(window).set_active(True)
    results = {}
    for width, height, scale in SCREENS:
        w, h = round(width / scale), round(height / scale)
        results[f"{width}×{height}@{scale}"] = layout_problems(window, app, w, h, presenting)
    assert not any(results.values()), _report(results)


def _evaluated(qtbot, window) -> None:
    """Run a small evaluation in the Evaluate tab (FGSM and PGD at two budgets on 10 samples) and show it."""
    tab = window.evaluate
    for name, box in tab.attack_boxes.items():
        box.setChecked(name in ("fgsm", "pgd"))
    tab.n.setValue(10)
    tab.eps.setText("0.1, 0.3")
    with qtbot.waitSignal(window.state.evaluationFinished, timeout=120_000):
        tab.start()
    window.show_tab("evaluate")


@pytest.mark.slow  # ~5-14 s: in make test-all; the default run keeps a faster check of the same code
def test_evaluate_tab_after_an_evaluation_fits_every_screen_and_the_zoom(qtbot, window):
    """The Evaluate tab with its table, curves, legend and histogram drawn: nothing clipped or overlapping, no text
    under the floor, at every screen and zoomed 1.5× at 1920×1080 (a new evaluation keeps the zoomed sizes)."""
    app = QApplication.instance()
    _evaluated(qtbot, window)
    results = {}
    for width, height, scale in SCREENS:
        w, h = round(width / scale), round(height / scale)
        results[f"{width}×{height}@{scale}"] = layout_problems(window, app, w, h, False, tiles=False)
    window.presentation.set_zoom(1.5)
    _evaluated(qtbot, window)  # drawn again after the zoom: titles and legend must stay zoomed
    results["1920×1080 zoom 1.5"] = layout_problems(window, app, 1920, 1080, False, tiles=False)
    assert not any(results.values()), _report(results)
    tab = window.evaluate
    legend = tab.acc_plot.getPlotItem().legend
    sizes = {"title": _pt_to_px(tab.acc_plot.getPlotItem().titleLabel.opts["size"]),
             "legend": _pt_to_px(legend.items[0][1].opts["size"]),
             "histogram title": _pt_to_px(tab.hist_plot.getPlotItem().titleLabel.opts["size"])}
    body = QFontInfo(tab.note.font()).pixelSize()
    for what, px in sizes.items():  # were a fixed 10 pt (title) and 8 pt (legend)
        assert px >= body - 1, (what, px, body)
    for plot in (tab.acc_plot, tab.hist_plot):  # pyqtgraph's title row is 30 px: two zoomed lines need more
        title = plot.getPlotItem().titleLabel
        assert title.item.boundingRect().height() <= title.geometry().height() + 1, title.text


def test_lesson_dock_fits_every_screen(qtbot, window):
    """The lesson open beside the Explore tab (at a step and at a panel's help): the same checks, both layouts."""
    from app.panels.lesson import LessonPanel

    app = QApplication.instance()
    panel = window.findChild(LessonPanel)
    dock = panel.parentWidget()
    lesson = next(a for a in window.menu_help.actions() if a.text() == "Lesson")
    lesson.trigger()
    qtbot.waitUntil(lambda: window.controller.settled() and window.state.result is not None, timeout=60_000)

    def opened_at(w: int, h: int) -> None:  # as a lecturer does: the window at its size, then F1
        dock.close()
        app.processEvents()
        window.resize(w, h)
        app.processEvents()
        lesson.trigger()
        app.processEvents()
        if (window.width(), window.height()) != (w, h):  # opening the lesson must not grow the window
            results[f"opened at {w}×{h}"] = [f"the window grew to {window.width()}×{window.height()}"]

    results = {}
    for presenting in (False, True):
        _presentation(window).set_active(presenting)
        for width, height, scale in SCREENS:
            w, h = round(width / scale), round(height / scale)
            opened_at(w, h)
            results[f"{width}×{height}@{scale}{' presenting' if presenting else ''}"] = \
                layout_problems(window, app, w, h, presenting, tiles=False)
    _presentation(window).set_active(False)
    window.presentation.set_zoom(1.5)
    opened_at(1920, 1080)
    panel.show_help("Honesty")
    results["help, 1920×1080 zoom 1.5"] = layout_problems(window, app, 1920, 1080, False, tiles=False)
    assert panel.isVisible()
    assert not any(results.values()), _report(results)


@pytest.mark.slow  # ~5-14 s: in make test-all; the default run keeps a faster check of the same code
def test_real_scale_factor_1_5(tmp_path, app_env):
    """The same checks in a process started with QT_SCALE_FACTOR=1.5 on a 1920×1080 window, both layouts, and on
    a window zoomed before it was first shown (as ``--zoom`` does: combo boxes filled later must still fit);
    ``main.py --screenshot --size 1920x1080 --presentation`` writes that many physical pixels."""
    from tests.app.helpers import child_env, png_pixels, run_main

    env = child_env(app_env, QT_SCALE_FACTOR="1.5", QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, __file__, "1280", "720"], env=env, capture_output=True, text=True,
                          timeout=240, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"normal": [], "presentation": [], "zoomed first": [],
                                                                "ratio": 1.5}
    out = tmp_path / "presentation.png"
    proc = run_main(["--screenshot", str(out), "--size", "1920x1080", "--presentation", "--sample", "2",
                     "--attack", "fgsm"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert png_pixels(out).shape[:2] == (1080, 1920)


def _child(width: int, height: int) -> int:
    """Run in a child process: the layout checks at the real QT_SCALE_FACTOR, printed as JSON."""
    import time

    from app.engine.controller import Controller
    from app.main_window import MainWindow
    from app.state.app_state import AppState

    app = QApplication.instance() or QApplication([])
    app.setStyle("Fusion")

    def started(zoom: float = 1.0):
        state = AppState()
        window = MainWindow(state, Controller(state))
        _presentation(window).set_zoom(zoom)
        window.show()
        window.start()
        state.set_attack(attack="fgsm", enabled=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (window.controller.settled() and state.result is not None
                                                   and state.result.has_attack):
            app.processEvents()
            time.sleep(0.01)
        return window

    window = started()
    found = {"normal": layout_problems(window, app, width, height, False)}
    _presentation(window).set_active(True)
    found["presentation"] = layout_problems(window, app, width, height, True)
    found["ratio"] = window.devicePixelRatioF()
    window.controller.shutdown()
    window = started(zoom=1.25)
    found["zoomed first"] = layout_problems(window, app, round(width * 1.5), round(height * 1.5), False)
    window.controller.shutdown()
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.exit(_child(int(sys.argv[1]), int(sys.argv[2])))


# ---------------------------------------------------------------------------------------------- zoom, keys, words
def _press(qtbot, window, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    qtbot.keyClick(window, key, modifier)


def _text_sizes(window) -> dict[str, float]:
    """Pixel sizes of a label, the menu bar, a probability chart's ticks and title, and the μ plot's axis label."""
    chart = window.probs.charts["probs_original"]
    zplot = window.bits.zplot
    return {"label": QFontInfo(window.bits.hamming.font()).pixelSize(),
            "menu": QFontInfo(window.menuBar().font()).pixelSize(),
            "menu pop-up": QFontInfo(window.menu_view.font()).pixelSize(),
            "ticks": QFontInfo(chart.getAxis("bottom").style["tickFont"]).pixelSize(),
            "title": _pt_to_px(chart.getPlotItem().titleLabel.opts["size"]),
            "axis label": _pt_to_px(zplot.getAxis("bottom").labelStyle["font-size"])}


def test_zoom_keys_scale_every_text_and_plot_label_together(qtbot, window):
    from app.panels.presentation import zoom_of

    before = _text_sizes(window)
    assert before["ticks"] >= DESK_FLOOR_PX  # was a fixed 8 pt
    _press(qtbot, window, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    _press(qtbot, window, Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier)
    assert zoom_of(window) == pytest.approx(1.15 ** 2)
    after = _text_sizes(window)
    for what, px in before.items():  # every text grows by the factor (whole pixels: ±1)
        assert after[what] == pytest.approx(px * 1.15 ** 2, abs=1.0), what
    _press(qtbot, window, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert zoom_of(window) == pytest.approx(1.15)
    _press(qtbot, window, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert zoom_of(window) == 1.0 and _text_sizes(window) == before


def test_zoomed_window_still_fits(qtbot, window):
    """Zoom 1.5 at 1920×1080: larger text, still nothing overlapping, clipped or cut."""
    window.presentation.set_zoom(1.5)
    problems = layout_problems(window, QApplication.instance(), 1920, 1080, False)
    assert not problems, "\n".join(problems)


def test_image_tiles_grow_with_the_window(qtbot, window):
    app = QApplication.instance()
    sides = []
    for size in ((1280, 800), (1920, 1080), (2560, 1440)):
        window.resize(*size)
        app.processEvents()
        sides.append(min(window.images.views["adversarial"].width(), window.images.views["adversarial"].height()))
    assert sides[0] < sides[1] < sides[2], sides


def test_f11_toggles_full_screen(qtbot, window):
    _press(qtbot, window, Qt.Key.Key_F11)
    qtbot.waitUntil(window.isFullScreen, timeout=5_000)
    _press(qtbot, window, Qt.Key.Key_F11)
    qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=5_000)


def test_f10_presentation_keeps_images_predictions_bits_and_the_lecture_keys(qtbot, window):
    from app.state.settings import ATTACK_LABELS

    presentation = _presentation(window)
    attack_box, probs_box = window.attack.parentWidget(), window.probs.parentWidget()
    _press(qtbot, window, Qt.Key.Key_F10)
    assert presentation.active and presentation.present_action.isChecked()
    assert not attack_box.isVisible() and not window.models.isVisible() and not window.honesty.isVisible()
    assert not window.history.isVisible() and not window.bits.theorem.isVisible()
    for shown in (window.images, window.probs, window.bits.clean, window.bits.adv, presentation.header):
        assert shown.isVisible()
    header = presentation.header.text()
    assert "N / P" in header and "F10" in header and ATTACK_LABELS[window.state.attack.attack] in header
    first = window.state.image.source
    with qtbot.waitSignal(window.state.imageChanged, timeout=10_000):
        _press(qtbot, window, Qt.Key.Key_N)  # next sample, with the sample panel out of sight
    assert window.state.image.source != first
    with qtbot.waitSignal(window.state.runRequested, timeout=5_000):
        _press(qtbot, window, Qt.Key.Key_F5)
    _press(qtbot, window, Qt.Key.Key_F10)
    assert not presentation.active and attack_box.isVisible() and window.models.isVisible()
    page = window.images.parentWidget().layout()
    assert page.indexOf(probs_box) == 1  # the predictions are back between the images and the bits


def test_plain_words_in_the_attack_panel_and_the_image_row(qtbot, window):
    import numpy as np

    from app.render.images import BRIGHTER, DARKER, diverging_rgb

    a = window.attack
    assert [a.preset.itemText(i) for i in range(a.preset.count())] == ["live (fast)", "paper (slow)"]
    window.state.set_attack(attack="cw", eps_l2=None)
    assert a.eps_label.text() == "L2, minimal" and "smallest change" in a.eps_label.toolTip()
    window.state.set_attack(attack="fgsm", eps_linf=0.2, threat="whitebox", enabled=True)
    qtbot.waitUntil(lambda: window.controller.settled() and window.state.result is not None
                    and window.state.result.has_attack and window.state.request.attack.eps_linf == 0.2,
                    timeout=30_000)
    caption = window.images.captions["perturbation"]
    assert "brighter" in caption.text() and "darker" in caption.text() and "shown ×" not in caption.text()
    assert "amplified ×" in caption.toolTip()
    # the legend tells the truth: a pixel made brighter is drawn in BRIGHTER, a darker one in DARKER
    rgb = diverging_rgb(np.array([[0.5, -0.5]]))
    assert tuple(rgb[0, 0]) == BRIGHTER.getRgb()[:3] and tuple(rgb[0, 1]) == DARKER.getRgb()[:3]


def test_target_class_is_shown_whole(qtbot, window):
    window.state.set_models(dataset="fashion_mnist")  # no such checkpoints here: only the class names matter
    a = window.attack
    qtbot.waitUntil(lambda: a.target.itemText(0) == "0: T-shirt/top", timeout=5_000)
    window.state.set_attack(targeted=True, target=0, attack="fgsm")
    QApplication.instance().processEvents()
    opt = QStyleOptionComboBox()
    a.target.initStyleOption(opt)
    field = a.target.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, opt,
                                            QStyle.SubControl.SC_ComboBoxEditField, a.target)
    assert a.target.fontMetrics().horizontalAdvance("0: T-shirt/top") <= field.width()


def test_status_bar_message_is_never_cut_silently(qtbot, window):
    bar = window.statusBar()
    text = "attacking; " + "Defense-GAN is searching its latent space (L = 200 steps × R = 10 restarts) " * 4
    bar.showMessage(text, 0)
    QApplication.instance().processEvents()
    assert bar.currentMessage() == text
    shown = bar.message.text()
    assert shown != text and shown.endswith("…") and text in bar.message.toolTip()
    assert bar.message.geometry().right() <= bar.width()
    bar.showMessage("done", 0)
    assert bar.message.text() == "done" and bar.message.toolTip() == ""


def test_cli_size_zoom_presentation(qtbot, window, capsys):
    from app.session import apply_cli
    from main import parse_args

    args = parse_args(["--size", "1280x800", "--zoom", "1.25", "--presentation"])
    assert (args.size, args.zoom, args.presentation) == ((1280, 800), 1.25, True)
    apply_cli(window, args)
    assert (window.width(), window.height()) == (1280, 800)
    assert window.presentation.active and window.presentation.zoom == 1.25
    for bad, words in ((["--size", "big"], "expected WIDTHxHEIGHT"), (["--size", "10x10"], "outside 640x480"),
                       (["--zoom", "9"], "outside 0.5 … 4"), (["--zoom", "x"], "expected a number"),
                       (["--label", "3"], "--label 3 needs --image FILE")):
        with pytest.raises(SystemExit):
            parse_args(bad)
        assert words in capsys.readouterr().err, bad


def test_tooltips_follow_the_zoom(qtbot, window):
    from PySide6.QtWidgets import QToolTip

    window.presentation.set_zoom(1.5)
    assert QToolTip.font().pointSizeF() == pytest.approx(window.font().pointSizeF())
    assert QFontInfo(QToolTip.font()).pixelSize() >= 1.4 * DESK_FLOOR_PX
    window.presentation.reset_zoom()
    assert QToolTip.font().pointSizeF() == pytest.approx(window.font().pointSizeF())


def test_the_attack_progress_bar_shows_the_share_and_names_the_work_in_its_tooltip(qtbot, window):
    bar = window.attack.progress
    window.state.analysisProgress.emit(0.47, "attack + search")
    assert bar.text() == "47%" and "attack + search" in bar.toolTip()
    assert bar.fontMetrics().horizontalAdvance("100%") < bar.maximumWidth()


def test_history_captions_name_the_attack_plainly_and_fit_their_slot_when_zoomed(qtbot, window):
    from app.state.settings import ATTACK_NAMES

    s, strip = window.state, window.history
    for attack, changes in (("fgsm", {"threat": "bpda"}), ("deepfool", {"eps_l2": None, "threat": "whitebox"})):
        s.set_attack(attack=attack, enabled=True, **changes)
        qtbot.waitUntil(lambda: window.controller.settled() and s.request is not None and s.request.attack is not None
                        and s.request.attack.attack == attack, timeout=60_000)
    captions = [strip.list.item(i).text() for i in range(strip.list.count())]
    assert captions[-2].startswith(f"{ATTACK_NAMES['fgsm']}\nε 0.3\nBPDA")
    assert captions[-1].startswith(f"{ATTACK_NAMES['deepfool']}\nminimal\nwhite-box") and "∞" not in captions[-1]
    for zoom in (1.0, 1.5, 2.0):
        window.presentation.set_zoom(zoom)
        QApplication.instance().processEvents()
        grid, fm = strip.list.gridSize(), strip.list.fontMetrics()
        for text in captions:
            lines = text.split("\n")
            assert all(fm.horizontalAdvance(line) + 4 <= grid.width() for line in lines), (zoom, text, grid)
            assert 48 + len(lines) * fm.lineSpacing() <= grid.height(), (zoom, text, grid)
        assert strip.list.height() >= grid.height()


def test_tests_keep_off_the_real_home(app_env):
    """The history file of every test window is in the session's temp folder (make_env), never the user's."""
    from app.state.history_store import config_dir

    assert config_dir() == Path(app_env["LQVAE_CONFIG_DIR"])
    assert Path(app_env["LQVAE_CONFIG_DIR"]).parent == Path(app_env["LQVAE_SAMPLES"]).parent
