"""``python -m lqvae.cli.report``: assemble ``docs/results.md`` from its template (:mod:`lqvae.evaluate.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lqvae.cli import errors_exit
from lqvae.evaluate.report import ROOT, assemble


def main(argv: list[str] | None = None) -> list[str]:
    from lqvae.evaluate import report

    ap = argparse.ArgumentParser(prog="python -m lqvae.cli.report", description=report.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=str(ROOT / "docs" / "results.template.md"))
    ap.add_argument("--results", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    a = ap.parse_args(argv)
    with errors_exit():
        text, missing = assemble(Path(a.template).read_text(), Path(a.results))
        Path(a.out).write_text(text)
    print(f"wrote {a.out}" + (f"; missing: {', '.join(missing)}" if missing else ""))
    return missing


if __name__ == "__main__":
    main()
