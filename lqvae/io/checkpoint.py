"""Safe checkpoints: safetensors weights plus JSON metadata; nothing is ever unpickled.

Metadata keys (all strings, as safetensors requires): ``format``, ``kind``, ``config`` (JSON), ``dataset``, ``command``, ``args`` (JSON), ``epochs``,
``metrics`` (JSON), ``created``, ``dtype``. Kinds: ``lqvae`` (also the VAE ablation, by its config),
``classifier``, ``defensegan`` (the generator; the critic is training-only). Loading rebuilds the model from ``config``, checks every
tensor name and shape against it, and refuses anything else with a ``CheckpointError`` that names
the file and the way out. Writes are atomic: a temporary file in the same folder, fsync, rename.

A checkpoint is untrusted input (the app lists whatever lies in its folder), so nothing in it is used
before it is checked: the metadata schema (``read_metadata``), every config field's type and range
(``lqvae.core.config``), then the header's tensor names, shapes and dtypes against a model built on the
``meta`` device (no memory), the total size, and finally every weight for NaN and infinity. Only then
is the real model built. A temporary file left by a killed writer is named after the writer's PID so
``remove_stale_temporaries`` can tell an orphan from a save in progress.
"""

from __future__ import annotations

import json
import os
import re
import stat
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

from lqvae.core.config import ClassifierConfig, DefenseGANConfig, LQVAEConfig
from lqvae.core.defensegan import DefenseGAN
from lqvae.core.models import LQVAE, Classifier
from lqvae.spec.errors import Refusal

FORMAT = "lqvae-studio/1"
KINDS = ("lqvae", "classifier", "defensegan")
PURIFIER_KINDS = ("lqvae", "defensegan")
TRAINING_ONLY = {"lqvae": "h.", "defensegan": "critic."}  # tensors a shipped checkpoint leaves out
MAX_CHECKPOINT_BYTES = 1024 * 1024 * 1024  # 1 GiB: far above any model here, far below a memory bomb
MAX_METADATA_KEYS = 64  # we write 10-15
MAX_HEADER_BYTES = 1024 * 1024  # our largest header is 5 KB (a training state ~20 KB); json of 1 MB stays ~30 MB
MAX_ELEMENTS = 200_000_000  # weights a checkpoint may hold (the largest shipped model has 13.7 M)
# What save_checkpoint writes for weights; every state tensor of our models is floating point, so an
# integer or bool tensor in a file is refused rather than cast.
WEIGHT_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
STALE_AFTER_S = 3600.0  # a temporary file this old is an orphan whoever wrote it
_TMP_NAME = re.compile(r"^\..+\.safetensors\.(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]+\.tmp$")  # atomic_write's, old and new
FIX = ("remove or replace the file (python -m lqvae.train writes good ones; shipped ones are in "
       "checkpoints/<dataset>/)")  # the way out of every refusal of a damaged or foreign file


class CheckpointError(Refusal):
    """A file that is not a checkpoint this program can load; the message says why and what to do."""


@dataclass
class Checkpoint:
    model: nn.Module
    kind: str
    config: LQVAEConfig | ClassifierConfig | DefenseGANConfig
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        return self.metadata.get("metrics", {})


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then atomically rename onto ``path`` (no half-written files).

    The temporary file is ``.<name>.<pid>.<random>.tmp``: if this process is killed mid-write, the PID
    lets ``remove_stale_temporaries`` see that the writer is gone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists here; True when we cannot tell (then only age decides)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process (or a PID we cannot ask about): assume it is writing
    return True


