"""connect_time: one TCP handshake's duration, or None where nothing listens."""

from __future__ import annotations

import socket

from ecflow_remote.clients.connect import connect_time


def test_a_listening_port_answers_within_the_timeout_and_a_closed_one_not_at_all() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        took = connect_time(("127.0.0.1", port), timeout=2.0)
        assert took is not None and 0 < took < 2.0
    # The port is closed now: refused at once.
    assert connect_time(("127.0.0.1", port), timeout=2.0) is None
