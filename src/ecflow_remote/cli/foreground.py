"""A foreground `up` owns its tunnel, as `ssh -N` in a terminal: a hang-up, TERM or Ctrl-C ends both."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

# Python's default for these ends the process at once, without a `finally`: the tunnel would run on, unseen.
ENDING = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


class Ended(KeyboardInterrupt):
    """The signal that ended a foreground `up` (a KeyboardInterrupt, so every Ctrl-C path handles it alike)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        # Ctrl-C is how a foreground `up` is meant to end; anything else ends it as a signal would (128 + N).
        return 0 if self.signum == signal.SIGINT else 128 + self.signum


def hang_up_now() -> None:
    """The terminal is gone (a hang-up, or found so): what is still written goes nowhere instead of failing (EIO)."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)


@contextlib.contextmanager
def owning() -> Iterator[None]:
    """While a foreground `up` runs, each of ENDING raises Ended. The first one also sets them all aside, so that
    taking the tunnel down is not cut short by the next (a terminal sends a hang-up, then maybe a TERM). A signal
    ignored from the start stays ignored (`nohup ecflow-remote up`: the user chose that the tunnel outlives the
    terminal)."""

    def end(signum: int, _frame: object) -> None:
        for sig in ENDING:
            signal.signal(sig, signal.SIG_IGN)
        if signum == signal.SIGHUP:
            hang_up_now()
        raise Ended(signum)

    old = {sig: signal.getsignal(sig) for sig in ENDING}
    for sig, handler in old.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, end)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def terminal_gone(fd: int) -> bool:
    """Whether `fd`, a terminal when `up` started, is one no more (hung up: closed without a signal reaching us)."""
    return not os.isatty(fd)
