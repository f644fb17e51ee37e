"""What carries the tunnel: the far-side agent by default, plain OpenSSH forwards where it cannot run, said so."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.integration.centres import assert_ping_reaches, settled
from tests.integration.procs import cmdline, ssh_pids

from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.tunnel.rundir import wait_for

CLI = [sys.executable, "-m", "ecflow_remote"]


def _status(profile: Path) -> dict[str, Any]:
    import subprocess

    done = subprocess.run([*CLI, "--profile", str(profile), "status", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("method", ["local", "socks"])
def test_no_python_on_the_far_side_falls_back_to_plain_forwards_and_says_why(
    centre: Any, tunnel_up: Callable[..., Tunnel], method: str
) -> None:
    from centre.homelink import HomeLink

    # Over a home link, where ssh's channels would carry nothing once the agent runs.
    centre.set_home_link(HomeLink(rtt=0.010, down_mbit=100, up_mbit=100))
    try:
        _falls_back_and_says_why(centre, tunnel_up(method, agent_python="/nonexistent/python3"))
    finally:
        centre.set_home_link(None)


def _falls_back_and_says_why(centre: Any, tunnel: Tunnel) -> None:
    from ecflow_remote.clients.ecflow import EcflowClient

    state = settled(tunnel)
    assert state is not None and state.state == "up"
    assert state.transport == "plain" and state.transport_note and "no python3" in state.transport_note
    report = _status(tunnel.profile.path)["tunnel"]
    assert report["transport"] == "plain" and "no python3" in report["transport_note"]
    # Served all the same, by ssh's forwards to private sockets behind the supervisor's listeners.
    host, port = tunnel.endpoint("machine1")
    assert_ping_reaches(centre, centre.server("machine1"), EcflowClient(host, port, user="fallback"))
    assert all(c.reachable for c in tunnel.check()), tunnel.check()
    assert not any(_agent_session(p) for p in ssh_pids(tunnel.rundir.path))


def test_agent_only_refuses_to_fall_back(profile_for: Callable[..., Path]) -> None:
    from ecflow_remote.errors import TunnelError

    profile = profile_for("local", transport="agent", agent_python="/nonexistent/python3")
    tunnel = Tunnel(profile)
    try:
        with pytest.raises(TunnelError, match="agent did not start"):
            tunnel.up()
    finally:
        tunnel.down()


def test_on_a_fast_link_auto_takes_ssh_channels_and_says_why(centre: Any, tunnel_up: Callable[..., Tunnel]) -> None:
    """This Centre's LAN answers in well under link.SLOW through ssh: ssh's own channels are as quick, so they carry
    new connections; the agent stands by for a link that turns slow (test_linkchoice)."""
    from ecflow_remote.clients.ecflow import EcflowClient

    tunnel = tunnel_up("hosts")
    state = settled(tunnel)
    assert state is not None and state.transport == "agent"
    assert wait_for(lambda: (s := tunnel.state()) is not None and s.carrier == "ssh", 10), tunnel.state()
    report = _status(tunnel.profile.path)["tunnel"]
    assert (
        report["transport_text"].startswith("ssh's own channels (a fast link: ") and " ms" in report["transport_text"]
    )
    host, port = tunnel.endpoint("machine1")
    assert_ping_reaches(centre, centre.server("machine1"), EcflowClient(host, port, user="fast"))


def test_the_agent_when_asked_for_and_status_says_so(centre: Any, tunnel_up: Callable[..., Tunnel]) -> None:
    tunnel = tunnel_up("hosts", transport="agent")
    settled(tunnel)
    report = _status(tunnel.profile.path)["tunnel"]
    # It runs; on this LAN new connections still take ssh's own channels (transport/link.py).
    assert report["transport"] == "agent" and "the far-side agent stands by" in report["transport_text"]
    assert "python" in (report["transport_note"] or "")
    agents = [p for p in ssh_pids(tunnel.rundir.path) if _agent_session(p)]
    assert len(agents) == 1 and [a for a in cmdline(agents[0]) if a][-1].startswith("sh -c ")


def _agent_session(pid: int) -> bool:
    """The agent's ssh: a session on the main leg's control socket."""
    args = cmdline(pid)
    return "ControlMaster=no" in args and any(a.endswith("/main.sock") for a in args)


def test_over_a_home_link_auto_runs_the_agent(centre: Any, tmp_path: Path) -> None:
    """The same Centre behind a 20 ms home link: the first hop's round trip is over SLOW_LINK_RTT, so `auto` starts
    the agent, and requests go through it."""
    from centre.homelink import HomeLink

    from ecflow_remote.clients.ecflow import EcflowClient

    tunnel = Tunnel(centre.write_profile(tmp_path / "p.toml", "local"))
    centre.set_home_link(HomeLink(rtt=0.020, down_mbit=100, up_mbit=100))
    try:
        tunnel.up()
        state = settled(tunnel)
        assert state is not None and state.transport == "agent", state
        assert sum(_agent_session(p) for p in ssh_pids(tunnel.rundir.path)) == 1
        host, port = tunnel.endpoint("machine1")
        assert_ping_reaches(centre, centre.server("machine1"), EcflowClient(host, port, user="home"))
    finally:
        tunnel.down()
        centre.set_home_link(None)
