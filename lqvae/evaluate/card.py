"""Regenerate the measured part of the model card ``checkpoints/README.md``.

``python -m lqvae.cli.card`` reads every shipped checkpoint's metadata (training command, epochs, seed,
wall time, storage dtype) and the measurements written by ``python -m lqvae.evaluate clean --json
docs/results/clean_<dataset>.json`` (and ``..._samples.json`` for the bundled samples), and rewrites
the text between ``<!-- measured:begin -->`` and ``<!-- measured:end -->``. Nothing is typed in by
hand: a number in that block is either read from a file or shown as "not measured".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lqvae.io.checkpoint import read_metadata
from lqvae.io.data import DATASETS

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- measured:begin -->", "<!-- measured:end -->"


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _pct(v: Any) -> str:
    return "not measured" if v is None else f"{float(v):.2f}"


def dataset_section(dataset: str, ckpt_dir: Path, results_dir: Path) -> str:
    folder = ckpt_dir / dataset
    files = sorted(p for p in folder.glob("*.safetensors") if not p.name.endswith(".train-state.safetensors"))
    if not files:
        return f"### {dataset}\n\nNo checkpoints shipped.\n"
    test = _load_json(results_dir / f"clean_{dataset}.json") or {}
    samples = _load_json(results_dir / f"clean_{dataset}_samples.json") or {}
    lines = [f"### {dataset}", "",
             "| file | kind | epochs | seed | wall time | stored as | size | training command |",
             "|---|---|---|---|---|---|---|---|"]
    for p in files:
        m = read_metadata(p)
        wall = float(m.get("wall_s", "nan"))
        lines.append(f"| `{p.name}` | {m['kind']} | {m['epochs']} | {m.get('seed', '?')} | {wall / 60:.1f} min | "
                     f"{m.get('dtype', '?')} | {p.stat().st_size / 1e6:.1f} MB | `{m['command']}` |")
    lines += ["", f"Accuracy in percent (test set: n = {test.get('n', 'not measured')}; bundled samples: "
              f"n = {samples.get('n', 'not measured')}), each classifier on clean images and on the "
              "deterministic purification g(H(μ)) of them:", "",
              "| classifier | clean (test) | purified (test) | clean (samples) | purified (samples) |",
              "|---|---|---|---|---|"]
    for name in sorted(k for k, v in test.items() if isinstance(v, dict) and "clean_accuracy" in v):
        t, s = test[name], samples.get(name, {})
        lines.append(f"| {name} | {_pct(t.get('clean_accuracy'))} | {_pct(t.get('purified_accuracy'))} | "
                     f"{_pct(s.get('clean_accuracy'))} | {_pct(s.get('purified_accuracy'))} |")
    if "dead_bits" in test:
        bal = test.get("bit_balance", {})
        lines += ["", f"LQ-VAE bits on the test set: dead bits {test['dead_bits']} of 64, share of +1 per "
                  f"dimension min {bal.get('min', 0):.3f} / median {bal.get('median', 0):.3f} / max "
                  f"{bal.get('max', 0):.3f}, distinct codes {test.get('distinct_codes')}, encoder "
                  f"‖∇ₓ Σμ‖ median {test.get('lipschitz_median', float('nan')):.3f} (K = 0.1), "
                  f"σ median {test.get('sigma_median', float('nan')):.3f}, KL {test.get('kl_total', float('nan')):.1f} nats."]
    lines += baseline_lines(files)
    return "\n".join(lines) + "\n"


def baseline_lines(files: list[Path]) -> list[str]:
    """The baselines of issue 6, from the measurements their training command stored at its last epoch."""
    rows = []
    for p in files:
        m = read_metadata(p)
        met, stem = m.get("metrics") or {}, p.name.removesuffix(".safetensors")
        if m["kind"] == "classifier" and "pgd20_accuracy_1000" in met:
            rows.append(f"| `{stem}` | {_pct(met.get('test_accuracy'))} (clean, 10,000) | "
                        f"{_pct(met.get('pgd20_accuracy_1000'))} (white-box PGD-20, ε = 0.3, first 1,000) |")
        elif m["kind"] == "lqvae" and "purified_accuracy" in met and not stem.startswith("lqvae"):
            rows.append(f"| `{stem}` | {_pct(met.get('purified_accuracy'))} (classifier A on the purified test set) | "
                        f"no quantizer; ‖∇ₓ Σμ‖ median "
                        f"{float(met.get('lipschitz_median', float('nan'))):.3f}, reconstruction MSE "
                        f"{float(met.get('recon_mse', float('nan'))):.4f} |")
        elif m["kind"] == "defensegan" and "purified_accuracy_live_200" in met:
            rows.append(f"| `{stem}` | {_pct(met.get('purified_accuracy_live_200'))} (classifier A on G(z*) of the "
                        f"first 200 test images, live search L = 50, R = 2) | search MSE "
                        f"{float(met.get('search_mse_live_200', float('nan'))):.4f} |")
    if not rows:
        return []
    return ["", "Baselines (issue 6), as measured by their training command after the last epoch:", "",
            "| file | accuracy | also |", "|---|---|---|", *rows]


def render(ckpt_dir: Path = ROOT / "checkpoints", results_dir: Path = ROOT / "docs" / "results") -> str:
    body = "\n".join(dataset_section(ds, ckpt_dir, results_dir) for ds in DATASETS)
    return f"{BEGIN}\n_Generated by `python -m lqvae.cli.card` from the checkpoints' metadata and " \
           f"`docs/results/clean_*.json`._\n\n{body}{END}"


def update(card: Path, text: str) -> None:
    old = card.read_text() if card.exists() else ""
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        new = old + ("\n" if old else "") + text + "\n"
    card.write_text(new)

