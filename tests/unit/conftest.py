"""Fixtures of the unit tests: small servers on 127.0.0.1 for the client and health tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from tests.unit.samples import Serve


@pytest.fixture
def serve() -> Iterator[Serve]:
    """`serve(on_connection)` starts a server on 127.0.0.1 and returns its port; each accepted connection is given
    to `on_connection` in a thread of its own, then closed. The servers stop when the test ends."""
    listeners: list[socket.socket] = []

    def start(on_connection: Callable[[socket.socket], None]) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def accept_loop() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return  # the listener was closed: the test is over
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

        def handle(conn: socket.socket) -> None:
            with conn:
                on_connection(conn)

        threading.Thread(target=accept_loop, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    for listener in listeners:
        listener.close()
