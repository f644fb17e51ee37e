"""pipe.py: the shared plumbing of the SOCKS front and the relay (a TCP listener piped to a unix socket)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from tests.unit.access.other_account import foreign_client, needs_root

from ecflow_remote.access import pipe


class _Straight(pipe.Client):
    """The simplest specialisation: no work of its own, the pipe from the first byte."""

    def started(self) -> None:
        self.piping = True
        self.connect()


class _Server(pipe.PipeServer):
    thread_name = "test-pipe"

    def __init__(self, upstream: Path) -> None:
        super().__init__()
        self.upstream = upstream
        self.port = 0

    def open_listeners(self) -> None:
        self.port = self.listen_on("127.0.0.1", self.port, lambda: _Straight(self, self.upstream))


def _wait_idle(server: pipe.PipeServer, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while server.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.connections


def test_bytes_both_ways_with_half_close_and_backpressure(echo: Path) -> None:
    big = os.urandom(8 << 20)  # more than any socket buffer: both directions must pause and resume
    with _Server(echo) as server, socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
        got = bytearray()

        def read() -> None:
            while chunk := c.recv(1 << 20):
                got.extend(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        c.sendall(big)
        c.shutdown(socket.SHUT_WR)  # the half-close travels to ssh, and the echo still comes back
        reader.join(10)
        assert bytes(got) == big
        _wait_idle(server)


def test_ssh_away_closes_the_client(tmp_path: Path) -> None:
    with _Server(tmp_path / "absent.sock") as server, socket.create_connection(("127.0.0.1", server.port)) as c:
        c.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            assert c.recv(10) == b""
        _wait_idle(server)


def test_a_taken_port_reaches_the_caller_and_leaves_nothing_running(echo: Path) -> None:
    with _Server(echo) as first:
        second = _Server(echo)
        second.port = first.port  # SO_REUSEADDR does not let a second listener in
        with pytest.raises(OSError):
            second.start()
        assert second.loop.is_closed() and second._thread is None


def test_stop_drops_live_connections(echo: Path) -> None:
    server = _Server(echo).start()
    c = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    c.sendall(b"x")
    assert c.recv(1) == b"x"
    server.stop()
    with contextlib.suppress(ConnectionResetError):
        assert c.recv(10) == b""
    c.close()
    assert not server.connections and server.loop.is_closed()


@needs_root
def test_only_our_own_uid_is_served(tmp_path: Path) -> None:
    """Another account's client is reset before a byte is read, and never reaches ssh's socket; ours is piped."""
    path = tmp_path / "ssh.sock"
    with socket.socket(socket.AF_UNIX) as ssh, _Server(path) as server:
        ssh.bind(str(path))
        ssh.listen()
        ssh.setblocking(False)
        assert foreign_client(server.port, b"hello") in ("reset", "eof")
        assert server.foreign == 1
        with pytest.raises(BlockingIOError):
            ssh.accept()  # nothing was connected on the foreign client's behalf
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as c:
            c.sendall(b"mine")
            ssh.setblocking(True)
            ssh.settimeout(5)
            conn, _ = ssh.accept()
            with conn:
                assert conn.recv(4) == b"mine"
        assert server.foreign == 1
