"""``main.py --screenshot`` headless, a real window under Xvfb, and ``python -m app.render.figures``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import numpy as np
import pytest
from tests.app.helpers import child_env, png_pixels, run_main


@pytest.mark.slow  # a fresh process imports torch: ~10 s on an idle machine
def test_screenshot_writes_a_full_non_blank_window(tmp_path, app_env):
    out = tmp_path / "shot.png"
    env = child_env(app_env)
    env.pop("QT_QPA_PLATFORM", None)  # --screenshot must choose offscreen by itself
    proc = run_main(["--screenshot", str(out), "--sample", "5", "--attack", "fgsm", "--eps", "0.2"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    px = png_pixels(out)
    assert px.shape[0] >= 800 and px.shape[1] >= 1200
    assert px.std() > 20 and len(np.unique(px.reshape(-1, 3), axis=0)) > 50  # not blank, many colours


def _free_display() -> int:
    for n in range(91, 120):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            return n
    raise RuntimeError("no free X display number")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")
def test_real_window_under_xvfb(tmp_path, app_env):
    n = _free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if os.path.exists(f"/tmp/.X11-unix/X{n}"):
                break
            time.sleep(0.1)
        out = tmp_path / "xvfb.png"
        env = child_env(app_env, DISPLAY=f":{n}", QT_QPA_PLATFORM="xcb")
        proc = run_main(["--screenshot", str(out), "--sample", "1", "--attack", "pgd", "--threat", "bpda",
                         "--steps", "5"], env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        px = png_pixels(out)
        assert px.std() > 20 and px.shape[1] >= 1200
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def test_figures_render_results_json_to_png(tmp_path, qapp, capsys):
    from app.render.figures import main as figures_main

    folder = tmp_path / "results"
    folder.mkdir()
    rows = [{"dataset": "mnist", "classifier": "A", "defense": d, "attack": "fgsm", "threat": "whitebox", "eps": e,
             "n": 100, "clean_accuracy": 99.0, "attacked_accuracy": acc,
             "hamming": [int(x) for x in np.random.default_rng(0).integers(0, 20, 100)]}
            for d, base in (("none", 90.0), ("lqvae", 95.0)) for e, acc in ((0.1, base - 30), (0.3, base - 60))]
    (folder / "fgsm.json").write_text(json.dumps({"cells": rows}))
    (folder / "broken.json").write_text("{not json")
    assert figures_main([str(folder), "--out", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    names = {p.name for p in (tmp_path / "fig").glob("*.png")}
    assert any("accuracy" in n for n in names) and any("bitflips" in n for n in names), names
    for name in names:
        assert png_pixels(tmp_path / "fig" / name).std() > 5
    assert "broken.json" in out
