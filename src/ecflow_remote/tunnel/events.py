"""The supervisor's one wait: its pipes and sockets in a selector, woken by signals, a child's end and other threads.

An idle tunnel costs what its events cost, not what a polling tick does: the loop sleeps until a request arrives
(inbox.py), the finder answers (its stdout pipe), an ssh leg ends (SIGCHLD, through Python's signal wake-up fd),
a signal asks it to stop, another thread calls wake() (the agent's start or end), or the next real deadline (a
health round). Portable: selectors (epoll on Linux, kqueue on macOS), a pipe, and POSIX signals.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import signal
import threading
import time
from collections.abc import Callable
from typing import Any


class Events:
    """Callbacks for readable file descriptors, run by wait(); wake() (any thread) ends a wait early."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._read, self._write = os.pipe()  # not inherited by children (PEP 446)
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)
        self.selector.register(self._read, selectors.EVENT_READ, None)
        self._signals: tuple[int, Any] | None = None

    def catch_signals(self) -> None:
        """Signals (SIGTERM, SIGCHLD: a leg ended) end a wait at once. From the main thread only, as Python's
        signal handlers are; elsewhere waits still end at their deadlines and at wake()."""
        if threading.current_thread() is not threading.main_thread():
            return
        old_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        # Python writes to the wake-up fd only for a signal with a Python handler; SIGCHLD's default has none.
        old_chld = signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.siginterrupt(signal.SIGCHLD, False)  # restart system calls rather than EINTR them
        self._signals = (old_fd, old_chld)

    def watch(self, fd: int, callback: Callable[[], object]) -> None:
        """Call `callback` whenever `fd` is readable (it must read, or forget the fd, or the loop spins)."""
        self.selector.register(fd, selectors.EVENT_READ, callback)

    def forget(self, fd: int) -> None:
        """Before `fd` closes (a closed fd's number may come back as another file)."""
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fd)

    def wake(self) -> None:
        """End the current (or next) wait: thread-safe, never blocks; nothing once closed."""
        if self._write < 0:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, b"\0")

    def wait(self, timeout: float | None) -> None:
        """Until something happens or `timeout` seconds (None or inf: no deadline); the ready fds' callbacks run
        here."""
        if timeout is not None:
            timeout = None if math.isinf(timeout) else max(0.0, timeout)
        for key, _ in self.selector.select(timeout):
            if key.fd == self._read:
                with contextlib.suppress(BlockingIOError, OSError):
                    while os.read(self._read, 4096):
                        pass
            elif key.data is not None and self.selector.get_map().get(key.fd) is key:  # not forgotten meanwhile
                key.data()

    def sleep(
        self, seconds: float, stopped: Callable[[], bool], wake: Callable[[], bool] | None = None, poll: float = 5.0
    ) -> None:
        """`seconds` of waits (callbacks run), or until `stopped()`, or `wake()` (asked every `poll` s) says so."""
        deadline = time.monotonic() + seconds
        next_poll = time.monotonic() + poll if wake is not None else deadline
        while not stopped() and (now := time.monotonic()) < deadline:
            if now >= next_poll:
                if wake is not None and wake():
                    return
                next_poll = now + poll
            self.wait(min(deadline, next_poll) - now)

    def close(self) -> None:
        if self._signals is not None:
            old_fd, old_chld = self._signals
            self._signals = None
            signal.set_wakeup_fd(old_fd)
            signal.signal(signal.SIGCHLD, old_chld)
        self.selector.close()
        fds, self._read, self._write = (self._read, self._write), -1, -1  # a late signal writes nowhere
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
