"""Run slow work (torch, decoding, file I/O) on a QThreadPool and hand plain data back to the GUI.

Modelled on superqt's ``thread_worker``: the work is a plain function called on a pool thread. Every job
function takes two keyword arguments, ``should_stop()`` (poll it; the engine does so inside every forward
pass) and ``progress(fraction, text)``; a function that has no use for them (a decoder) is called through a
small adapter that does (``app.engine.adapter.open_image``). Its signals live on a QObject created in the GUI
thread, so every signal is delivered there (queued). Running workers are kept referenced by their
``WorkerPool`` until they end, and ``cancel()`` only sets a flag: nothing is ever killed.

Each ``progress`` is followed by ``remaining(seconds)``: the time left at the pace measured so far
(:class:`app.state.estimate.Pace`, -1 while unknown), measured here, where the work runs.

Signals of one worker, in order: ``started``, any number of ``progress``, then exactly one of
``finished(result)``, ``failed(message, traceback)`` or ``cancelled()``, then ``ended()``. A job that stops
early raises :class:`lqvae.spec.errors.Cancelled` (the engine's ``AttackCancelled`` is one); a
:class:`lqvae.spec.errors.Refusal` fails with its own message, anything else is named by its type.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from app.state.estimate import Pace
from lqvae.spec.errors import Cancelled, Refusal

PROGRESS_INTERVAL_S = 0.05  # at most 20 progress signals a second reach the GUI


class WorkerSignals(QObject):
    started = Signal()
    progress = Signal(float, str)
    remaining = Signal(float)  # seconds left at the measured pace; -1: not known yet
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    ended = Signal()


class Worker(QRunnable):
    """One call of ``fn(*args, should_stop=..., progress=..., **kwargs)`` on a pool thread."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "", **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the pool keeps the Python object; Qt must not delete it under us
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.name = name or getattr(fn, "__name__", "job")
        self.signals = WorkerSignals()
        self._stop = threading.Event()
        self._last_progress = 0.0
        self.pace = Pace()
        self.done = threading.Event()

    def cancel(self) -> None:
        self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def _progress(self, fraction: float, text: str = "") -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        left = self.pace.update(float(fraction))
        self.signals.progress.emit(float(fraction), str(text))
        self.signals.remaining.emit(-1.0 if left is None else float(left))

    def run(self) -> None:  # pool thread
        self.pace = Pace()  # the run starts now, not when the worker was made
        self.signals.started.emit()
        try:
            result = self.fn(*self.args, should_stop=self.should_stop, progress=self._progress, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - a worker must never take the app down
            if self._stop.is_set() or isinstance(exc, Cancelled):
                self.signals.cancelled.emit()
            else:
                message = user_message(exc)
                self.signals.failed.emit(message, traceback.format_exc())
        else:
            if self._stop.is_set():
                self.signals.cancelled.emit()
            else:
                self.signals.finished.emit(result)
        finally:
            self.done.set()
            self.signals.ended.emit()


def user_message(exc: BaseException) -> str:
    """The text shown for a failed job. Our refusals (:class:`~lqvae.spec.errors.Refusal`: a bad image,
    checkpoint or input) and OS errors carry a sentence for the user; anything else is a bug and is named by
    its type, so a ``KeyError('kind')`` reads "KeyError: 'kind'", not just "'kind'"."""
    text = str(exc)
    if isinstance(exc, (Refusal, OSError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class WorkerPool(QObject):
    """Starts workers on a QThreadPool and keeps them referenced until they have ended."""

    def __init__(self, max_threads: int = 4, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.active: set[Worker] = set()

    def start(self, worker: Worker) -> Worker:
        self.active.add(worker)
        worker.signals.ended.connect(self._prune)  # a bound slot: always runs in the GUI thread
        self.pool.start(worker)
        return worker

    def _prune(self) -> None:
        self.active = {w for w in self.active if not w.done.is_set()}

    def cancel_all(self) -> None:
        for worker in list(self.active):
            worker.cancel()

    def busy(self) -> bool:
        return bool(self.active)

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Cancel nothing, just wait for running jobs (used at shutdown, after ``cancel_all``)."""
        return self.pool.waitForDone(timeout_ms)


__all__ = ["Worker", "WorkerPool", "WorkerSignals", "user_message"]
