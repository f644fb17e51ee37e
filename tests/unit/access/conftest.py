"""Fixtures shared by the access tests: a unix-socket stand-in for the socket ssh forwards a Centre host:port to."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest


class _Echo(socketserver.BaseRequestHandler):
    """A unix-socket 'ssh': echoes everything, and half-closes once the client has."""

    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)
        self.request.shutdown(socket.SHUT_WR)


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[Path]:
    """The path of ssh's socket for a forwarded target: an echo."""
    path = tmp_path / "ssh.sock"
    srv = socketserver.ThreadingUnixStreamServer(str(path), _Echo)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield path
    srv.shutdown()
    srv.server_close()
