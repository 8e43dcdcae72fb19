"""A banner at the top of the window for warnings and errors, so no problem is only in a log.

It keeps the last few distinct problems (errors first) until dismissed; a fresh result clears the
warnings that came before it, errors stay until the user closes the banner.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from app.state.app_state import AppState

STYLES = {"error": "background:#fde8e8; color:#8a1c1c; border:1px solid #f5b5b5;",
          "warning": "background:#fff4e0; color:#7a4b00; border:1px solid #f3cf8e;"}
KEEP = 4


class MessageBar(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.items: list[tuple[str, str]] = []  # (level, text), newest last
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.hide()
        state.message.connect(self.show_message)
        state.resultChanged.connect(lambda *_: self._drop("warning"))

    def show_message(self, level: str, text: str) -> None:
        if level not in STYLES:
            return  # info goes to the status bar only
        self.items = [item for item in self.items if item[1] != text] + [(level, text)]
        del self.items[:-KEEP]
        self._render()

    def dismiss(self) -> None:
        self.items.clear()
        self._render()

    def _drop(self, level: str) -> None:
        if any(lv == level for lv, _ in self.items):
            self.items = [item for item in self.items if item[0] != level]
            self._render()

    def _render(self) -> None:
        if not self.items:
            self.hide()
            return
        ordered = [i for i in self.items if i[0] == "error"] + [i for i in self.items if i[0] != "error"]
        worst = ordered[0][0]
        self.setStyleSheet(f"MessageBar {{{STYLES[worst]} border-radius:4px;}}")
        self.label.setText("\n".join(("✖ " if lv == "error" else "⚠ ") + text for lv, text in ordered))
        self.show()
