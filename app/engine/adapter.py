"""The GUI's one door into the engine. Every function here runs on a worker thread.

Importing this module is cheap: torch, foolbox and the engine are imported by ``engine()`` on the
first worker, so the window is up before they load. The analysis call is the engine's own
``lqvae.evaluate.analysis.analyze`` (the one the evaluation CLI uses); a drawing or a file has no true label,
so it is attacked away from the classifier's own prediction. The Evaluate tab's batch call is
``lqvae.evaluate.scoring.evaluate_batch``, the one behind ``python -m lqvae.evaluate run``.

Every job function here takes the worker's ``should_stop`` and ``progress`` keyword arguments (see
``app.engine.workers``); ``open_image`` is the one for the image decoder, which has no use for them.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from app.input.image_io import LoadedImage
from app.input.sandbox import load_image
from app.state.settings import (DEFENSEGAN_SEARCH, AnalysisRequest, EngineInfo, EvaluationRequest, FoolFound,
                                FoolSearch, InputImage, ModelsInfo, ModelSettings, is_fooled)
from lqvae.spec.attacks import THREATS
from lqvae.spec.defenses import HARDENINGS
from lqvae.spec.errors import Cancelled
from lqvae.spec.results import Analysis

SAMPLES_ENV = "LQVAE_SAMPLES"  # folder with <dataset>.npz, default resources/samples
THREADS_ENV = "LQVAE_THREADS"  # torch intra-op threads (default: torch's choice)
FAST_ENV = "LQVAE_FAST"  # "0": serve the plain eager models (to measure the fast path against them)


@dataclass(frozen=True)
class Engine:
    analyze: Callable[..., Any]
    evaluate_batch: Callable[..., Any] | None
    AttackSpec: type
    source: str
    note: str = ""


_engine: Engine | None = None
_engine_lock = threading.Lock()


def engine() -> Engine:
    """Import torch and the engine once (the first call takes a few seconds)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            import torch

            threads = int(os.environ.get(THREADS_ENV, "0") or 0)
            if threads > 0:
                torch.set_num_threads(threads)
            import lqvae.evaluate.analysis as analysis
            from lqvae.attacks.runners import AttackSpec

            try:
                from lqvae.evaluate.scoring import evaluate_batch
                note = ""
            except Exception as exc:  # noqa: BLE001 - the Evaluate tab says so; the rest works
                evaluate_batch = None
                note = f"batch evaluation unavailable: lqvae.evaluate.scoring failed to import ({exc})"
            _engine = Engine(analysis.analyze, evaluate_batch, AttackSpec, "lqvae.evaluate.analysis", note)
        return _engine


def samples_root() -> Path:
    return Path(os.environ.get(SAMPLES_ENV) or Path(__file__).resolve().parents[2] / "resources" / "samples")


# ----------------------------------------------------------------------------- boot
def boot(dataset: str, *, should_stop=None, progress=None) -> EngineInfo:
    """Import the engine, list the dataset's checkpoints and load its bundled samples.

    A bad checkpoint file never stops the boot: the registry lists it in ``checkpoint_errors`` with the
    reason and every other model stays usable. Orphaned temporary files of killed saves are removed."""
    if progress:
        progress(0.1, "importing torch and the engine")
    eng = engine()
    import torch
    from lqvae.io.checkpoint import remove_stale_temporaries
    from lqvae.io.data import load_samples
    from lqvae.spec.datasets import CLASS_NAMES
    from lqvae.io.registry import checkpoint_root, inventory
    from lqvae.spec.attacks import PRESETS

    remove_stale_temporaries(checkpoint_root() / dataset)  # never raises; leaves a live writer's file alone
    inv = inventory(dataset)
    presets = {name: {a: int(p["steps"]) for a, p in table.items() if "steps" in p} for name, table in PRESETS.items()}
    info = EngineInfo(presets=presets, dataset=dataset, class_names=list(CLASS_NAMES[dataset]),
                      classifiers=sorted(inv.classifiers), purifiers=sorted(inv.purifiers),
                      checkpoint_errors=dict(inv.errors), checkpoint_dir=str(checkpoint_root() / dataset),
                      engine_source=eng.source, engine_note=eng.note, cuda_available=torch.cuda.is_available())
    _describe_checkpoints(info, inv)
    try:
        split = load_samples(dataset, samples_root())
        if split.images.ndim != 3 or split.images.shape[1:] != (28, 28) or len(split.images) != len(split.labels):
            raise ValueError(f"unexpected shapes {split.images.shape} / {split.labels.shape}")
        info.samples = (split.images, split.labels)
    except Exception as exc:  # noqa: BLE001 - missing or broken sample file
        info.samples_error = str(exc)
    return info


