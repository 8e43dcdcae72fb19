"""Every attacked run as a thumbnail (attack, ε, threat, predictions); clicking one restores it. Export saves the
current one. Each entry names its classes with its own data set's names, and the newest is always in view;
entries of an earlier session (read from the history file) are run again when clicked."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QHBoxLayout, QListView, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from app.render.images import thumbnail, verdict_color
from app.state.app_state import AppState
from app.state.history_store import HistoryEntry
from app.state.settings import ATTACK_NAMES, DATASET_LABELS, THREAT_LABELS, THREAT_SHORT, defense_label, short_name
from app.panels.widgets import plain

ICON = 48  # the thumbnail's side in pixels (the 28×28 image, enlarged)
CAPTION_LINES = 4  # attack, budget, threat, predictions
SLOT_TEXTS = (*ATTACK_NAMES.values(), *THREAT_SHORT.values())  # the slot is as wide as the longest (or a caption)


def caption(entry: HistoryEntry) -> str:
    """Four short lines: the attack ("PGD"), its budget ("ε 0.3", or "minimal" for an unbounded L2 attack), the
    threat ("BPDA") and the predictions along the attacked path, in the entry's own class names."""
    a = entry.request.attack
    head = "" if a is None else (f"{ATTACK_NAMES.get(a.attack, a.attack)}\n"
                                 f"{'minimal' if a.eps is None else f'ε {a.eps:g}'}\n"
                                 f"{THREAT_SHORT.get(a.threat, a.threat)}")
    return head + "\n" + "→".join(short_name(entry.class_names[k])[:5] for k in entry.predictions)


def tooltip(entry: HistoryEntry) -> str:
    req, names = entry.request, entry.class_names
    a, label = req.attack, req.image.label
    parts = [req.image.source, DATASET_LABELS.get(req.models.dataset, req.models.dataset)]
    if a is not None:
        parts.append(f"{a.label()} · {THREAT_LABELS.get(a.threat, a.threat)}")
    parts += [f"classifier {req.models.classifier}", defense_label(req.models, req.defense),
              "predicted " + " → ".join(names[k] for k in entry.predictions)]
    parts.append(f"true {names[label]}" if label is not None else "true label unknown")
    tip = plain(" · ".join(parts))
    if entry.result is None:
        tip += "<br>From an earlier session: click to run it again with these settings."
    return tip


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
        self.list.setIconSize(QSize(ICON, ICON))
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.list.setToolTip("Every attack run, kept across sessions; click one to show it again.")
        self.list.itemClicked.connect(lambda item: state.restore(self.list.row(item)))
        self.export = QPushButton("Export…")
        self.export.setToolTip("Save the image row as PNG plus a JSON of the settings and results (Ctrl+E)")
        self.export.clicked.connect(self.exportClicked)
        self.clear = QPushButton("Clear")
        self.clear.setToolTip("Forget every run in the history (also the saved ones)")
        self.clear.clicked.connect(state.clear_history)
        buttons = QVBoxLayout()
        buttons.addWidget(self.export)
        buttons.addWidget(self.clear)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._fit_font()
        state.historyChanged.connect(self._rebuild)
        state.resultChanged.connect(lambda *_: self._highlight())
        state.resultStaleChanged.connect(lambda _stale: self._highlight())

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_font()

    def _fit_font(self) -> None:
        """Each slot holds the icon and ``CAPTION_LINES`` lines as wide as the longest attack name or caption line in
        the list's font, so a zoomed caption is never cut; the strip is one slot high (and its scroll bar)."""
        fm = self.list.fontMetrics()
        pad = fm.height() // 2
        texts = [*SLOT_TEXTS, *(line for i in range(self.list.count()) for line in self.list.item(i).text().split("\n"))]
        width = max(ICON, *(fm.horizontalAdvance(text) for text in texts)) + 2 * pad
        self.list.setGridSize(QSize(width, ICON + CAPTION_LINES * fm.lineSpacing() + 2 * pad))
        bar = self.list.horizontalScrollBar().sizeHint().height()
        self.list.setFixedHeight(self.list.gridSize().height() + bar + 2 * self.list.frameWidth() + 4)

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

    def _rebuild(self) -> None:
        self.list.clear()
        for entry in self.state.history:
            color = verdict_color(entry.final_prediction, entry.request.image.label)
            item = QListWidgetItem(QIcon(thumbnail(entry.shown, 48, color)), caption(entry))
            item.setToolTip(tooltip(entry))
            self.list.addItem(item)
        self._fit_font()
        self._highlight()
        QTimer.singleShot(0, self.scroll_to_newest)  # after the list has laid the new item out

    def scroll_to_newest(self) -> None:
        """Bring the newest entry into view (the strip runs left to right: scroll all the way right)."""
        if self.list.count():
            self.list.doItemsLayout()
            self.list.scrollToItem(self.list.item(self.list.count() - 1))
            bar = self.list.horizontalScrollBar()
            bar.setValue(bar.maximum())
