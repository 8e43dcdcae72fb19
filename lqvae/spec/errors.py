"""The two kinds of exception both packages tell apart by type, written once (torch-free).

* :class:`Cancelled`: the job noticed ``should_stop()`` and stopped; nothing went wrong. The engine's
  ``AttackCancelled`` is one; a job of the app may raise it directly.
* :class:`Refusal`: our own refusal of an input (a bad argument, checkpoint or image file); its message is
  written for the user and says what to do. ``InputError``, ``CheckpointError`` and ``ImageLoadError`` are
  refusals. Any other exception that reaches the app is a bug and is named by its type.
"""

from __future__ import annotations


class Cancelled(Exception):
    """Raised by a job that noticed ``should_stop()``; the caller treats it as a cancel, not a failure."""


class Refusal(ValueError):
    """Our own refusal of an input; ``str(exc)`` is the sentence shown to the user."""


__all__ = ["Cancelled", "Refusal"]
