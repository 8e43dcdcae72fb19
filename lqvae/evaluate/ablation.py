"""Issue 7's ablation: every purifier variant measured under the same attacks, and the table of them.

``python -m lqvae.evaluate.ablation run --dataset mnist --variant NAME --purifier CKPT`` attacks classifier A
(or ``--classifier``) protected by the purifier checkpoint ``CKPT`` under the cells of ``CELLS`` and
writes one ``lqvae.cli.evaluate run``-style JSON per cell to ``docs/results/ablation/<dataset>/<variant>/``,
plus ``variant.json`` (the checkpoint's training command, epochs, wall time and content hash, and
``--description``). Grey-box cells attack the classifier alone, so their adversarial images are the
same for every variant: they are computed once per dataset and kept in ``runs/ablation-cache/``.

``python -m lqvae.evaluate.ablation table --dataset mnist`` prints the Markdown table that ``lqvae.evaluate.report``
puts where the template says ``{{ablation:mnist}}``: one row per variant, one column per cell, "—"
for a cell not measured, never a typed number.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lqvae.attacks.runners import AttackResult, AttackSpec, run_attack
from lqvae.io.checkpoint import atomic_write, load_checkpoint, read_metadata
from lqvae.io.data import DATASETS
from lqvae.core.device import DEVICE_CHOICES, resolve_device
from lqvae.evaluate.scoring import (_Bar, _write_json, default_batch_size, file_sha256, load_classifier, load_images,
                              measured_lipschitz, predictions, score, subset_result)
from lqvae.core.models import LQVAE

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results" / "ablation"
CACHE = ROOT / "runs" / "ablation-cache"


@dataclass(frozen=True)
class Cell:
    """One column of the ablation: an attack under a threat model, on the first ``n`` test images."""

    key: str
    title: str
    attack: str
    threat: str
    n: int
    restarts: int = 1

    def spec(self, seed: int = 0) -> AttackSpec:
        return AttackSpec(attack=self.attack, threat=self.threat, preset="paper", restarts=self.restarts, seed=seed)


# n follows the cost of a cell on a 2-core CPU; every table cell prints its n beside the number.
CELLS: tuple[Cell, ...] = (
    Cell("fgsm_greybox", "grey-box FGSM", "fgsm", "whitebox", 10_000),
    Cell("pgd_greybox", "grey-box PGD-100", "pgd", "whitebox", 1_000),
    Cell("deepfool_greybox", "grey-box DeepFool", "deepfool", "whitebox", 1_000),
    Cell("cw_greybox", "grey-box C&W", "cw", "whitebox", 200),
    Cell("fgsm_bpda", "BPDA FGSM", "fgsm", "bpda", 10_000),
    Cell("pgd_bpda", "BPDA PGD-100", "pgd", "bpda", 1_000),
    Cell("pgd_eot", "BPDA+EOT PGD-100", "pgd", "bpda_eot", 100),
)
CELL_KEYS = tuple(c.key for c in CELLS)


def _greybox_adversarials(cell: Cell, dataset: str, classifier_name: str, classifier_path: Path, images: torch.Tensor,
                          labels: torch.Tensor, classifier: torch.nn.Module, progress: Any) -> AttackResult:
    """The classifier-only attack of a grey-box cell, cached by classifier content, cell and n."""
    key = f"{dataset}_{classifier_name}_{cell.key}_{len(images)}_{file_sha256(classifier_path)[:16]}"
    path = CACHE / f"{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return AttackResult(adversarial=z["adversarial"], success=z["success"], failed=z["failed"], linf=z["linf"],
                                l2=z["l2"], messages=[str(m) for m in z["messages"]],
                                params=json.loads(str(z["params"])), seconds=float(z["seconds"]))
    res = run_attack(cell.spec(), images, labels, classifier=classifier, progress=progress,
                     batch_size=default_batch_size(cell.spec()))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, adversarial=res.adversarial, success=res.success, failed=res.failed, linf=res.linf, l2=res.l2,
                     messages=np.array(res.messages, dtype=str), params=json.dumps(res.params, default=str),
                     seconds=res.seconds)

    atomic_write(path, write)
    return res


def run_cells(dataset: str, variant: str, purifier_path: Path, *, cells: list[Cell], classifier_name: str = "A",
              data_dir: str | None = None, device: torch.device | None = None, out: Path = RESULTS,
              description: str = "", quiet: bool = False, shipped_as: str | None = None) -> dict[str, dict[str, Any]]:
    """Measure one purifier checkpoint under ``cells``; write and return the records by cell key.

    ``shipped_as`` names the checkpoint in ``checkpoints/<dataset>/`` this run file was shipped as (the
    app's honesty panel finds the records by that name)."""
    device = device or torch.device("cpu")
    ck = load_checkpoint(purifier_path, kind="lqvae", device=device)
    purifier: LQVAE = ck.model  # type: ignore[assignment]
    from lqvae.io.registry import inventory

    classifier_path = inventory(dataset).classifiers[classifier_name]
    classifier = load_classifier(dataset, classifier_name, device=device)
    folder = out / dataset / variant
    meta = read_metadata(purifier_path)
    info = {"variant": variant, "dataset": dataset, "description": description, "checkpoint": str(purifier_path),
            "sha256": file_sha256(purifier_path), "command": meta.get("command", ""), "epochs": meta.get("epochs"),
            "seed": meta.get("seed"), "wall_s": meta.get("wall_s"), "config": ck.model.cfg.to_dict(),
            "shipped_as": shipped_as}
    _write_json(folder / "variant.json", info)
    records: dict[str, dict[str, Any]] = {}
    n_max = max(c.n for c in cells)
    all_images, all_labels = load_images(dataset, n_max, data_dir=data_dir)
    for cell in cells:
        images, labels = all_images[:cell.n], all_labels[:cell.n]
        bar = None if quiet else _Bar(f"{variant} {cell.key} n={cell.n}")
        try:
            if cell.threat == "whitebox":
                result = _greybox_adversarials(cell, dataset, classifier_name, classifier_path, images, labels,
                                               classifier, bar)
            else:
                result = run_attack(cell.spec(), images, labels, classifier=classifier, purifier=purifier,
                                    progress=bar, batch_size=default_batch_size(cell.spec()))
        finally:
            if bar is not None:
                bar.close()
        result = subset_result(result, cell.n)
        rec: dict[str, Any] = {"dataset": dataset, "classifier": classifier_name, "defense": variant,
                               "shipped_as": shipped_as, "attack": cell.attack, "threat": cell.threat, "preset": "paper",
                               "cell": cell.key,
                               "params": result.params, "attack_seconds": round(result.seconds, 3)}
        rec.update(score(result, images, labels, classifier=classifier, purifier=purifier,
                         stochastic=cell.threat == "bpda_eot", lipschitz=measured_lipschitz(purifier, images),
                         clean_pred=predictions(classifier, images)))
        _write_json(folder / f"{cell.key}.json", rec)
        records[cell.key] = rec
        if not quiet:
            print(f"{dataset} {variant} {cell.key} n={rec['n']}: clean purified {rec.get('clean_accuracy_defended'):.2f}% "
                  f"attacked {rec['attacked_accuracy']:.2f}%", file=sys.stderr)
    return records


# ----------------------------------------------------------------------------- the table
def _pct(rec: dict[str, Any] | None, key: str = "attacked_accuracy") -> str:
    if not rec or rec.get(key) is None:
        return "—"
    return f"{float(rec[key]):.2f} <sub>n={rec['n']}</sub>"


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _minutes(info: dict[str, Any]) -> str:
    """Wall time and epochs of the variant's own training run; a fine-tune (``--init``) says what it started from."""
    try:
        text = f"{float(info['wall_s']) / 60:.0f} min, {info.get('epochs')} ep."
    except (KeyError, TypeError, ValueError):
        return "—"
    words = str(info.get("command", "")).split()
    if "--init" in words[:-1]:
        init = Path(words[words.index("--init") + 1])
        name = init.stem if "checkpoints" in init.parts else f"{init.parent.name}/{init.stem}"  # shipped, or a run
        text += f" on top of `{name}`"
    return text


def ablation_table(dataset: str, results: Path = RESULTS) -> str | None:
    """Markdown: one row per measured variant of ``dataset`` (order: ``order.json`` if present, else by name)."""
    folder = results / dataset
    if not folder.is_dir():
        return None
    variants = sorted(p.name for p in folder.iterdir() if (p / "variant.json").is_file())
    order = _load(results / "order.json") or {}
    wanted = [v for v in order.get(dataset, []) if v in variants]
    variants = wanted + [v for v in variants if v not in wanted]
    if not variants:
        return None
    head = ["variant", "clean, purified"] + [c.title for c in CELLS] + ["strongest adaptive attack",
                                                                       "bits flipped (grey-box FGSM)",
                                                                       "training (wall time, epochs)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in variants:
        info = _load(folder / v / "variant.json") or {}
        recs = {c.key: _load(folder / v / f"{c.key}.json") for c in CELLS}
        fgsm = recs.get("fgsm_greybox") or {}
        clean = next((r for r in recs.values() if r and r.get("clean_accuracy_defended") is not None), None)
        cells = []
        for c in CELLS:
            r = recs[c.key]
            if c.threat == "bpda_eot" and r and r.get("attacked_accuracy_stochastic") is not None:
                cells.append(f"{_pct(r)} (stoch. {float(r['attacked_accuracy_stochastic']):.2f})")
            else:
                cells.append(_pct(r))
        # the lowest accuracy any end-to-end attack reached: an upper bound on the robust accuracy
        adaptive = [(float(recs[c.key]["attacked_accuracy"]), c.title) for c in CELLS  # type: ignore[index]
                    if c.threat in ("bpda", "bpda_eot") and recs[c.key]
                    and recs[c.key].get("attacked_accuracy") is not None]  # type: ignore[union-attr]
        worst = f"≤ {min(adaptive)[0]:.2f} ({min(adaptive)[1]})" if adaptive else "—"
        flips = (fgsm.get("bits") or {}).get("mean_flips")
        label = f"`{v}`" + (f": {info['description']}" if info.get("description") else "")
        lines.append("| " + " | ".join([label, _pct(clean, "clean_accuracy_defended"), *cells, worst,
                                         "—" if flips is None else f"{float(flips):.1f}", _minutes(info)]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lqvae.evaluate.ablation", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="measure one purifier checkpoint under the ablation's cells")
    r.add_argument("--dataset", choices=DATASETS, required=True)
    r.add_argument("--variant", required=True, help="row name (a folder under docs/results/ablation/<dataset>/)")
    r.add_argument("--purifier", required=True, help="LQ-VAE checkpoint file")
    r.add_argument("--description", default="", help="one line for the table")
    r.add_argument("--cells", default=",".join(CELL_KEYS), help=f"comma-separated subset of {', '.join(CELL_KEYS)}")
    r.add_argument("--n", action="append", default=[], metavar="CELL=N", help="override a cell's n (repeatable)")
    r.add_argument("--shipped-as", default=None, help="the checkpoint name this file was shipped as (e.g. lqvae_adv)")
    r.add_argument("--classifier", default="A")
    r.add_argument("--data-dir", default=None)
    r.add_argument("--out", default=str(RESULTS))
    r.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--quiet", action="store_true")
    t = sub.add_parser("table", help="print the ablation table of one dataset (Markdown)")
    t.add_argument("--dataset", choices=DATASETS, required=True)
    t.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args(argv)
    if a.cmd == "table":
        table = ablation_table(a.dataset, Path(a.out))
        print(table or f"no ablation records for {a.dataset} in {a.out}")
        return 0 if table else 1
    by_key = {c.key: c for c in CELLS}
    keys = [k.strip() for k in a.cells.split(",") if k.strip()]
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        raise SystemExit(f"unknown cell(s) {unknown}; expected a subset of {', '.join(CELL_KEYS)}")
    overrides: dict[str, int] = {}
    for item in a.n:
        key, _, value = item.partition("=")
        if key not in by_key or not value.isdigit() or int(value) < 1:
            raise SystemExit(f"--n expects CELL=N with CELL in {', '.join(CELL_KEYS)} and N >= 1, got {item!r}")
        overrides[key] = int(value)
    from dataclasses import replace

    cells = [replace(by_key[k], n=overrides.get(k, by_key[k].n)) for k in keys]
    if a.threads:
        torch.set_num_threads(a.threads)
    if not Path(a.purifier).is_file():
        raise SystemExit(f"no purifier checkpoint {a.purifier}")
    run_cells(a.dataset, a.variant, Path(a.purifier), cells=cells, classifier_name=a.classifier, data_dir=a.data_dir,
              device=resolve_device(a.device), out=Path(a.out), description=a.description, quiet=a.quiet,
              shipped_as=a.shipped_as)
    return 0


if __name__ == "__main__":
    sys.exit(main())
