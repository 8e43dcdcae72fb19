"""``python -m lqvae.evaluate clean|run|table|suite ...``: measuring the shipped checkpoints.

* ``clean`` measures the shipped checkpoints of one dataset on its test set: for each classifier its
  clean accuracy and its accuracy on LQ-VAE-purified images, plus the purifier's bit statistics
  (``bit_balance``, ``dead_bits``, ``distinct_codes``) and ``lipschitz_median``.
* ``run`` evaluates one attack under one threat model against one defense, prints one line and writes
  the full result as JSON (:func:`lqvae.evaluate.scoring.evaluate_batch`).
* ``table --paper-table 1|2|4|5|7`` reproduces a paper table, resumable (finished attack runs are kept
  in ``<out>/cache/``), writing Markdown, CSV and JSON with the paper's numbers alongside
  (:mod:`lqvae.evaluate.tables`).
* ``suite`` attacks one defense with the strongest-attack suite (APGD-CE, APGD-T, PGD with CE and CW
  margin, FGSM, Square, for purifiers every backward of H, the attack on the quantizer and a transfer
  attack) and prints the per-image worst case, each member's number, each with n and a 95 % Wilson
  interval, and the sanity checks of Carlini et al. (2019) (:mod:`lqvae.evaluate.suite`). One process.

Accuracies in percent. Errors in the arguments, the data or the checkpoints end the command with one
line ``error: ...`` and exit status 2.

``torchrun --nproc_per_node N -m lqvae.evaluate run|table ...`` shares the images among N processes
(whole chunks of the global index, :func:`lqvae.evaluate.scoring.attack_in_chunks`) and gives exactly
the result one process gives; rank 0 prints and writes the files, and the result JSON records the world
size and the images each rank attacked (``distributed``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from lqvae.cli import ProgressBar, errors_exit, fail
from lqvae.core import distributed
from lqvae.core.device import DEVICE_CHOICES
from lqvae.spec.attacks import ATTACKS, BPDA_BACKWARDS, END_TO_END, PRESET_NAMES, THREATS
from lqvae.spec.datasets import DATASETS
from lqvae.spec.defenses import HARDENINGS, hardened_name


def cmd_clean(args: argparse.Namespace) -> dict[str, Any]:
    from lqvae.evaluate.loading import load_images, write_json
    from lqvae.evaluate.scoring import clean_metrics

    device = args.resolved_device
    images, labels = load_images(args.dataset, args.n, data_dir=args.data_dir, samples=args.samples)
    t0 = time.monotonic()
    result = clean_metrics(args.dataset, images, labels, device=device, purifier=args.purifier,
                           root=args.checkpoints)
    result["seconds"] = round(time.monotonic() - t0, 2)
    if not distributed.world().main:  # every rank measured the same; one prints and writes
        return result
    summary = ", ".join(f"{k}: clean {v['clean_accuracy']:.2f}%" +
                        (f" purified {v['purified_accuracy']:.2f}%" if "purified_accuracy" in v else "")
                        for k, v in result.items() if isinstance(v, dict) and "clean_accuracy" in v)
    print(f"{args.dataset} n={result['n']}: {summary}; dead bits {result.get('dead_bits')}, "
          f"distinct codes {result.get('distinct_codes')}, Lipschitz median {result.get('lipschitz_median')}")
    if args.json:
        write_json(args.json, result)
    return result


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def cmd_run(args: argparse.Namespace) -> dict[str, Any]:
    """``run``: one attack, threat model and defense on the first n test images; one line + JSON."""
    from lqvae.attacks.runners import AttackSpec
    from lqvae.evaluate.loading import load_classifier, load_defense, load_images, write_json
    from lqvae.evaluate.scoring import evaluate_batch

    if args.n < 1:
        raise fail(f"--n expects a number of images >= 1, got {args.n}")
    device = args.resolved_device
    main_rank = distributed.world().main
    spec = AttackSpec(attack=args.attack, eps=args.eps, steps=args.steps, preset=args.preset,
                      targeted=args.target is not None, target=args.target, threat=args.threat,
                      bpda_backward=args.bpda_backward, eot_samples=args.eot_samples, restarts=args.restarts,
                      seed=args.seed)
    classifier_name, defense = args.classifier, args.defense
    if defense in HARDENINGS:  # a classifier-side defense: attack and score the hardened classifier
        if spec.threat in END_TO_END:
            raise fail(f"--defense {defense} is an adversarially trained classifier, not a purifier: attack it "
                       "with --threat whitebox (that is already the fully adaptive attack)")
        classifier_name, defense = hardened_name(args.classifier, defense), "none"
    if spec.threat in END_TO_END and defense == "none":
        raise fail(f"--threat {spec.threat} attacks a defense end to end; pass --defense lqvae "
                   "(or use --threat whitebox for the classifier alone)")
    if spec.threat == "blackbox" and not args.substitute:
        raise fail("--threat blackbox needs --substitute A|B|C (the classifier the attack sees)")
    images, labels = load_images(args.dataset, args.n, data_dir=args.data_dir, samples=args.samples)
    classifier = load_classifier(args.dataset, classifier_name, device=device, root=args.checkpoints)
    purifier = load_defense(args.dataset, defense, device=device, root=args.checkpoints)
    if args.defensegan_steps is not None or args.defensegan_restarts is not None:
        if not hasattr(purifier, "restarts"):
            raise fail("--defensegan-steps/--defensegan-restarts apply to --defense defensegan only")
        purifier.search_steps = args.defensegan_steps or purifier.search_steps  # type: ignore[union-attr]
        purifier.restarts = args.defensegan_restarts or purifier.restarts  # type: ignore[union-attr]
    substitute = (load_classifier(args.dataset, args.substitute, device=device, root=args.checkpoints)
                  if spec.threat == "blackbox" else None)
    bar = None if args.quiet or not main_rank else ProgressBar(f"{args.attack}/{args.threat}")
    try:
        res = evaluate_batch(spec, images, labels, classifier=classifier, purifier=purifier, substitute=substitute,
                             batch_size=args.batch_size, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    out = {"dataset": args.dataset, "classifier": classifier_name,
           "substitute": args.substitute if spec.threat == "blackbox" else None, "defense": args.defense, **res}
    if hasattr(purifier, "restarts"):
        out["defensegan_search"] = {"steps": purifier.search_steps, "restarts": purifier.restarts}  # type: ignore[union-attr]
    if not main_rank:  # the result is the same on every rank (scoring.attack_in_chunks); rank 0 reports it
        return out
    bits = out.get("bits") or {}
    defended = (f"defended {_fmt(out['defended_accuracy'])}%, " if "defended_accuracy" in out else "")
    print(f"{args.dataset} {classifier_name}+{args.defense} {args.attack}/{args.threat} ({args.preset}) n={out['n']}: "
          f"clean {_fmt(out['clean_accuracy'])}% -> attacked: {defended}"
          f"undefended {_fmt(out['undefended_accuracy'])}%, failures {out['attack_failures']}, "
          f"mean Linf {_fmt(out['mean_linf'], 3)} L2 {_fmt(out['mean_l2'], 3)}"
          + (f", flips mean {_fmt(bits.get('mean_flips'), 1)} (<6%: {_fmt(bits.get('share_below_6pct'), 1)}%)"
             if bits else "")
          + f", {out['seconds']:.1f} s"
          + (f" on {out['distributed']['world_size']} processes" if out["distributed"]["world_size"] > 1 else ""))
    if args.json:
        write_json(args.json, out)
    return out


def cmd_suite(args: argparse.Namespace) -> dict[str, Any]:
    """``suite``: the strongest-attack suite on one defense; the worst case and every member, + JSON."""
    from lqvae.evaluate.loading import load_classifier, load_defense, load_images, write_json
    from lqvae.evaluate.suite import evaluate_suite, summary_lines
    from lqvae.spec.suite import SuiteSettings

    if args.n < 1:
        raise fail(f"--n-images expects a number of images >= 1, got {args.n}")
    steps = {} if args.steps is None else {"pgd_steps": args.steps, "apgd_steps": args.steps}
    settings = SuiteSettings(  # refuses a bad value with a ValueError: one line, exit 2
        eps=args.eps, pgd_restarts=args.restarts, apgd_restarts=args.apgd_restarts, apgd_targets=args.apgd_targets,
        square_queries=args.square_queries, latent_steps=args.latent_steps, surrogates=tuple(args.surrogates),
        sigmoid_temperature=args.temperature, eot_samples=args.eot_samples, chunk_size=args.chunk_size,
        seed=args.seed, **steps)
    classifier_name, defense = args.classifier, args.defense
    if defense in HARDENINGS:  # a classifier-side defense: the hardened classifier alone is attacked
        classifier_name, defense = hardened_name(args.classifier, defense), "none"
    if args.stochastic and defense == "none":
        raise fail("--stochastic purifies with sampled codes: pass --defense lqvae|lqvae_robust|lqvae_adv")
    device = args.resolved_device
    images, labels = load_images(args.dataset, args.n, data_dir=args.data_dir, samples=args.samples)
    classifier = load_classifier(args.dataset, classifier_name, device=device, root=args.checkpoints)
    purifier = load_defense(args.dataset, defense, device=device, root=args.checkpoints)
    main_rank = distributed.world().main
    bar = None if args.quiet or not main_rank else ProgressBar(f"suite {args.defense}")
    try:
        record = evaluate_suite(settings, images.to(device), labels.to(device), classifier=classifier,
                                purifier=purifier, stochastic=args.stochastic, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    out = {"dataset": args.dataset, "classifier": classifier_name, "defense": args.defense, **record}
    if not main_rank:
        return out
    print(f"{args.dataset} {classifier_name}+{args.defense}{' (stochastic)' if args.stochastic else ''} "
          f"L-inf eps {settings.eps:g}, {out['seconds']:.0f} s")
    print("\n".join(summary_lines(out)))
    if args.json:
        write_json(args.json, out)
    return out


def parse_n_override(items: list[str]) -> dict[str, int]:
    """``["cw=300", "pgd/bpda=1000"]`` -> ``{"cw": 300, "pgd/bpda": 1000}``, with a clear error otherwise."""
    known = set(ATTACKS) | set(THREATS)
    out: dict[str, int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        parts = key.split("/")
        if not sep or not value.isdigit() or int(value) < 1 or not all(p in known for p in parts) or len(parts) > 2:
            raise fail(f"--n-override expects ATTACK=N, THREAT=N or ATTACK/THREAT=N with N >= 1 "
                       f"(attacks {', '.join(ATTACKS)}; threats {', '.join(THREATS)}), got {item!r}")
        out[key] = int(value)
    return out


def cmd_table(args: argparse.Namespace) -> dict[str, Any]:
    """``table``: every attack run of a paper table, cached per run, then Markdown + CSV + JSON."""
    from tqdm import tqdm

    from lqvae.evaluate.tables import Models, build_table, runnable, run_table, table_datasets, table_jobs, write_table

    table = args.paper_table
    datasets = (args.dataset,) if args.dataset else table_datasets(table)
    device = args.resolved_device
    main_rank = distributed.world().main
    n_override = parse_n_override(args.n_override)
    jobs = []
    for ds in datasets:
        models = Models(ds, device, args.checkpoints)
        planned = table_jobs(table, ds, classifier=args.classifier, n=args.n, n_fast=args.n_fast or args.n,
                             n_override=n_override, preset=args.preset, seed=args.seed, eot_samples=args.eot_samples,
                             restarts=args.restarts, n_baseline=args.n_baseline, n_defensegan=args.n_defensegan)
        jobs += [(j, models) for j in planned if runnable(j, models)]
    bar = tqdm(total=len(jobs), desc=f"table {table}", unit="run", disable=not main_rank)
    last = [0.0]

    def progress(done: int, frac: float, key: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5:  # a redraw per model call would flood a log
            last[0] = now
            bar.set_postfix_str(key, refresh=False)
            bar.n = round(done + min(frac, 0.99), 2)
            bar.refresh()

    out_dir = Path(args.out)
    try:
        results = run_table(jobs, cache_path=out_dir / "cache" / f"table{table}_{args.preset}.json", fresh=args.fresh,
                            samples=args.samples, data_dir=args.data_dir, n_images=max(args.n, args.n_fast or args.n),
                            batch_size=args.batch_size, progress=progress)
        bar.n = len(jobs)
        bar.refresh()
    finally:
        bar.close()
    report = build_table(table, datasets, results, preset=args.preset)
    if main_rank:
        write_table(report, out_dir, f"table{table}" + (f"_{datasets[0]}" if len(datasets) == 1 else ""))
        print(report["markdown"])
    return report["json"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="folder with the idx files (default: search, see lqvae.io.data)")
    p.add_argument("--samples", action="store_true", help="use the bundled 1,000 samples instead of the test set")
    p.add_argument("--checkpoints", default=None, help="checkpoint root (default ./checkpoints or $LQVAE_CHECKPOINTS)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per foolbox call (default 250 on the classifier, 100 through the purifier)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eot-samples", type=int, default=8, help="draws per model call for bpda_eot")
    p.add_argument("--restarts", type=int, default=1, help="attack restarts (random starts)")


def parser() -> argparse.ArgumentParser:
    from lqvae.evaluate.tables import DEFENSEGAN_N, TABLES

    p = argparse.ArgumentParser(prog="python -m lqvae.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("clean", help="clean and purified accuracy of the shipped checkpoints")
    c.add_argument("--dataset", choices=DATASETS, default="mnist")
    c.add_argument("--data-dir", default=None)
    c.add_argument("--n", type=int, default=None, help="first n test images (default all 10,000)")
    c.add_argument("--samples", action="store_true", help="use the bundled samples instead of the test set")
    c.add_argument("--purifier", default="lqvae")
    c.add_argument("--checkpoints", default=None, help="checkpoint root (default ./checkpoints)")
    c.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    c.add_argument("--json", default=None)
    c.set_defaults(func=cmd_clean)

    r = sub.add_parser("run", help="one attack under one threat model against one defense; prints a line, writes JSON")
    r.add_argument("--dataset", choices=DATASETS, default="mnist")
    r.add_argument("--classifier", default="A", help="classifier checkpoint name (A, B, C, A_madry, ...)")
    r.add_argument("--substitute", default=None, help="substitute classifier for --threat blackbox")
    r.add_argument("--defense", default="lqvae",
                   help="none | lqvae | lqvae_robust | lqvae_adv | vae | defensegan (purifiers: checkpoint names; "
                        "lqvae_adv is fine-tuned on adversarial examples, not the paper's method) | "
                        f"{' | '.join(HARDENINGS)} (adversarially trained classifiers: --classifier A becomes "
                        f"{' / '.join(hardened_name('A', h) for h in HARDENINGS)})")
    r.add_argument("--defensegan-steps", type=int, default=None, help="Defense-GAN search steps L (default 200)")
    r.add_argument("--defensegan-restarts", type=int, default=None, help="Defense-GAN restarts R (default 10)")
    r.add_argument("--attack", choices=list(ATTACKS), default="fgsm")
    r.add_argument("--threat", choices=list(THREATS), default="whitebox")
    r.add_argument("--preset", choices=PRESET_NAMES, default="paper")
    r.add_argument("--eps", type=float, default=None, help="budget (L-inf or L2 by attack); default the preset's")
    r.add_argument("--steps", type=int, default=None, help="iterations; default the preset's")
    r.add_argument("--bpda-backward", choices=BPDA_BACKWARDS, default="bpda")
    r.add_argument("--target", type=int, default=None, help="target class (makes the attack targeted)")
    r.add_argument("--n", "--n-images", dest="n", type=int, default=1000,
                   help="first n test images (--n-images under torchrun, whose own options --n abbreviates)")
    r.add_argument("--json", default=None, help="write the full result here")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    _common(r)
    r.set_defaults(func=cmd_run)

    from lqvae.spec.suite import SURROGATES, SuiteSettings

    d = SuiteSettings()
    s = sub.add_parser("suite", help="the strongest-attack suite on one defense: worst case, members, sanity checks")
    s.add_argument("--dataset", choices=DATASETS, default="mnist")
    s.add_argument("--classifier", default="A", help="classifier checkpoint name (A, B, C, A_madry, ...)")
    s.add_argument("--defense", default="lqvae", help=f"none | a purifier checkpoint name | {' | '.join(HARDENINGS)}")
    s.add_argument("--stochastic", action="store_true", help="the stochastic purifier, attacked with EOT")
    s.add_argument("--n", "--n-images", dest="n", type=int, default=100, help="first n test images")
    s.add_argument("--eps", type=float, default=d.eps, help=f"L-inf budget (default {d.eps})")
    s.add_argument("--steps", type=int, default=None, help=f"PGD and APGD steps (default {d.pgd_steps})")
    s.add_argument("--restarts", type=int, default=d.pgd_restarts, help="PGD starts")
    s.add_argument("--apgd-restarts", type=int, default=d.apgd_restarts, help="APGD-CE starts")
    s.add_argument("--apgd-targets", type=int, default=d.apgd_targets, help="APGD-T target classes")
    s.add_argument("--square-queries", type=int, default=d.square_queries)
    s.add_argument("--latent-steps", type=int, default=d.latent_steps, help="steps of the attack on the quantizer")
    s.add_argument("--surrogates", nargs="+", choices=SURROGATES, default=list(d.surrogates),
                   help="backwards of H for the gradient members through a purifier")
    s.add_argument("--temperature", type=float, default=d.sigmoid_temperature, help="T of the sigmoid backward")
    s.add_argument("--eot-samples", type=int, default=d.eot_samples, help="draws per model call with --stochastic")
    s.add_argument("--chunk-size", type=int, default=d.chunk_size, help="images per chunk")
    s.add_argument("--seed", type=int, default=d.seed)
    s.add_argument("--data-dir", default=None)
    s.add_argument("--samples", action="store_true", help="use the bundled samples instead of the test set")
    s.add_argument("--checkpoints", default=None, help="checkpoint root (default ./checkpoints)")
    s.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    s.add_argument("--json", default=None, help="write the full record here")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_suite)

    t = sub.add_parser("table", help="reproduce a paper table (resumable); writes Markdown, CSV and JSON")
    t.add_argument("--paper-table", type=int, choices=TABLES, required=True)
    t.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: the table's own (1, 5: fashion_mnist; 2, 4: mnist; 7: both)")
    t.add_argument("--classifier", default="A", help="classifier for table 7")
    t.add_argument("--n", "--n-images", dest="n", type=int, default=1000,
                   help="test images per cell (--n-images under torchrun, whose own options --n abbreviates)")
    t.add_argument("--n-fast", type=int, default=None, help="test images for FGSM/BIM/PGD cells (default --n)")
    t.add_argument("--n-override", action="append", default=[], metavar="KEY=N",
                   help="images for the runs of one attack, threat or attack/threat, e.g. cw=300, pgd/bpda=1000 "
                        "(repeatable; most specific wins)")
    t.add_argument("--n-baseline", type=int, default=None,
                   help="cap on the images of every baseline run (VAE, Defense-GAN, Madry, Adv Tr)")
    t.add_argument("--n-defensegan", type=int, default=DEFENSEGAN_N,
                   help=f"images per Defense-GAN cell (default {DEFENSEGAN_N}; its search costs ~1 s an image)")
    t.add_argument("--preset", choices=PRESET_NAMES, default="paper")
    t.add_argument("--out", default="docs/results/")
    t.add_argument("--fresh", action="store_true", help="ignore the cache of finished runs")
    _common(t)
    t.set_defaults(func=cmd_table)
    return p


def main(argv: list[str] | None = None) -> Any:
    """Run the command; under ``torchrun`` in the process group its environment describes
    (:func:`lqvae.core.distributed.session`), left when the command ends."""
    args = parser().parse_args(argv)
    with errors_exit(), distributed.session(args.device) as (_, device):
        args.resolved_device = device
        return args.func(args)


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
