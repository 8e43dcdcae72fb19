"""View → Zoom in / out / reset, Full screen and the Presentation layout, for a lecture hall.

Zoom (Ctrl+= or Ctrl++, Ctrl+-, Ctrl+0) sets the window's font. The panels count every text-bound size in
lines of that font (``app.panels.widgets.lines``) and every plot takes its tick labels, axis labels and title
from it (``app.panels.widgets.Plot``, ``fit_plot_fonts``), so all text grows together and the images take the
room that is left. F11 toggles full screen.

The presentation layout (F10) keeps what a projector should show large: the five images, the predictions
beside the two bit grids, and one line naming the attack and the keys. The settings column, the attack panel,
the history, the honesty panel, the μ plot and the Theorem 1 text are hidden (N / P, F5 and Esc still work:
they are window shortcuts). Its font is 1/40 of the window height times the zoom: a capital then subtends
10 arc minutes at the back row of a room six image heights deep (the reasoning is in
``tests/app/test_layout.py``). Nothing is persisted.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QFont, QKeySequence
from PySide6.QtWidgets import QBoxLayout, QLabel, QLayout, QMainWindow, QMenu, QScrollArea, QToolTip, QWidget

from app.panels.attack import MINIMAL_TEXT
from app.panels.widgets import fit_plot_fonts, plain
from app.state.settings import ATTACK_LABELS, THREAT_LABELS, defense_label

ZOOM_STEP = 1.15
ZOOM_MIN, ZOOM_MAX = 0.5, 4.0
RIGHT_CHARS = 120  # beside a side panel, the attack panel and the tabs need this many average characters of room
SPACING = 8  # between the window's columns (splitter handle, dock separator, margins), in pixels
PROJECTOR_LINES = 40  # presenting, the font's pixel size is the window height / this (× the zoom)
KEYS = "N / P: sample · F5: run · F10: leave"


def install(window: QMainWindow) -> "Presentation":
    """Add the zoom, full-screen and presentation actions to ``window.menu_view``; ``window.presentation``."""
    window.presentation = Presentation(window)
    return window.presentation


def of(window: QMainWindow) -> "Presentation":
    return window.presentation


def zoom_of(window: QMainWindow) -> float:
    """The current zoom factor (1.0: the platform's font in the normal layout, 1/40 of the height presenting)."""
    return window.presentation.zoom


class Presentation(QObject):
    zoomChanged = Signal(float)
    activeChanged = Signal(bool)

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.base = QFont(window.font())
        self.zoom = 1.0
        self.active = False
        self.header = QLabel("")
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setToolTip("The presentation layout (F10 to leave). Zoom with Ctrl+= and Ctrl+-.")
        self.header.hide()
        attack_box = window.attack.parentWidget()
        column = attack_box.parentWidget().layout()
        column.insertWidget(column.indexOf(attack_box), self.header)
        self._probs_box = window.probs.parentWidget()
        self._bits_box = window.bits.parentWidget()
        self._page = window.images.parentWidget().layout()
        self._lower = _holder(self._page, self._bits_box)
        self._probs_at = self._page.indexOf(self._probs_box)
        self._probs_stretch = self._page.stretch(self._probs_at)
        self._bits_stretch = self._lower.stretch(self._lower.indexOf(self._bits_box))
        self._column = _ancestor(window.models, QScrollArea)  # the settings column on the left
        self._right = window.tabs.parentWidget()  # the attack panel and the tabs
        self._hidden = [attack_box, window.honesty.parentWidget(), window.tabs.tabBar()]
        self.side_panel: QWidget | None = None  # a dock shown beside the tabs (the lesson), see set_side_panel
        self._actions(window)
        for signal in (window.state.attackSettingsChanged, window.state.defenseSettingsChanged,
                       window.state.modelSettingsChanged):
            signal.connect(lambda *_: self._describe())
        window.installEventFilter(self)

    def _actions(self, window: QMainWindow) -> None:
        menu = window.menu_view

        def add(text: str, keys: list[str], slot, checkable: bool = False) -> QAction:
            action = QAction(text, window)
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.setCheckable(checkable)
            action.triggered.connect(slot)
            menu.addAction(action)
            window.addAction(action)  # works while the menu bar is out of sight (full screen)
            return action

        add("Zoom in", ["Ctrl+=", "Ctrl++"], self.zoom_in)
        add("Zoom out", ["Ctrl+-"], self.zoom_out)
        add("Actual size", ["Ctrl+0"], self.reset_zoom)
        menu.addSeparator()
        self.full_screen_action = add("Full screen", ["F11"], self.toggle_full_screen, checkable=True)
        self.present_action = add("Presentation layout", ["F10"], lambda on: self.set_active(on), checkable=True)
        self.present_action.setToolTip("Large images, predictions and bit grids for a projector; the rest hidden")

    # ------------------------------------------------------------------ zoom
    def zoom_in(self) -> None:
        self.set_zoom(self.zoom * ZOOM_STEP)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom / ZOOM_STEP)

    def reset_zoom(self) -> None:
        self.set_zoom(1.0)

    def set_zoom(self, factor: float) -> None:
        self.zoom = min(ZOOM_MAX, max(ZOOM_MIN, round(factor, 4)))
        self._apply_font()
        self.zoomChanged.emit(self.zoom)

    def font_px(self) -> float:
        """The body text's pixel size now: the platform font × zoom, or presenting, 1/40 of the height × zoom."""
        if self.active:
            return math.ceil(self.window.height() / PROJECTOR_LINES) * self.zoom
        return self.base.pointSizeF() * self.window.logicalDpiY() / 72 * self.zoom

    def _apply_font(self) -> None:
        font = QFont(self.base)
        font.setPointSizeF(round(self.font_px() * 72 / self.window.logicalDpiY(), 2))
        if font.pointSizeF() == self.window.font().pointSizeF():
            return
        self.window.setFont(font)
        QToolTip.setFont(font)  # tooltips are windows of their own too: they follow the zoom here
        for menu in self.window.findChildren(QMenu):  # pop-ups are windows of their own: no font reaches them
            menu.setFont(font)
        for widget in self.window.findChildren(QWidget):
            sheet = widget.styleSheet()
            if sheet:  # a widget with a style sheet keeps the font it had when the sheet was applied: re-apply
                widget.setStyleSheet("")
                widget.setFont(QFont())
                widget.setStyleSheet(sheet)
            if hasattr(widget, "getPlotItem") and not hasattr(widget, "fit_fonts"):  # e.g. the Evaluate tab's
                fit_plot_fonts(widget)

    # ------------------------------------------------------------------ full screen, presentation
    def toggle_full_screen(self) -> None:
        w = self.window
        if w.isFullScreen():
            w.showNormal()
        else:
            w.showFullScreen()
        self.full_screen_action.setChecked(w.isFullScreen())

    def set_active(self, on: bool) -> None:
        """Switch the presentation layout on or off (the window's panels stay where they are, only hidden)."""
        if on == self.active:
            return
        self.active = on
        w = self.window
        for widget in self._hidden:
            widget.setVisible(not on)
        self._fit_column()
        if on:
            w.tabs.setCurrentIndex(0)
            self._page.removeWidget(self._probs_box)
            self._lower.insertWidget(0, self._probs_box, 2)
            self._lower.setStretchFactor(self._bits_box, 1)
        else:
            self._lower.removeWidget(self._probs_box)
            self._page.insertWidget(self._probs_at, self._probs_box, self._probs_stretch)
            self._lower.setStretchFactor(self._bits_box, self._bits_stretch)
        w.bits.set_compact(on)
        w.messages.set_lines(1 if on else 2)
        self.header.setVisible(on)
        self._describe()
        self.present_action.setChecked(on)
        self._apply_font()
        self.activeChanged.emit(on)

    def set_side_panel(self, panel: QWidget | None) -> None:
        """A dock is open beside the tabs (None: closed). While the window is too narrow for it, the settings column
        steps aside (the lesson sets the controls itself; N / P and F5 still work) and comes back when it fits."""
        self.side_panel = panel
        self._fit_column()

    def side_width(self, share: float) -> int:
        """The width for the side panel: ``share`` of the window, less if the columns beside it would get less than
        their preferred widths, never less than its own minimum."""
        side = self.side_panel
        least = side.minimumSizeHint().width() if side is not None else 0
        column = self._column.sizeHint().width() if self._column.isVisibleTo(self.window) else 0
        left = self.window.width() - column - self._right.sizeHint().width() - 4 * SPACING
        return max(least, min(round(self.window.width() * share), left))

    def _fit_column(self) -> None:
        side = self.side_panel
        right = max(self._right.minimumSizeHint().width(), self.window.fontMetrics().averageCharWidth() * RIGHT_CHARS)
        room = side is None or (self._column.sizeHint().width() + right + side.minimumSizeHint().width()
                                + 4 * SPACING <= self.window.width())
        visible = not self.active and room
        if self._column.isVisibleTo(self.window) != visible:
            self._column.setVisible(visible)

    def _describe(self) -> None:
        """The header: what is shown (attack, budget, threat, defense) and the keys that drive the lecture."""
        if not self.active:
            return
        s = self.window.state
        a = s.attack
        budget = MINIMAL_TEXT if a.eps is None else f"{a.norm} ε = {a.eps:g}"
        what = (f"{ATTACK_LABELS[a.attack]}, {budget}, {THREAT_LABELS[a.threat]}" if a.enabled else "no attack")
        self.header.setText(f"<b>{plain(what)} · defense: {plain(defense_label(s.models, s.defense))}</b>"
                            f" &nbsp; <span style='color:#52606d'>{KEYS}</span>")

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if obj is self.window and event.type() == QEvent.Type.Resize:
            if self.active:
                self._apply_font()  # the presentation font follows the window height
            self._fit_column()
        elif obj is self.window and event.type() == QEvent.Type.WindowStateChange:
            self.full_screen_action.setChecked(self.window.isFullScreen())
        return False


def _ancestor(widget: QWidget, kind: type) -> QWidget:
    while not isinstance(widget, kind):
        widget = widget.parentWidget()
    return widget


def _holder(layout: QLayout, widget: QWidget) -> QBoxLayout | None:
    """The layout (``layout`` or one nested in it) that places ``widget`` directly."""
    if layout.indexOf(widget) >= 0:
        return layout
    for i in range(layout.count()):
        child = layout.itemAt(i).layout()
        if isinstance(child, QLayout):
            found = _holder(child, widget)
            if found is not None:
                return found
    return None
