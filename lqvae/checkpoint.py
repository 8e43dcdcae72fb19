"""Safe checkpoints: safetensors weights plus JSON metadata; nothing is ever unpickled.

Metadata keys (all strings, as safetensors requires): ``format``, ``kind``, ``config`` (JSON), ``dataset``, ``command``, ``args`` (JSON), ``epochs``,
``metrics`` (JSON), ``created``, ``dtype``. Kinds: ``lqvae`` (also the VAE ablation, by its config),
``classifier``, ``defensegan`` (the generator; the critic is training-only). Loading rebuilds the model from ``config``, checks every
tensor name and shape against it, and refuses anything else with a ``CheckpointError`` that names
the file and the way out. Writes are atomic: a temporary file in the same folder, fsync, rename.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from lqvae.config import ClassifierConfig, DefenseGANConfig, LQVAEConfig
from lqvae.defensegan import DefenseGAN
from lqvae.models import LQVAE, Classifier

FORMAT = "lqvae-studio/1"
KINDS = ("lqvae", "classifier", "defensegan")
PURIFIER_KINDS = ("lqvae", "defensegan")
TRAINING_ONLY = {"lqvae": "h.", "defensegan": "critic."}  # tensors a shipped checkpoint leaves out
MAX_CHECKPOINT_BYTES = 1024 * 1024 * 1024  # 1 GiB: far above any model here, far below a memory bomb
MAX_HEADER_BYTES = 16 * 1024 * 1024


class CheckpointError(ValueError):
    """A file that is not a checkpoint this program can load; the message says why and what to do."""


@dataclass
class Checkpoint:
    model: nn.Module
    kind: str
    config: LQVAEConfig | ClassifierConfig
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        return self.metadata.get("metrics", {})


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then atomically rename onto ``path`` (no half-written files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shipped_state(model: nn.Module, kind: str) -> dict[str, torch.Tensor]:
    """The tensors that make up a shipped checkpoint (an LQ-VAE ships f and g, not h; Defense-GAN G only)."""
    state = model.state_dict()
    prefix = TRAINING_ONLY.get(kind)
    if prefix:
        state = {k: v for k, v in state.items() if not k.startswith(prefix)}
    return state


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, kind: str, dataset: str,
                    command: str = "", args: dict[str, Any] | None = None, epochs: int = 0,
                    metrics: dict[str, Any] | None = None, dtype: torch.dtype = torch.float32,
                    extra: dict[str, str] | None = None) -> None:
    if kind not in KINDS:
        raise ValueError(f"expected kind in {KINDS}, got {kind!r}")
    cfg = model.cfg  # type: ignore[attr-defined]
    tensors = {k: v.detach().to("cpu", dtype=dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in shipped_state(model, kind).items()}
    meta = {
        "format": FORMAT, "kind": kind, "config": json.dumps(cfg.to_dict()), "dataset": dataset,
        "command": command, "args": json.dumps(args or {}, default=str), "epochs": str(epochs),
        "metrics": json.dumps(metrics or {}), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dtype": str(dtype).removeprefix("torch."),
    }
    meta.update(extra or {})
    atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def _check_container(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path}: {size} bytes is larger than the {MAX_CHECKPOINT_BYTES} allowed")
    with open(path, "rb") as fh:
        head = fh.read(9)
    # A safetensors file is an 8-byte little-endian header length, then the JSON header ("{"). The
    # length's low byte may be 0x80, the pickle opcode, so the "{" decides before the pickle sniffing.
    looks_safetensors = head[8:9] == b"{"
    if not looks_safetensors and (head[:2] == b"PK" or head[:1] == b"\x80"):
        raise CheckpointError(f"{path}: this is a pickle/torch.save file, not safetensors; it is refused because "
                              "unpickling runs code. Convert it with a trusted script to safetensors.")
    if len(head) < 8:
        raise CheckpointError(f"{path}: {size} bytes is too short to be a safetensors file (truncated?)")
    (n,) = struct.unpack("<Q", head[:8])
    if n > MAX_HEADER_BYTES or 8 + n > size:
        raise CheckpointError(f"{path}: header length {n} does not fit in a {size}-byte file; the file is "
                              "truncated or not safetensors")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Parsed metadata of a checkpoint, without loading its tensors."""
    path = Path(path)
    _check_container(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: metadata format is {raw.get('format')!r}, expected {FORMAT!r}; "
                              "this file was not written by lqvae")
    meta: dict[str, Any] = dict(raw)
    try:
        for key in ("config", "args", "metrics"):
            meta[key] = json.loads(raw.get(key, "{}"))
        meta["epochs"] = int(raw.get("epochs", "0"))
    except (json.JSONDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt metadata ({exc})") from None
    return meta


def build_model(kind: str, config: dict[str, Any], *, with_h: bool = False) -> nn.Module:
    if kind == "lqvae":
        return LQVAE(LQVAEConfig.from_dict(config), with_h=with_h)
    if kind == "classifier":
        return Classifier(ClassifierConfig.from_dict(config))
    if kind == "defensegan":
        return DefenseGAN(DefenseGANConfig.from_dict(config), with_critic=with_h)
    raise CheckpointError(f"unknown checkpoint kind {kind!r}; expected one of {KINDS}")


def load_checkpoint(path: str | os.PathLike, *, kind: str | None = None, device: torch.device | str = "cpu",
                    with_h: bool = False) -> Checkpoint:
    """Load, verify and return a model in eval mode (float32) from a safetensors checkpoint.

    ``with_h`` also builds the training-only part (h of an LQ-VAE, the critic of a Defense-GAN),
    loaded when the file has it (a training state does), else h starts as a copy of g."""
    path = Path(path)
    meta = read_metadata(path)
    if kind is not None and meta["kind"] != kind:
        raise CheckpointError(f"{path}: is a {meta['kind']!r} checkpoint, expected {kind!r}")
    try:
        model = build_model(meta["kind"], meta["config"], with_h=with_h)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its config cannot build a model ({exc})") from None
    expected = {k: tuple(v.shape) for k, v in shipped_state(model, meta["kind"]).items()}
    try:
        with safe_open(str(path), framework="pt") as fh:
            names = set(fh.keys())
            prefix = TRAINING_ONLY.get(meta["kind"], "\0")
            names_wo_h = {n for n in names if not n.startswith(prefix)}
            missing, unexpected = set(expected) - names_wo_h, names_wo_h - set(expected)
            if missing or unexpected:
                raise CheckpointError(f"{path}: tensors do not match the {meta['kind']} architecture in its config "
                                      f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
            state = {}
            for name in names if with_h else names_wo_h:
                t = fh.get_tensor(name)
                want = expected.get(name)
                if want is not None and tuple(t.shape) != want:
                    raise CheckpointError(f"{path}: tensor {name} has shape {tuple(t.shape)}, the architecture "
                                          f"needs {want}")
                state[name] = t.float() if t.is_floating_point() else t
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: damaged tensor data ({exc})") from None
    has_h = any(n.startswith(prefix) for n in names)
    model.load_state_dict(state, strict=not (with_h and not has_h))
    if with_h and not has_h and isinstance(model, LQVAE) and model.h is not None:
        model.h.load_state_dict(model.g.state_dict())  # type: ignore[union-attr]
    model.to(device).eval()
    return Checkpoint(model, meta["kind"], model.cfg, meta, path)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- training state
def save_train_state(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
                     info: dict[str, Any]) -> None:
    """Everything needed to resume: all weights (h included), Adam moments, and ``info`` (JSON)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for key, value in st.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    meta = {"format": FORMAT + "/train-state", "info": json.dumps(info, default=str),
            "param_groups": json.dumps(opt["param_groups"])}
    atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_train_state(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    path = Path(path)
    _check_container(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != FORMAT + "/train-state":
                raise CheckpointError(f"{path}: not an lqvae training state")
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: damaged training state ({exc})") from None
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return json.loads(meta["info"])
