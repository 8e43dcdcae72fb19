"""Acts on the state's intents: boots the engine, loads models, runs analyses and evaluations on workers.

No widgets and no torch here: the controller turns settings into ``AnalysisRequest`` snapshots, hands
them to ``app.engine.adapter`` on a worker, and writes the plain results back into the ``AppState``.
Analyses never overlap: a new request cancels the running one and waits (the engine stops within one
forward pass), so the newest request always wins. "Next fooled" (``find_fooled``) is one more such job: a search
over bundled samples, each analysed as a run would be, that shows the first the attack fools.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.engine import adapter as engine_adapter
from app.engine.workers import Worker, WorkerPool
from app.input.image_io import LoadedImage
from app.state.app_state import AppState
from app.state.estimate import RunCosts
from app.state.settings import (CLASSIFIER_DEFENSES, DEFENSEGAN_SEARCH, UNTARGETED_ONLY, AnalysisRequest, EngineInfo,
                                EvaluationRequest, FoolFound, FoolSearch, ModelsInfo, defense_label, split_classifier)
from lqvae.spec.attacks import THREATS
from lqvae.spec.results import Analysis

DEBOUNCE_MS = 150


def whitebox_note(label: str, hardening: str | None) -> str:
    """Why the adaptive threat on a classifier-side defense runs as the white-box attack."""
    name = CLASSIFIER_DEFENSES.get(hardening or "", "A classifier-side defense")
    return (f"{label}: {name} hardens the classifier itself, with no purifier to differentiate through, so the "
            "adaptive attack on it is the white-box attack on that classifier: running it white-box.")


class Controller(QObject):
    settledChanged = Signal()  # emitted whenever a job ends (tests and --screenshot wait on it)

    def __init__(self, state: AppState, parent: QObject | None = None,
                 cache: engine_adapter.ModelCache | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.pool = WorkerPool(max_threads=4, parent=self)
        self.cache = cache or engine_adapter.ModelCache()
        self.booted = False
        self.models_ready = False
        self._boot_generation = 0
        self._load_generation = 0
        self._open_generation = 0  # the newest file request wins, whichever decode finishes first
        self._loaded_key: tuple | None = None
        self._quiet_load = False
        self._analysis: Worker | None = None
        self._analysis_request: AnalysisRequest | None = None
        self._pending: AnalysisRequest | FoolSearch | None = None  # the newest job, waiting for a cancel to land
        self._run_after_load: bool | None = None  # a run asked for while models were loading (auto flag)
        self._search_after_load: tuple[int, ...] | None = None  # a "next fooled" asked for while loading
        self._evaluation: Worker | None = None
        self.costs = RunCosts()  # seconds of the last run of each kind: said before the next slow one
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self._debounced)
        s = state
        s.modelSettingsChanged.connect(self._on_model_settings)
        s.defenseSettingsChanged.connect(self._on_defense_settings)
        s.attackSettingsChanged.connect(self._on_attack_settings)
        s.imageChanged.connect(self._on_image)
        s.runRequested.connect(self.run)
        s.cancelRequested.connect(self.cancel)
        s.nextFooledRequested.connect(self.find_fooled)
        s.openRequested.connect(self.open_file)
        s.evaluateRequested.connect(self.evaluate)
        s.evaluationCancelRequested.connect(self.cancel_evaluation)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._boot(self.state.models.dataset)

    def settled(self) -> bool:
        """Nothing running or scheduled: every requested job has reported back."""
        return (self.booted and not self.pool.busy() and not self._debounce.isActive() and self._pending is None
                and self._run_after_load is None and self._search_after_load is None)

    def shutdown(self, timeout_ms: int = 5000) -> None:
        self._debounce.stop()
        self._pending = None
        self.pool.cancel_all()
        self.pool.wait(timeout_ms)

    def _start(self, fn, *args, name: str, on_done, on_failed=None, on_progress=None, on_cancelled=None,
               on_ended=None, on_remaining=None, **kwargs) -> Worker:
        """Start ``fn`` on the pool with every signal connected before it can fire."""
        worker = Worker(fn, *args, name=name, **kwargs)
        worker.signals.finished.connect(on_done)
        worker.signals.failed.connect(on_failed or self._on_job_failed)
        if on_progress is not None:
            worker.signals.progress.connect(on_progress)
        if on_remaining is not None:
            worker.signals.remaining.connect(on_remaining)
        if on_cancelled is not None:
            worker.signals.cancelled.connect(on_cancelled)
        if on_ended is not None:
            worker.signals.ended.connect(on_ended)
        worker.signals.ended.connect(self.settledChanged)
        return self.pool.start(worker)

    def _on_job_failed(self, message: str, tb: str) -> None:
        self.state.notify(message, "error")

    # ------------------------------------------------------------------ engine and models
    def _boot(self, dataset: str) -> None:
        self._boot_generation += 1
        gen = self._boot_generation
        self.models_ready = False
        self._start(engine_adapter.boot, dataset, name="boot", on_done=lambda info, g=gen: self._on_booted(info, g),
                    on_failed=self._on_boot_failed)

    def _on_boot_failed(self, message: str, tb: str) -> None:
        self.booted = True
        self._run_after_load = None
        s = self.state
        s.set_models_info(ModelsInfo(s.models.dataset, s.models.device, errors={"engine": message}))
        s.notify(f"The engine could not start: {message}", "error")

    def _on_booted(self, info: EngineInfo, gen: int) -> None:
        if gen != self._boot_generation:
            return
        self.booted = True
        s = self.state
        s.set_engine_info(info)
        if info.engine_note:
            s.notify(info.engine_note, "info")
        if info.checkpoint_errors:
            refused = "; ".join(f"{name} ({why})" for name, why in info.checkpoint_errors.items())
            s.notify(f"Refused in {info.checkpoint_dir} (every other model works): {refused}", "warning")
        if not info.classifiers:
            s.notify(f"No classifier checkpoints for {info.dataset} in {info.checkpoint_dir}: the app cannot classify "
                     "until they are trained (python -m lqvae.train classifier --arch A ...; "
                     "see checkpoints/README.md).",
                     "error")
        if info.samples is None:
            s.notify(f"Bundled samples missing ({info.samples_error}); draw a digit or open an image file instead.",
                     "warning")
        changes: dict[str, Any] = {}
        if info.classifiers and s.models.classifier not in info.classifiers:
            changes["classifier"] = s.models.base if s.models.base in info.classifiers else info.classifiers[0]
        bases = s.base_classifiers() or info.classifiers
        if bases and s.attack.substitute not in bases:
            current = split_classifier(changes.get("classifier", s.models.classifier))[0]
            s.set_attack(substitute=([c for c in bases if c != current] or bases)[0])
        if s.defense.purifier is not None and s.defense.purifier not in info.purifiers:
            # the paper's LQ-VAE, not whichever purifier sorts first (Defense-GAN is slow, the VAE an ablation)
            fallback = "lqvae" if "lqvae" in info.purifiers else (info.purifiers[0] if info.purifiers else None)
            s.set_defense(purifier=fallback)
            if not info.purifiers:
                s.notify(f"No purifier checkpoint for {info.dataset} "
                         f"(expected {info.checkpoint_dir}/lqvae.safetensors): "
                         "the defense is off.", "warning")
        stale_sample = s.image is not None and s.image.sample_index is not None and s.image.dataset != info.dataset
        if info.samples is not None and (s.image is None or stale_sample):
            images, labels = info.samples
            s.set_image(images[0] / 255.0, int(labels[0]), "sample 0")
        if changes:
            s.set_models(**changes)  # triggers the load
        else:
            self._load_models()

    def _load_models(self) -> None:
        if not self.booted or self.state.engine is None:
            return
        if not self.state.engine.classifiers:
            self.models_ready = False
            self.state.set_models_info(ModelsInfo(self.state.models.dataset, self.state.models.device,
                                                  errors={"classifier": "no classifier checkpoints"}))
            return
        key = (self.state.models, self.state.defense.purifier)
        if self.models_ready and key == self._loaded_key:
            return  # already loaded (e.g. a history entry with the same models was restored)
        self._load_generation += 1
        gen = self._load_generation
        self._loaded_key = key
        self._quiet_load = self.state.is_quiet  # a restored result must not be replaced by a fresh run
        self.models_ready = False
        self.state.set_models_info(None)
        self._start(engine_adapter.load_models, self.state.models, self.state.defense.purifier, self.cache,
                    name="load", on_done=lambda info, g=gen: self._on_models_loaded(info, g))

    def _on_models_loaded(self, info: ModelsInfo, gen: int) -> None:
        if gen != self._load_generation:
            return
        self.state.set_models_info(info)
        for role, message in info.errors.items():
            self.state.notify(f"Could not load the {role}: {message}", "error")
        if "purifier" in info.errors and self.state.defense.purifier is not None:
            self.state.set_defense(purifier=None)  # classify without the broken defense rather than fail every run
        self.models_ready = info.ok
        pending, self._run_after_load = self._run_after_load, None
        search, self._search_after_load = self._search_after_load, None
        if info.ok and search is not None:
            self.find_fooled(search)
        elif info.ok and (pending is not None or not self._quiet_load):
            self.run(auto=pending if pending is not None else True)

    # ------------------------------------------------------------------ reactions to settings
    def _on_model_settings(self, models) -> None:
        if self.state.engine is not None and models.dataset != self.state.engine.dataset:
            self.cancel()
            self.state.clear_result()
            self._boot(models.dataset)
        else:
            self._load_models()

    def _on_defense_settings(self, defense) -> None:
        loaded = self.state.models_info
        if defense.purifier and (loaded is None or "purifier" not in loaded.loaded
                                 or not loaded.loaded["purifier"].startswith(defense.purifier + ".")):
            self._load_models()
        else:
            self._schedule()

    def _on_attack_settings(self, attack) -> None:
        if self.state.attack_is_slow() or self.state.defense_is_slow():
            return  # slow attacks and defenses run on demand only
        self._schedule()

    def _on_image(self, image) -> None:
        self._schedule()

    def _schedule(self) -> None:
        if not self.state.is_quiet:  # changes made in state.quiet() (a restored history entry) ask for no run
            self._debounce.start()

    def _debounced(self) -> None:
        self.run(auto=True)

    # ------------------------------------------------------------------ analysis
    def run(self, auto: bool = False) -> None:
        s = self.state
        self._debounce.stop()  # this run covers any scheduled one
        if not self.models_ready:
            if self.booted and s.models_info is not None and not s.models_info.ok:
                if not auto:
                    s.notify("No classifier is loaded; see the Models panel for what is missing.", "error")
                return
            self._run_after_load = auto if self._run_after_load is None else (self._run_after_load and auto)
            if not auto:
                s.notify("Models are still loading; the attack runs as soon as they are ready.", "info")
            return
        problem = self._attack_problem()
        if problem:
            s.refuse(problem)  # the shown result stays marked out of date, with this reason
            return
        if auto and s.defense_is_slow():
            steps, restarts = DEFENSEGAN_SEARCH[s.defense.search]
            s.notify(f"Defense-GAN with the {s.defense.search} search (L = {steps}, R = {restarts}) takes seconds per "
                     f"image, so it runs on demand: press Run (Ctrl+R).{self._expected(s.make_request())}", "info")
            return
        slow = s.attack_is_slow()
        request = s.make_request(with_attack=not (auto and slow))
        if request is None:
            if not auto:
                s.notify("Draw a digit, pick a sample or open an image first.", "warning")
            return
        if auto and slow:
            s.notify(f"{s.attack.label()} is slow, so it runs on demand: press Run (Ctrl+R). "
                     f"Showing the clean analysis.{self._expected(s.make_request())}", "info")
        elif request.attack is not None and s.adaptive_is_whitebox():
            s.notify(whitebox_note(s.attack.label(), s.models.hardening), "info")
        elif (slow or s.defense_is_slow()) and self.costs.expected(request) is not None:
            s.notify(f"Running {s.attack.label() if request.attack else 'the analysis'}.{self._expected(request)}",
                     "info")
        if self._analysis is not None:
            self._analysis.cancel()
            self._pending = request
            return
        self._start_analysis(request)

    def _expected(self, request: AnalysisRequest | EvaluationRequest | None) -> str:
        """" It takes about 65 s (the last run of this kind)." when one ran before, else ""."""
        text = self.costs.expected_text(request) if request is not None else ""
        return f" It takes {text}." if text else ""

    def _attack_problem(self) -> str:
        """Why the selected attack cannot run with the selected models (empty if it can)."""
        a, s = self.state.attack, self.state
        if not a.enabled:
            return ""
        threat = THREATS[a.threat]
        if threat.end_to_end and s.defense.purifier is None and not s.models.hardening:
            return (f"{a.label()}: BPDA attacks the defense end to end; choose a purifier in the Defense panel "
                    "(or the white-box threat for the classifier alone).")
        if threat.stochastic and s.purifier_kind(s.defense.purifier) == "defensegan":
            return (f"{a.label()}: EOT averages over a purifier's sampled codes; Defense-GAN samples nothing (its "
                    "restarts are seeded, so it is deterministic). Use plain BPDA.")
        image = s.image
        if (a.targeted and a.attack not in UNTARGETED_ONLY and image is not None and image.label is not None
                and a.target == image.label):
            names = s.class_names()
            return (f"{a.label()}: the target {names[a.target] if 0 <= a.target < len(names) else a.target} is this "
                    "image's true class already; choose another target class (or untick Targeted).")
        if threat.needs_substitute and s.engine is not None and a.substitute not in s.engine.classifiers:
            return f"Black-box transfer needs a substitute classifier; {a.substitute!r} is not in the checkpoints."
        return ""

    def _start_analysis(self, request: AnalysisRequest) -> None:
        self._analysis_request = request
        self._analysis = self._start(engine_adapter.analyze, request, self.cache, name="analysis",
                                     on_done=self._on_result, on_failed=self._on_analysis_failed,
                                     on_progress=self.state.analysisProgress, on_cancelled=self._on_cancelled,
                                     on_remaining=self.state.analysisRemaining,
                                     on_ended=self._on_analysis_ended)
        self.state.analysisStarted.emit(request)
        self.state.set_busy(True)

    def _on_result(self, result: Analysis) -> None:
        request = self._analysis_request
        if request is None:
            return
        self.state.set_result(request, result)
        if request.attack is not None:
            self.costs.record(request, time.monotonic() - request.time)
        self.state.set_timings(attack_ms=result.attack_ms, purify_ms=result.purify_ms,
                               total_ms=(time.monotonic() - request.time) * 1000)
        # an attack that fails on this image is a result (its tile says why), not a problem for the banner

    def _on_analysis_failed(self, message: str, tb: str) -> None:
        self.state.analysisFailed.emit(message)
        self.state.notify(f"Analysis failed: {message}", "error")

    def _on_cancelled(self, what: str = "Attack") -> None:
        if self._pending is None:
            self.state.notify(f"{what} cancelled.", "info")
            self.state.analysisFailed.emit("cancelled")

    def _on_analysis_ended(self) -> None:
        self._analysis = None
        if self._pending is not None:
            job, self._pending = self._pending, None
            if isinstance(job, FoolSearch):
                self._start_search(job)
            else:
                self._start_analysis(job)
        else:
            self.state.set_busy(False)
        self.settledChanged.emit()

    def cancel(self) -> None:
        self._pending = None
        self._run_after_load = None
        self._search_after_load = None
        self._debounce.stop()
        if self._analysis is not None:
            self._analysis.cancel()

    # ------------------------------------------------------------------ "next fooled": a search over the samples
    def find_fooled(self, indices: tuple[int, ...]) -> None:
        """Show the first of the bundled samples ``indices`` that the selected attack fools, searched on a worker
        like an analysis (one at a time with them: it cancels the running one, a new run cancels it)."""
        s = self.state
        self._debounce.stop()  # the search shows a result for these settings: no other run is needed
        if not self.models_ready:
            if self.booted and s.models_info is not None and not s.models_info.ok:
                s.notify("No classifier is loaded; see the Models panel for what is missing.", "error")
            else:
                self._search_after_load = tuple(indices)
            return
        problem = self._attack_problem()
        if problem:
            s.refuse(problem)
            return
        request = s.make_request()
        if not s.attack.enabled or request is None or request.attack is None:
            s.notify("Next fooled looks for a sample the attack fools: turn the attack on first.", "warning")
            return
        if s.engine is None or s.engine.samples is None or not indices:
            s.notify("Next fooled searches the bundled samples, and there are none to search.", "warning")
            return
        search = FoolSearch(request, tuple(indices), *s.engine.samples)
        if self._analysis is not None:
            self._analysis.cancel()
            self._pending = search
            return
        self._start_search(search)

    def _start_search(self, search: FoolSearch) -> None:
        s = self.state
        self._analysis_request = None
        self._analysis = self._start(engine_adapter.find_fooled, search, self.cache, name="search",
                                     on_done=lambda found: self._on_found(search, found),
                                     on_failed=self._on_analysis_failed, on_progress=s.analysisProgress,
                                     on_cancelled=lambda: self._on_cancelled("Search"),
                                     on_remaining=s.analysisRemaining, on_ended=self._on_analysis_ended)
        s.analysisStarted.emit(search.request)
        s.set_busy(True)

    def _on_found(self, search: FoolSearch, found: FoolFound) -> None:
        s = self.state
        what = f"{search.request.attack.label()} against {defense_label(search.request.models, search.request.defense)}"
        if found.index is None or found.request is None or found.result is None:
            s.notify(f"Next fooled: {what} fools none of the {found.tried} samples tried (from sample "
                     f"{search.indices[0]} on; a sample the classifier already gets wrong does not count). "
                     "Showing the current image; try a larger ε or a stronger attack.", "info")
            self.run(auto=True)  # the current image, analysed with these settings
            return
        image = found.request.image
        with s.quiet():  # the found sample's result follows at once: nothing to run for the new image
            s.set_image(image.pixels, image.label, image.source)
        s.set_result(replace(found.request, image=s.image), found.result)
        if found.tried > 1:
            s.notify(f"Showing sample {found.index}, the first that {what} fools ({found.tried} tried).", "info")

    # ------------------------------------------------------------------ files
    def open_file(self, path: str) -> None:
        """Decode ``path`` on a worker. Two files dropped in quick succession decode in parallel; only the
        newest request's outcome (image or refusal) reaches the state, the older one is dropped."""
        self._open_generation += 1
        gen = self._open_generation
        self._start(engine_adapter.open_image, path, name="open", on_done=lambda loaded, g=gen: self._on_opened(loaded, g),
                    on_failed=lambda message, tb, g=gen: self._on_open_failed(message, tb, g))

    def _on_opened(self, loaded: LoadedImage, gen: int) -> None:
        if gen == self._open_generation:
            self.state.fileLoaded.emit(loaded)

    def _on_open_failed(self, message: str, tb: str, gen: int | None = None) -> None:
        if gen is not None and gen != self._open_generation:
            return  # an older request failed after a newer one was made: nothing to say about it
        self.state.fileFailed.emit(message)
        self.state.notify(f"Could not open the image: {message}. The previous image is kept.", "error")

    # ------------------------------------------------------------------ evaluation tab
    def evaluate(self, request: EvaluationRequest) -> None:
        """Run the Evaluate tab's batch with the selected models and defense on the bundled samples."""
        s = self.state
        if s.engine is None or s.engine.samples is None:
            s.evaluationFailed.emit("The evaluation runs on the bundled samples, which are missing.")
            return
        if self._evaluation is not None:
            s.evaluationFailed.emit("An evaluation is already running; cancel it first.")
            return
        images, labels = s.engine.samples
        if THREATS[request.threat].end_to_end and s.defense.purifier is None:
            s.evaluationFailed.emit("BPDA attacks a purifier end to end; choose one in the Defense panel, or the "
                                    "white-box threat (the adaptive attack on a classifier-side defense).")
            return
        request = request.with_models(s.models, s.defense, s.attack.substitute, images, labels)
        started = time.monotonic()
        self._evaluation = self._start(engine_adapter.evaluate, request, name="evaluate",
                                       on_done=lambda rows: self._on_evaluated(request, started, rows),
                                       on_failed=self._on_evaluation_failed,
                                       on_progress=s.evaluationProgress, on_remaining=s.evaluationRemaining,
                                       on_cancelled=lambda: s.evaluationFailed.emit("cancelled"),
                                       on_ended=self._on_evaluation_ended)
        s.evaluationStarted.emit()
        if self.costs.expected(request) is not None:
            s.notify(f"Evaluation started.{self._expected(request)}", "info")

    def _on_evaluated(self, request: EvaluationRequest, started: float, rows: list) -> None:
        self.costs.record(request, time.monotonic() - started)
        self.state.evaluationFinished.emit(rows)

    def _on_evaluation_failed(self, message: str, tb: str) -> None:
        self.state.evaluationFailed.emit(message)
        self.state.notify(f"Evaluation failed: {message}", "error")

    def _on_evaluation_ended(self) -> None:
        self._evaluation = None

    def cancel_evaluation(self) -> None:
        if self._evaluation is not None:
            self._evaluation.cancel()
