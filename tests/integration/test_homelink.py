"""The Centre's home-link knob: the round trip, the rates and clearing it are what the bench relies on."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from centre import HomeLink, network
from centre.bigsuite import load_big_suite
from centre.homelink import BRIDGE, wire_netns

# Slow enough that the lower bounds below are far above what the LAN does, fast enough for a short test.
LINK = HomeLink(rtt=0.040, down_mbit=20, up_mbit=5)


@pytest.fixture(scope="module")
def linked() -> Iterator[Any]:
    if not (os.geteuid() == 0 and os.uname().sysname == "Linux"):
        pytest.skip("integration tests need Linux and root (network namespaces): run `sudo make test`")
    from centre import Centre

    with Centre(home_link=LINK) as c:
        yield c


@pytest.fixture
def centre_link(linked: Any) -> Any:
    # Every test starts from the same link, whatever the one before it left.
    linked.set_home_link(LINK)
    return linked


def connect_times(centre: Any, n: int) -> list[float]:
    """TCP connects from home to the jump host's sshd: each one is exactly one round trip of the home link."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        socket.create_connection((centre.topology.jump_home_address, 22), timeout=5).close()
        out.append(time.perf_counter() - t0)
    return out


def ssh(
    centre: Any, *args: str, input: bytes | None = None, via_jump: bool = True
) -> subprocess.CompletedProcess[bytes]:
    hop = ["-J", centre.jump, centre.workstation] if via_jump else [centre.jump]
    argv = ["ssh", "-F", str(centre.ssh_config), "-o", "BatchMode=yes", *hop, *args]
    return subprocess.run(argv, capture_output=True, input=input, timeout=60)


def test_round_trip_is_at_least_the_configured_one(centre_link: Any) -> None:
    assert min(connect_times(centre_link, 5)) >= LINK.rtt


def test_ssh_through_the_link_reaches_the_workstation(centre_link: Any) -> None:
    proc = ssh(centre_link, "hostname")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "machine1"


def test_bulk_transfers_are_held_to_the_rates(centre_link: Any) -> None:
    down = 3_000_000
    t0 = time.perf_counter()
    proc = ssh(centre_link, f"head -c {down} /dev/urandom", via_jump=False)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0 and len(proc.stdout) == down
    assert elapsed >= down * 8 / (LINK.down_mbit * 1e6)
    up = 1_000_000
    t0 = time.perf_counter()
    proc = ssh(centre_link, "wc -c", input=os.urandom(up), via_jump=False)
    elapsed = time.perf_counter() - t0
    assert proc.stdout.decode().split() == [str(up)]
    assert elapsed >= up * 8 / (LINK.up_mbit * 1e6)


def test_changing_the_link_on_a_running_centre(centre_link: Any) -> None:
    slower = HomeLink(rtt=0.080, down_mbit=10, up_mbit=2)
    centre_link.set_home_link(slower)
    assert min(connect_times(centre_link, 3)) >= slower.rtt


def test_clearing_the_link_restores_the_lan(centre_link: Any) -> None:
    ns = wire_netns(centre_link.topology)
    assert network.netns_pids(ns), "the emulator should run while the link is set"
    centre_link.set_home_link(None)
    # No emulator left; the wire's two ends are joined by a kernel bridge again; home still reaches the Centre.
    assert network.netns_pids(ns) == []
    ports = network.run(["ip", "-n", ns, "-o", "link", "show", "master", BRIDGE]).stdout
    assert "tohome" in ports and "tojump" in ports
    proc = ssh(centre_link, "hostname")
    assert proc.returncode == 0, proc.stderr.decode()
    assert centre_link.home_link is None


def test_big_suite_loads_with_all_its_tasks(centre_link: Any) -> None:
    load_big_suite(centre_link, "machine2", "big", tasks=1000)
    out = centre_link.python_in(
        "machine2",
        "import ecflow\nc = ecflow.Client('machine2', 3142)\nc.sync_local()\n"
        "print(sum(t.get_abs_node_path().startswith('/big/') for t in c.get_defs().get_all_tasks()))",
    )
    assert out.strip() == "1000"