def remove_stale_temporaries(folder: str | os.PathLike, *, older_than_s: float = STALE_AFTER_S,
                             grace_s: float = 60.0) -> list[Path]:
    """Delete our own orphaned ``.<name>.safetensors.<pid>.<random>.tmp`` files in ``folder``; returns them.

    A SIGKILL during ``atomic_write`` leaves its temporary file behind (tens of MB each). A file is an
    orphan when its writer's PID is not alive here and it has not been touched for ``grace_s`` (a writer in
    another container has a PID we cannot see, but its file keeps changing while it writes), or when it is
    older than ``older_than_s`` (also covers files from before the PID was in the name). Anything else
    in the folder is never touched. Called by training at start and by the app at boot, not by listing.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for path in entries:
        match = _TMP_NAME.match(path.name)
        if match is None:
            continue
        try:
            if not path.is_file() or path.is_symlink():
                continue
            age = now - path.stat().st_mtime
            pid = match["pid"]
            writer_gone = pid is not None and not _pid_alive(int(pid)) and age >= grace_s
            if writer_gone or age >= older_than_s:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # a read-only folder or a file removed meanwhile: leave it
    return removed


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
    try:
        st = os.stat(path)  # follows links; a loop or a dangling link raises here
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file; check the path or train it with python -m "
                              "lqvae.train") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc}); check the path and its "
                              "permissions") from None
    if not stat.S_ISREG(st.st_mode):
        what = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a socket or special file")
        raise CheckpointError(f"{path}: is {what}, not a regular file; a checkpoint is a .safetensors file; {FIX}")
    size = st.st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path}: {size} bytes is larger than the {MAX_CHECKPOINT_BYTES} allowed; {FIX}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
            (n,) = struct.unpack("<Q", head[:8]) if len(head) >= 8 else (0,)
            header = fh.read(min(n, MAX_HEADER_BYTES) - 1) if n > 1 and 8 + n <= size and n <= MAX_HEADER_BYTES else b""
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions") from None
    # A safetensors file is an 8-byte little-endian header length, then the JSON header ("{"). The
    # length's low byte may be 0x80, the pickle opcode, so the "{" decides before the pickle sniffing.
    looks_safetensors = head[8:9] == b"{"
    if not looks_safetensors and (head[:2] == b"PK" or head[:1] == b"\x80"):
        raise CheckpointError(f"{path}: this is a pickle/torch.save file, not safetensors; it is refused because "
                              "unpickling runs code. Convert it with a trusted script to safetensors.")
    if len(head) < 8:
        raise CheckpointError(f"{path}: {size} bytes is too short to be a safetensors file (truncated?); {FIX}")
    if n > MAX_HEADER_BYTES or 8 + n > size:
        raise CheckpointError(f"{path}: header length {n} does not fit in a {size}-byte file (at most "
                              f"{MAX_HEADER_BYTES} bytes of header); the file is truncated or not safetensors; {FIX}")
    _check_header_json(path, head[8:9] + header)


def _check_header_json(path: Path, raw: bytes) -> None:
    """The header's JSON has no repeated key (safetensors keeps the last one silently) and few metadata entries."""
    def no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            twice = sorted({k for k in keys if keys.count(k) > 1})[:3]
            raise CheckpointError(f"{path}: the header names {twice} more than once; the file is damaged or "
                                  f"forged; {FIX}")
        return dict(pairs)

    try:
        header = json.loads(raw, object_pairs_hook=no_repeats)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):  # CheckpointError passes through
        return  # not JSON at all: the safetensors reader refuses it with its own message
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if isinstance(meta, dict) and len(meta) > MAX_METADATA_KEYS:
        raise CheckpointError(f"{path}: {len(meta)} metadata entries, more than the {MAX_METADATA_KEYS} a checkpoint "
                              f"of ours has; {FIX}")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Parsed and checked metadata of a checkpoint, without loading its tensors.

    Everything a caller reads is validated here, so a listing can trust it: ``kind`` is one of
    ``KINDS``, ``config``, ``args`` and ``metrics`` are JSON objects, ``epochs`` a non-negative int. Any
    other problem is a ``CheckpointError`` naming the file, never a KeyError deep in a caller."""
    path = Path(path)
    _check_container(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}); {FIX}") from None
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: metadata format is {raw.get('format')!r}, expected {FORMAT!r}; "
                              f"this file was not written by lqvae; {FIX}")
    if raw.get("kind") not in KINDS:
        what = "has no kind" if "kind" not in raw else f"has kind {raw['kind']!r}"
        raise CheckpointError(f"{path}: its metadata {what}, expected one of {', '.join(KINDS)}; {FIX}")
    if "config" not in raw:
        raise CheckpointError(f"{path}: its metadata has no config, so no model can be built from it; {FIX}")
    meta: dict[str, Any] = dict(raw)
    for key in ("config", "args", "metrics"):
        try:
            value = json.loads(raw.get(key, "{}"))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            raise CheckpointError(f"{path}: metadata {key} is not valid JSON ({str(exc)[:80]}); {FIX}") from None
        if not isinstance(value, dict):
            raise CheckpointError(f"{path}: metadata {key} is a JSON {type(value).__name__}, expected an object "
                                  f"({{...}}); {FIX}")
        meta[key] = value
    epochs = raw.get("epochs", "0")
    if not re.fullmatch(r"[0-9]{1,9}", epochs):  # ASCII digits: int() would also take "٣"
        raise CheckpointError(f"{path}: metadata epochs is {epochs[:40]!r}, expected a non-negative integer; {FIX}")
    meta["epochs"] = int(epochs)
    return meta


CONFIGS = {"lqvae": LQVAEConfig, "classifier": ClassifierConfig, "defensegan": DefenseGANConfig}


def check_config(path: str | os.PathLike, meta: dict[str, Any]) -> LQVAEConfig | ClassifierConfig | DefenseGANConfig:
    """The checkpoint's config as its dataclass, every field's type and range checked (no model is built,
    so the registry can afford it for every file it lists)."""
    try:
        return CONFIGS[meta["kind"]].from_dict(meta["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its config cannot build a {meta['kind']} ({exc}); {FIX}") from None


def build_model(kind: str, config: dict[str, Any], *, training_parts: bool = False) -> nn.Module:
    """The model of a checkpoint's kind and config; ``training_parts`` adds what only training needs (h of an
    LQ-VAE, the critic of a Defense-GAN)."""
    if kind == "lqvae":
        return LQVAE(LQVAEConfig.from_dict(config), training_parts=training_parts)
    if kind == "classifier":
        return Classifier(ClassifierConfig.from_dict(config))
    if kind == "defensegan":
        return DefenseGAN(DefenseGANConfig.from_dict(config), training_parts=training_parts)
    raise CheckpointError(f"unknown checkpoint kind {kind!r}; expected one of {KINDS}")


def _expected_tensors(path: Path, meta: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every state tensor's shape the config implies (training-only ones included), from a model built on
    the ``meta`` device: no memory is allocated, so a config claiming a giant network costs nothing."""
    check_config(path, meta)
    try:
        with torch.device("meta"):
            model = build_model(meta["kind"], meta["config"], training_parts=True)
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. images too small for the convolutions
        raise CheckpointError(f"{path}: its config cannot build a {meta['kind']} ({exc}); {FIX}") from None
    state = model.state_dict()
    total = sum(t.numel() for t in state.values())
    if total > MAX_ELEMENTS:
        raise CheckpointError(f"{path}: its config describes a {meta['kind']} of {total:,} weights, more than the "
                              f"{MAX_ELEMENTS:,} allowed; {FIX}")
    return {name: tuple(t.shape) for name, t in state.items()}


