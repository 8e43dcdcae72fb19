"""Every run as a thumbnail (attack, ε, predictions); clicking one restores it. Export saves the current one."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QHBoxLayout, QListView, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from app.render.images import thumbnail, verdict_color
from app.state.app_state import AppState
from app.state.settings import defense_label, short_name
from app.panels.widgets import plain
from lqvae.spec.results import Analysis


class HistoryStrip(QWidget):
    exportClicked = Signal()

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.list = QListWidget()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(False)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setIconSize(QSize(48, 48))
        self.list.setGridSize(QSize(104, 86))
        self.list.setFixedHeight(96)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.list.setToolTip("Every attack run; click one to show it again (without re-running).")
        self.list.itemClicked.connect(lambda item: state.restore(self.list.row(item)))
        self.export = QPushButton("Export…")
        self.export.setToolTip("Save the image row as PNG plus a JSON of the settings and results (Ctrl+E)")
        self.export.clicked.connect(self.exportClicked)
        self.clear = QPushButton("Clear")
        self.clear.clicked.connect(self._clear)
        buttons = QVBoxLayout()
        buttons.addWidget(self.export)
        buttons.addWidget(self.clear)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        state.historyChanged.connect(self._rebuild)
        state.resultChanged.connect(lambda *_: self._highlight())
        state.resultStaleChanged.connect(lambda _stale: self._highlight())

    def highlighted_row(self) -> int:
        """The entry marked as the one on screen (-1: none, e.g. the shown result is out of date)."""
        rows = self.list.selectedIndexes()
        return rows[0].row() if rows else -1

    def _highlight(self) -> None:
        """Select the entry the panels show, only while it matches the selected settings."""
        s = self.state
        row = next((i for i, e in enumerate(s.history) if e.request is s.request), -1)
        if row < 0 or s.stale:
            self.list.clearSelection()
            self.list.setCurrentRow(-1)
        else:
            self.list.setCurrentRow(row)

    def _clear(self) -> None:
        self.state.history.clear()
        self._rebuild()

    def _rebuild(self) -> None:
        self.list.clear()
        names = self.state.class_names()
        for entry in self.state.history:
            req = entry.request
            res: Analysis = entry.result
            label = req.image.label
            preds = res.predictions
            img = res.adversarial if res.has_attack else res.original
            icon = QIcon(thumbnail(img, 48, verdict_color(res.final_prediction, label)))
            a = req.attack
            text = f"{a.attack.upper()} {a.eps_text}\n" + "→".join(short_name(names[k])[:5] for k in preds)
            item = QListWidgetItem(icon, text)
            item.setToolTip(plain(f"{req.image.source} · {a.label()} · classifier {req.models.base} · "
                                  f"{defense_label(req.models, req.defense)}"
                                  + (f" · true {names[label]}" if label is not None else "")))
            self.list.addItem(item)
        self.list.scrollToBottom()
        self._highlight()
