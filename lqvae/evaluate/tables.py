"""Reproducing the paper's tables: which attack runs a table needs, running them resumably, and rendering.

``table_jobs`` plans the runs of Table 1, 2, 4, 5 or 7 on one dataset: each :class:`Job` attacks a model
once and scores the table cells that share its adversarial images. ``run_table`` runs them, keeping every
finished run in a JSON cache (reused when the images, the attack's settings and the checkpoints' content
are the same), and ``build_table`` renders Markdown, CSV and JSON with the paper's numbers alongside
(:mod:`lqvae.spec.paper`). Baseline columns (Defense-GAN, Madry, adversarial training) are filled when
their checkpoints exist (``BASELINE_PURIFIERS``, ``BASELINE_CLASSIFIERS``) and shown as "—" otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from lqvae.attacks.runners import AttackSpec, attack_params, run_attack
from lqvae.evaluate.loading import file_sha256, load_classifier, load_defense, load_images, write_json
from lqvae.spec.records import accuracy_under_attack
from lqvae.core import distributed
from lqvae.evaluate.scoring import (attack_in_chunks, default_batch_size, measured_lipschitz, predictions, score,
                                    subset_result)
from lqvae.io.checkpoint import atomic_write
from lqvae.io.registry import inventory
from lqvae.spec import paper
from lqvae.spec.datasets import DATASETS
from lqvae.spec.defenses import hardened_name
from lqvae.spec.results import Theorem1

TABLES = (1, 2, 4, 5, 7)  # 3 and 6 are CelebA
BASELINE_PURIFIERS = {"vae": "vae", "defensegan": "defensegan"}  # table column -> purifier checkpoint name
BASELINE_CLASSIFIERS = {"madry": "madry", "adv_tr": "advtr"}  # column -> classifier-side defense (hardening)
DEFENSEGAN_N = 100  # default images per Defense-GAN cell: its search (L = 200, R = 10) is ~1,000x an LQ-VAE
COLUMNS = {**paper.COLUMN_TITLES, "vae": "VAE (ablation, ours)"}
T7_COLUMNS = {"lqvae": "LQ-VAE (FGSM, BPDA dH~)", "defensegan": "Defense-GAN (FGSM, BPDA)",
              "vae": "VAE ablation (FGSM, exact gradient)", "vae_pgd": "VAE ablation (PGD, exact gradient)",
              "lqvae_wb": "LQ-VAE (FGSM on classifier only)", "lqvae_st": "LQ-VAE (FGSM, BPDA straight-through)",
              "lqvae_pgd": "LQ-VAE (PGD, BPDA dH~)", "lqvae_eot": "LQ-VAE (PGD, BPDA+EOT)"}
_WB_ROWS = [(a, c) for a in ("fgsm", "deepfool", "cw") for c in "ABC"]
_BB_ROWS = [("A", "B"), ("A", "C"), ("B", "A"), ("B", "C"), ("C", "A"), ("C", "B")]


def table_datasets(table: int) -> tuple[str, ...]:
    """The datasets a table is measured on by default: its own in the paper (Table 7: both)."""
    own = paper.TABLES[table].dataset
    return (own,) if own else tuple(DATASETS)


@dataclass
class Cell:
    row: str
    column: str
    classifier: str  # classifier scored
    defense: str | None  # purifier name, None = raw classifier
    clean: bool = False  # the "No Attack" column: clean accuracy of the classifier
    limit: int | None = None  # score on the first ``limit`` attacked images only (Defense-GAN's cost)


@dataclass
class Job:
    """One attack run (a model attacked once) and the table cells scored from its adversarials."""

    key: str
    dataset: str
    spec: AttackSpec
    attacked: str  # classifier attacked (whitebox/bpda) or substitute (blackbox)
    defense: str | None  # purifier attacked through (bpda, bpda_eot)
    cells: list[Cell] = field(default_factory=list)
    n: int = 0


def table_jobs(table: int, dataset: str, *, classifier: str = "A", n: int, n_fast: int, preset: str,
               seed: int = 0, eot_samples: int = 8, restarts: int = 1,
               n_override: dict[str, int] | None = None, n_baseline: int | None = None,
               n_defensegan: int = DEFENSEGAN_N) -> list[Job]:
    """The attack runs a paper table needs on ``dataset`` (baseline cells included; skipped later if missing).

    ``n_override`` maps ``"attack/threat"``, a threat or an attack name to the number of images for
    those runs (most specific first), e.g. ``{"cw": 300, "pgd/bpda": 1000, "bpda_eot": 200}``.

    Baselines run as jobs of their own, so adding one never invalidates the cached LQ-VAE runs:
    ``n_baseline`` caps their images (every attack), and Defense-GAN cells score only the first
    ``n_defensegan`` attacked images.

    Raises:
        ValueError: ``table`` is not one of ``TABLES``.
    """
    fast = ("fgsm", "bim", "pgd")
    n_override = n_override or {}

    def mk(key: str, attack: str, threat: str, attacked: str, defense: str | None = None, *,
           baseline: bool = False, **kw: Any) -> Job:
        spec = AttackSpec(attack=attack, threat=threat, preset=preset, seed=seed, **kw)
        quick = attack in fast and threat != "bpda_eot"
        size = next((n_override[k] for k in (f"{attack}/{threat}", threat, attack) if k in n_override),
                    n_fast if quick else n)
        if baseline and n_baseline:
            size = min(size, n_baseline)
        return Job(key, dataset, spec, attacked, defense, n=size)

    def purifier_cells(row: str, clf: str) -> list[Cell]:
        return [Cell(row, col, clf, name, limit=n_defensegan if name == "defensegan" else None)
                for col, name in BASELINE_PURIFIERS.items()]

    jobs: list[Job] = []
    if table in (1, 2):
        for attack, clf in _WB_ROWS:
            row = f"{attack}/{clf}"
            job = mk(f"{dataset}/wb/{attack}/{clf}", attack, "whitebox", clf)
            job.cells = [Cell(row, "no_attack", clf, None, clean=True), Cell(row, "no_defense", clf, None),
                         Cell(row, "lqvae", clf, "lqvae")]
            jobs.append(job)
            pur = mk(f"{dataset}/wb/{attack}/{clf}/baseline-purifiers", attack, "whitebox", clf, baseline=True)
            pur.cells = purifier_cells(row, clf)
            jobs.append(pur)
            for col, hardening in BASELINE_CLASSIFIERS.items():
                name = hardened_name(clf, hardening)
                base = mk(f"{dataset}/wb/{attack}/{name}", attack, "whitebox", name, baseline=True)
                base.cells = [Cell(row, col, name, None)]
                jobs.append(base)
    elif table in (4, 5):
        attack = paper.TABLES[table].attack
        assert attack is not None
        for sub in "ABC":
            job = mk(f"{dataset}/bb/{attack}/{sub}", attack, "blackbox", sub)
            base = mk(f"{dataset}/bb/{attack}/{sub}/baselines", attack, "blackbox", sub, baseline=True)
            for clf, s in _BB_ROWS:
                if s != sub:
                    continue
                row = f"{clf}/{sub}"
                job.cells += [Cell(row, "no_attack", clf, None, clean=True), Cell(row, "no_defense", clf, None),
                              Cell(row, "lqvae", clf, "lqvae")]
                base.cells += purifier_cells(row, clf)
                base.cells += [Cell(row, col, hardened_name(clf, hardening), None)
                               for col, hardening in BASELINE_CLASSIFIERS.items()]
            jobs += [job, base]
    elif table == 7:
        row, c = dataset, classifier
        specs = [("lqvae", "fgsm", "bpda", "lqvae", {}), ("defensegan", "fgsm", "bpda", "defensegan", {}),
                 ("lqvae_wb", "fgsm", "whitebox", None, {}),
                 ("lqvae_st", "fgsm", "bpda", "lqvae", {"bpda_backward": "straight_through"}),
                 ("lqvae_pgd", "pgd", "bpda", "lqvae", {}),
                 ("lqvae_eot", "pgd", "bpda_eot", "lqvae", {"eot_samples": eot_samples, "restarts": restarts})]
        specs += [("vae", "fgsm", "bpda", "vae", {}), ("vae_pgd", "pgd", "bpda", "vae", {})]
        for col, attack, threat, defense, kw in specs:
            job = mk(f"{dataset}/t7/{col}/{c}", attack, threat, c, defense, **kw)
            if defense == "defensegan":  # the search runs inside every forward pass: attack only n_defensegan
                job.n = min(job.n, n_defensegan)
            job.cells = [Cell(row, col, c, defense or "lqvae")]
            jobs.append(job)
    else:
        raise ValueError(f"paper table must be one of {', '.join(map(str, TABLES))} (3 and 6 are CelebA), got {table}")
    return jobs


class Models:
    """Checkpoints of one dataset, loaded on first use; ``fingerprint`` identifies the files by content."""

    def __init__(self, dataset: str, device: torch.device, root: str | None) -> None:
        self.inv = inventory(dataset, root)
        self.dataset, self.device, self.root = dataset, device, root
        self._cache: dict[tuple[str, str], nn.Module] = {}
        self.clean_defended: dict[tuple[str, str, int], Tensor] = {}  # (classifier, purifier, n) -> predictions
        self._digests: dict[Path, str] = {}

    def has(self, name: str | None, kind: str) -> bool:
        return name is None or name in (self.inv.classifiers if kind == "classifier" else self.inv.purifiers)

    def get(self, name: str | None, kind: str) -> nn.Module | None:
        if name is None:
            return None
        if (kind, name) not in self._cache:
            loader = load_classifier if kind == "classifier" else load_defense
            model = loader(self.dataset, name, device=self.device, root=self.root)
            assert model is not None
            self._cache[(kind, name)] = model
        return self._cache[(kind, name)]

    def fingerprint(self, names: list[tuple[str, str]]) -> dict[str, str]:
        out = {}
        for kind, name in names:
            path = (self.inv.classifiers if kind == "classifier" else self.inv.purifiers).get(name)
            if path is not None:
                out[f"{kind}:{name}"] = self.digest(path)
        return out

    def digest(self, path: Path) -> str:
        """SHA-256 (first 16 hex digits) of the file: a clone, a copy or a touch keeps cached runs valid."""
        if path not in self._digests:
            self._digests[path] = file_sha256(path)[:16]
        return self._digests[path]


def _job_models(job: Job) -> list[tuple[str, str]]:
    names = {("classifier", job.attacked)}
    if job.defense:
        names.add(("purifier", job.defense))
    for c in job.cells:
        names.add(("classifier", c.classifier))
        if c.defense:
            names.add(("purifier", c.defense))
    return sorted(names)


def runnable(job: Job, models: Models) -> bool:
    """Whether the attacked models and at least one cell's models are shipped."""
    return (models.has(job.attacked, "classifier") and models.has(job.defense, "purifier")
            and any(models.has(c.classifier, "classifier") and models.has(c.defense, "purifier") for c in job.cells))


