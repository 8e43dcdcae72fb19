import pickle

import pytest
import torch

from lqvae.io.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from lqvae.core.config import ClassifierConfig
from lqvae.core.models import Classifier


def test_round_trip_is_exact(tmp_path, lqvae_model):
    path = tmp_path / "lq.safetensors"
    save_checkpoint(path, lqvae_model, kind="lqvae", dataset="mnist", epochs=3, metrics={"acc": 97.5},
                    command="python -m lqvae.train lqvae")
    ck = load_checkpoint(path, kind="lqvae")
    assert ck.config == lqvae_model.cfg and ck.metadata["epochs"] == 3 and ck.metrics == {"acc": 97.5}
    assert ck.model.h is None  # h is not shipped
    want = {k: v for k, v in lqvae_model.state_dict().items() if not k.startswith("h.")}
    got = ck.model.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_float16_storage_loads_as_float32(tmp_path, classifier_a):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, classifier_a, kind="classifier", dataset="mnist", dtype=torch.float16)
    ck = load_checkpoint(path, kind="classifier")
    w = next(ck.model.parameters())
    assert w.dtype == torch.float32
    assert read_metadata(path)["dtype"] == "float16"


class Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickle_renamed_is_refused_without_running_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"w": Boom()}, protocol=2))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    torch.save({"w": torch.zeros(2)}, tmp_path / "zip.safetensors")
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(tmp_path / "zip.safetensors")
    assert not (tmp_path / "PWNED").exists()


def test_truncated_file_is_refused(tmp_path, classifier_a):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, classifier_a, kind="classifier", dataset="mnist")
    data = path.read_bytes()
    for cut in (4, 100, len(data) // 2):
        (tmp_path / "t.safetensors").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated|damaged|not a readable"):
            load_checkpoint(tmp_path / "t.safetensors")


def test_wrong_kind_and_wrong_shape_are_refused(tmp_path, classifier_a):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, classifier_a, kind="classifier", dataset="mnist")
    with pytest.raises(CheckpointError, match="expected 'lqvae'"):
        load_checkpoint(path, kind="lqvae")
    # a B network's weights under an A config: names differ, refused before any tensor is used
    other = Classifier(ClassifierConfig(arch="B"))
    other.cfg = ClassifierConfig(arch="A")
    save_checkpoint(tmp_path / "mix.safetensors", other, kind="classifier", dataset="mnist")
    with pytest.raises(CheckpointError, match="do not match|shape"):
        load_checkpoint(tmp_path / "mix.safetensors")


def test_missing_file_and_foreign_safetensors(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not written by lqvae"):
        load_checkpoint(tmp_path / "foreign.safetensors")


def test_write_is_atomic_when_interrupted(tmp_path, classifier_a, monkeypatch):
    import lqvae.io.checkpoint as ckmod

    path = tmp_path / "c.safetensors"
    save_checkpoint(path, classifier_a, kind="classifier", dataset="mnist", epochs=1)

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckmod, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, classifier_a, kind="classifier", dataset="mnist", epochs=2)
    assert read_metadata(path)["epochs"] == 1  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temp file left
