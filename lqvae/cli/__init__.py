"""The command-line faces of the engine: argparse and ``SystemExit`` live here and nowhere else.

``python -m lqvae.train|evaluate|bench`` run :mod:`lqvae.cli.train`, :mod:`lqvae.cli.evaluate` and
:mod:`lqvae.cli.bench`; the other commands are ``python -m lqvae.cli.<name>`` (ablation, card, grid,
report, samples, ship). The library they call raises :class:`~lqvae.io.validate.InputError`,
:class:`~lqvae.io.checkpoint.CheckpointError`, ``ValueError`` or ``FileNotFoundError`` with a message that
says what to do; :func:`errors_exit` turns those into a one-line ``error: ...`` and exit status 2.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator


class CommandError(SystemExit):
    """A command's one-line failure: ``str()`` is the message (printed on stderr when raised), the exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def errors_exit() -> Iterator[None]:
    """Turn the library's errors (``ValueError`` and its subclasses InputError, CheckpointError, and
    ``FileNotFoundError`` such as DataNotFoundError) into ``error: <message>`` and exit status 2."""
    try:
        yield
    except (ValueError, FileNotFoundError) as exc:
        message = f"error: {exc}"
        print(message, file=sys.stderr)
        raise CommandError(message) from None


def fail(message: str) -> CommandError:
    """A usage error found by the command itself: ``raise fail("--x needs --y")``."""
    print(f"error: {message}", file=sys.stderr)
    return CommandError(f"error: {message}")


class ProgressBar:
    """A tqdm bar over 0..100 % fed by the library's fractional progress callbacks."""

    def __init__(self, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=100, desc=desc, unit="%", bar_format="{l_bar}{bar}| {n}% [{elapsed}<{remaining}]")

    def __call__(self, frac: float) -> None:
        target = int(100.0 * frac)
        if target > self.bar.n:
            self.bar.update(target - self.bar.n)

    def close(self) -> None:
        self.bar.close()
