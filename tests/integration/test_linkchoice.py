"""`auto` decides by the round trip measured through ssh itself, whatever the first hop, and keeps deciding: behind a
ProxyCommand or a local relay over a home link it takes the far-side agent, on the LAN ssh's own channels, and a
link that changes under a running tunnel moves new connections within seconds, without a reconnect.

Which one carried a connection is read at the far end: the workstation's connection to the ecFlow server belongs
to the agent's python3 or to sshd (its direct-tcpip channel)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from centre import HomeLink, network
from tests.integration.centres import assert_ping_reaches
from tests.integration.procs import cmdline

from ecflow_remote.clients.ecflow import EcflowClient
from ecflow_remote.transport import link
from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.tunnel.rundir import wait_for

HOME = HomeLink(rtt=0.030, down_mbit=100, up_mbit=20)


@pytest.fixture
def first_hop(centre: Any) -> Iterator[Callable[[str, HomeLink | None], None]]:
    """first_hop(kind, link): the shared Centre reached that way over that link; the LAN, direct, again after."""

    def set_(kind: str, link: HomeLink | None) -> None:
        centre.set_first_hop(kind)
        centre.set_home_link(link)

    try:
        yield set_
    finally:
        centre.set_home_link(None)
        centre.set_first_hop("direct")


def far_owners(centre: Any, port: int) -> Counter[str]:
    """The programs on the workstation holding connections to its ecFlow server's port, and how many each."""
    out = network.run(
        ["ip", "netns", "exec", centre.host("machine1").netns, "ss", "-tnpH", "state", "established",
         f"( dport = :{port} )"]
    ).stdout  # fmt: skip
    return Counter(re.findall(r'\(\("([^"]+)"', out))


def carried_by(centre: Any, tunnel: Tunnel) -> str:
    """Open a connection to machine1's server through the tunnel and hold it: "agent" or "ssh", by who holds its
    far end (the one program with one more connection than before; connections held already stay counted)."""
    port = centre.server("machine1").port
    base = far_owners(centre, port)
    held: Counter[str] = Counter()

    def ours() -> bool:
        # The supervisor's own checks and the finder open short connections too: only one that lasts through
        # several looks (ours, held open) counts, whoever else comes and goes meanwhile.
        nonlocal held
        held = far_owners(centre, port) - base
        for _ in range(3):
            time.sleep(0.1)
            held &= far_owners(centre, port) - base
        return sum(held.values()) == 1

    with socket.create_connection(tunnel.endpoint("machine1"), timeout=5):
        assert wait_for(ours, 10), (base, held)
    owner = next(iter(held))
    assert owner in ("sshd", "python3"), owner
    return "agent" if owner == "python3" else "ssh"


def carrier_is(tunnel: Tunnel, carrier: str, timeout: float) -> bool:
    return wait_for(lambda: (s := tunnel.state()) is not None and s.carrier == carrier, timeout)


@contextlib.contextmanager
def running(centre: Any, tmp_path: Any, name: str, **gateway: Any) -> Iterator[Tunnel]:
    tunnel = Tunnel(centre.write_profile(tmp_path / f"{name}.toml", "local", **gateway))
    try:
        tunnel.up()
        yield tunnel
    finally:
        tunnel.down()


@pytest.mark.parametrize("kind", ["proxycommand", "relay"])
def test_behind_a_proxy_or_relay_over_a_home_link_auto_takes_the_agent(
    centre: Any, first_hop: Callable[[str, HomeLink | None], None], tmp_path: Any, kind: str
) -> None:
    """A ProxyCommand hides the first hop's address; a local relay answers a handshake in microseconds: neither
    says the link is slow. The round trip through ssh does."""
    first_hop(kind, HOME)
    with running(centre, tmp_path, kind) as tunnel:
        assert carrier_is(tunnel, "agent", 15), tunnel.state()
        state = tunnel.state()
        assert state is not None and state.link_rtt is not None and state.link_rtt >= HOME.rtt * 1000
        assert carried_by(centre, tunnel) == "agent"
        host, port = tunnel.endpoint("machine1")
        assert_ping_reaches(centre, centre.server("machine1"), EcflowClient(host, port, user=kind))


