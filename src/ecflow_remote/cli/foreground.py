"""A foreground `up` owns its tunnel, as `ssh -N` in a terminal: a hang-up, TERM or Ctrl-C ends both."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

# Python's default for the first two ends the process at once, without a `finally`: the tunnel would run on, unseen.
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


class Owner:
    """The first ending signal, kept by the handler and raised as Ended only where `up` checks: raised from the
    handler itself it could strike inside a library's `with lock:` before the block is entered, leaving the lock
    held (rich's refresh lock: the exit would then hang for ever). Later signals are kept from cutting short the
    tunnel's going down."""

    STEP = 0.1  # seconds: how soon a wait notices a signal

    def __init__(self) -> None:
        self.signum: int | None = None

    def handle(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum
        if signum == signal.SIGHUP:
            hang_up_now()

    def check(self) -> None:
        if self.signum is not None:
            raise Ended(self.signum)

    def sleep(self, seconds: float) -> None:
        """time.sleep, ended by a signal within STEP (Python resumes a sleep after a handler that does not raise)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.check()
            time.sleep(min(self.STEP, left))
        self.check()


def hang_up_now() -> None:
    """The terminal is gone (a hang-up, or found so): what is still written goes nowhere instead of failing (EIO)."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)


@contextlib.contextmanager
def owning() -> Iterator[Owner]:
    """While a foreground `up` runs, each of ENDING goes to an Owner. A signal ignored from the start stays ignored
    (`nohup ecflow-remote up`: the user chose that the tunnel outlives the terminal)."""
    owner = Owner()
    old = {sig: signal.getsignal(sig) for sig in ENDING}
    for sig, handler in old.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, owner.handle)
    try:
        yield owner
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def terminal_gone(fd: int) -> bool:
    """Whether `fd`, a terminal when `up` started, is one no more (hung up: closed without a signal reaching us)."""
    return not os.isatty(fd)
