"""Read the evaluation's measured numbers from ``docs/results/**/*.json`` (no Qt, no torch).

Two formats, both written by ``python -m lqvae.evaluate``:

* ``run --json``: one record: ``dataset, classifier, defense, attack, threat, params{eps}, n,
  clean_accuracy, undefended_accuracy``, with a purifier ``defended_accuracy``, and ``bits`` (Figure 3).
  Files written before those names hold ``attacked_accuracy`` (defended when there was a purifier) and
  ``attacked_accuracy_undefended``; both kinds are read (:mod:`lqvae.spec.records`);
* ``table``: ``{"table", "datasets", "columns", "rows", "cells": {"<row>|<column>": score}, "runs"}``,
  whose cells are turned into the same records (row ``fgsm/A`` or ``A/B`` or the dataset, column
  ``no_defense``/``lqvae``/``defensegan``/``madry``/``adv_tr``).

An ablation record (``python -m lqvae.cli.ablation run``) names its variant in ``defense`` and, when that
run was shipped, the checkpoint name in ``shipped_as``, which is what the app's selection matches.

Every record is normalised to ``dataset, classifier, defense, attack, threat, substitute, eps, n,
clean_accuracy, attacked_accuracy, bits, _file``, where ``attacked_accuracy`` is the accuracy under attack
of the record's own selection: through its defense when it has one, the classifier alone otherwise.
Files that are not valid JSON are reported.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lqvae.spec.records import accuracy_under_attack, has_accuracy
from lqvae.spec.defenses import HARDENINGS, hardened_name

RESULTS_ENV = "LQVAE_RESULTS"
MAX_JSON_BYTES = 20 * 1024 * 1024
CLASSIFIER_COLUMNS = {"madry": "madry", "adv_tr": "advtr"}  # table column -> classifier-side defense


def results_dir() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or Path(__file__).resolve().parents[2] / "docs" / "results")


@dataclass
class Results:
    records: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    folder: str = ""


def _record(rec: dict[str, Any], **override: Any) -> dict[str, Any]:
    params = rec.get("params") or {}
    out = {
        "dataset": rec.get("dataset"), "classifier": str(rec.get("classifier", "A")),
        "defense": rec.get("shipped_as") or rec.get("defense") or "none", "attack": rec.get("attack", params.get("attack")),
        "threat": rec.get("threat", params.get("threat", "whitebox")), "substitute": rec.get("substitute"),
        "eps": rec.get("eps", params.get("eps")), "n": rec.get("n"), "clean_accuracy": rec.get("clean_accuracy"),
        "attacked_accuracy": accuracy_under_attack(rec), "bits": rec.get("bits"),
        "hamming": rec.get("hamming"), "preset": rec.get("preset", params.get("preset")),
    }
    if out["defense"] in HARDENINGS:  # `evaluate run --defense madry`: the hardened classifier, no purifier
        out["defense"] = "none"
    out.update(override)
    return out


def _table_records(data: dict[str, Any]) -> list[dict[str, Any]]:
    table, datasets = data.get("table"), data.get("datasets") or []
    runs = data.get("runs") or {}
    out = []
    for key, cell in (data.get("cells") or {}).items():
        if "|" not in key or not isinstance(cell, dict):
            continue
        row, column = key.split("|", 1)
        if column == "no_attack":
            continue  # a clean-accuracy cell, not an attack result
        params = cell.get("params") or {}
        attacked = (runs.get(cell.get("job")) or {}).get("attacked") or "A"
        value = cell.get("value", accuracy_under_attack(cell))
        fields: dict[str, Any] = {"defense": column, "attacked_accuracy": value}
        if table in (1, 2):
            attack, clf = row.split("/", 1)
            fields.update(attack=attack, classifier=clf, dataset=datasets[0] if datasets else None)
        elif table in (4, 5):
            clf, sub = row.split("/", 1)
            fields.update(classifier=clf, substitute=sub, threat="blackbox", dataset=datasets[0] if datasets else None)
        else:  # table 7: rows are datasets
            fields.update(dataset=row, classifier=attacked)
            fields["defense"] = next((d for d in ("defensegan", "vae") if column.startswith(d)), "lqvae")
        if column == "no_defense":
            fields["defense"] = "none"
        if column in CLASSIFIER_COLUMNS:
            fields.update(defense="none", classifier=hardened_name(fields.get("classifier", "A"), CLASSIFIER_COLUMNS[column]))
        if params.get("bpda_backward") == "straight_through":
            fields["threat"] = "bpda_straight_through"  # not the default BPDA the app runs
        out.append(_record({**cell, "params": params}, **fields))
    return out


def load_results(folder: str | Path | None = None) -> Results:
    folder = Path(folder) if folder else results_dir()
    out = Results(folder=str(folder))
    if not folder.is_dir():
        return out
    for path in sorted(folder.rglob("*.json")):
        if "cache" in path.relative_to(folder).parts:
            continue  # the table command's resumable cache duplicates its tables
        try:
            if path.stat().st_size > MAX_JSON_BYTES:
                raise ValueError("file too large")
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            out.errors[str(path)] = str(exc)
            continue
        records = []
        if isinstance(data, dict) and isinstance(data.get("cells"), dict) and "table" in data:
            records = _table_records(data)
        elif isinstance(data, dict) and "attack" in data and has_accuracy(data):
            records = [_record(data)]
        elif isinstance(data, list):
            records = [_record(d) for d in data if isinstance(d, dict) and "attack" in d and has_accuracy(d)]
        elif isinstance(data, dict):  # a list of records under any key
            for value in data.values():
                if isinstance(value, list):
                    records += [_record(d) for d in value if isinstance(d, dict) and "attack" in d and has_accuracy(d)]
        for rec in records:
            if rec["dataset"] and rec["attack"] and rec["attacked_accuracy"] is not None:
                rec["_file"] = path.name
                out.records.append(rec)
    return out


def matching(results: Results, *, dataset: str, classifier: str, purifier: str | None, attack: str, threat: str,
             eps: float | None = None, substitute: str | None = None) -> list[dict[str, Any]]:
    """Records for this selection, the one closest to ``eps`` first (largest n breaks ties)."""
    defense = purifier or "none"
    hits = [r for r in results.records
            if r["dataset"] == dataset and r["attack"] == attack and r["classifier"] == classifier
            and r["defense"] == defense and r["threat"] == threat
            and (threat != "blackbox" or substitute is None or r.get("substitute") in (None, substitute))]

    def key(r: dict[str, Any]) -> tuple[float, float]:
        e = r.get("eps")
        dist = abs(float(e) - eps) if (e is not None and eps is not None) else (0.0 if e == eps else 1.0)
        return dist, -float(r.get("n") or 0)

    return sorted(hits, key=key)


def bit_flips(rec: dict[str, Any]) -> list[int] | None:
    """Per-image Hamming distances, expanded from the ``bits.hamming_histogram`` when that is what is stored."""
    ham = rec.get("hamming")
    if isinstance(ham, list) and ham:
        return [int(x) for x in ham]
    bits = rec.get("bits") or {}
    hist = bits.get("hamming_histogram") or rec.get("hamming_histogram")
    if isinstance(hist, list) and any(hist):
        return [k for k, count in enumerate(hist) for _ in range(int(count))]
    return None


def share_under(rec: dict[str, Any], fraction: float = 0.06, m: int = 64) -> float | None:
    """Percent of images with fewer than ``fraction`` of the bits flipped."""
    bits = rec.get("bits") or {}
    if bits.get("share_below_6pct") is not None and fraction == 0.06:
        return float(bits["share_below_6pct"])
    flips = bit_flips(rec)
    m = int(bits.get("latent_dim") or m)
    return 100.0 * sum(1 for h in flips if h < fraction * m) / len(flips) if flips else None
