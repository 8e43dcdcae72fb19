"""lqvae.spec: written once, torch-free, and every attack in it has exactly one builder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lqvae.attacks.foolbox_attacks import BUILDERS, builder
from lqvae.attacks.runners import AttackSpec, attack_params, expected_calls
from lqvae.spec.attacks import (ATTACKS, END_TO_END, L2_ATTACKS, PRESET_NAMES, SLOW_ATTACKS, THREATS, UNTARGETED_ONLY,
                                is_slow)
from lqvae.spec.datasets import CLASS_NAMES, DATASETS, ETA_MEDIAN
from lqvae.spec.defenses import DEFENSEGAN_SEARCH, HARDENINGS, split_classifier

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_spec_loads_neither_torch_numpy_nor_qt():
    code = ("import sys, lqvae.spec, lqvae.spec.attacks, lqvae.spec.datasets, lqvae.spec.defenses; "
            "print(*(m in sys.modules for m in ('torch', 'numpy', 'foolbox', 'PySide6')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False"] * 4, out.stderr


def test_every_attack_has_one_builder_and_every_builder_an_attack():
    assert set(BUILDERS) == set(ATTACKS)  # adding an attack: one AttackInfo + one @builder, nothing else
    with pytest.raises(KeyError, match="ATTACKS"):
        builder("jsma")  # a builder without a spec entry is refused at import


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_entry_is_complete_and_resolves(name):
    info = ATTACKS[name]
    assert info.name == name and info.label and info.description and info.norm in ("linf", "l2")
    assert set(info.presets) == set(PRESET_NAMES)
    for preset in PRESET_NAMES:
        p = attack_params(AttackSpec(attack=name, preset=preset))
        assert (p["eps"] is None) == info.minimization  # minimization attacks are unbounded by default
        assert p["norm"] == info.norm
        assert expected_calls(AttackSpec(attack=name, preset=preset)) >= 3
    assert info.targetable or info.untargeted_why


def test_threats_and_derived_tuples():
    assert END_TO_END == ("bpda", "bpda_eot") == tuple(n for n, t in THREATS.items() if t.end_to_end)
    assert all(THREATS[t].needs_purifier for t in END_TO_END) and THREATS["blackbox"].needs_substitute
    assert [n for n, t in THREATS.items() if t.stochastic] == ["bpda_eot"]
    assert "deepfool_linf" not in L2_ATTACKS and {"deepfool", "cw", "boundary", "hsj"} <= set(L2_ATTACKS)
    assert {"deepfool", "deepfool_linf"} <= set(UNTARGETED_ONLY) and {"cw", "boundary"} <= set(SLOW_ATTACKS)


def test_hopskipjump_is_a_decision_based_slow_l2_attack():
    hsj = ATTACKS["hsj"]
    assert hsj.norm == "l2" and not hsj.gradient and hsj.cost == "slow" and hsj.minimization
    assert hsj.label.startswith("HopSkipJump")
    assert hsj.presets["paper"]["steps"] > hsj.presets["live"]["steps"]


@pytest.mark.parametrize("args, slow", [
    (("fgsm", "whitebox", "live", None), False), (("pgd", "bpda", "live", None), False),
    (("pgd", "bpda", "live", 41), True), (("pgd", "whitebox", "live", 100), False),
    (("pgd", "whitebox", "live", 101), True), (("fgsm", "bpda_eot", "live", None), True),
    (("fgsm", "whitebox", "paper", None), True), (("cw", "whitebox", "live", None), True),
    (("hsj", "whitebox", "live", None), True), (("nope", "whitebox", "live", None), False),
])
def test_the_apps_slow_rule(args, slow):
    assert is_slow(*args) is slow


def test_datasets_and_defenses_are_the_engines():
    from lqvae.core.config import ETA_MEDIAN as config_eta
    from lqvae.core.defensegan import DefenseGAN
    from lqvae.io import data, registry

    assert data.CLASS_NAMES is CLASS_NAMES and data.DATASETS is DATASETS and config_eta == ETA_MEDIAN == 0.67449
    assert registry.HARDENINGS is HARDENINGS and DefenseGAN.LIVE == DEFENSEGAN_SEARCH["live"]
    assert split_classifier("A_madry") == ("A", "madry") and split_classifier("A_x") == ("A_x", None)


def test_the_app_derives_its_constants_from_the_spec():
    from app.state import settings as s

    assert list(s.ATTACK_LABELS) == list(ATTACKS) and list(s.THREAT_LABELS) == list(THREATS)
    assert s.ITERATIVE == {n: a.presets["live"]["steps"] for n, a in ATTACKS.items() if "steps" in a.presets["live"]}
    assert s.DEFAULT_CLASS_NAMES["fashion_mnist"] == list(CLASS_NAMES["fashion_mnist"])
    assert set(s.CLASSIFIER_DEFENSES) == set(HARDENINGS)
