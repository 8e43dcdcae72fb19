"""How fast the app feels, measured offscreen on this machine: ``python -m app.bench [--json PATH]``.

* startup: from launching ``python main.py`` to the window shown, and to the models loaded (fresh
  processes; the import of torch happens on a worker after the window is up);
* attack request -> every panel updated and repainted, for FGSM, PGD-40 and BPDA PGD-40 (live preset);
* the longest stall of the GUI event loop while a C&W attack runs on a worker.

Medians over ``--runs`` repetitions. Uses the shipped checkpoints when present, else random-weight
models of the same architectures in a temp dir (same compute, meaningless predictions).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS_MS = {"startup_to_window": 3000, "fgsm": 100, "pgd40": 500, "bpda_pgd40": 800, "cw_max_stall": 100}


def random_checkpoints(root: Path) -> Path:
    import torch

    from lqvae.io.checkpoint import save_checkpoint
    from lqvae.core.config import ClassifierConfig, LQVAEConfig
    from lqvae.core.models import LQVAE, Classifier

    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for arch in "AB":
        save_checkpoint(folder / f"classifier_{arch}.safetensors", Classifier(ClassifierConfig(arch=arch)),
                        kind="classifier", dataset="mnist")
    save_checkpoint(folder / "lqvae.safetensors", LQVAE(LQVAEConfig.mnist(), training_parts=False), kind="lqvae",
                    dataset="mnist")
    return root


def ensure_models(env: dict[str, str], tmp: Path) -> str:
    from lqvae.io.registry import checkpoint_root, inventory

    inv = inventory("mnist")
    if "A" in inv.classifiers and "lqvae" in inv.purifiers:
        return f"shipped ({checkpoint_root()})"
    env["LQVAE_CHECKPOINTS"] = str(random_checkpoints(tmp / "ckpt"))
    os.environ["LQVAE_CHECKPOINTS"] = env["LQVAE_CHECKPOINTS"]
    return "random weights (shipped checkpoints missing)"


def ensure_samples(env: dict[str, str], tmp: Path) -> None:
    from app.engine.adapter import samples_root

    if (samples_root() / "mnist.npz").is_file():
        return
    import numpy as np

    rng = np.random.default_rng(0)
    images = np.zeros((20, 28, 28), np.uint8)
    images[:, 6:22, 11:17] = rng.integers(150, 255, (20, 16, 6))
    (tmp / "samples").mkdir(exist_ok=True)
    np.savez(tmp / "samples" / "mnist.npz", images=images, labels=np.arange(20) % 10)
    env["LQVAE_SAMPLES"] = os.environ["LQVAE_SAMPLES"] = str(tmp / "samples")


def bench_startup(env: dict[str, str], runs: int) -> dict[str, float]:
    shown, loaded = [], []
    for _ in range(runs):
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--bench-startup"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")), None)
        if line is None:
            raise RuntimeError(f"startup run failed: {proc.stderr[-1000:]}")
        stamps = json.loads(line[6:])
        shown.append((stamps["shown"] - t0) * 1000)
        loaded.append((stamps["models_loaded"] - t0) * 1000)
    return {"startup_to_window": statistics.median(shown), "startup_to_models": statistics.median(loaded)}


def bench_gui(runs: int) -> dict[str, float]:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    window = MainWindow()
    window.show()
    window.start()
    s, c = window.state, window.controller

    def wait(cond, timeout: float = 300) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError("the app did not settle")
            app.processEvents()
            time.sleep(0.0005)

    wait(lambda: c.models_ready and c.settled())
    done: list[float] = []
    s.resultChanged.connect(lambda *_: done.append(time.perf_counter()))

    engine_ms: list[float] = []

    # A setting or image change schedules an auto run (controller.DEBOUNCE_MS later); an explicit run replaces it
    # (Controller.run stops the debounce timer), so each change below is followed by exactly one run: the measured one.
    def one(sample: int) -> float:
        done.clear()
        images, labels = s.engine.samples
        i = sample % len(images)
        s.set_image(images[i] / 255.0, int(labels[i]), f"sample {i}")
        t0 = time.perf_counter()
        s.request_run(False)  # the measured run; the auto run set_image scheduled is dropped
        wait(lambda: bool(done) and c.settled())
        window.repaint()  # the panels' new content painted
        engine_ms.append(s.result.attack_ms + s.result.purify_ms)
        return (time.perf_counter() - t0) * 1000

    out: dict[str, float] = {}
    configs = {"fgsm": dict(attack="fgsm", threat="whitebox", steps=None),
               "pgd40": dict(attack="pgd", threat="whitebox", steps=40),
               "bpda_pgd40": dict(attack="pgd", threat="bpda", steps=40)}
    for name, cfg in configs.items():
        s.set_attack(**cfg)  # its auto run is replaced by one()'s explicit run
        one(0)  # warm-up
        engine_ms.clear()
        out[name] = statistics.median([one(k + 1) for k in range(runs)])
        out[f"{name}_engine"] = statistics.median(engine_ms)  # attack + purification inside the engine

    s.set_attack(attack="cw", threat="whitebox", steps=None, eps_l2=None)  # slow: runs on demand only
    stalls, durations = [], []
    for k in range(max(1, runs // 2)):
        ticks: list[float] = []
        timer = QTimer()
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        timer.start(1)
        durations.append(one(k))
        timer.stop()
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        stalls.append(max(gaps) * 1000 if gaps else float("nan"))
    out["cw_max_stall"] = statistics.median(stalls)
    out["cw_duration"] = statistics.median(durations)
    c.shutdown()
    window.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="repetitions per measurement (median reported)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--skip-startup", action="store_true")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.threads:
        os.environ["LQVAE_THREADS"] = str(args.threads)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as tmp:
        models = ensure_models(env, Path(tmp))
        ensure_samples(env, Path(tmp))
        results: dict[str, float] = {}
        if not args.skip_startup:
            results.update(bench_startup(env, args.runs))
        results.update(bench_gui(args.runs))
    import torch

    print(f"LQ-VAE Studio bench: models {models}, torch threads {torch.get_num_threads()}, "
          f"median of {args.runs} runs")
    print(f"{'measure':<22}{'ms':>10}{'target':>10}")
    for key, value in results.items():
        target = TARGETS_MS.get(key)
        mark = "" if target is None else ("  ok" if value <= target else "  over")
        print(f"{key:<22}{value:>10.1f}{'' if target is None else f'{target:>10}'}{mark}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"models": models, "runs": args.runs,
                                               "torch_threads": torch.get_num_threads(),
                                               "results_ms": results, "targets_ms": TARGETS_MS}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
