"""Assemble ``docs/results.md`` from its template and the tables the evaluation wrote.

``python -m lqvae.cli.report`` replaces every ``{{name}}`` in ``docs/results.template.md`` with the
contents of ``docs/results/<name>.md`` (as written by ``python -m lqvae.evaluate table``), so the
numbers in the document are the measured ones. ``{{runs:PREFIX}}`` becomes a table of every
``docs/results/PREFIX*.json`` written by ``python -m lqvae.evaluate run --json``, and
``{{json:FILE:KEY}}`` one number of ``docs/results/FILE.json`` (a benchmark's output), and
``{{ablation:DATASET}}`` issue 7's ablation table from ``docs/results/ablation/DATASET/``
(:mod:`lqvae.evaluate.ablation`). A placeholder whose file is missing becomes a line saying which command produces it; the report never invents a number.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lqvae.spec.records import accuracy_under_attack, has_accuracy, undefended_accuracy

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\{\{((?:runs:|ablation:|json:[A-Za-z0-9_]+:)?[A-Za-z0-9_]+)\}\}")


def _f(v: object) -> str:
    return "—" if v is None else f"{float(v):.2f}"  # type: ignore[arg-type]


def runs_table(results_dir: Path, prefix: str) -> str | None:
    """A Markdown table of the ``evaluate run`` records whose file names start with ``prefix``."""
    rows = []
    for path in sorted(results_dir.glob(f"{prefix}*.json")):
        try:
            r = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(r, dict) or not has_accuracy(r):
            continue
        bits = r.get("bits") or {}
        if r.get("clean_accuracy_defended") is None and r.get("defense") in ("madry", "advtr"):
            r["clean_accuracy_defended"] = r.get("clean_accuracy")  # the hardened classifier is the defense
        rows.append(f"| {r.get('dataset')} | {r.get('defense')} | {r.get('attack')} | {r.get('threat')} | {r.get('n')} | "
                    f"{_f(r.get('clean_accuracy_defended'))} | {_f(undefended_accuracy(r))} | "
                    f"{_f(accuracy_under_attack(r))} | {_f(bits.get('mean_flips'))} | `{path.name}` |")
    if not rows:
        return None
    head = ("| dataset | defense | attack | threat | n | clean, defended | attacked, no defense | attacked, defended "
            "| mean bits flipped | file |\n|---|---|---|---|---|---|---|---|---|---|")
    return head + "\n" + "\n".join(rows)


def json_value(results_dir: Path, file: str, key: str) -> str | None:
    """One number of ``docs/results/<file>.json`` (a benchmark's output), rounded for prose."""
    try:
        v = json.loads((results_dir / f"{file}.json").read_text())[key]
        v = float(v)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}"


def assemble(template: str, results_dir: Path) -> tuple[str, list[str]]:
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("json:"):
            _, file, key = name.split(":")
            value = json_value(results_dir, file, key)
            if value is None:
                missing.append(name)
                return f"_(not measured: no `{key}` in `{file}.json`)_"
            return value
        if name.startswith("ablation:"):
            from lqvae.evaluate.ablation import ablation_table

            table = ablation_table(name[9:], results_dir / "ablation")
            if table is None:
                missing.append(name)
                return f"_Not measured yet: no `ablation/{name[9:]}/` records from `python -m lqvae.cli.ablation run`._"
            return table
        if name.startswith("runs:"):
            table = runs_table(results_dir, name[5:])
            if table is None:
                missing.append(name)
                return f"_Not measured yet: no `{name[5:]}*.json` from `python -m lqvae.evaluate run --json`._"
            return table
        path = results_dir / f"{name}.md"
        if not path.is_file():
            missing.append(name)
            return f"_Not measured yet: `{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}` is missing " \
                   "(run `python -m lqvae.evaluate table ...`, see the commands above)._"
        return path.read_text().strip()

    return PLACEHOLDER.sub(fill, template), missing

