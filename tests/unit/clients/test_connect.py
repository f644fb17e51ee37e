"""connect_time: one TCP handshake's duration, or None where nothing listens; wait_accepting: until a port opens."""

from __future__ import annotations

import socket
import threading
import time

from ecflow_remote.clients.connect import connect_time, wait_accepting


def test_a_listening_port_answers_within_the_timeout_and_a_closed_one_not_at_all() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        took = connect_time(("127.0.0.1", port), timeout=2.0)
        assert took is not None and 0 < took < 2.0
    # The port is closed now: refused at once.
    assert connect_time(("127.0.0.1", port), timeout=2.0) is None


def test_wait_accepting_sees_a_port_open_soon_after_and_stops_when_told() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    opened = threading.Event()

    def open_later() -> None:
        time.sleep(0.3)
        server.bind(("127.0.0.1", port))
        server.listen()
        opened.set()

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t0 = time.monotonic()
        threading.Thread(target=open_later, daemon=True).start()
        assert wait_accepting(("127.0.0.1", port), stop=lambda: time.monotonic() - t0 > 10)
        assert opened.is_set()
    # Nothing listens now: it waits until stop() says so, and says it did not connect.
    t0 = time.monotonic()
    assert not wait_accepting(("127.0.0.1", port), stop=lambda: time.monotonic() - t0 > 0.3)
