"""The guided lesson and the panels' help, in a side panel an audience can read (not in tooltips).

``install(window)`` adds a dock on the right with :class:`LessonPanel`, Help → Lesson (F1), Help → Panels,
a "?" button in the corner of each explained group box, and Page Down / Page Up (a presenter's clicker) for
Next / Back while the lesson is open. The words and the settings of every step are in
:mod:`app.state.lesson`; this file only shows them. Everything is shown as plain text, so a checkpoint or
file name is never rendered as markup.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from shiboken6 import isValid
from PySide6.QtGui import QColor, QFont, QKeySequence, QPainter, QPen, QShortcut
from PySide6.QtWidgets import (QApplication, QDockWidget, QFrame, QGroupBox, QHBoxLayout, QLabel, QMainWindow, QPushButton,
                               QScrollArea, QStackedWidget, QToolButton, QVBoxLayout, QWidget)

from app.state.app_state import AppState
from app.state.lesson import INTRO, PANEL_HELP, STEPS, apply_step, population_lines, step_text
from app.state.results import Results, load_results

HIGHLIGHT = QColor("#d97706")  # the outline of the panel a step points at
# text sizes as multiples of the font the panel inherits, so they follow the window's zoom
SCALES = {"counter": 1.3, "heading": 2.2, "body": 1.7, "numbers": 1.4, "buttons": 1.5}
# presenting, the window's font is already sized for the back row (1/40 of the height): the lesson uses it as it is
PRESENTING_SCALES = {"counter": 1.0, "heading": 1.3, "body": 1.0, "numbers": 1.0, "buttons": 1.0}
MIN_CHARS = 30  # the panel's least width, in average characters of the window's font (the text wraps)
DOCK_SHARE = 0.3  # the share of the window's width the dock takes when it opens beside the tabs
SUBTITLE_SHARE = 0.25  # presenting, the share of the window's height it takes under the images
HELP_BUTTON = "QToolButton { border: 1px solid #7b8794; border-radius: 4px; font-weight: bold; color: #323f4b; }"


def _label() -> QLabel:
    label = QLabel("")
    label.setTextFormat(Qt.TextFormat.PlainText)  # names from files and checkpoints are shown, never rendered
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class LessonPanel(QWidget):
    """One step of the lesson, or one panel's help, in large plain text, with Back / Next / Run.

    ``groups`` maps a group box's title to the box, so a step can mark the panel it talks about."""

    def __init__(self, state: AppState, groups: dict[str, QGroupBox] | None = None,
                 parent: QWidget | None = None, results_source: Callable[[], Results | None] | None = None) -> None:
        super().__init__(parent)
        self.results_source = results_source  # the Honesty panel's copy: one read, and its Reload reaches here
        self.state = state
        self.groups = groups or {}
        self.index: int | None = None  # the lesson's step; None before it starts
        self.topic: str | None = None  # the PANEL_HELP key shown instead of the step; None: the step
        self.results: Results | None = None  # read when a step first needs the measured numbers
        self.scales = SCALES
        self.outline = _Outline(self)
        self.counter = _label()
        self.counter.setStyleSheet("color:#52606d")
        self.heading = _label()
        self.body = _label()
        self.numbers = _label()  # the measured numbers beside the paper's, on the step that shows them
        text = QWidget()
        column = QVBoxLayout(text)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.body)
        column.addWidget(self.numbers)
        column.addStretch(1)
        self.scroll = scroll = QScrollArea()
        scroll.setWidget(text)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.back = QPushButton("◀ Back")
        self.back.setToolTip("The previous step (Page Up)")
        self.next = QPushButton("Next ▶")
        self.next.setToolTip("The next step (Page Down)")
        self.resume = QPushButton("Back to the lesson")
        self.run = QPushButton("Run")
        self.run.setToolTip("Run the attack now (Ctrl+R)")
        for button in (self.back, self.next, self.resume, self.run):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the window's shortcuts
        buttons = QHBoxLayout()
        buttons.addWidget(self.back)
        buttons.addWidget(self.next)
        buttons.addWidget(self.resume)
        buttons.addStretch(1)
        buttons.addWidget(self.run)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.addWidget(self.counter)
        layout.addWidget(self.heading)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)
        self.back.clicked.connect(self.go_back)
        self.next.clicked.connect(self.go_next)
        self.resume.clicked.connect(self.resume_lesson)
        self.run.clicked.connect(lambda: state.request_run(False))
        for signal in (state.modelSettingsChanged, state.attackSettingsChanged, state.engineInfoChanged):
            signal.connect(lambda *_: self.refresh())  # the dataset, the EOT draws, what is installed
        self._scale_fonts()
        self.refresh()

    # ------------------------------------------------------------------ moving through the lesson
    def go(self, index: int) -> None:
        """Show step ``index`` (clamped to the lesson) and put its settings on the state."""
        self.index, self.topic = max(0, min(index, len(STEPS) - 1)), None
        apply_step(STEPS[self.index], self.state)
        self.refresh()

    def go_next(self) -> None:
        """The next step; from a panel's help or before the start, back to the lesson's own step."""
        self._move(+1)

    def go_back(self) -> None:
        self._move(-1)

    def _move(self, delta: int) -> None:
        if self.topic is not None or self.index is None:
            self.resume_lesson()
        else:
            self.go(self.index + delta)

    def resume_lesson(self) -> None:
        self.go(self.index or 0)

    def show_help(self, title: str) -> None:
        """Show the explanation of the panel whose group box is titled ``title`` (a PANEL_HELP key)."""
        self.topic = title
        self.refresh()

    # ------------------------------------------------------------------ drawing
    def refresh(self) -> None:
        helping = self.topic is not None or self.index is None
        self._fit_buttons()
        self.back.setVisible(not helping)
        self.next.setVisible(not helping)
        self.resume.setVisible(helping)
        self.resume.setText("Start the lesson" if self.index is None else "Back to the lesson")
        self.numbers.setVisible(False)
        if self.topic is not None:
            topic = PANEL_HELP[self.topic]
            self.counter.setText("About this panel")
            self.heading.setText(topic.heading)
            self.body.setText(topic.text)
            self._mark(self.topic)
        elif self.index is None:
            self.counter.setText(f"A lesson in {len(STEPS)} steps")
            self.heading.setText(INTRO.heading)
            self.body.setText(INTRO.text)
            self._mark(None)
        else:
            step = STEPS[self.index]
            self.counter.setText(f"Step {self.index + 1} of {len(STEPS)} · look at: {step.panel}")
            self.heading.setText(step.title)
            self.body.setText(step_text(step, self.state))
            if step.numbers:
                shared = self.results_source() if self.results_source is not None else None
                if shared is not None:
                    self.results = shared
                elif self.results is None:
                    self.results = load_results()  # the files the Honesty panel reads
                self.numbers.setText("\n".join(population_lines(self.state, self.results)))
                self.numbers.setVisible(True)
            self.back.setEnabled(self.index > 0)
            self.next.setEnabled(self.index < len(STEPS) - 1)
            self._mark(step.panel)

    def _fit_buttons(self) -> None:
        """Each button at least as wide as its (large) text, so a narrow panel never cuts it."""
        for button, text in ((self.back, self.back.text()), (self.next, self.next.text()),
                             (self.resume, "Back to the lesson"), (self.run, self.run.text())):
            fm = button.fontMetrics()
            button.setMinimumWidth(fm.horizontalAdvance(text) + fm.height())

    def _mark(self, title: str | None) -> None:
        """Outline the group box the text talks about, so the audience knows where to look."""
        box = self.groups.get(title or "") if self.isVisible() else None
        self.outline.cover(box)
        if box is not None:
            _bring_into_view(box)

    @property
    def marked(self) -> QGroupBox | None:
        """The group box outlined now (None: none)."""
        box = self.outline.parentWidget()
        return box if isinstance(box, QGroupBox) and self.outline.isVisible() else None

    def _scale_fonts(self) -> None:
        """Large text for a lecture hall, in proportion to the panel's own (zoomable) font."""
        base = self.font()
        k = self.scales
        sizes = [(self.counter, k["counter"], False), (self.heading, k["heading"], True), (self.body, k["body"], False),
                 (self.numbers, k["numbers"], False)]
        sizes += [(b, k["buttons"], False) for b in (self.back, self.next, self.resume, self.run)]
        for widget, scale, bold in sizes:
            font = QFont(base)
            font.setPointSizeF(base.pointSizeF() * scale)
            font.setBold(bold)
            widget.setFont(font)
        self._fit_buttons()
        chars = 0 if self.scales is PRESENTING_SCALES else MIN_CHARS  # presenting, it spans the window
        gap, m = self.layout().spacing(), self.layout().contentsMargins()
        steps = sum(b.minimumWidth() for b in (self.back, self.next, self.run)) + 3 * gap
        buttons = max(steps, self.resume.minimumWidth() + self.run.minimumWidth() + 2 * gap) + m.left() + m.right()
        self.setMinimumWidth(max(self.fontMetrics().averageCharWidth() * chars, buttons))
        self.scroll.setMinimumHeight(self.body.fontMetrics().lineSpacing() * 2)  # it scrolls below two lines

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API: as narrow as it may be; the window gives it its share
        return QSize(self.minimumWidth(), super().sizeHint().height())

    def set_presenting(self, on: bool) -> None:
        """In the presentation layout the text keeps the window's (projector-sized) font; else it is enlarged."""
        self.scales = PRESENTING_SCALES if on else SCALES
        self.counter.setVisible(not on)  # as subtitles: the heading, the text and the keys only
        margin = 4 if on else 12
        self.layout().setContentsMargins(margin, margin, margin, margin)
        self._scale_fonts()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._scale_fonts()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self.refresh()

    def hideEvent(self, event) -> None:  # noqa: N802
        super().hideEvent(event)
        self._mark(None)


