"""Assemble ``docs/results.md`` from its template and the tables the evaluation wrote.

``python -m lqvae.report`` replaces every ``{{name}}`` in ``docs/results.template.md`` with the
contents of ``docs/results/<name>.md`` (as written by ``python -m lqvae.evaluate table``), so the
numbers in the document are the measured ones. A placeholder whose file is missing becomes a line
saying which command produces it; the report never invents a number.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9_]+)\}\}")


def assemble(template: str, results_dir: Path) -> tuple[str, list[str]]:
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        path = results_dir / f"{name}.md"
        if not path.is_file():
            missing.append(name)
            return f"_Not measured yet: `{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}` is missing " \
                   "(run `python -m lqvae.evaluate table ...`, see the commands above)._"
        return path.read_text().strip()

    return PLACEHOLDER.sub(fill, template), missing


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=str(ROOT / "docs" / "results.template.md"))
    ap.add_argument("--results", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    a = ap.parse_args()
    text, missing = assemble(Path(a.template).read_text(), Path(a.results))
    Path(a.out).write_text(text)
    print(f"wrote {a.out}" + (f"; missing: {', '.join(missing)}" if missing else ""))
