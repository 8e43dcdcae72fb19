"""The honesty panel and ``app.render.figures`` read what ``python -m lqvae.evaluate`` writes (both formats)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.state.results import bit_flips, load_results, matching, share_under


def score(value: float, flips: list[int] | None = None, n: int = 100) -> dict:
    out = {"n": n, "clean_accuracy": 99.0, "attacked_accuracy": value, "value": value}
    if flips is not None:
        hist = np.bincount(flips, minlength=65).tolist()
        share = 100 * float(np.mean(np.array(flips) < 3.84))
        out["bits"] = {"n_images": len(flips), "latent_dim": 64, "hamming_histogram": hist,
                       "mean_flips": float(np.mean(flips)), "share_below_6pct": share}
    return out


def write_results(folder):
    from lqvae.evaluate.tables import build_table

    folder.mkdir(parents=True, exist_ok=True)
    flips = [1, 2, 2, 3, 8, 12]
    params = {"attack": "fgsm", "threat": "whitebox", "eps": 0.3, "preset": "paper", "norm": "linf"}
    runs = {"fgsm/A": {"key": "fgsm/A", "n": 100, "params": params, "attacked": "A", "attacked_through": None,
                       "cells": {"fgsm/A|no_defense": score(12.5), "fgsm/A|lqvae": score(47.0, flips),
                                 "fgsm/A|no_attack": score(99.0)}}}
    table = build_table(2, ("mnist",), runs, preset="paper")
    (folder / "table2_paper.json").write_text(json.dumps(table["json"]))
    run = {"dataset": "mnist", "classifier": "A", "substitute": None, "defense": "lqvae", "attack": "pgd",
           "threat": "bpda", "preset": "paper", "params": {"eps": 0.3}, **score(3.0, [10, 20, 30])}
    (folder / "run_pgd_bpda.json").write_text(json.dumps(run))
    (folder / "cache").mkdir(exist_ok=True)
    (folder / "cache" / "table2_paper.json").write_text(json.dumps({"stale": True}))
    (folder / "broken.json").write_text("{")


def test_both_evaluation_formats_become_records(tmp_path):
    write_results(tmp_path / "results")
    res = load_results(tmp_path / "results")
    assert list(res.errors) == [str(tmp_path / "results" / "broken.json")]
    hit = matching(res, dataset="mnist", classifier="A", purifier="lqvae", attack="fgsm", threat="whitebox", eps=0.3)
    assert [r["attacked_accuracy"] for r in hit] == [47.0]
    assert bit_flips(hit[0]) == [1, 2, 2, 3, 8, 12] and round(share_under(hit[0])) == 67
    none = matching(res, dataset="mnist", classifier="A", purifier=None, attack="fgsm", threat="whitebox")
    assert [r["attacked_accuracy"] for r in none] == [12.5]
    bpda = matching(res, dataset="mnist", classifier="A", purifier="lqvae", attack="pgd", threat="bpda", eps=0.3)
    assert bpda[0]["attacked_accuracy"] == 3.0 and bpda[0]["eps"] == 0.3


def test_run_records_read_under_the_old_and_the_new_key_names(tmp_path):
    base = {"dataset": "mnist", "classifier": "A", "substitute": None, "attack": "fgsm", "threat": "whitebox",
            "preset": "paper", "params": {"eps": 0.3}, "n": 50, "clean_accuracy": 99.0}
    folder = tmp_path / "results"
    folder.mkdir()
    records = {  # file -> (defense, record): new names, then the names written before the rename
        "new_lqvae.json": ("lqvae", {"undefended_accuracy": 10.0, "defended_accuracy": 80.0,
                                     "clean_accuracy_defended": 98.0}),
        "new_none.json": ("none", {"undefended_accuracy": 11.0}),
        "old_vae.json": ("vae", {"attacked_accuracy_undefended": 12.0, "attacked_accuracy": 70.0,
                                 "clean_accuracy_defended": 97.0}),
        "old_madry.json": ("madry", {"classifier": "A_madry", "attacked_accuracy_undefended": 55.0,
                                     "attacked_accuracy": 55.0}),
    }
    for name, (defense, accuracies) in records.items():
        (folder / name).write_text(json.dumps({**base, "defense": defense, **accuracies}))
    res = load_results(folder)

    def under_attack(purifier, classifier="A"):
        return [r["attacked_accuracy"] for r in matching(res, dataset="mnist", classifier=classifier,
                                                         purifier=purifier, attack="fgsm", threat="whitebox")]

    assert under_attack("lqvae") == [80.0]  # the defended accuracy, not the classifier's alone
    assert under_attack(None) == [11.0]
    assert under_attack("vae") == [70.0]
    assert under_attack(None, "A_madry") == [55.0]


def test_table7_baseline_columns_and_hardened_classifier_runs_are_not_lqvae_numbers(tmp_path):
    bpda = {"attack": "fgsm", "threat": "bpda", "eps": 0.3, "bpda_backward": "bpda"}
    cells = {"mnist|lqvae": {**score(72.0, n=1000), "params": bpda}, "mnist|vae": {**score(49.0, n=1000), "params": bpda},
             "mnist|vae_pgd": {**score(0.2), "params": {**bpda, "attack": "pgd"}},
             "mnist|defensegan": {**score(31.0), "params": bpda}}
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "table7_mnist.json").write_text(json.dumps({"table": 7, "datasets": ["mnist"], "cells": cells, "runs": {}}))
    run = {"dataset": "mnist", "classifier": "A_madry", "defense": "madry", "attack": "pgd", "threat": "whitebox",
           "params": {"eps": 0.3}, **score(52.2)}
    (folder / "adaptive_madry.json").write_text(json.dumps(run))
    res = load_results(folder)

    def got(purifier, attack="fgsm", threat="bpda", classifier="A"):
        return [r["attacked_accuracy"] for r in matching(res, dataset="mnist", classifier=classifier, purifier=purifier,
                                                         attack=attack, threat=threat, eps=0.3)]

    assert got("lqvae") == [72.0] and got("vae") == [49.0] and got("vae", "pgd") == [0.2] and got("defensegan") == [31.0]
    assert got(None, "pgd", "whitebox", "A_madry") == [52.2] and got(None, "pgd", "whitebox") == []


@pytest.fixture
def measured_window(window, tmp_path, monkeypatch):
    """The window, its Honesty panel reading the results of ``write_results``."""
    write_results(tmp_path / "results")
    monkeypatch.setenv("LQVAE_RESULTS", str(tmp_path / "results"))
    return window


def test_honesty_panel_shows_measured_beside_claimed(qtbot, measured_window):
    window = measured_window
    s = window.state
    s.set_attack(attack="fgsm", threat="whitebox", eps_linf=0.3)
    window.honesty.reload()
    text = window.honesty.text.text()
    assert "47.0 %" in text and "89.17 %" in text and "n = 100" in text
    s.set_attack(attack="bim")
    assert "not measured yet" in window.honesty.text.text()


def test_ablation_records_are_found_under_the_name_they_were_shipped_as(tmp_path):
    folder = tmp_path / "ablation" / "mnist" / "adv_mix_code1"
    folder.mkdir(parents=True)
    rec = {"dataset": "mnist", "classifier": "A", "defense": "adv_mix_code1", "shipped_as": "lqvae_adv",
           "attack": "fgsm", "threat": "bpda", "preset": "paper", "params": {"eps": 0.3}, **score(87.6)}
    (folder / "fgsm_bpda.json").write_text(json.dumps(rec))
    unshipped = dict(rec, defense="adv_mix", shipped_as=None, attacked_accuracy=80.0)
    (tmp_path / "ablation" / "mnist" / "other.json").write_text(json.dumps(unshipped))
    res = load_results(tmp_path)
    hits = matching(res, dataset="mnist", classifier="A", purifier="lqvae_adv", attack="fgsm", threat="bpda", eps=0.3)
    assert [h["attacked_accuracy"] for h in hits] == [87.6]  # the unshipped variant is not passed off as it
    assert matching(res, dataset="mnist", classifier="A", purifier="adv_mix", attack="fgsm", threat="bpda")


def test_a_robust_number_from_one_attack_is_called_an_upper_bound(qtbot, measured_window):
    """Issue 18: one attack that knows the defense measures robustness only from above; the panel says so
    beside such a number (BPDA through a purifier), and not beside a grey-box one."""
    from app.state.paper_claims import UPPER_BOUND, upper_bound_note

    window = measured_window
    s = window.state
    s.set_attack(attack="pgd", threat="bpda", eps_linf=0.3)
    window.honesty.reload()
    text = window.honesty.text.text()
    assert "3.0 %" in text and "An upper bound" in text
    s.set_attack(attack="fgsm", threat="whitebox")
    assert "47.0 %" in window.honesty.text.text() and "An upper bound" not in window.honesty.text.text()
    assert upper_bound_note(None, "A_madry", "whitebox") == UPPER_BOUND  # white-box on a hardened classifier
    assert upper_bound_note("lqvae", "A", "bpda_eot") == UPPER_BOUND
    assert upper_bound_note(None, "A", "whitebox") is None and upper_bound_note("lqvae", "A", "blackbox") is None
