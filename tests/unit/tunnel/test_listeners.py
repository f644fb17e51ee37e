"""listeners.py: the supervisor's loopback listeners for a plan."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.plan import Endpoint, Plan, free_port
from ecflow_remote.tunnel.listeners import Listeners


def _accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        return True


def test_two_endpoints_at_one_address_are_one_listener() -> None:
    # Under hosts, a log server at an ecFlow server's host:port gets the same address and port.
    port = free_port()
    plan = Plan(
        "hosts",
        [
            Endpoint(kind, name, "machine1", 4141, "127.0.0.1", port)
            for kind, name in (("server", "m1"), ("logserver", "m1:4141"))
        ],
    )
    listeners = Listeners()
    listeners.start(plan, None, Path("/p.toml"))
    try:
        assert _accepts(port) and len(listeners.servers) == 1
    finally:
        listeners.stop()


def test_a_taken_address_is_named_and_nothing_stays_listening() -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    free = free_port()
    plan = Plan(
        "local",
        [
            Endpoint("server", "m1", "machine1", 4141, "127.0.0.1", free),
            Endpoint("server", "m2", "machine2", 3142, "127.0.0.1", taken.getsockname()[1]),
        ],
    )
    listeners = Listeners()
    with taken, pytest.raises(EcflowRemoteError, match=str(taken.getsockname()[1])):
        listeners.start(plan, None, Path("/p.toml"))
    assert not listeners.servers and listeners.io is None
    with socket.create_server(("127.0.0.1", free)):  # the first one's listener was closed again
        pass
