"""Export the current result as a case: the image row as PNG plus a JSON of the run and its numbers.

The JSON is a case file (``app.state.case_file``): besides the results it holds the input pixels, the true
label, the data set and class names, the models, the defense and the attack settings (threat, ε, seed),
so File → Open case… (or ``main.py --case``) runs it again and shows the same panels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from app.state.case_file import CASE_SCHEMA, CASE_VERSION, run_to_dict
from app.state.settings import AnalysisRequest, as_dict
from lqvae.spec.results import Analysis


def result_summary(request: AnalysisRequest, result: Analysis, class_names: list[str]) -> dict[str, Any]:
    def pred(p):
        return None if p is None else {"class": int(np.argmax(p)), "name": class_names[int(np.argmax(p))],
                                       "confidence": float(np.max(p)), "probs": np.asarray(p).round(6).tolist()}

    return {
        "schema": CASE_SCHEMA, "version": CASE_VERSION, **run_to_dict(request, class_names),
        "source": request.image.source, "true_label": request.image.label,
        "models": as_dict(request.models), "attack": as_dict(request.attack), "defense": as_dict(request.defense),
        "predictions": {"original": pred(result.probs_original), "adversarial": pred(result.probs_adversarial),
                        "purified_original": pred(result.probs_purified_original),
                        "purified_adversarial": pred(result.probs_purified_adversarial)},
        "linf": result.linf, "l2": result.l2, "hamming": result.hamming, "attack_failed": result.attack_failed,
        "message": result.message, "theorem1": result.theorem1.to_dict() if result.theorem1 is not None else None,
        "bits_original": as_dict(result.bits_original), "bits_adversarial": as_dict(result.bits_adversarial),
        "attack_ms": result.attack_ms, "purify_ms": result.purify_ms,
    }


def export(png_path: str | Path, pixmap, request: AnalysisRequest, result: Analysis,
           class_names: list[str]) -> tuple[Path, Path]:
    """Write ``png_path`` and the case JSON beside it (same stem); returns both paths."""
    png = Path(png_path).with_suffix(".png")
    if not pixmap.save(str(png), "PNG"):
        raise OSError(f"could not write {png}")
    js = png.with_suffix(".json")
    js.write_text(json.dumps(result_summary(request, result, class_names), indent=2, default=str) + "\n")
    return png, js
