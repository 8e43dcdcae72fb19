"""Run slow work (torch, decoding, file I/O) on a QThreadPool and hand plain data back to the GUI.

Modelled on superqt's ``thread_worker``: the work is a plain function called on a pool thread; if it
takes them, it gets two keyword arguments, ``should_stop()`` (poll it; the engine does so inside every
forward pass) and ``progress(fraction, text)``. Its signals live on a QObject created in the GUI thread, so every
signal is delivered there (queued). Running workers are kept referenced by their ``WorkerPool``
until they end, and ``cancel()`` only sets a flag: nothing is ever killed.

Signals of one worker, in order: ``started``, any number of ``progress``, then exactly one of
``finished(result)``, ``failed(message, traceback)`` or ``cancelled()``, then ``ended()``.
"""

from __future__ import annotations

import inspect
import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

PROGRESS_INTERVAL_S = 0.05  # at most 20 progress signals a second reach the GUI


def _wants_hooks(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes ``should_stop`` and ``progress`` (plain functions such as a decoder do not)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "should_stop" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Cancelled(Exception):
    """Raised by a job that noticed ``should_stop()`` (the engine's AttackCancelled works too)."""


class WorkerSignals(QObject):
    started = Signal()
    progress = Signal(float, str)
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
        self.running = False
        self.done = threading.Event()

    def cancel(self) -> None:
        self._stop.set()

    @property
    def is_cancelled(self) -> bool:
        return self._stop.is_set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def _progress(self, fraction: float, text: str = "") -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        self.signals.progress.emit(float(fraction), str(text))

    def run(self) -> None:  # pool thread
        self.running = True
        self.signals.started.emit()
        try:
            hooks = {"should_stop": self.should_stop, "progress": self._progress} if _wants_hooks(self.fn) else {}
            result = self.fn(*self.args, **hooks, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - a worker must never take the app down
            if self._stop.is_set() or type(exc).__name__ in ("Cancelled", "AttackCancelled"):
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
            self.running = False
            self.done.set()
            self.signals.ended.emit()


def user_message(exc: BaseException) -> str:
    """The text shown for a failed job. Our refusals (``ValueError`` subclasses: bad image, bad checkpoint, bad
    input) and OS errors carry a sentence for the user; anything else is a bug and is named by its type, so
    a ``KeyError('kind')`` reads "KeyError: 'kind'", not just "'kind'"."""
    text = str(exc)
    if isinstance(exc, (ValueError, OSError)) and text:
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


__all__ = ["Cancelled", "Worker", "WorkerPool", "WorkerSignals", "user_message"]