def run_job(job: Job, models: Models, images: Tensor, labels: Tensor, *, batch_size: int | None,
            progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Attack once, then score every cell whose checkpoints exist; missing cells are left out.

    The attack runs in fixed chunks shared among the ranks (:func:`lqvae.evaluate.scoring.attack_in_chunks`);
    every rank then scores the merged result, so each returns what one process would (``distributed``
    records the world size and the images each rank attacked).
    """
    spec = job.spec
    attacked = models.get(job.attacked, "classifier")
    defense = models.get(job.defense, "purifier")
    t0 = time.perf_counter()
    size = batch_size or default_batch_size(spec)
    models_attacked = ({"classifier": attacked, "substitute": attacked} if spec.threat == "blackbox"
                       else {"classifier": attacked, "purifier": defense})
    result, record = attack_in_chunks(spec, images, labels, **models_attacked, progress=progress,  # type: ignore[arg-type]
                                      batch_size=size, runner=run_attack)
    cells: dict[str, Any] = {}
    clean_cache: dict[tuple[str, int], Tensor] = {}
    for cell in job.cells:
        if not (models.has(cell.classifier, "classifier") and models.has(cell.defense, "purifier")):
            continue
        clf = models.get(cell.classifier, "classifier")
        pur = models.get(cell.defense, "purifier")
        k = min(cell.limit or len(labels), len(labels))
        x, y, res = images[:k], labels[:k], (result if k == len(labels) else subset_result(result, k))
        if (cell.classifier, k) not in clean_cache:
            clean_cache[(cell.classifier, k)] = predictions(clf, x)  # type: ignore[arg-type]
        defended = None
        if pur is not None and not cell.clean:
            key = (cell.classifier, cell.defense or "", k)
            if key not in models.clean_defended:
                models.clean_defended[key] = predictions(clf, x, pur)  # type: ignore[arg-type]
            defended = models.clean_defended[key]
        s = score(res, x, y, classifier=clf, purifier=pur,  # type: ignore[arg-type]
                  stochastic=spec.threat == "bpda_eot", lipschitz=measured_lipschitz(pur, x),
                  clean_pred=clean_cache[(cell.classifier, k)], clean_defended_pred=defended)
        s["value"] = s["clean_accuracy"] if cell.clean else accuracy_under_attack(s)
        cells[f"{cell.row}|{cell.column}"] = s
    return {"key": job.key, "n": len(labels), "params": result.params, "attacked": job.attacked,
            "attacked_through": job.defense, "seconds": round(time.perf_counter() - t0, 2), "cells": cells,
            "fingerprint": models.fingerprint(_job_models(job)), "distributed": record}


def merged_cache(path: Path, new: dict[str, Any]) -> dict[str, Any]:
    """The cache on disk plus ``new``: two table runs (one per dataset) may share a cache file."""
    try:
        disk = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        disk = {}
    return {**disk, **new}


def run_table(jobs: list[tuple[Job, Models]], *, cache_path: Path, fresh: bool = False, samples: bool = False,
              data_dir: str | None = None, n_images: int = 0, batch_size: int | None = None,
              progress: Callable[[int, float, str], None] | None = None) -> dict[str, Any]:
    """Run every job not already in the cache at ``cache_path``; the results by job key.

    A cached run is reused when its images (same source, same n), its attack settings and the content of
    every checkpoint it used are the same. Each finished run is added to the cache at once, so a stopped
    table resumes where it stopped. ``progress(runs_done, fraction_of_this_run, job_key)`` follows along.

    Under ``torchrun`` every rank runs every job on its share of the images (:func:`run_job`) and returns
    the same results; rank 0 reads the cache for all of them and alone writes it.
    """
    try:
        cache = {} if fresh or not cache_path.exists() else json.loads(cache_path.read_text())
    except json.JSONDecodeError:
        cache = {}
    cache = distributed.gather(cache)[0]  # rank 0's reading: the ranks skip and run the same jobs
    source = "bundled samples" if samples else "test set"  # finished runs are reused for the same images only
    data: dict[str, tuple[Tensor, Tensor]] = {}
    results: dict[str, Any] = {}
    for done, (job, models) in enumerate(jobs):
        hit = cache.get(job.key)
        if (hit and hit["n"] == job.n and hit["params"] == attack_params(job.spec) and hit.get("source") == source
                and hit["fingerprint"] == models.fingerprint(_job_models(job))):
            results[job.key] = hit
            continue
        if job.dataset not in data or len(data[job.dataset][0]) < job.n:
            data[job.dataset] = load_images(job.dataset, max(n_images, job.n), data_dir=data_dir, samples=samples)
        x, y = (t[:job.n] for t in data[job.dataset])
        step = None if progress is None else (lambda frac, d=done, k=job.key: progress(d, frac, k))
        results[job.key] = run_job(job, models, x, y, batch_size=batch_size, progress=step)
        results[job.key]["source"] = source
        if distributed.world().main:
            write_json(cache_path, merged_cache(cache_path, {job.key: results[job.key]}))
    return results


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _theorem1(cell: dict[str, Any], latent_dim: int | None) -> Theorem1 | None:
    """A cell's Theorem 1 (cached runs may hold the older nested shape; None when it has none)."""
    try:
        return Theorem1.from_dict(cell["theorem1"], latent_dim=latent_dim) if cell.get("theorem1") else None
    except ValueError:
        return None


def build_table(table: int, datasets: tuple[str, ...], results: dict[str, Any], *, preset: str) -> dict[str, Any]:
    """Markdown, CSV and JSON of a paper table from finished job results (missing cells are "—")."""
    cells: dict[str, dict[str, Any]] = {}
    for res in results.values():
        for key, value in res["cells"].items():
            cells[key] = {**value, "job": res["key"], "params": res["params"]}
    columns = T7_COLUMNS if table == 7 else COLUMNS
    if table in (1, 2):
        row_keys = [f"{a}/{c}" for a, c in _WB_ROWS]
    elif table in (4, 5):
        row_keys = [f"{c}/{s}" for c, s in _BB_ROWS]
    else:
        row_keys = list(datasets)
    refs = [t for t in (paper.reference(table, ds) for ds in datasets) if t is not None]

    def printed(row: str, col: str) -> float | None:
        return next((t.value(row, col) for t in refs if t.value(row, col) is not None), None)

    rows = []
    for rk in row_keys:
        ours = {col: (cells.get(f"{rk}|{col}") or {}).get("value") for col in columns}
        rows.append({"row": rk, "ours": ours, "paper": {col: printed(rk, col) for col in columns},
                     "n": {col: cells[f"{rk}|{col}"]["n"] for col in columns if f"{rk}|{col}" in cells}})
    if table != 7:
        avg = {col: (float(np.mean([r["ours"][col] for r in rows])) if all(r["ours"][col] is not None for r in rows)
                     else None) for col in columns}
        rows.append({"row": "Average", "ours": avg, "paper": {c: printed("Average", c) for c in columns}, "n": {}})
    header = ["Attack / Model" if table in (1, 2) else "Classifier / Substitute" if table in (4, 5) else "Dataset"]
    md = [f"# Table {table}: {paper.TABLES[table].title} ({', '.join(datasets)}, preset `{preset}`)", "",
          "Accuracy in percent, ours (paper). “—”: not measured (baseline checkpoint missing) or not in the paper.",
          "",
          "| " + " | ".join(header + list(columns.values())) + " |",
          "|" + "---|" * (len(columns) + 1)]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header + [h for col in columns for h in (col, f"{col}_paper", f"{col}_n")])
    for r in rows:
        label = r["row"].replace("/", " / ")
        md.append("| " + " | ".join([label] + [
            f"{_fmt(r['ours'][c])} ({_fmt(r['paper'][c])})" if r["paper"][c] is not None else _fmt(r["ours"][c])
            for c in columns]) + " |")
        writer.writerow([r["row"]] + [v for c in columns for v in (
            "" if r["ours"][c] is None else round(r["ours"][c], 2), "" if r["paper"][c] is None else r["paper"][c],
            r["n"].get(c, ""))])
    ns = sorted({c["n"] for c in cells.values()})
    md += ["", f"n per cell: {', '.join(map(str, ns)) or '—'} test images (per cell in the JSON).",
           "", "Attack settings (preset `" + preset + "`):", ""]
    seen = set()
    for res in results.values():
        desc = json.dumps({k: v for k, v in res["params"].items() if k not in ("preset",)}, sort_keys=True)
        if desc not in seen:
            seen.add(desc)
            md.append(f"- `{desc}`")
    flips = [(k, c["bits"]) for k, c in cells.items() if c.get("bits") and c["bits"].get("n_images")]
    if flips:
        md += ["", "Bit flips between clean and adversarial codes (paper Figure 3; Theorem 1's prediction from "
                   "each coordinate's measured latent shift):", "",
               "| Cell | mean flips | < 6 % flipped | predicted mean | predicted < 6 % |",
               "|---|---|---|---|---|"]
        for k, b in flips:
            t = _theorem1(cells[k], b.get("latent_dim"))
            md.append(f"| {k.replace('|', ' ')} | {_fmt(b['mean_flips'], 1)} | {_fmt(b['share_below_6pct'], 1)} % | "
                      f"{_fmt(t.expected_flips if t else None, 1)} | {_fmt(t.share_below_6pct if t else None, 1)} % |")
    return {"markdown": "\n".join(md) + "\n", "csv": buf.getvalue(),
            "json": {"table": table, "datasets": list(datasets), "preset": preset, "columns": columns, "rows": rows,
                     "cells": cells, "runs": results}}


def write_table(report: dict[str, Any], out_dir: Path, stem: str) -> None:
    """``<stem>.md``, ``.csv`` and ``.json`` of ``build_table``'s report in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / f"{stem}.md", lambda tmp: tmp.write_text(report["markdown"]))
    atomic_write(out_dir / f"{stem}.csv", lambda tmp: tmp.write_text(report["csv"]))
    write_json(out_dir / f"{stem}.json", report["json"])


__all__ = ["TABLES", "COLUMNS", "T7_COLUMNS", "BASELINE_PURIFIERS", "BASELINE_CLASSIFIERS", "DEFENSEGAN_N", "Cell",
           "Job", "Models", "table_jobs", "table_datasets", "runnable", "run_job", "run_table", "merged_cache",
           "build_table", "write_table"]