@contextlib.contextmanager
def busy_cpus(n: int) -> Iterator[None]:
    """`n` processes spinning on the CPUs (the laptop busy while the tunnel starts): the scheduler delays every
    process of the tunnel, so single round trips through ssh come out slow on a fast link."""
    hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(n)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.mark.parametrize("load", [0, 2 * (os.cpu_count() or 1)], ids=["idle", "busy"])
def test_on_the_lan_auto_takes_ssh_channels(centre: Any, first_hop: Any, tmp_path: Any, load: int) -> None:
    """Also when the machine is busy while the tunnel starts (one TCP handshake timed then once chose the agent):
    the figure is the smallest of several round trips, and a busy CPU only ever adds to one."""
    first_hop("relay", None)  # the relay's own hop included: still well under a home link's round trip
    with busy_cpus(load), running(centre, tmp_path, f"lan-{load}") as tunnel:
        assert wait_for(lambda: (s := tunnel.state()) is not None and s.transport == "agent", 15), tunnel.state()
        assert carrier_is(tunnel, "ssh", 10), tunnel.state()
        assert carried_by(centre, tunnel) == "ssh"
        state = tunnel.state()
        assert state is not None and state.link_rtt is not None and state.link_rtt < link.SLOW * 1000, state
        assert "ssh's own channels" in state.transport_text


def test_a_link_that_changes_under_a_running_tunnel_moves_new_connections(
    centre: Any, first_hop: Any, tmp_path: Any
) -> None:
    """The laptop leaves the office for home (and comes back): new connections follow within a few seconds, the
    ssh connection and the connections already open stay. The move is seen by the user's next request: standing by
    on a fast link, the agent pings only every 30 s, and the first sample of the new link is that request's channel,
    confirmed by ssh's master a home link's round trip after asking (else the next health round's, within 10 s),
    which asks the agent for a burst of pings. The way back is seen by the agent's pings (every 3 s on a slow link)."""
    first_hop("direct", None)
    with running(centre, tmp_path, "moving") as tunnel:
        assert carrier_is(tunnel, "ssh", 15) and carried_by(centre, tunnel) == "ssh"
        before = tunnel.state()
        assert before is not None
        held = socket.create_connection(tunnel.endpoint("machine1"), timeout=5)
        try:
            centre.set_home_link(HOME)
            moved = time.monotonic()
            EcflowClient(*tunnel.endpoint("machine1"), user="moving").ping()  # still by ssh's own channel
            assert carrier_is(tunnel, "agent", 10), tunnel.state()
            print(f"moved to the agent {time.monotonic() - moved:.1f} s after the link changed")
            assert carried_by(centre, tunnel) == "agent"
            centre.set_home_link(None)
            assert carrier_is(tunnel, "ssh", 10), tunnel.state()
            assert carried_by(centre, tunnel) == "ssh"
            after = tunnel.state()
            assert after is not None and after.pid == before.pid and after.reconnects == before.reconnects
            held.sendall(b"")  # the connection opened before the moves is still open
            assert held.fileno() != -1
        finally:
            held.close()


@pytest.mark.parametrize(("link", "compressed"), [(HOME, True), (None, False)])
def test_plain_forwards_compress_where_the_link_is_slow(
    centre: Any, first_hop: Any, tmp_path: Any, link: HomeLink | None, compressed: bool
) -> None:
    """Without the agent, ssh's own channels carry the link: behind a relay (whose handshake says nothing) the link
    is timed through the jump master before the main leg starts, which runs with -C only over a home link."""
    first_hop("relay", link)
    with running(centre, tmp_path, "plain", transport="plain") as tunnel:
        state = tunnel.state()
        assert state is not None and state.transport == "plain"
        assert ("-C" in cmdline(state.pid or 0)) is compressed, cmdline(state.pid or 0)
        host, port = tunnel.endpoint("machine1")
        assert_ping_reaches(centre, centre.server("machine1"), EcflowClient(host, port, user="plain"))
