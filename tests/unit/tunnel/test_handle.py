"""The handle's words while `up` waits: whether the first hop answers at all (a real probe, on loopback)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.unit.samples import LOCAL_PROFILE

from ecflow_remote.profile.load import load_profile
from ecflow_remote.tunnel.handle import FirstHop
from ecflow_remote.tunnel.state import TunnelState


def _hop(tmp_path: Path, address: tuple[str, int]) -> FirstHop:
    path = tmp_path / "p.toml"
    path.write_text(LOCAL_PROFILE)
    hop = FirstHop(load_profile(path))
    hop.address = address  # where ssh -G would send the first connection
    hop.next = 0.0  # probe at the next look
    return hop


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_silent_first_hop_is_named_while_ssh_starts(tmp_path: Path) -> None:
    port = _closed_port()
    hop = _hop(tmp_path, ("127.0.0.1", port))
    starting = TunnelState("starting", "local", "p.toml", 1, "starting ssh")
    shown = hop.annotate(starting)
    assert shown is not None and shown.message == f"starting ssh: 127.0.0.1 port {port} does not answer" + (
        " (no network, VPN, or the host is down)"
    )
    assert starting.message == "starting ssh"  # the supervisor's state itself is not changed
    # Other phases carry the supervisor's own words (it waits for the hop itself when reconnecting).
    reconnecting = TunnelState("reconnecting", "local", "p.toml", 1, "jump leg: ...")
    assert hop.annotate(reconnecting) is reconnecting and hop.annotate(None) is None


def test_a_first_hop_that_answers_adds_nothing(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        hop = _hop(tmp_path, listener.getsockname())
        starting = TunnelState("starting", "local", "p.toml", 1, "starting ssh")
        assert hop.annotate(starting) is starting
