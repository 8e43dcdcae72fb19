"""Hostile checkpoint files (issue 15): each is refused with a message naming the file and the way out,
quickly and before any large allocation, and one bad file never hides the good ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import lqvae.io.checkpoint as ckmod
from lqvae.io.checkpoint import (FORMAT, CheckpointError, load_checkpoint, read_metadata, remove_stale_temporaries,
                              save_checkpoint, shipped_state)
from lqvae.core.config import ClassifierConfig, DefenseGANConfig, LQVAEConfig
from lqvae.core.defensegan import DefenseGAN
from lqvae.core.models import Classifier
from lqvae.io.registry import inventory, load_named

WAY_OUT = ("remove", "rename", "retrain", "replace", "pick", "check", "convert", "train")


@pytest.fixture(scope="module")
def clf_c() -> Classifier:
    torch.manual_seed(0)
    return Classifier(ClassifierConfig(arch="C"))  # the smallest real model (0.2 M weights)


def meta_of(model, kind: str, /, **changes) -> dict[str, str]:
    """The metadata save_checkpoint writes, with ``changes`` applied (None deletes a key)."""
    meta = {"format": FORMAT, "kind": kind, "config": json.dumps(model.cfg.to_dict()), "dataset": "mnist",
            "command": "", "args": "{}", "epochs": "0", "metrics": "{}", "created": "", "dtype": "float32"}
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return meta


def write(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def write_classifier(path: Path, model: Classifier, /, **changes) -> Path:
    return write(path, shipped_state(model, "classifier"), meta_of(model, "classifier", **changes))


def refused(path: Path, *words: str, load=load_checkpoint) -> str:
    """The CheckpointError message of loading ``path``: it names the file, says ``words`` and the way out."""
    with pytest.raises(CheckpointError) as info:
        load(path)
    msg = str(info.value)
    assert path.name in msg, msg
    assert all(w in msg for w in words), msg
    assert any(w in msg.lower() for w in WAY_OUT), msg
    return msg


# ----------------------------------------------------------------------------- 1. metadata schema, listing, boot
BAD_METADATA = {
    "no_kind": ({"kind": None}, "has no kind"),
    "unknown_kind": ({"kind": "gan"}, "'gan'"),
    "config_list": ({"config": "[1, 2]"}, "config is a JSON list"),
    "config_string": ({"config": '"A"'}, "config is a JSON str"),
    "config_missing": ({"config": None}, "no config"),
    "config_not_json": ({"config": "{"}, "not valid JSON"),
    "config_nested": ({"config": "[" * 100_000}, "config"),
    "args_list": ({"args": "[1]"}, "args is a JSON list"),
    "metrics_list": ({"metrics": "[]"}, "metrics is a JSON list"),
    "epochs_text": ({"epochs": "many"}, "epochs"),
    "epochs_negative": ({"epochs": "-3"}, "epochs"),
}


@pytest.mark.parametrize("case", sorted(BAD_METADATA))
def test_bad_metadata_is_refused_naming_file_and_problem(tmp_path, clf_c, case):
    changes, words = BAD_METADATA[case]
    path = write_classifier(tmp_path / f"classifier_C_{case}.safetensors", clf_c, **changes)
    refused(path, words, load=read_metadata)
    refused(path, words)


def test_inventory_lists_good_files_and_reports_each_bad_one(tmp_path, clf_c):
    folder = tmp_path / "mnist"
    write_classifier(folder / "classifier_C.safetensors", clf_c)
    write_classifier(folder / "classifier_C_madry.safetensors", clf_c)
    dg = DefenseGAN(DefenseGANConfig(dim=2))
    write(folder / "defensegan.safetensors", shipped_state(dg, "defensegan"), meta_of(dg, "defensegan"))
    bad = {"classifier_A.safetensors": {"kind": None}, "classifier_B.safetensors": {"config": "[]"},
           "lqvae.safetensors": {"kind": "lqvae", "config": '"x"'},
           "classifier_Zq_madry.safetensors": {},  # no such arch: the app would split it into "Zq" + madry
           "classifier_A_madry.safetensors": {},  # named A, but its config is arch C: the label would lie
           "classifier_C_best.safetensors": {},  # an unknown hardening
           "gan.safetensors": {"kind": "gan"}, "classifier.safetensors": {},
           "classifier_C_advtr.safetensors": {"config": json.dumps({"arch": "C", "num_classes": 2_000_000})}}
    for name, changes in bad.items():
        write_classifier(folder / name, clf_c, **changes)
    write(folder / "classifier_lqvae.safetensors", shipped_state(dg, "defensegan"), meta_of(dg, "defensegan"))
    inv = inventory("mnist", tmp_path)
    assert sorted(inv.classifiers) == ["C", "C_madry"] and sorted(inv.purifiers) == ["defensegan"]
    assert sorted(inv.errors) == sorted([*bad, "classifier_lqvae.safetensors"])
    for name, message in inv.errors.items():
        assert name in message and any(w in message.lower() for w in WAY_OUT), message
    assert "classifier_C.safetensors" in inv.errors["classifier_A_madry.safetensors"]  # says what to rename it to


def test_load_named_applies_the_name_rules(tmp_path, clf_c):
    folder = tmp_path / "mnist"
    write_classifier(folder / "classifier_A.safetensors", clf_c)  # an arch-C model under the name A
    refused(folder / "classifier_A.safetensors", "arch 'C'",
            load=lambda p: load_named("mnist", "A", kind="classifier", root=tmp_path))
    with pytest.raises(CheckpointError, match="not a model name"):
        load_named("mnist", "../mnist/classifier_A", kind="classifier", root=tmp_path)
    write_classifier(folder / "notapurifier.safetensors", clf_c)
    refused(folder / "notapurifier.safetensors", "expected a purifier",
            load=lambda p: load_named("mnist", "notapurifier", kind="purifier", root=tmp_path))


def test_boot_survives_hostile_files_and_describes_the_good_ones(tmp_path, clf_c, monkeypatch):
    from app.engine import adapter as engine_adapter

    folder = tmp_path / "mnist"
    args = {"adv": "madry", "pgd_steps": "x" * 5000, "epochs": [1]}
    write_classifier(folder / "classifier_C_madry.safetensors", clf_c, args=json.dumps(args),
                     metrics=json.dumps({"test_accuracy": "high", "pgd20_accuracy_1000": None}))
    write_classifier(folder / "classifier_C.safetensors", clf_c)
    write_classifier(folder / "classifier_A.safetensors", clf_c, kind=None)
    write_classifier(folder / "classifier_B.safetensors", clf_c, args="[1, 2]")
    write_classifier(folder / "classifier_Zq_madry.safetensors", clf_c)
    monkeypatch.setenv("LQVAE_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("LQVAE_SAMPLES", str(tmp_path / "no_samples"))
    info = engine_adapter.boot("mnist")
    assert info.classifiers == ["C", "C_madry"]
    assert sorted(info.checkpoint_errors) == ["classifier_A.safetensors", "classifier_B.safetensors",
                                              "classifier_Zq_madry.safetensors"]
    note = info.classifier_notes["C_madry"]  # the file's odd values are shown as they are, briefly
    assert note.startswith("[1] epochs of PGD-xxx") and len(note) <= 300 and "clean" not in note


# ----------------------------------------------------------------------------- 2. weights: NaN, Inf, dtypes
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, clf_c, value):
    state = {k: v.clone() for k, v in shipped_state(clf_c, "classifier").items()}
    name = sorted(state)[0]
    state[name].view(-1)[3] = value
    path = write(tmp_path / "classifier_C.safetensors", state, meta_of(clf_c, "classifier"))
    refused(path, name, "NaN or infinite")


def test_nan_in_half_precision_is_refused(tmp_path, clf_c):
    state = {k: v.half() for k, v in shipped_state(clf_c, "classifier").items()}
    name = sorted(state)[-1]
    state[name].view(-1)[0] = float("nan")
    refused(write(tmp_path / "classifier_C.safetensors", state, meta_of(clf_c, "classifier")), name, "NaN")


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.float64])
def test_weights_of_a_dtype_we_never_write_are_refused(tmp_path, clf_c, dtype):
    state = dict(shipped_state(clf_c, "classifier"))
    name = sorted(state)[0]
    state[name] = torch.ones_like(state[name], dtype=dtype)
    path = write(tmp_path / "classifier_C.safetensors", state, meta_of(clf_c, "classifier"))
    refused(path, name, "stored as")


def test_bfloat16_weights_load_as_float32(tmp_path, clf_c):
    state = {k: v.bfloat16() for k, v in shipped_state(clf_c, "classifier").items()}
    model = load_checkpoint(write(tmp_path / "classifier_C.safetensors", state, meta_of(clf_c, "classifier"))).model
    assert all(p.dtype == torch.float32 for p in model.parameters())


# ----------------------------------------------------------------------------- 3. validation before building
def timed_refusal(path: Path, *words: str) -> float:
    t0 = time.perf_counter()
    refused(path, *words)
    return time.perf_counter() - t0


def test_two_million_classes_are_refused_before_building(tmp_path, clf_c):
    config = json.dumps({**clf_c.cfg.to_dict(), "num_classes": 2_000_000})
    path = write_classifier(tmp_path / "classifier_C.safetensors", clf_c, config=config)
    assert timed_refusal(path, "num_classes", "2000000") < 1.0


def test_a_giant_latent_is_refused_before_building(tmp_path):
    config = json.dumps({**LQVAEConfig.mnist().to_dict(), "latent_dim": 10**12})
    meta = {"format": FORMAT, "kind": "lqvae", "config": config}
    path = write(tmp_path / "lqvae.safetensors", {"w": torch.zeros(1)}, meta)
    assert timed_refusal(path, "latent_dim", str(10**12)) < 1.0


def test_a_config_within_field_limits_but_too_large_overall_is_refused_on_the_meta_device(tmp_path):
    config = json.dumps({**DefenseGANConfig().to_dict(), "dim": 1024})  # ~0.3 G weights
    path = write(tmp_path / "defensegan.safetensors", {"w": torch.zeros(1)},
                 {"format": FORMAT, "kind": "defensegan", "config": config})
    assert timed_refusal(path, "more than the") < 1.0


@pytest.mark.parametrize("field,value", [("image_shape", [1, 28, 10**9]), ("image_shape", "abc"),
                                         ("num_classes", True), ("num_classes", 10.5), ("lr", "NaN"),
                                         ("arch", ["A"])])
def test_config_fields_are_checked(tmp_path, clf_c, field, value):
    config = json.dumps({**clf_c.cfg.to_dict(), field: value})
    if value == "NaN":
        config = config.replace('"NaN"', "NaN")  # JSON extension Python accepts: a real float nan
    refused(write_classifier(tmp_path / "classifier_C.safetensors", clf_c, config=config), field.split("[")[0])


def test_header_shapes_are_compared_before_any_tensor_is_read(tmp_path, clf_c, monkeypatch):
    other = Classifier(ClassifierConfig(arch="C", num_classes=20))
    path = write(tmp_path / "classifier_C.safetensors", shipped_state(other, "classifier"),
                 meta_of(clf_c, "classifier"))  # 20-class weights under a 10-class config
    built, real = [], ckmod.build_model

    def spy(*args, **kwargs):
        model = real(*args, **kwargs)
        built.append(next(model.parameters()).device.type)
        return model

    monkeypatch.setattr(ckmod, "build_model", spy)
    refused(path, "has shape (20,", "needs (10,")
    assert built == ["meta"]  # only the memory-free model: the real one is built after every check


def test_config_limits_in_the_dataclasses():
    for bad in ({"latent_dim": 4097}, {"latent_dim": True}, {"eta": float("nan")}, {"lr": float("inf")},
                {"image_shape": (1, 28)}, {"betas": (0.9,)}, {"recon": "l1"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LQVAEConfig.mnist(**bad) if "image_shape" not in bad else LQVAEConfig(**bad)
    assert LQVAEConfig.mnist(latent_dim=4096).latent_dim == 4096
    assert ClassifierConfig(num_classes=10_000).num_classes == 10_000


# ----------------------------------------------------------------------------- 4. orphaned temporary files
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_writers_are_removed_and_nothing_else(tmp_path):
    dead, old = tmp_path / f".c.safetensors.{dead_pid()}.ab12_x.tmp", time.time() - 120
    live = tmp_path / f".c.safetensors.{os.getpid()}.cd34.tmp"
    fresh_dead = tmp_path / f".lqvae.safetensors.{dead_pid()}.ef56.tmp"
    ancient_legacy = tmp_path / ".c.safetensors.zz9abc.tmp"  # from before the PID was in the name
    recent_legacy = tmp_path / ".v.safetensors.yy8abc.tmp"
    others = [tmp_path / n for n in ("c.safetensors", ".c.safetensors", "notes.tmp", ".c.txt.123.ab.tmp",
                                     "c.safetensors.123.ab.tmp")]
    for p in [dead, live, fresh_dead, ancient_legacy, recent_legacy, *others]:
        p.write_bytes(b"x")
    for p in [dead, live, *others]:
        os.utime(p, (old, old))
    os.utime(ancient_legacy, (old - 7200, old - 7200))
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([dead, ancient_legacy])
    assert not dead.exists() and not ancient_legacy.exists()
    assert all(p.exists() for p in [live, fresh_dead, recent_legacy, *others])  # live, in grace, young, not ours
    assert remove_stale_temporaries(tmp_path, grace_s=0) == [fresh_dead]
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_atomic_write_names_its_temporary_after_the_writer(tmp_path, clf_c, monkeypatch):
    seen = []
    real = ckmod.save_file

    def spy(tensors, filename, metadata=None):
        seen.append(Path(filename).name)
        real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(ckmod, "save_file", spy)
    save_checkpoint(tmp_path / "classifier_C.safetensors", clf_c, kind="classifier", dataset="mnist")
    assert seen[0].startswith(f".classifier_C.safetensors.{os.getpid()}.") and seen[0].endswith(".tmp")
    assert ckmod._TMP_NAME.match(seen[0])


# ----------------------------------------------------------------------------- 5. messages
def test_every_refusal_names_the_file_and_a_way_out(tmp_path, clf_c):
    cases = {
        "missing.safetensors": None,
        "short.safetensors": b"1234",
        "pickle.safetensors": b"\x80\x02}q\x00.",
        "huge_header.safetensors": (2**40).to_bytes(8, "little") + b"{}",
    }
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        refused(tmp_path / name)
    write(tmp_path / "foreign.safetensors", {"w": torch.zeros(2)}, {"format": "other"})
    refused(tmp_path / "foreign.safetensors", "not written by lqvae")
    write_classifier(tmp_path / "kind.safetensors", clf_c)
    refused(tmp_path / "kind.safetensors", "expected 'lqvae'", load=lambda p: load_checkpoint(p, kind="lqvae"))
    state = dict(shipped_state(clf_c, "classifier"))
    state.pop(sorted(state)[0])
    refused(write(tmp_path / "fewer.safetensors", state, meta_of(clf_c, "classifier")), "missing")


# ----------------------------------------------------------------------------- 6. a fresh hostile corpus (red team)
def _rewrite_header(path: Path, edit) -> Path:
    """Apply ``edit`` to the parsed header of a real checkpoint and write it back with the same tensor data."""
    import struct

    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = edit(data[8:8 + n].decode())
    raw = header.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
    return path


def test_a_float_field_too_large_for_a_float_is_refused_and_listed(tmp_path, clf_c):
    folder = tmp_path / "mnist"
    write_classifier(folder / "classifier_C.safetensors", clf_c)
    lq_cfg = LQVAEConfig.mnist(latent_dim=8).to_dict()
    lq_cfg["lr"] = "@@"
    bad = write(folder / "lqvae_big.safetensors", {"w": torch.zeros(1)},
                {"format": FORMAT, "kind": "lqvae", "config": json.dumps(lq_cfg).replace('"@@"', "1" + "0" * 400),
                 "dataset": "mnist", "args": "{}", "metrics": "{}", "epochs": "0"})
    refused(bad, "lr")
    inv = inventory("mnist", tmp_path)
    assert "lqvae_big.safetensors" in inv.errors and "C" in inv.classifiers


@pytest.mark.parametrize("make", ["fifo", "folder"])
def test_something_that_is_not_a_regular_file_is_named_for_what_it_is(tmp_path, make):
    path = tmp_path / "classifier_A.safetensors"
    if make == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    t0 = time.monotonic()
    refused(path, "is a FIFO" if make == "fifo" else "is a folder")
    assert time.monotonic() - t0 < 1  # a FIFO is never opened, so nothing blocks


def test_a_repeated_tensor_name_is_refused(tmp_path, clf_c):
    path = write_classifier(tmp_path / "classifier_C.safetensors", clf_c)
    first = next(iter(shipped_state(clf_c, "classifier")))

    def repeat(header: str) -> str:
        entry = json.loads(header)[first]
        header = header.rstrip()  # safetensors pads the header with spaces to 8-byte alignment
        return header[:-1] + f', "{first}": {json.dumps(entry)}' + "}"

    _rewrite_header(path, repeat)
    refused(path, "more than once")


def test_a_metadata_map_bomb_is_refused_quickly(tmp_path, clf_c):
    meta = meta_of(clf_c, "classifier")
    meta.update({f"k{i}": "" for i in range(50_000)})  # ~0.7 MB of header: 50,000 entries
    path = write(tmp_path / "classifier_C.safetensors", shipped_state(clf_c, "classifier"), meta)
    t0 = time.monotonic()
    refused(path, "metadata entries", load=read_metadata)
    assert time.monotonic() - t0 < 1.0


def test_a_header_over_the_limit_is_refused_before_parsing(tmp_path, clf_c):
    meta = meta_of(clf_c, "classifier", command="x" * (2 * ckmod.MAX_HEADER_BYTES))
    path = write(tmp_path / "classifier_C.safetensors", shipped_state(clf_c, "classifier"), meta)
    refused(path, "header length", load=read_metadata)


@pytest.mark.parametrize("epochs", ["٣", "³", "1_000"])
def test_epochs_must_be_ascii_digits(tmp_path, clf_c, epochs):
    path = write_classifier(tmp_path / "classifier_C.safetensors", clf_c, epochs=epochs)
    refused(path, "epochs", load=read_metadata)


@pytest.mark.parametrize("eta", [5e-324, 1e300])
def test_an_absurd_threshold_is_refused(tmp_path, eta):
    cfg = LQVAEConfig.mnist(latent_dim=8).to_dict()
    cfg["eta"] = eta
    path = write(tmp_path / "lqvae.safetensors", {"w": torch.zeros(1)},
                 {"format": FORMAT, "kind": "lqvae", "config": json.dumps(cfg), "dataset": "mnist", "args": "{}",
                  "metrics": "{}", "epochs": "0"})
    refused(path, "eta")
