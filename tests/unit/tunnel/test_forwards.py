"""ssh's forwards added through the main leg's control socket: the private sockets, and ssh's answer (the real
OpenSSH client, against a control socket that is not there: no network, no server)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecflow_remote.plan import Endpoint
from ecflow_remote.profile.model import Gateway, Profile, Server, SshTarget
from ecflow_remote.tunnel import forwards

LS1 = Endpoint("logserver", "ls1", "logserver1", 9316, "127.0.0.1", 9316, origin="found")
LS2 = Endpoint("logserver", "logserver2:9316", "logserver2", 9316, "127.0.0.1", 40001, origin="found")


@pytest.fixture
def rundir() -> Iterator[Path]:
    # Short: unix socket paths have ~104 bytes.
    with tempfile.TemporaryDirectory(prefix="fw-") as d:
        yield Path(d)


def _profile() -> Profile:
    gw = Gateway(jump=(), host=SshTarget("u", "machine1"), ssh_config=None)
    return Profile(Path("/p.toml"), gw, (Server("m1", "machine1", 4141),))


def test_each_centre_address_gets_its_own_private_socket(rundir: Path) -> None:
    sockets = forwards.sockets_for(rundir, [LS1, LS2])
    assert set(sockets) == {("logserver1", 9316), ("logserver2", 9316)}
    assert len(set(sockets.values())) == 2 and all(p.parent == rundir for p in sockets.values())
    assert sockets == forwards.sockets_for(rundir, [LS2, LS1])  # the same path again after a reconnect
    assert forwards.by_name([LS1, LS2], sockets) == {
        "ls1": sockets[("logserver1", 9316)],
        "logserver2:9316": sockets[("logserver2", 9316)],
    }


def test_without_a_running_master_ssh_says_why_and_stale_sockets_are_gone(rundir: Path) -> None:
    sockets = forwards.sockets_for(rundir, [LS1])
    stale = sockets[("logserver1", 9316)]
    stale.write_bytes(b"")  # left by a killed ssh: it must not pass for the new forward
    why = forwards.ControlForwards(_profile(), rundir, [LS1], sockets).result()
    assert why is not None and "main.sock" in why, why
    assert not stale.exists()
