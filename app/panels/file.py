"""Open an image file (button, Ctrl+O or drag and drop anywhere on the window) with an invert toggle.

Decoding runs on a worker (``app.input.image_io``); a file that cannot be used leaves the previous image in
place and says why. "Invert" is set from the auto-detection (dark ink on light paper) and can be
overridden; toggling it re-frames the same decoded image (keeping the true label chosen for it; a new file
starts with none).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QFileDialog, QLabel, QPushButton, QVBoxLayout, QWidget

from app.input.image_io import MAX_FILE_BYTES, MAX_PIXELS, SUFFIXES, LoadedImage
from app.input.preprocess import to_model_input
from app.render.images import NEUTRAL, gray_qimage
from app.state.app_state import AppState
from app.panels.true_label import TrueLabelBox
from app.panels.widgets import PixelView, plain


class FilePanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.loaded: LoadedImage | None = None
        self._new_file = True  # the next framing is a new file's: no true label yet
        self.open = QPushButton("Open image file…")
        self.open.setToolTip("PNG, JPEG, BMP, GIF, WebP or TIFF, any size up to "
                             f"{MAX_PIXELS // 1_000_000} megapixels / {MAX_FILE_BYTES // 2**20} MB (Ctrl+O). "
                             "You can also drop a file anywhere on the window.")
        self.open.clicked.connect(self.choose)
        self.invert = QCheckBox("Invert (dark ink on light paper)")
        self.invert.setToolTip("The models expect white ink on black. Set automatically from the image's border; "
                               "override it here.")
        self.invert.setEnabled(False)
        self.invert.toggled.connect(self._reframe)
        self.view = PixelView(120)
        self.view.setMaximumSize(168, 168)
        self.view.set_image(None, None, "drop an image here")
        self.info = QLabel("No file opened.")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.open)
        layout.addWidget(self.invert)
        layout.addWidget(self.view, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.info)
        self.label = TrueLabelBox(state)
        layout.addWidget(self.label)
        layout.addStretch(1)
        state.fileLoaded.connect(self._on_loaded)
        state.fileFailed.connect(self._on_failed)

    def choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an image", "",
                                              f"Images ({' '.join(SUFFIXES)});;All files (*)")
        if path:
            self.state.request_open(path)

    def _on_loaded(self, loaded: LoadedImage) -> None:
        self.loaded = loaded
        self._new_file = True
        self.invert.blockSignals(True)
        self.invert.setChecked(loaded.invert)
        self.invert.blockSignals(False)
        self.invert.setEnabled(True)
        self.info.setText(f"{plain(loaded.info)}<br>invert auto-detected: {'yes' if loaded.invert else 'no'}")
        self._reframe()

    def _on_failed(self, message: str) -> None:
        self.info.setText(f"<span style='color:#c62828'>{plain(message)}</span><br>The previous image is kept.")

    def _reframe(self, *_args) -> None:
        if self.loaded is None:
            return
        img = to_model_input(self.loaded.gray, invert=self.invert.isChecked(), dataset=self.state.models.dataset)
        self.view.set_image(gray_qimage(img), NEUTRAL)
        if not img.any():
            self.state.notify(f"{self.file_name}: no ink found after preprocessing; "
                              "try toggling Invert.", "warning")
            return
        current = self.state.image
        keep = not self._new_file and current is not None and current.source == self.file_name
        self._new_file = False
        self.state.set_image(img, current.label if keep else None, self.file_name)

    @property
    def file_name(self) -> str:
        """The opened file's name as it is on disk (colons and all)."""
        return Path(self.loaded.path).name if self.loaded is not None else ""
