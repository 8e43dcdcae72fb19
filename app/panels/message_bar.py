"""A message area at the top of the window for warnings and errors, so no problem is only in a log.

Its height is fixed and always reserved, empty or not, so a message appearing or going never moves any
other widget (a click aimed at a button lands on that button). It keeps the last few distinct problems,
the newest first, word-wrapped and scrollable inside the fixed area, until dismissed; a fresh result
clears the warnings that came before it, errors stay until the user closes them. Info goes to the
status bar only. An attack that fails on an image is not a problem: its tile says why.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QScrollArea, QSizePolicy, QToolButton, QWidget

from app.panels.widgets import lines
from app.state.app_state import AppState

STYLES = {"error": "background:#fde8e8; color:#8a1c1c; border:1px solid #f5b5b5;",
          "warning": "background:#fff4e0; color:#7a4b00; border:1px solid #f3cf8e;"}
EMPTY = "border:1px solid transparent;"
KEEP = 4
LINES = 2  # text lines the area shows at once; older messages scroll


class MessageBar(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.items: list[tuple[str, str]] = []  # (level, text), newest first
        self.reserved = LINES  # text lines kept free for messages
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.label)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setStyleSheet("QScrollArea, QScrollArea > QWidget > QWidget { background: transparent; }")
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss the messages")
        self.close_button.clicked.connect(self.dismiss)
        keep = self.close_button.sizePolicy()
        keep.setRetainSizeWhenHidden(True)  # hiding it must not widen the text either
        self.close_button.setSizePolicy(keep)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 3, 4, 3)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._fit_font()
        state.message.connect(self.show_message)
        state.resultChanged.connect(lambda *_: self._drop("warning"))
        self._render()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_font()

    def _fit_font(self) -> None:
        """The reserved height is ``self.reserved`` lines of the current font (it follows the zoom)."""
        self.setFixedHeight(lines(self, self.reserved) + 12)

    def set_lines(self, n: int) -> None:
        """Reserve ``n`` lines (the presentation layout keeps one; older messages scroll)."""
        self.reserved = n
        self._fit_font()

    @property
    def has_messages(self) -> bool:
        return bool(self.items)

    def show_message(self, level: str, text: str) -> None:
        if level not in STYLES:
            return  # info goes to the status bar only
        self.items = [(level, text)] + [item for item in self.items if item[1] != text]
        del self.items[KEEP:]
        self._render()

    def dismiss(self) -> None:
        self.items.clear()
        self._render()

    def _drop(self, level: str) -> None:
        if any(lv == level for lv, _ in self.items):
            self.items = [item for item in self.items if item[0] != level]
            self._render()

    def _render(self) -> None:
        worst = "error" if any(lv == "error" for lv, _ in self.items) else "warning"
        self.setStyleSheet(f"MessageBar {{{STYLES[worst] if self.items else EMPTY} border-radius:4px;}}")
        self.label.setText("\n".join(("✖ " if lv == "error" else "⚠ ") + text for lv, text in self.items))
        self.close_button.setVisible(bool(self.items))
        self.scroll.verticalScrollBar().setValue(0)  # the newest is on top
        self.setToolTip("\n".join(text for _, text in self.items))
