"""A run as plain JSON and back: what the history file and a case file keep of one analysis. No Qt, no torch.

A saved run holds everything needed to run it again: the input pixels (28x28), the true label, the data set
and its class names, the classifier, the defense and the attack settings (threat, ε, seed ...). A case file
(``app.render.export``) adds the results it showed; the history file (``app.state.history_store``) adds the
predictions and a thumbnail. Both are files from the user's disk: plain JSON only, every field checked
(type, range, known name), anything wrong refused with :class:`CaseError` naming the file and the field.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.state.settings import (DATASETS, DEFAULT_CLASS_NAMES, DEFENSEGAN_SEARCH, AnalysisRequest, AttackSettings,
                                DefenseSettings, InputImage, ModelSettings)
from lqvae.spec.attacks import ATTACKS, PRESET_NAMES, THREATS

CASE_SCHEMA = "lqvae-studio-case"
CASE_VERSION = 1
MAX_CASE_BYTES = 1_000_000  # a case is ~20 KB; anything much bigger is not one
MAX_TEXT = 200  # longest file name / source kept
_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")  # a checkpoint name, as lqvae.io.registry accepts it
_PIXELS = 28 * 28
_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                       "None": (type(None),)}


class CaseError(ValueError):
    """A case or history file that cannot be used; the message names the file and what is wrong in it."""


# ----------------------------------------------------------------------------- writing
def encode_pixels(pixels: np.ndarray) -> dict[str, Any]:
    """(28, 28) float pixels, exactly: little-endian float32 in base64 (a re-run sees the very same input)."""
    data = np.ascontiguousarray(np.asarray(pixels, "<f4").reshape(28, 28)).tobytes()
    return {"shape": [28, 28], "dtype": "float32", "base64": base64.b64encode(data).decode("ascii")}


def run_to_dict(request: AnalysisRequest, class_names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The run's inputs as JSON-ready data (``read_run`` reads it back)."""
    a = request.attack
    return {
        "dataset": request.models.dataset, "class_names": list(class_names),
        "models": dataclasses.asdict(request.models), "defense": dataclasses.asdict(request.defense),
        "attack": None if a is None else dataclasses.asdict(a),
        "threat": None if a is None else a.threat, "eps": None if a is None else a.eps,
        "seed": None if a is None else a.seed,
        "image": {"pixels": encode_pixels(request.image.pixels), "label": request.image.label,
                  "source": request.image.source},
    }


# ----------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class SavedRun:
    """A run read back from a file: its request (id 0, not a run of this session) and its own class names."""

    request: AnalysisRequest
    class_names: tuple[str, ...]


