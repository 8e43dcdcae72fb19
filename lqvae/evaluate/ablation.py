"""Issue 7's ablation: every purifier variant measured under the same attacks, and the table of them.

``run_cells`` (``python -m lqvae.cli.ablation run --dataset mnist --variant NAME --purifier CKPT``) attacks
classifier A (or ``--classifier``) protected by the purifier checkpoint ``CKPT`` under the cells of
``CELLS`` and writes one ``python -m lqvae.evaluate run``-style JSON per cell to ``docs/results/ablation/<dataset>/<variant>/``,
plus ``variant.json`` (the checkpoint's training command, epochs, wall time and content hash, and
``--description``). Grey-box cells attack the classifier alone, so their adversarial images are the
same for every variant: they are computed once per dataset and kept in ``runs/ablation-cache/``.

``ablation_table`` (``python -m lqvae.cli.ablation table --dataset mnist``) renders the Markdown table that
:mod:`lqvae.evaluate.report` puts where the template says ``{{ablation:mnist}}``: one row per variant, one column per cell, "—"
for a cell not measured, never a typed number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from lqvae.attacks.runners import AttackResult, AttackSpec, run_attack
from lqvae.core.models import LQVAE
from lqvae.evaluate.loading import file_sha256, load_classifier, load_images, write_json
from lqvae.spec.records import accuracy_under_attack, defended_accuracy_stochastic
from lqvae.evaluate.scoring import default_batch_size, measured_lipschitz, predictions, score, subset_result
from lqvae.io.checkpoint import atomic_write, load_checkpoint, read_metadata
from lqvae.spec.attacks import END_TO_END

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


def select_cells(keys: list[str], n: dict[str, int] | None = None) -> list[Cell]:
    """The cells named by ``keys``, with ``n[key]`` images where given.

    Raises:
        ValueError: a key is not in ``CELL_KEYS`` or an n is below 1.
    """
    by_key = {c.key: c for c in CELLS}
    n = n or {}
    unknown = [k for k in [*keys, *n] if k not in by_key]
    if unknown:
        raise ValueError(f"unknown cell(s) {unknown}; expected a subset of {', '.join(CELL_KEYS)}")
    bad = {k: v for k, v in n.items() if v < 1}
    if bad:
        raise ValueError(f"a cell needs n >= 1 images, got {bad}")
    return [replace(by_key[k], n=n.get(k, by_key[k].n)) for k in keys]


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
              description: str = "", quiet: bool = False, shipped_as: str | None = None,
              progress: Callable[[str], Callable[[float], None] | None] | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Measure one purifier checkpoint under ``cells``; write and return the records by cell key.

    ``shipped_as`` names the checkpoint in ``checkpoints/<dataset>/`` this run file was shipped as (the
    app's honesty panel finds the records by that name). Unless ``quiet``, ``progress(title)`` gives each
    cell's progress callback (a ``close()`` method, if it has one, is called when the cell is done) and
    ``log`` receives one line per finished cell.

    Raises:
        FileNotFoundError: no purifier file at ``purifier_path``, or no classifier ``classifier_name``.
        lqvae.io.checkpoint.CheckpointError: the purifier file is refused.
    """
    if not Path(purifier_path).is_file():
        raise FileNotFoundError(f"no purifier checkpoint {purifier_path}")
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
    write_json(folder / "variant.json", info)
    records: dict[str, dict[str, Any]] = {}
    n_max = max(c.n for c in cells)
    all_images, all_labels = load_images(dataset, n_max, data_dir=data_dir)
    for cell in cells:
        images, labels = all_images[:cell.n], all_labels[:cell.n]
        bar = None if quiet or progress is None else progress(f"{variant} {cell.key} n={cell.n}")
        try:
            if cell.threat == "whitebox":
                result = _greybox_adversarials(cell, dataset, classifier_name, classifier_path, images, labels,
                                               classifier, bar)
            else:
                result = run_attack(cell.spec(), images, labels, classifier=classifier, purifier=purifier,
                                    progress=bar, batch_size=default_batch_size(cell.spec()))
        finally:
            if hasattr(bar, "close"):
                bar.close()  # type: ignore[union-attr]
        result = subset_result(result, cell.n)
        rec: dict[str, Any] = {"dataset": dataset, "classifier": classifier_name, "defense": variant,
                               "shipped_as": shipped_as, "attack": cell.attack, "threat": cell.threat, "preset": "paper",
                               "cell": cell.key,
                               "params": result.params, "attack_seconds": round(result.seconds, 3)}
        rec.update(score(result, images, labels, classifier=classifier, purifier=purifier,
                         stochastic=cell.threat == "bpda_eot", lipschitz=measured_lipschitz(purifier, images),
                         clean_pred=predictions(classifier, images)))
        write_json(folder / f"{cell.key}.json", rec)
        records[cell.key] = rec
        if log is not None and not quiet:
            log(f"{dataset} {variant} {cell.key} n={rec['n']}: clean purified {rec['clean_accuracy_defended']:.2f}% "
                f"defended {rec['defended_accuracy']:.2f}%")
    return records


# ----------------------------------------------------------------------------- the table
def _pct(rec: dict[str, Any] | None, value: float | None) -> str:
    return "—" if not rec or value is None else f"{value:.2f} <sub>n={rec['n']}</sub>"


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
            r = recs[c.key] or {}
            stochastic = defended_accuracy_stochastic(r)
            cell = _pct(r, accuracy_under_attack(r))
            cells.append(f"{cell} (stoch. {stochastic:.2f})" if c.threat == "bpda_eot" and stochastic is not None
                         else cell)
        # the lowest accuracy any end-to-end attack reached: an upper bound on the robust accuracy
        reached = [(accuracy_under_attack(recs[c.key] or {}), c.title) for c in CELLS if c.threat in END_TO_END]
        adaptive = [(value, title) for value, title in reached if value is not None]
        worst = f"≤ {min(adaptive)[0]:.2f} ({min(adaptive)[1]})" if adaptive else "—"
        flips = (fgsm.get("bits") or {}).get("mean_flips")
        label = f"`{v}`" + (f": {info['description']}" if info.get("description") else "")
        lines.append("| " + " | ".join([label, _pct(clean, (clean or {}).get("clean_accuracy_defended")), *cells, worst,
                                         "—" if flips is None else f"{float(flips):.1f}", _minutes(info)]) + " |")
    return "\n".join(lines)
