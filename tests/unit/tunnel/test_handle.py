"""The handle: its words while `up` waits (whether the first hop answers at all, a real probe on loopback), and
open_tunnel next to a tunnel already running."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from tests.unit.samples import LOCAL_PROFILE

from ecflow_remote.errors import AlreadyRunning
from ecflow_remote.profile.load import load_profile
from ecflow_remote.tunnel.handle import FirstHop, Tunnel, open_tunnel
from ecflow_remote.tunnel.rundir import wait_for
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


def test_open_tunnel_never_stops_a_tunnel_already_running(tmp_path: Path) -> None:
    # `ecflow-remote up` started one; a script's `with open_tunnel(...)` is refused, and must leave it running
    # (it used to call down() on the way out of the failed up()).
    path = tmp_path / "p.toml"
    path.write_text(LOCAL_PROFILE)
    rundir = Tunnel(path).rundir
    rundir.make()
    rundir.lock_file.touch()
    # A stand-in supervisor: a real process holding the profile's lock, as the supervisor does for its life.
    holder = subprocess.Popen(["flock", "--nonblock", str(rundir.lock_file), "sleep", "60"])
    try:
        assert wait_for(rundir.is_locked, 5)
        rundir.write_state(TunnelState("up", "local", str(path), holder.pid))
        with pytest.raises(AlreadyRunning), open_tunnel(path):
            pass
        assert holder.poll() is None, "the running tunnel's supervisor was stopped"
        assert rundir.state_file.exists()
    finally:
        holder.kill()
        holder.wait()
