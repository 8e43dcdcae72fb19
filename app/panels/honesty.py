"""Honesty: the population numbers the evaluation measured beside the paper's claim, for this selection.

One success on screen is one image; this panel keeps the measured accuracy over many images (from
``docs/results``) next to it, and says "not measured yet" rather than inventing a number.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from app.render.images import ACCENT
from app.state import paper_claims as paper_claims
from app.state.results import Results, load_results, matching, share_under
from app.state.app_state import AppState
from app.state.settings import ATTACK_LABELS, CLASSIFIER_DEFENSES, DATASET_LABELS, THREAT_LABELS, defense_label
from app.panels.widgets import plain
from lqvae.spec.results import Analysis


def purifier_note(result: Analysis, class_names: list[str], dataset_label: str) -> str:
    """A plain sentence when the purifier changed the clean image's class ("" when it kept it, or there is none):
    the purifier only reproduces images like its training data, so a changed clean class means this input is
    not like them, and the defended result says little about the attack."""
    before, after = result.probs_original, result.probs_purified_original
    if before is None or after is None or int(before.argmax()) == int(after.argmax()):
        return ""
    old, new = class_names[int(before.argmax())], class_names[int(after.argmax())]
    return (f"The purifier changed this clean image's class: {old} → {new} — it is not {dataset_label}-like, so "
            "the defended predictions say little here.")


class HonestyPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.results: Results | None = None
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        reload = QPushButton("Reload results")
        reload.setToolTip("Read docs/results/*.json again (after running python -m lqvae.evaluate)")
        reload.clicked.connect(self.reload)
        scroll = QScrollArea()
        scroll.setWidget(self.text)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(scroll, 1)
        layout.addWidget(reload, 0, Qt.AlignmentFlag.AlignRight)
        self.setToolTip("Measured: accuracy under attack over many test images, from the evaluation CLI. "
                        "Paper: the number the paper reports for the same setting.")
        self._last_image_verdict = ""
        self._purifier_note = ""
        for sig in (state.modelSettingsChanged, state.attackSettingsChanged, state.defenseSettingsChanged):
            sig.connect(lambda *_: self.refresh())
        state.resultChanged.connect(self._on_result)
        state.resultCleared.connect(self._on_cleared)
        state.resultStaleChanged.connect(lambda _stale: self.refresh())
        QTimer.singleShot(300, self.refresh)  # after the window is up: reading the results is file I/O

    def reload(self) -> None:
        self.results = load_results()
        self.refresh()

    def _on_result(self, request, result: Analysis) -> None:
        survived = result.survived(request.image.label)
        self._last_image_verdict = ("" if survived is None else
                                    "This image survived the attack" if survived else "This image was fooled")
        dataset = request.models.dataset
        self._purifier_note = purifier_note(result, self.state.names_for(dataset), DATASET_LABELS[dataset])
        self.refresh()

    def _on_cleared(self) -> None:
        self._last_image_verdict = ""
        self._purifier_note = ""
        self.refresh()

    def refresh(self) -> None:
        if self.results is None:
            self.results = load_results()
        s = self.state
        m, a, d = s.models, s.attack, s.defense
        head = (f"<b>{DATASET_LABELS[m.dataset]} · classifier {plain(m.base)} · {plain(defense_label(m, d))} · "
                f"{ATTACK_LABELS[a.attack].split(' (')[0]} · {THREAT_LABELS[a.threat]}</b>")
        rows = [head]
        if s.stale:  # the image row shows a run made for other settings than those named above
            rows.append(f"<b style='color:{ACCENT.name()}'>{plain(s.stale_text())}</b>: the images show an "
                        "earlier run, not this setting.")
        if s.adaptive_is_whitebox():
            rows.append(f"<span style='color:#7a4b00'>{plain(CLASSIFIER_DEFENSES[m.hardening])} hardens the "
                        "classifier itself: the adaptive attack on it is the white-box attack on that classifier, "
                        "so that is what runs.</span>")
        eps = a.eps
        hits = matching(self.results, dataset=m.dataset, classifier=m.classifier, purifier=d.purifier,
                        attack=a.attack, threat=a.threat, eps=eps, substitute=a.substitute)
        if hits:
            r = hits[0]
            at = f", ε {r['eps']:g}" if r.get("eps") is not None else ""
            clean = f" (clean {r['clean_accuracy']:.1f} %)" if r.get("clean_accuracy") is not None else ""
            rows.append(f"Measured here: <b>{float(r['attacked_accuracy']):.1f} %</b> accurate under attack{clean} "
                        f"<span style='color:#52606d'>n = {r.get('n') or '?'}{at}, {plain(r.get('_file', ''))}</span>")
            share = share_under(r)
            if share is not None:
                rows.append(f"Bits: {share:.0f} % of images flip &lt; 6 % of the bits")
            bound = paper_claims.upper_bound_note(d.purifier, m.classifier, a.threat)
            if bound:
                rows.append(f"<span style='color:#7a4b00'>{plain(bound)}</span>")
        else:
            rows.append("Measured here: <i>not measured yet</i> "
                        "<span style='color:#52606d'>(python -m lqvae.evaluate run … --json docs/results/…)</span>")
        c = paper_claims.claim(m.dataset, m.classifier, d.purifier, a.attack, a.threat, a.substitute)
        rows.append(f"Paper claims: <b>{c[0]:.2f} %</b> <span style='color:#52606d'>({c[1]})</span>" if c else
                    "Paper claims: <i>no number for this setting</i>")
        note = paper_claims.comparison_note(d.purifier)
        if c and note:
            rows.append(f"<span style='color:#7a4b00'>{plain(defense_label(m, d))}: {note}.</span>")
        caveat = paper_claims.threat_caveat(d.purifier, a.threat)
        if caveat:
            rows.append(f"<span style='color:#7a4b00'>{plain(caveat)}</span>")
        if self._purifier_note and not s.stale:
            rows.append(f"<b style='color:#c62828'>{plain(self._purifier_note)}</b>")
        if self._last_image_verdict and not s.stale:
            rows.append(f"{self._last_image_verdict} — one image, not a population.")
        self.text.setText("<br>".join(rows))
