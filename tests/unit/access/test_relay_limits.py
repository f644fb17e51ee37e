"""The relay holds no client for ever and no more than MAX_REWRITE of one (other accounts can reach it where
there is no peer check): an unfinished or missing request is dropped after IDLE_TIMEOUT, a bigger one piped."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecflow_remote.access import relay
from ecflow_remote.clients.ecflow import wire
from ecflow_remote.net import free_port

ME = "laptop"
IDLE = 0.5


class _Upstream:
    """A unix-socket stand-in for ssh's forward: keeps what each connection sent; answers after `delay` s once a
    whole frame came."""

    def __init__(self, path: Path, delay: float = 0.0) -> None:
        self.received: list[bytearray] = []
        self.delay = delay
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(str(path))
        self.srv.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        got = bytearray()
        self.received.append(got)
        with conn, contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                got += chunk
                if len(got) >= 8 and len(got) >= 8 + wire.decode_header(bytes(got[:8])):
                    time.sleep(self.delay)
                    conn.sendall(wire.encode_frame(b'{"ok": 1}'))


@pytest.fixture
def relayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, _Upstream]]:
    monkeypatch.setattr(relay, "IDLE_TIMEOUT", IDLE)
    path = tmp_path / "ecf.sock"
    upstream = _Upstream(path, delay=3 * IDLE)
    port = free_port()
    with relay.Relay([relay.RelayRoute(("127.0.0.1", port), path, "user1")], local_user=ME):
        yield port, upstream
    upstream.srv.close()


def _closed_by_relay(c: socket.socket) -> bool:
    c.settimeout(10 * IDLE + 5)
    try:
        return c.recv(10) == b""
    except ConnectionResetError:
        return True


# What a client sends before it goes quiet: each must be dropped once IDLE_TIMEOUT passed.
STALLED = [
    pytest.param(b"", id="nothing"),
    pytest.param(b"     1", id="half-a-header"),
    pytest.param(wire.encode_header(10 * 1024 * 1024) + b"{" * 1000, id="half-a-10MiB-request"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sent", STALLED)
def test_a_client_that_stalls_is_dropped(relayed: tuple[int, _Upstream], sent: bytes) -> None:
    port, _ = relayed
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(sent)
        assert _closed_by_relay(c)


@pytest.mark.timeout(60)
def test_waiting_for_a_slow_reply_is_not_idle(relayed: tuple[int, _Upstream]) -> None:
    port, _ = relayed
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(wire.encode_frame(b'{"not": "a user command"}'))
        assert wire.recv_frame(c, timeout=10 * IDLE + 5) == b'{"ok": 1}'  # came after 3 idle periods


@pytest.mark.timeout(60)
def test_a_request_over_the_cap_is_piped_not_held(relayed: tuple[int, _Upstream]) -> None:
    """32 MiB announced (over MAX_REWRITE): the relay keeps none of it and the server sees the bytes at once."""
    port, upstream = relayed
    assert relay.MAX_REWRITE < 32 * 1024 * 1024
    start = wire.encode_header(32 * 1024 * 1024) + b"{" + b" " * 100_000
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(start)
        deadline = time.monotonic() + 10
        while not (upstream.received and len(upstream.received[-1]) == len(start)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert upstream.received and bytes(upstream.received[-1]) == start