def _describe_checkpoints(info: EngineInfo, inv: Any) -> None:
    """Purifier kinds and how the hardened classifiers were trained, from the files' metadata (headers only).

    The registry has validated the schema (``args`` and ``metrics`` are JSON objects), but their values
    are still whatever the file says: a file whose values do not describe simply gets no note."""
    from lqvae.io.checkpoint import CheckpointError, read_metadata

    for name, path in inv.purifiers.items():
        try:
            meta = read_metadata(path)
        except CheckpointError:  # changed since the listing; loading it will say what is wrong
            continue
        vae = meta["kind"] == "lqvae" and meta["config"].get("quantizer", "binary") != "binary"
        info.purifier_kinds[name] = "vae" if vae else str(meta["kind"])
    for name, path in inv.classifiers.items():
        try:
            note = _hardening_note(read_metadata(path))
        except CheckpointError:
            continue
        if note:
            info.classifier_notes[name] = note


def _hardening_note(meta: dict[str, Any]) -> str | None:
    """"3 epochs of PGD-40 training at ε = 0.3; ..." for an adversarially trained classifier, else None."""
    args, metrics = meta["args"], meta["metrics"]
    if args.get("adv") not in HARDENINGS:
        return None
    how = f"PGD-{args.get('pgd_steps', '?')}" if args["adv"] == "madry" else "half clean, half FGSM"
    epochs = args.get("epochs", "?")
    note = f"{epochs} epoch{'' if epochs == 1 else 's'} of {how} training at ε = {args.get('adv_eps', '?')}"
    clean, pgd = metrics.get("test_accuracy"), metrics.get("pgd20_accuracy_1000")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (clean, pgd)):
        note += f"; at its end {clean:.1f} % clean and {pgd:.1f} % under PGD-20 (1,000 test images)"
    return note[:300]  # the values are the file's: a hostile one must not flood the panel


# ----------------------------------------------------------------------------- models
class ModelCache:
    """Loaded models by (dataset, role, name, device); loading is serialised by a lock.

    ``role`` is ``"classifier"`` (``classifier_<name>.safetensors``) or ``"purifier"`` (``<name>.safetensors``
    of any purifier kind the engine can build: an LQ-VAE, the plain VAE or Defense-GAN). An LQ-VAE purifier is
    served on the engine's fast path (``lqvae.core.fast.optimize_for_inference``: the same bit codes, ~1e-6 in
    the images, faster purification and BPDA attacks); ``fast=False`` (or ``LQVAE_FAST=0``) keeps the plain models.
    """

    def __init__(self, *, fast: bool | None = None) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[str, ...], Any] = {}
        self.fast = os.environ.get(FAST_ENV, "1") != "0" if fast is None else fast

    def get(self, dataset: str, role: str, name: str, device: str):
        """The model, loaded by the registry's ``load_named`` (its name rules and all of the checkpoint checks
        apply); a refused file raises ``CheckpointError`` naming it."""
        from lqvae.io.registry import checkpoint_root, load_named

        key = (str(checkpoint_root()), dataset, role, name, str(device))
        with self._lock:
            if key not in self._models:
                kind = "classifier" if role == "classifier" else "purifier"
                model = load_named(dataset, name, kind=kind, device=device).model
                if self.fast and role == "purifier":
                    from lqvae.core.fast import optimize_for_inference

                    model = optimize_for_inference(model.eval())  # unchanged unless an LQ-VAE on the CPU
                self._models[key] = model
            return self._models[key]

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


def resolve(device: str) -> str:
    from lqvae.core.device import resolve_device

    return str(resolve_device(device))


