"""Which endpoints each method chooses: pure logic over a profile, with real sockets only to test port choice."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ecflow_remote.errors import PortInUse
from ecflow_remote.plan import Plan, plan_for
from ecflow_remote.profile.model import Gateway, LogServer, Profile, Server, SshTarget


def profile(method: str = "local", socks_port: int = 0, servers: tuple[Server, ...] | None = None) -> Profile:
    gw = Gateway(
        jump=(SshTarget("u", "jump"),),
        host=SshTarget("u", "machine1"),
        method=method,  # type: ignore[arg-type]
        socks_port=socks_port or _free(),
    )
    servers = servers or (Server("m1", "machine1", _free()), Server("m2", "machine2", _free()))
    return Profile(Path("/p.toml"), gw, servers, (LogServer("logserver1"), LogServer("logserver2")))


def _free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_local_keeps_free_original_ports_and_moves_the_second_9316() -> None:
    p = profile("local")
    plan = plan_for(p)
    servers = plan.servers()
    assert [(e.local_host, e.local_port) for e in servers] == [("127.0.0.1", s.port) for s in p.servers]
    logs = plan.logservers()
    assert len({e.local_port for e in logs}) == 2  # both on 9316 at the Centre, not here
    assert all(e.local_host == "127.0.0.1" and e.forwarded for e in logs)


def test_local_picks_another_port_when_the_original_is_taken() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        plan = plan_for(profile("local", servers=(Server("m1", "machine1", port),)))
        assert plan.endpoint("m1").local_port != port


def test_an_unknown_server_is_a_named_error_naming_the_known_ones() -> None:
    from ecflow_remote.errors import UnknownServer

    plan = plan_for(profile("local"))
    known = [e.name for e in plan.servers()]
    assert plan.endpoint(known[0]).name == known[0]
    with pytest.raises(UnknownServer, match=f"no server named 'nosuch' in the tunnel. Known servers: {known[0]}"):
        plan.endpoint("nosuch")


def test_hosts_gives_each_centre_host_its_own_loopback_address_and_original_ports() -> None:
    plan = plan_for(profile("hosts"))
    addresses = {e.host: e.local_host for e in plan.endpoints}
    assert len(set(addresses.values())) == 4
    assert all(a.startswith("127.77.") for a in addresses.values())
    assert all(e.local_port == e.port for e in plan.endpoints)
    assert plan.hosts == addresses


def test_socks_forwards_ecflow_servers_and_sends_log_servers_through_the_proxy() -> None:
    p = profile("socks")
    plan = plan_for(p)
    assert plan.socks_port == p.gateway.socks_port
    assert all(e.forwarded and e.local_host.startswith("127.77.") for e in plan.servers())
    assert not any(e.forwarded for e in plan.logservers())
    assert set(plan.hosts) == {"machine1", "machine2"}


def test_socks_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(PortInUse, match=r"socks_port"):
            plan_for(profile("socks", socks_port=busy.getsockname()[1]))


def test_plan_survives_json_round_trip() -> None:
    plan = plan_for(profile("hosts"))
    assert Plan.from_json(plan.to_json()) == plan


def test_is_loopback() -> None:
    from ecflow_remote.net import is_loopback

    for host in ("127.0.0.1", "127.77.0.3", "::1"):
        assert is_loopback(host) and is_loopback(host, by_name=True)
    for host in ("0.0.0.0", "10.1.2.3", "machine1", "", "::"):
        assert not is_loopback(host) and not is_loopback(host, by_name=True)
    # Names only where asked for (ecflow_ui's servers.txt rows): a listener binds addresses, not names.
    for host in ("localhost", "localhost.localdomain"):
        assert is_loopback(host, by_name=True) and not is_loopback(host)
