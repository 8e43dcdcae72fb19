"""The row of images: original, adversarial, perturbation, purified adversarial, purified original.

Pixel-exact (nearest neighbour), each with the predicted class and its confidence, framed green when
it matches the true label and red when not. The perturbation is amplified to the full range of a
diverging map (red: the attack made the pixel brighter, blue: darker), with that legend under it and its
L-inf and L2 sizes.
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from app.render.images import ACCENT, BRIGHTER, DARKER, NEUTRAL, diverging_rgb, gray_qimage, rgb_qimage, verdict_color
from app.state.app_state import AppState
from app.panels.widgets import PixelView, faded, lines
from lqvae.spec.results import Analysis

TILES = (
    ("original", "Original", "The input as the classifier sees it (28×28, shown pixel-exact)."),
    ("adversarial", "Adversarial", "The attacked image: original + perturbation, clipped to [0, 1]."),
    ("perturbation", "Perturbation", "Adversarial − original, amplified to full colour: red = the attack made "
                                     "the pixel brighter, blue = darker, white = unchanged. ε bounds the largest "
                                     "change of any pixel (L∞) or the Euclidean size of the whole change (L2)."),
    ("purified_adversarial", "Purified adversarial", "The purifier's output for the adversarial image. LQ-VAE: "
                                                     "g(H(f(x_adv))), the image encoded to 64 bits and decoded; if "
                                                     "the bits did not flip, the attack is undone. Defense-GAN: "
                                                     "G(z*), the nearest image its generator can make."),
    ("purified_original", "Purified original", "What the purifier makes of the clean image (LQ-VAE: g(H(f(x)))). "
                                               "Its errors cost accuracy even without an attack."),
)


def failure_text(message: str) -> str:
    """Why the attack failed on this image, in the tile's words ("not adversarial within L∞ ε 0.3")."""
    text = (message or "no adversarial example found").strip()
    for engine, shown in (("linf eps", "L∞ ε"), ("l2 eps", "L2 ε"), ("Linf eps", "L∞ ε"), ("L2 eps", "L2 ε")):
        text = text.replace(engine, shown)
    return html.escape(text, quote=False)


def perturbation_legend(peak: float) -> str:
    """The colour key of the perturbation tile: which colour is brighter, which darker, and how much is full."""
    return (f"<span style='color:{BRIGHTER.name()}'>■ brighter</span> "
            f"<span style='color:{DARKER.name()}'>■ darker</span> "
            f"<span style='color:#52606d'>(full:\u00a0±{peak:.3f})</span>")