class _Outline(QWidget):
    """A frame drawn over a group box (it takes no clicks), moved from box to box; the box's style is untouched."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()

    def cover(self, box: QWidget | None) -> None:
        old = self.parentWidget()
        if old is not None and old is not box:
            old.removeEventFilter(self)
        if box is None:
            self.hide()
            return
        if old is not box:
            self.setParent(box)
            box.installEventFilter(self)
        self.setGeometry(box.rect())
        self.show()
        self.raise_()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Resize and obj is self.parentWidget():
            self.setGeometry(obj.rect())
        return False

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setPen(QPen(HIGHLIGHT, 4))
        p.drawRoundedRect(self.rect().adjusted(2, 2, -2, -2), 4, 4)
        p.end()


def _bring_into_view(widget: QWidget) -> None:
    """Show the tab page that holds ``widget`` and scroll every scroll area around it to it."""
    child, parent = widget, widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QStackedWidget) and parent.indexOf(child) >= 0:
            parent.setCurrentWidget(child)  # a QTabWidget's pages are a QStackedWidget's
        elif isinstance(parent, QScrollArea):
            parent.ensureWidgetVisible(widget, 0, 0)
        child, parent = parent, parent.parentWidget()


class _Corner(QObject):
    """Keeps a "?" button in the top-right corner of its group box as the box resizes."""

    def __init__(self, button: QToolButton, box: QGroupBox) -> None:
        super().__init__(box)
        self.button = button
        box.installEventFilter(self)
        self.place(box)

    def place(self, box: QGroupBox) -> None:
        side = box.fontMetrics().height() + 2  # follows the font (and the window's zoom)
        self.button.setFixedSize(side, side)
        self.button.move(box.width() - side - 4, 0)
        self.button.raise_()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() in (QEvent.Type.Resize, QEvent.Type.FontChange):
            self.place(obj)
        return False


def _help_button(box: QGroupBox, open_help) -> QToolButton:
    button = QToolButton(box)
    button.setText("?")
    button.setStyleSheet(HELP_BUTTON)
    button.setToolTip(f"What the {box.title()} panel shows (opens in the Lesson panel)")
    button.setAccessibleName(f"Help: {box.title()}")
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    button.clicked.connect(lambda: open_help(box.title()))
    _Corner(button, box)
    return button


def install(window: QMainWindow) -> LessonPanel:
    """Add the lesson dock, Help → Lesson (F1) and Help → Panels, a "?" on each explained panel, and Page Down /
    Page Up for Next / Back while the lesson is open. Group boxes are found by their titles (PANEL_HELP's keys)."""
    groups = {box.title(): box for box in window.findChildren(QGroupBox) if box.title() in PANEL_HELP}
    panel = LessonPanel(window.state, groups, results_source=lambda: getattr(window.honesty, "results", None))
    dock = QDockWidget("Lesson", window)
    dock.setObjectName("lesson")
    dock.setWidget(panel)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetClosable | QDockWidget.DockWidgetFeature.DockWidgetMovable)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    dock.hide()

    def show_dock() -> None:
        size = window.size()
        if not dock.isVisible() and not dock.isFloating() and not window.presentation.active:
            window.presentation.set_side_panel(dock)  # make room first (the settings column may step aside)
            QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)  # ... and let the layouts see it now
        dock.show()
        dock.raise_()
        if window.size() != size:  # a dock shown again asks for its old room: the window keeps its own size
            window.layout().activate()  # its minimum as it is now (without the settings column, if that stepped aside)
            window.resize(size)

    def open_lesson() -> None:
        show_dock()
        if panel.index is None:
            panel.go(0)

    def open_help(title: str) -> None:
        show_dock()
        panel.show_help(title)

    window.menu_help.addAction("Lesson", QKeySequence("F1"), open_lesson)
    topics = window.menu_help.addMenu("Panels")
    for title in PANEL_HELP:
        topics.addAction(PANEL_HELP[title].heading, lambda t=title: open_help(t))
    for box in groups.values():
        _help_button(box, open_help)
    keys = [QShortcut(QKeySequence(Qt.Key.Key_PageDown), window, panel.go_next),
            QShortcut(QKeySequence(Qt.Key.Key_PageUp), window, panel.go_back)]
    for key in keys:
        key.setEnabled(False)  # Page Up / Down keep their usual meaning while the lesson is closed
    dock.visibilityChanged.connect(lambda visible: [key.setEnabled(visible) for key in keys])
    present = window.presentation
    moving = []  # re-entrance guard: moving the dock hides and shows it

    def fit() -> None:
        """Beside the tabs, a fair share of the window's width (the settings column steps aside if it must);
        presenting, under the images as subtitles, so the five images and the predictions keep the full width."""
        if moving or not isValid(window):  # the window is being destroyed: its docks hide as it goes
            return
        open_ = dock.isVisible() and not dock.isFloating()
        panel.set_presenting(present.active)
        area = Qt.DockWidgetArea.BottomDockWidgetArea if present.active else Qt.DockWidgetArea.RightDockWidgetArea
        if open_ and window.dockWidgetArea(dock) != area:
            moving.append(True)
            window.addDockWidget(area, dock)  # moves it
            dock.show()
            moving.clear()
        present.set_side_panel(dock if open_ and not present.active else None)
        if open_ and present.active:
            room = window.centralWidget().height() + dock.height() - window.centralWidget().minimumSizeHint().height()
            height = max(dock.minimumSizeHint().height(), min(round(window.height() * SUBTITLE_SHARE), room))
            window.resizeDocks([dock], [height], Qt.Orientation.Vertical)
        elif open_:
            window.resizeDocks([dock], [present.side_width(DOCK_SHARE)], Qt.Orientation.Horizontal)

    dock.visibilityChanged.connect(lambda _visible: fit())
    present.activeChanged.connect(lambda _on: fit() if dock.isVisible() else None)
    return panel


__all__ = ["LessonPanel", "install"]
