"""listeners.py: the supervisor's loopback listeners for a plan."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.net import free_port
from ecflow_remote.plan import Endpoint, Plan
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


def test_the_web_proxy_listens_for_the_profile_and_a_taken_web_port_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecflow_remote.access import pipe
    from ecflow_remote.profile.load import load_profile

    path = tmp_path / "p.toml"
    path.write_text('[gateway]\nhost = "u@ws.ecmwf.int"\n\n[[server]]\nname = "m1"\nhost = "m1"\nport = 4141\n')
    listeners = Listeners()
    listeners.start(Plan("local", []), None, path)
    try:
        web = listeners.start_web(load_profile(path), tmp_path)
        port = int(web.proxy.rsplit(":", 1)[1])
        assert web.pac == f"http://127.0.0.1:{port}/proxy.pac" and web.auth is None and _accepts(port)
        monkeypatch.setattr(pipe.PipeServer, "check_peers", False)  # as on macOS: a password, in a 0600 run file
        text = path.read_text()
        with socket.create_server(("127.0.0.1", 0)) as taken:
            path.write_text(text + f"\n[web]\nport = {taken.getsockname()[1]}\n")
            with pytest.raises(EcflowRemoteError, match=r"\(web.port\) is in use"):
                listeners.start_web(load_profile(path), tmp_path)
        path.write_text(text + "\n[web]\ndomains = ['hub']\n")
        web = listeners.start_web(load_profile(path), tmp_path)
        assert web.auth == tmp_path / "web-auth" and web.auth.stat().st_mode & 0o777 == 0o600
    finally:
        listeners.stop()