def _describe(model: Any, path_name: str) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{path_name} ({n / 1e6:.1f} M params)"


def load_models(models: ModelSettings, purifier: str | None, cache: ModelCache, *, should_stop=None,
                progress=None) -> ModelsInfo:
    """Load the selected classifier and purifier; problems are reported per role, never raised."""
    t0 = time.perf_counter()
    engine()
    try:
        device = resolve(models.device)
    except ValueError as exc:
        return ModelsInfo(models.dataset, models.device, errors={"device": str(exc)})
    info = ModelsInfo(models.dataset, device)
    wanted = [("classifier", "classifier", models.classifier)]
    if purifier:
        wanted.append(("purifier", "purifier", purifier))
    for role, kind, name in wanted:
        if progress:
            progress(len(info.loaded) / len(wanted), f"loading {role} {name}")
        stem = f"classifier_{name}" if kind == "classifier" else name
        try:
            model = cache.get(models.dataset, kind, name, device)
            info.loaded[role] = _describe(model, f"{stem}.safetensors")
            if role == "purifier":
                info.eta = float(getattr(getattr(model, "cfg", None), "eta", 0.0)) or None
        except Exception as exc:  # noqa: BLE001 - CheckpointError, OSError, ...
            info.errors[role] = str(exc)
    info.seconds = time.perf_counter() - t0
    return info


# ----------------------------------------------------------------------------- analysis
def configure_purifier(purifier: Any, search: str) -> str:
    """Set a searching purifier's (Defense-GAN's) L and R to a ``DEFENSEGAN_SEARCH`` setting; returns what it
    will do ("" for a purifier without a search)."""
    if not hasattr(purifier, "restarts"):
        return ""
    purifier.search_steps, purifier.restarts = DEFENSEGAN_SEARCH[search]
    return f"Defense-GAN search L = {purifier.search_steps}, R = {purifier.restarts}"


def analyze(request: AnalysisRequest, cache: ModelCache, *, should_stop=None, progress=None) -> Analysis:
    """Run the engine's analysis for one request; returns the engine's :class:`lqvae.spec.results.Analysis`."""
    eng = engine()
    import torch

    m = request.models
    device = resolve(m.device)
    classifier = cache.get(m.dataset, "classifier", m.classifier, device)
    purifier = cache.get(m.dataset, "purifier", request.defense.purifier, device) if request.defense.purifier else None
    search = configure_purifier(purifier, request.defense.search)  # the cached module: analyses never overlap
    if progress and search:
        progress(0.0, "searching")  # the status bar says which search
    image = request.image.pixels.reshape(1, 28, 28).astype(np.float32)
    spec, substitute = None, None
    if request.attack is not None:
        a = request.attack
        spec = eng.AttackSpec(**a.to_spec_kwargs())
        if THREATS[a.threat].needs_substitute:
            substitute = cache.get(m.dataset, "classifier", a.substitute, device)
    text = "attack + search" if search else "attacking"
    report = (lambda f: progress(f, text)) if progress else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(request.attack.seed if request.attack else 0)
        return eng.analyze(image, request.image.label, classifier=classifier, purifier=purifier, spec=spec,
                           substitute=substitute, mode=request.defense.mode, n_samples=request.defense.n_samples,
                           device=device, should_stop=should_stop, progress=report)


def find_fooled(search: FoolSearch, cache: ModelCache, *, should_stop=None, progress=None) -> FoolFound:
    """Analyse the bundled samples ``search.indices`` in turn, each exactly as a run of ``search.request`` would
    (same settings, same seed), and stop at the first one the attack fools (:func:`is_fooled`)."""
    n = len(search.indices)
    for i, index in enumerate(search.indices):
        if should_stop is not None and should_stop():
            raise Cancelled("search cancelled")
        label = int(search.labels[index])
        image = InputImage(np.asarray(search.images[index], np.float32) / 255.0, label, f"sample {index}",
                           search.request.models.dataset)
        request = replace(search.request, image=image)

        def report(f: float, _text: str = "", i=i, index=index) -> None:
            if progress:
                progress((i + f) / n, f"looking for a fooled sample: {index} ({i + 1} of {n})")

        result = analyze(request, cache, should_stop=should_stop, progress=report)
        if is_fooled(result, label):
            return FoolFound(index, i + 1, request, result)
    return FoolFound(None, n)


