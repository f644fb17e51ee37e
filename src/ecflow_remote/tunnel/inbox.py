"""The supervisor's inbox: a unix socket in the run directory where `ui` and `run` ask it to carry more services.

A request is servicerequests.py's version-1 document, sent whole, then the write side shut; the supervisor answers
with one JSON line once the services are in its state (or why not) and closes. Nothing polls: the socket is one of the
supervisor's events (events.py), and the asker blocks on its reply. The run directory is 0700: only the user reaches
the socket. A supervisor from before the inbox (the package upgraded while it ran) has none: ask() then leaves a
request file, as that supervisor expects.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ecflow_remote.endpoints import Wanted
from ecflow_remote.tunnel import servicerequests
from ecflow_remote.tunnel.events import Events

SOCKET_NAME: Final = "inbox.sock"
MAX_OPEN: Final = 32  # requests being read at once; more wait in the listen backlog or are refused
REPLY_TIMEOUT: Final = 1.0


def socket_path(rundir: Path) -> Path:
    return rundir / SOCKET_NAME


@dataclass
class Asked:
    """One request read whole: what it wants, and the connection its answer goes back on."""

    wanted: list[Wanted]
    conn: socket.socket


class Inbox:
    """The supervisor's end: requests read as the events come; take() hands over the whole ones, answer() replies."""

    def __init__(self, rundir: Path, events: Events) -> None:
        self.path = socket_path(rundir)
        self.events = events
        self.sock: socket.socket | None = None
        self._reading: dict[int, tuple[socket.socket, bytearray]] = {}
        self._asked: list[Asked] = []
        self.problems: list[str] = []  # for the status warnings

    def start(self) -> None:
        """Listen; a socket that cannot be made (a path too long for AF_UNIX) is a warning for status, not a failed
        tunnel: only servers that `ui` and `run` ask for would not join."""
        with contextlib.suppress(OSError):
            self.path.unlink()  # a killed supervisor's
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            sock.listen(MAX_OPEN)
        except OSError as e:
            sock.close()
            self.problems.append(f"`ui` and `run` cannot ask for more servers: no socket at {self.path}: {e}")
            return
        sock.setblocking(False)
        self.sock = sock
        self.events.watch(sock.fileno(), self._accept)

    def take(self) -> list[Asked]:
        asked, self._asked = self._asked, []
        return asked

    def answer(self, asked: Sequence[Asked], error: str | None = None) -> None:
        """Tell the askers their services are in the state now (or why not), and hang up."""
        line = json.dumps({"ok": error is None, "error": error}).encode() + b"\n"
        for one in asked:
            _reply(one.conn, line)

    def stop(self) -> None:
        for conn, _ in self._reading.values():
            self.events.forget(conn.fileno())
            conn.close()
        self._reading = {}
        for one in self.take():
            one.conn.close()
        if self.sock is not None:
            self.events.forget(self.sock.fileno())
            self.sock.close()
            self.sock = None
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _accept(self) -> None:
        assert self.sock is not None
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # none left (BlockingIOError), or one that went away meanwhile
                return
            if len(self._reading) >= MAX_OPEN:
                conn.close()
                continue
            conn.setblocking(False)
            self._reading[conn.fileno()] = (conn, bytearray())
            self.events.watch(conn.fileno(), functools.partial(self._read, conn))

    def _read(self, conn: socket.socket) -> None:
        _, data = self._reading[conn.fileno()]
        while len(data) <= servicerequests.MAX_REQUEST:
            try:
                chunk = conn.recv(65536)
            except BlockingIOError:
                return  # more to come
            except OSError:
                chunk = b""
            if not chunk:
                break
            data += chunk
        self.events.forget(conn.fileno())
        del self._reading[conn.fileno()]
        try:
            wanted = servicerequests.decode(bytes(data))
        except ValueError as e:  # (a JSON or UTF-8 error is one too)
            self.problems.append(f"a request to carry more services was ignored: {e}")
            _reply(conn, json.dumps({"ok": False, "error": str(e)}).encode() + b"\n")
            return
        self._asked.append(Asked(wanted, conn))


def _reply(conn: socket.socket, line: bytes) -> None:
    with conn, contextlib.suppress(OSError):  # an asker that gave up has closed its end
        conn.settimeout(REPLY_TIMEOUT)
        conn.sendall(line)


def ask(
    rundir: Path, servers: Sequence[Wanted], timeout: float = 10.0, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Ask the running supervisor to carry these services and wait for its answer (its state then has their
    endpoints); False if it did not answer within `timeout`, refused, or ended (`alive`, asked twice a second)."""
    if not servers:
        return True
    deadline = time.monotonic() + timeout
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with conn:
        try:
            conn.settimeout(max(0.1, min(timeout, 2.0)))
            conn.connect(str(socket_path(rundir)))
        except (FileNotFoundError, ConnectionRefusedError):
            return servicerequests.ask_by_file(rundir, servers, timeout, alive)
        except OSError:
            return False
        reply = b""
        try:
            conn.sendall(servicerequests.encode(servers))
            conn.shutdown(socket.SHUT_WR)
            while alive() and (left := deadline - time.monotonic()) > 0:
                conn.settimeout(min(left, 0.5))
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                reply += chunk
        except OSError:
            return False
    with contextlib.suppress(ValueError):
        answer = json.loads(reply)
        return isinstance(answer, dict) and answer.get("ok") is True
    return False