def _check_header(path: Path, fh: Any, kind: str, expected: dict[str, tuple[int, ...]]) -> set[str]:
    """Compare the header's tensor names, shapes and dtypes with ``expected`` before reading any data;
    returns the names present. Shipped tensors are required, training-only ones optional."""
    names = set(fh.keys())
    prefix = TRAINING_ONLY.get(kind, "\0")
    required = {n for n in expected if not n.startswith(prefix)}
    missing, unexpected = required - names, names - set(expected)
    if names & (set(expected) - required):  # training-only tensors: all of them or none
        missing |= set(expected) - required - names
    if missing or unexpected:
        raise CheckpointError(f"{path}: tensors do not match the {kind} architecture in its config "
                              f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}); {FIX}")
    for name in sorted(names):
        sl = fh.get_slice(name)
        shape, dtype = tuple(sl.get_shape()), sl.get_dtype()
        if shape != expected[name]:
            raise CheckpointError(f"{path}: tensor {name} has shape {shape}, the architecture needs "
                                  f"{expected[name]}; {FIX}")
        if dtype not in WEIGHT_DTYPES:
            raise CheckpointError(f"{path}: tensor {name} is stored as {dtype}; weights must be "
                                  f"{', '.join(WEIGHT_DTYPES.values())}; {FIX}")
    return names


def load_checkpoint(path: str | os.PathLike, *, kind: str | None = None, device: torch.device | str = "cpu",
                    training_parts: bool = False) -> Checkpoint:
    """Load, verify and return a model in eval mode (float32) from a safetensors checkpoint.

    ``training_parts`` also builds the training-only part (h of an LQ-VAE, the critic of a Defense-GAN),
    loaded when the file has it (a training state does), else h starts as a copy of g. Everything is
    checked before the real model is built (see the module docstring), so a hostile file costs
    milliseconds and a ``CheckpointError``, never a giant allocation or NaN weights."""
    path = Path(path)
    meta = read_metadata(path)
    if kind is not None and meta["kind"] != kind:
        raise CheckpointError(f"{path}: is a {meta['kind']!r} checkpoint, expected {kind!r}; pick a {kind} file")
    expected = _expected_tensors(path, meta)
    prefix = TRAINING_ONLY.get(meta["kind"], "\0")
    state = {}
    try:
        with safe_open(str(path), framework="pt") as fh:
            names = _check_header(path, fh, meta["kind"], expected)
            for name in sorted(names if training_parts else {n for n in names if not n.startswith(prefix)}):
                t = fh.get_tensor(name).float()
                # the sum is NaN/inf when any element is, and ~5x faster than isfinite; count only on suspicion
                if not bool(t.sum().isfinite()) and (bad := int(t.numel() - torch.isfinite(t).sum())):
                    raise CheckpointError(f"{path}: tensor {name} holds {bad} NaN or infinite values (did training "
                                          f"diverge?); a model with them gives meaningless output; {FIX}")
                state[name] = t
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: damaged tensor data ({exc}); {FIX}") from None
    has_h = any(n.startswith(prefix) for n in names)
    model = build_model(meta["kind"], meta["config"], training_parts=training_parts)  # the config passed on the meta device
    model.load_state_dict(state, strict=not (training_parts and not has_h))
    if training_parts and not has_h and isinstance(model, LQVAE) and model.h is not None:
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