def read_json(path: Path, max_bytes: int, what: str) -> Any:
    """The JSON in ``path``, refused (CaseError) when missing, too big, not UTF-8 or not JSON."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CaseError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if not path.is_file():
        raise CaseError(f"{path}: is not a file")
    if size > max_bytes:
        raise CaseError(f"{path}: {size / 1e6:.1f} MB is too big for a {what} (at most {max_bytes / 1e6:.1f} MB)")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CaseError(f"{path}: is not a {what} (not valid JSON: {str(exc)[:80]})") from None


def _expect(value: Any, kind: type | tuple[type, ...], where: str, name: str) -> Any:
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise CaseError(f"{where}: '{name}' must be {_kind_name(kind)}, got true/false")
    if not isinstance(value, kind):
        raise CaseError(f"{where}: '{name}' must be {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {dict: "an object", list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false",
             type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _settings(cls: type, data: Any, where: str, name: str) -> Any:
    """``cls`` (a frozen settings dataclass) from ``data``: each field type-checked against its annotation,
    missing fields take their defaults, unknown keys are ignored (a newer file), text and numbers bounded."""
    _expect(data, dict, where, name)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        kinds = tuple(t for part in str(f.type).split("|") for t in _TYPES[part.strip()])
        value = _expect(data[f.name], kinds, where, f"{name}.{f.name}")
        if isinstance(value, float) and not math.isfinite(value):
            raise CaseError(f"{where}: '{name}.{f.name}' must be a finite number, got {value}")
        if isinstance(value, int) and not isinstance(value, bool) and float in kinds:
            value = float(value)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**31:
            raise CaseError(f"{where}: '{name}.{f.name}' = {value} is out of range")
        if isinstance(value, str) and len(value) > 40:
            raise CaseError(f"{where}: '{name}.{f.name}' is {len(value)} characters long (at most 40)")
        values[f.name] = value
    return cls(**values)


def _check(ok: bool, where: str, problem: str) -> None:
    if not ok:
        raise CaseError(f"{where}: {problem}")


def decode_pixels(data: Any, where: str) -> np.ndarray:
    """The (28, 28) float32 input in [0, 1]: ``encode_pixels``' base64 form, or a 28x28 list of ints 0-255."""
    if isinstance(data, list):
        _check(len(data) == 28 and all(isinstance(r, list) and len(r) == 28 for r in data), where,
               "'image.pixels' must be 28 rows of 28 values")
        flat = [v for row in data for v in row]
        _check(all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in flat), where,
               "'image.pixels' values must be whole numbers 0-255")
        return np.asarray(flat, np.float32).reshape(28, 28) / 255.0
    _expect(data, dict, where, "image.pixels")
    _check(data.get("shape") == [28, 28] and data.get("dtype") == "float32", where,
           f"'image.pixels' must be a 28x28 float32 array, got shape {data.get('shape')!r} "
           f"dtype {data.get('dtype')!r}")
    text = _expect(data.get("base64"), str, where, "image.pixels.base64")
    _check(len(text) <= 4 * _PIXELS * 2, where, "'image.pixels.base64' is too long for 28x28 pixels")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise CaseError(f"{where}: 'image.pixels.base64' is not base64") from None
    _check(len(raw) == 4 * _PIXELS, where, f"'image.pixels' holds {len(raw) // 4} values, expected 784 (28x28)")
    pixels = np.frombuffer(raw, "<f4").astype(np.float32).reshape(28, 28)
    _check(bool(np.isfinite(pixels).all()) and pixels.min() >= 0.0 and pixels.max() <= 1.0, where,
           "'image.pixels' values must lie in [0, 1]")
    return pixels


def read_run(data: Any, where: str) -> SavedRun:
    """A run's inputs from ``run_to_dict``'s data; CaseError (naming ``where`` and the field) when anything is
    missing, of the wrong type, out of range or an unknown name."""
    _expect(data, dict, where, "run")
    dataset = data.get("dataset")
    _check(dataset in DATASETS, where, f"unknown dataset {str(dataset)[:40]!r} (expected one of {', '.join(DATASETS)})")
    k = len(DEFAULT_CLASS_NAMES[dataset])
    names = _expect(data.get("class_names"), list, where, "class_names")
    _check(len(names) == k and all(isinstance(n, str) and 0 < len(n) <= 40 for n in names), where,
           f"'class_names' must be {k} names of 1-40 characters for {dataset}")
    models = _settings(ModelSettings, data.get("models"), where, "models")
    _check(models.dataset == dataset, where, f"'models.dataset' {models.dataset!r} is not the dataset {dataset!r}")
    _check(bool(_NAME.fullmatch(models.classifier)), where, f"'models.classifier' {models.classifier!r} is not a "
           "model name (letters, digits, '_' and '-')")
    _check(models.device in ("auto", "cpu", "cuda"), where, f"unknown device {models.device!r}")
    defense = _settings(DefenseSettings, data.get("defense"), where, "defense")
    _check(defense.purifier is None or bool(_NAME.fullmatch(defense.purifier)), where,
           f"'defense.purifier' {defense.purifier!r} is not a model name")
    _check(defense.mode in ("deterministic", "stochastic"), where, f"unknown defense mode {defense.mode!r}")
    _check(1 <= defense.n_samples <= 256, where, "'defense.n_samples' must be 1-256")
    _check(defense.search in DEFENSEGAN_SEARCH, where, f"unknown Defense-GAN search {defense.search!r}")
    attack = None if data.get("attack") is None else _attack(data["attack"], where, k)
    image = _expect(data.get("image"), dict, where, "image")
    label = image.get("label")
    _check(label is None or (isinstance(label, int) and not isinstance(label, bool) and 0 <= label < k), where,
           f"'image.label' must be null or a class 0-{k - 1}, got {str(label)[:20]!r}")
    source = _expect(image.get("source", ""), str, where, "image.source")[:MAX_TEXT]
    pixels = decode_pixels(image.get("pixels"), where)
    request = AnalysisRequest(0, InputImage(pixels, label, source, dataset), models, attack, defense)
    return SavedRun(request, tuple(names))