# ----------------------------------------------------------------------------- evaluation tab
def evaluate(request: EvaluationRequest, *, should_stop=None, progress=None) -> list[dict[str, Any]]:
    """Batch evaluation for the Evaluate tab: one row per ``request.cells`` (attack, ε), on ``request.n`` of the
    bundled samples (all classes in turn), with one ``AttackSpec`` per cell.

    Models are loaded fresh (not shared with the live analysis, which may be running at the same time).
    """
    eng = engine()
    if eng.evaluate_batch is None:
        raise RuntimeError(eng.note)
    if request.images is None or request.labels is None:
        raise ValueError("EvaluationRequest without samples: the controller completes it with_models(...)")
    import torch

    cache = ModelCache()
    m, d = request.models, request.defense
    device = resolve(m.device)
    classifier = cache.get(m.dataset, "classifier", m.classifier, device)
    purifier = cache.get(m.dataset, "purifier", d.purifier, device) if d.purifier else None
    search = d.search if configure_purifier(purifier, d.search) else None
    substitute = (cache.get(m.dataset, "classifier", request.substitute, device)
                  if THREATS[request.threat].needs_substitute else None)
    labels_all = np.asarray(request.labels)
    idx = stratified(labels_all, request.n)
    images = torch.from_numpy(np.asarray(request.images[idx], np.float32) / 255.0).unsqueeze(1)
    labels = torch.from_numpy(np.asarray(labels_all[idx], np.int64))
    cells = request.cells
    rows = []
    for i, (attack, eps) in enumerate(cells):
        def sub_progress(f: float, i=i, attack=attack, eps=eps) -> None:
            if progress:
                progress((i + f) / len(cells), f"{attack} ε={'∞' if eps is None else f'{eps:g}'}")

        budget = None if eps is None else float(eps)
        spec = eng.AttackSpec(attack=attack, eps=budget, threat=request.threat, preset=request.preset)
        out = eng.evaluate_batch(spec, images, labels, classifier=classifier, purifier=purifier,
                                 substitute=substitute, should_stop=should_stop, progress=sub_progress)
        rows.append(eval_row(out, defended=purifier is not None, attack=attack, eps=budget, threat=request.threat,
                             dataset=m.dataset, classifier=m.classifier, defense=request.defense_name, search=search))
    return rows


def stratified(labels: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` indices taking classes in turn (the sample file is sorted by class)."""
    rank = np.zeros(len(labels), int)
    for k in np.unique(labels):
        where = np.flatnonzero(labels == k)
        rank[where] = np.arange(len(where))
    return np.lexsort((labels, rank))[:n]


def eval_row(out: dict[str, Any], *, defended: bool, **extra: Any) -> dict[str, Any]:
    """One Evaluate-tab row from ``lqvae.evaluate.scoring.evaluate_batch``'s dict (``undefended_accuracy``, and
    ``defended_accuracy`` when there is a purifier); ``hamming`` is the per-image flips, from the histogram."""
    bits = out.get("bits") or {}
    hist = bits.get("hamming_histogram")
    return {**extra, "n": out.get("n"), "clean_accuracy": out.get("clean_accuracy"),
            "undefended_accuracy": out.get("undefended_accuracy"),
            "purified_clean_accuracy": out.get("clean_accuracy_defended") if defended else None,
            "defended_accuracy": out.get("defended_accuracy") if defended else None,
            "attack_failures": out.get("attack_failures"), "mean_linf": out.get("mean_linf"),
            "mean_l2": out.get("mean_l2"), "seconds": out.get("seconds"),
            "hamming": [k for k, c in enumerate(hist) for _ in range(int(c))] if hist else None,
            "theorem1": out.get("theorem1")}


# ----------------------------------------------------------------------------- files
def open_image(path: str, *, should_stop=None, progress=None) -> LoadedImage:
    """Decode an image file (``app.input.sandbox.load_image``, in a child process); it cannot stop
    half way, so the worker's hooks go unused."""
    return load_image(path)
