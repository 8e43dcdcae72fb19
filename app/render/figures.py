"""Render the evaluation's numbers to PNG with pyqtgraph, offscreen: ``python -m app.render.figures docs/results/``.

For every group of records (dataset, classifier, attack, threat) measured at two or more ε it draws
accuracy vs ε with one line per defense; for every record with per-image bit flips it draws the
Hamming-distance histogram of the paper's Figure 3 with the 6 % line. Output: ``<folder>/figures/``
unless ``--out`` says otherwise. The same plotting code as the app's Evaluate tab.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path


def _slug(*parts) -> str:
    return "_".join(str(p).replace("/", "-").replace(" ", "") for p in parts if p not in (None, ""))


def render(folder: Path, out: Path, width: int = 900) -> list[Path]:
    import numpy as np
    import pyqtgraph as pg
    import pyqtgraph.exporters  # noqa: F401 - registers ImageExporter
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from app.panels.evaluate_tab import PALETTE, draw_histogram, make_histogram_plot
    from app.state.results import bit_flips, load_results
    from app.panels.widgets import configure_plots

    configure_plots()

    results = load_results(folder)
    for path, err in results.errors.items():
        print(f"skipped {Path(path).name}: {err}")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(plot: pg.PlotWidget, name: str) -> None:
        plot.resize(width, int(width * 0.6))
        plot.show()  # lay out at the final size (offscreen), so titles and labels are not clipped
        QApplication.processEvents()
        path = out / f"{name}.png"
        pg.exporters.ImageExporter(plot.plotItem).export(str(path))
        plot.close()
        written.append(path)

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for rec in results.records:
        if rec.get("eps") is not None:
            key = (rec["dataset"], rec.get("classifier", "A"), rec["attack"], rec.get("threat", "whitebox"))
            groups[key].append(rec)
    for (dataset, clf, attack, threat), recs in sorted(groups.items()):
        if len({float(r["eps"]) for r in recs}) < 2:
            continue
        plot = pg.PlotWidget(background="w")
        plot.setTitle(f"{dataset} · classifier {clf} · {attack.upper()} · {threat}", color="#1f2933")
        plot.setLabel("bottom", "ε")
        plot.setLabel("left", "accuracy under attack %")
        plot.setYRange(0, 100)
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.getAxis("bottom").enableAutoSIPrefix(False)
        plot.addLegend(offset=(-4, 4), labelTextColor="#1f2933")
        by_defense: dict[str, list[dict]] = defaultdict(list)
        for r in recs:
            by_defense[str(r.get("defense", "none"))].append(r)
        for i, (defense, rs) in enumerate(sorted(by_defense.items())):
            pts = sorted((float(r["eps"]), float(r["attacked_accuracy"])) for r in rs)
            xs, ys = np.array(pts).T
            style = Qt.PenStyle.DashLine if defense == "none" else Qt.PenStyle.SolidLine
            color = PALETTE[i % len(PALETTE)]
            plot.plot(xs, ys, pen=pg.mkPen(color, width=2, style=style), symbol="o", symbolBrush=color,
                      name=defense)
        save(plot, "accuracy_vs_eps_" + _slug(dataset, clf, attack, threat))
    for rec in results.records:
        flips = bit_flips(rec)
        if not flips:
            continue
        plot = make_histogram_plot()
        eps = rec.get("eps")
        title = f"{rec['dataset']} · {rec.get('defense', '')} · {rec['attack'].upper()}" + (
            f" ε={eps:g}" if eps is not None else "")
        draw_histogram(plot, flips, title)
        save(plot, "bitflips_" + _slug(rec["dataset"], rec.get("classifier"), rec.get("defense"), rec["attack"],
                                       rec.get("threat"), f"eps{eps:g}" if eps is not None else ""))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.render.figures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="folder with the evaluation JSON (e.g. docs/results/)")
    p.add_argument("--out", type=Path, default=None, help="where to write PNGs (default FOLDER/figures)")
    p.add_argument("--width", type=int, default=900)
    args = p.parse_args(argv)
    if not args.folder.is_dir():
        print(f"{args.folder}: no such folder", file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])  # noqa: F841 - pyqtgraph needs one
    written = render(args.folder, args.out or args.folder / "figures", args.width)
    for path in written:
        print(path)
    if not written:
        print(f"no records with ε curves or bit flips in {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