class ImageRow(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.views: dict[str, PixelView] = {}
        self.captions: dict[str, QLabel] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(2)
        for col, (key, title, tip) in enumerate(TILES):
            head = QLabel(f"<b>{title}</b>")
            head.setAlignment(Qt.AlignmentFlag.AlignCenter)
            view = PixelView(110)
            caption = QLabel("")
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            caption.setWordWrap(True)
            for w in (head, view, caption):
                w.setToolTip(tip)
            caption.setGraphicsEffect(faded(caption))
            grid.addWidget(head, 0, col)
            grid.addWidget(view, 1, col)
            grid.addWidget(caption, 2, col)
            grid.setColumnStretch(col, 1)
            self.views[key], self.captions[key] = view, caption
        # out of date: one line under the row, its height always reserved so the tiles never move
        self.stale_note = QLabel("")
        self.stale_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stale_note.setStyleSheet(f"color:{ACCENT.name()}; font-weight:bold;")
        grid.addWidget(self.stale_note, 3, 0, 1, len(TILES))
        self.stale = False
        self._fit_font()
        self.clear()
        state.imageChanged.connect(self._on_image)
        state.resultChanged.connect(self.show_result)
        state.resultStaleChanged.connect(self._on_stale)
        state.resultCleared.connect(self._on_cleared)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_font()

    def _fit_font(self) -> None:
        """Reserved heights are counted in lines, so they follow the zoom."""
        for caption in self.captions.values():
            caption.setMinimumHeight(lines(caption, 2))
        self.stale_note.setFixedHeight(lines(self.stale_note, 1) + 4)

    def clear(self) -> None:
        for key, view in self.views.items():
            view.set_image(None, None, "draw, pick a sample\nor open a file" if key == "original" else "")
            self.captions[key].setText("")

    def _on_cleared(self) -> None:
        self.clear()
        if self.state.image is not None:
            self._on_image(self.state.image)

    def _on_stale(self, stale: bool) -> None:
        """Grey the tiles of a result computed for other settings and say so; the original tile stays clear
        when it already shows the newly chosen image (only its caption then belongs to the old result)."""
        s = self.state
        self.stale = stale
        new_image = s.request is not None and s.image is not s.request.image
        for key, view in self.views.items():
            view.set_stale(stale and not (key == "original" and new_image))
        for caption in self.captions.values():
            caption.graphicsEffect().setEnabled(stale)
        text = s.stale_text(reason=True)
        self.stale_note.setText(text)
        self.stale_note.setToolTip(text)

    def _on_image(self, image) -> None:
        if self.state.is_quiet:  # a restored entry: its result follows at once, nothing goes stale
            return
        label = "" if image.label is None else f"true: {self._name(image.label)}"
        self.views["original"].set_image(gray_qimage(image.pixels), NEUTRAL)
        self.captions["original"].setText(label)

    def _name(self, k: int) -> str:
        names = self.state.class_names()
        return names[k] if 0 <= k < len(names) else str(k)

    def _caption(self, probs, label: int | None) -> tuple[str, object]:
        if probs is None:
            return "", NEUTRAL
        k = int(np.argmax(probs))
        color = verdict_color(k, label)
        return (f"<span style='color:{color.name()}'><b>{self._name(k)}</b> ({probs[k] * 100:.1f} %)</span>",
                color)

    def show_result(self, request, result: Analysis) -> None:
        label = request.image.label
        hardened = bool(request.models.hardening)
        images = {"original": result.original, "adversarial": result.adversarial,
                  "purified_adversarial": result.purified_adversarial,
                  "purified_original": result.purified_original}
        probs = {"original": result.probs_original, "adversarial": result.probs_adversarial,
                 "purified_adversarial": result.probs_purified_adversarial,
                 "purified_original": result.probs_purified_original}
        for key, img in images.items():
            text, color = self._caption(probs[key], label)
            if key == "original" and label is not None:
                text += f"<br><span style='color:#52606d'>true: {self._name(label)}</span>"
            if img is None:
                self.views[key].set_image(None, None, result.placeholder(key, hardened=hardened))
                self.captions[key].setText("")
                continue
            self.views[key].set_image(gray_qimage(img), color)
            self.captions[key].setText(text)
        if result.has_attack and result.attack_failed:
            self.captions["adversarial"].setText(self.captions["adversarial"].text() + f"<br><span style='color:"
                                                 f"{ACCENT.name()}'>attack failed: {failure_text(result.message)}"
                                                 "</span>")
        if request.defense.mode == "stochastic" and result.stochastic_probs is not None:
            votes = np.bincount(np.argmax(result.stochastic_probs, 1), minlength=len(self.state.class_names()))
            top = [f"{self._name(int(k))}×{int(votes[k])}" for k in np.argsort(-votes)[:3] if votes[k] > 0]
            key = "purified_original" if result.placeholder("purified_adversarial") else "purified_adversarial"
            self.captions[key].setText(self.captions[key].text() + f"<br>{len(result.stochastic_probs)} samples: "
                                       + ", ".join(top))
        self._show_perturbation(result)

    def _show_perturbation(self, result: Analysis) -> None:
        view, caption = self.views["perturbation"], self.captions["perturbation"]
        if not result.has_attack:
            view.set_image(None, None, result.placeholder("perturbation"))
            caption.setText("")
            return
        delta = np.asarray(result.adversarial, np.float32) - np.asarray(result.original, np.float32)
        peak = float(np.abs(delta).max())
        view.set_image(rgb_qimage(diverging_rgb(delta)), None)
        linf = result.linf if result.linf is not None else peak
        l2 = result.l2 if result.l2 is not None else float(np.sqrt((delta ** 2).sum()))
        caption.setText(f"L∞ {linf:.3f} · L2 {l2:.2f}<br>" + (perturbation_legend(peak) if peak > 0 else
                                                          "<span style='color:#52606d'>no pixel changed</span>"))
        caption.setToolTip(f"Colours amplified ×{1 / peak:.1f} so the change can be seen: full red = a pixel made "
                           f"{peak:.3f} brighter, full blue = {peak:.3f} darker, white = unchanged." if peak > 0
                           else TILES[2][2])