def _attack(data: Any, where: str, k: int) -> AttackSettings:
    a = _settings(AttackSettings, data, where, "attack")
    _check(a.attack in ATTACKS, where, f"unknown attack {a.attack!r} (expected one of {', '.join(ATTACKS)})")
    _check(a.threat in THREATS, where, f"unknown threat {a.threat!r} (expected one of {', '.join(THREATS)})")
    _check(a.preset in PRESET_NAMES, where, f"unknown preset {a.preset!r}")
    _check(0.0 <= a.eps_linf <= 1.0, where, f"'attack.eps_linf' {a.eps_linf} must lie in [0, 1]")
    _check(a.eps_l2 is None or 0.0 <= a.eps_l2 <= 28.0, where, f"'attack.eps_l2' {a.eps_l2} must lie in [0, 28]")
    _check(a.steps is None or 1 <= a.steps <= 10_000, where, "'attack.steps' must be 1-10000")
    _check(0 <= a.target < k, where, f"'attack.target' must be a class 0-{k - 1}")
    _check(bool(_NAME.fullmatch(a.substitute)), where, f"'attack.substitute' {a.substitute!r} is not a model name")
    _check(1 <= a.eot_samples <= 256 and 1 <= a.restarts <= 100, where,
           "'attack.eot_samples' must be 1-256 and 'attack.restarts' 1-100")
    _check(0 <= a.seed < 2**31, where, "'attack.seed' must be 0 to 2^31-1")
    return a


# ----------------------------------------------------------------------------- case files
@dataclass(frozen=True)
class Case:
    """A case file read back: the run to repeat and what it showed when it was exported."""

    path: Path  # the JSON
    run: SavedRun
    predictions: dict[str, int | None]  # slot ("original", "adversarial", ...) -> the class it recorded
    bits: dict[str, list[int] | None]  # "bits_original" / "bits_adversarial" -> the recorded ±1 code


def case_path(path: str | Path) -> Path:
    """The case's JSON: ``path`` itself, or the JSON beside an exported PNG."""
    p = Path(path)
    return p.with_suffix(".json") if p.suffix.lower() == ".png" else p


def read_case(path: str | Path) -> Case:
    """Read and check a case file (the JSON, or the PNG exported beside it); CaseError says what is wrong."""
    given = Path(path)
    js = case_path(given)
    if js != given and not js.exists():
        raise CaseError(f"{given}: no case file beside it (expected {js.name}, exported with it)")
    data = read_json(js, MAX_CASE_BYTES, "case file")
    where = str(js)
    _expect(data, dict, where, "case")
    schema, version = data.get("schema"), data.get("version")
    _check(schema == CASE_SCHEMA, where, f"not an LQ-VAE Studio case (schema {str(schema)[:40]!r}, expected "
           f"{CASE_SCHEMA!r}; older exports hold no input pixels and cannot be reopened)")
    _check(version == CASE_VERSION, where, f"case version {str(version)[:10]!r} is not one this app reads "
           f"(version {CASE_VERSION})")
    run = read_run(data, where)
    k = len(run.class_names)
    preds: dict[str, int | None] = {}
    recorded = data.get("predictions") if isinstance(data.get("predictions"), dict) else {}
    for slot in ("original", "adversarial", "purified_original", "purified_adversarial"):
        p = recorded.get(slot)
        c = p.get("class") if isinstance(p, dict) else None
        preds[slot] = c if isinstance(c, int) and not isinstance(c, bool) and 0 <= c < k else None
    bits: dict[str, list[int] | None] = {}
    for key in ("bits_original", "bits_adversarial"):
        b = data.get(key)
        ok = isinstance(b, list) and len(b) <= 4096 and all(v in (-1, 1) and not isinstance(v, bool) for v in b)
        bits[key] = [int(v) for v in b] if ok else None
    return Case(js, run, preds, bits)


__all__ = ["CASE_SCHEMA", "CASE_VERSION", "Case", "CaseError", "MAX_CASE_BYTES", "SavedRun", "case_path",
           "decode_pixels", "encode_pixels", "read_case", "read_json", "read_run", "run_to_dict"]
