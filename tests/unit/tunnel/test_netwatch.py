"""netwatch.py and netevents.py without a network change: the verdicts, the kernel's messages, and one watch."""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.transport.fake_master import fake_master

from ecflow_remote.access.pipe import LoopThread
from ecflow_remote.tunnel import netevents
from ecflow_remote.tunnel.netevents import Change, parse
from ecflow_remote.tunnel.netwatch import (
    Look,
    NetWatch,
    carrier_back,
    concerns,
    is_local,
    note_addresses,
    route_source,
    verdict,
)
from ecflow_remote.tunnel.rundir import wait_for

OLD, NEW = "192.0.2.10", "198.51.100.7"


@pytest.mark.parametrize(
    ("used", "before", "now", "stale", "step"),
    [
        (OLD, OLD, Look(OLD, True), False, "keep"),  # another interface's change
        (OLD, OLD, Look(NEW, False), False, "reconnect"),  # the address went (Wi-Fi to a hotspot)
        (OLD, OLD, Look(None, False), False, "reconnect"),  # gone, and no new way yet: reconnect waits for one
        (OLD, OLD, Look(NEW, True), False, "probe"),  # a VPN routes the first hop anew, the old address stays
        (OLD, OLD, Look(None, True), False, "wait"),  # no route at all: nothing to probe over
        (OLD, None, Look(OLD, True), False, "probe"),  # the way back after none: did the connection survive?
        (OLD, OLD, Look(OLD, True), True, "probe"),  # a carrier back (a wake from sleep), events lost
        (None, None, Look(None, True), False, "probe"),  # the first hop is behind the user's own proxy
    ],
)
def test_verdict(used: str | None, before: str | None, now: Look, stale: bool, step: str) -> None:
    assert verdict(used, before, now, stale) == step


HOP = "203.0.113.5"  # the first hop


@pytest.mark.parametrize(
    ("change", "concerned"),
    [
        (Change("route", dst="0.0.0.0/0"), True),  # a default route (a VPN's, a new Wi-Fi's)
        (Change("route", added=False, dst="203.0.113.0/24"), True),  # the first hop's net
        (Change("route", dst="172.17.0.0/16"), False),  # docker's bridge
        (Change("route", dst="198.18.7.0/24"), False),  # another namespace's veth on a test machine
        (Change("route", dst="::/0"), False),  # IPv6: another family's way
        (Change("route"), True),  # not understood: looked into
        (Change("address", added=False, address=OLD, index=9), True),  # the connection's own address
        (Change("address", address=NEW, index=3), True),  # a new address on its interface (DHCP)
        (Change("address", address=NEW, index=8), False),  # a container's
        (Change("link", index=3, carrier=True), True),  # its interface
        (Change("link", index=8, carrier=True), False),  # a veth made for another namespace
        (Change("lost"), True),  # events dropped: anything may have changed
    ],
)
def test_only_what_may_concern_the_connection_is_looked_into(change: Change, concerned: bool) -> None:
    assert concerns(change, HOP, OLD, 3) is concerned


def test_a_carrier_back_is_one_seen_without_before() -> None:
    known: dict[int, bool] = {}
    assert not carrier_back(known, [Change("link", index=3, carrier=True)])  # first sight: not "back"
    assert not carrier_back(known, [Change("link", index=3, carrier=False)])
    assert carrier_back(known, [Change("link", index=3, carrier=True)])
    assert not carrier_back(known, [Change("link", index=3, carrier=True)])  # still up (an MTU change)
    assert not carrier_back(known, [Change("link", added=False, index=3), Change("address", address=OLD)])
    assert known == {}


def test_only_the_connections_interface_counts_once_known() -> None:
    known: dict[int, bool] = {}
    down = [Change("link", index=3, carrier=False), Change("link", index=4, carrier=False)]
    assert not carrier_back(known, down, watched=3)
    assert not carrier_back(known, [Change("link", index=4, carrier=True)], watched=3)  # a container's veth
    assert carrier_back(known, [Change("link", index=3, carrier=True)], watched=3)


def test_addresses_are_kept_by_interface() -> None:
    interfaces: dict[str, int] = {}
    note_addresses(interfaces, [Change("address", address=OLD, index=3), Change("address", address=NEW, index=4)])
    note_addresses(interfaces, [Change("address", added=False, address=OLD, index=3), Change("route")])
    assert interfaces == {NEW: 4}


def test_route_source_and_is_local_on_loopback() -> None:
    assert route_source(socket.AF_INET, ("127.0.0.1", 9)) == "127.0.0.1"
    assert is_local(socket.AF_INET, "127.0.0.1")
    assert not is_local(socket.AF_INET, "192.0.2.10")  # TEST-NET-1: no machine's address


# ------------------------------------------------------------------------------------------ netlink messages


def _message(kind: int, body: bytes, flags: int = 0) -> bytes:
    length = 16 + len(body)
    return struct.pack("=IHHII", length, kind, flags, 0, 0) + body + b"\0" * (-length % 4)


def _attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


def test_parse_the_kernels_messages() -> None:
    v4 = socket.inet_pton(socket.AF_INET, OLD)
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::5")
    data = b"".join(
        [
            # An IPv4 address removed: IFA_LOCAL is the address (IFA_ADDRESS the peer's on a point-to-point link).
            _message(
                21, struct.pack("=BBBBI", socket.AF_INET, 24, 0, 0, 7) + _attribute(1, b"\1\2\3\4") + _attribute(2, v4)
            ),
            _message(20, struct.pack("=BBBBI", socket.AF_INET6, 64, 0, 0, 7) + _attribute(1, v6)),
            _message(24, struct.pack("=BBBBBBBBI", socket.AF_INET, 32, 0, 0, 254, 4, 0, 1, 0)),
            _message(24, struct.pack("=BBBBBBBBI", socket.AF_INET6, 128, 0, 0, 254, 4, 0, 1, 0x200)),  # cloned
            _message(16, struct.pack("=BxHiII", 0, 1, 7, 0x10043, 0)),  # up, running, carrier
            _message(16, struct.pack("=BxHiII", 0, 1, 8, 0x1003, 0)),  # up, no carrier
            _message(3, b"\0\0\0\0"),  # NLMSG_DONE: skipped
        ]
    )
    assert parse(data) == [
        Change("address", added=False, address=OLD, index=7),
        Change("address", added=True, address="2001:db8::5", index=7),
        Change("route", added=True),
        Change("link", added=True, index=7, carrier=True),
        Change("link", added=True, index=8, carrier=False),
    ]


def test_parse_a_routes_destination() -> None:
    net = socket.inet_pton(socket.AF_INET, "198.18.7.0")
    data = b"".join(
        [
            _message(24, struct.pack("=BBBBBBBBI", socket.AF_INET, 24, 0, 0, 254, 4, 0, 1, 0) + _attribute(1, net)),
            _message(25, struct.pack("=BBBBBBBBI", socket.AF_INET6, 0, 0, 0, 254, 4, 0, 1, 0)),  # a default route
        ]
    )
    assert parse(data) == [Change("route", dst="198.18.7.0/24"), Change("route", added=False, dst="::/0")]


def test_parse_stops_at_a_message_cut_short() -> None:
    whole = _message(24, struct.pack("=BBBBBBBBI", socket.AF_INET, 32, 0, 0, 254, 4, 0, 1, 0))
    assert parse(whole + whole[:20]) == [Change("route", added=True)]
    assert parse(b"\xff" * 7) == []


@pytest.mark.parametrize("platform", ["sunos5", "darwin"])
def test_no_watcher_where_the_system_has_none(monkeypatch: pytest.MonkeyPatch, platform: str) -> None:
    """Another system, or macOS's frameworks missing (here, on Linux): a warning for `status`, keepalives remain."""
    if sys.platform == "darwin":
        pytest.skip("the frameworks are there")
    monkeypatch.setattr(sys, "platform", platform)
    loop = asyncio.new_event_loop()
    try:
        watcher, note = netevents.watch(loop, print)
    finally:
        loop.close()
    assert watcher is None and note is not None and "keepalives" in note


# ------------------------------------------------------------------------------------------ NetWatch


@pytest.fixture
def io() -> Iterator[LoopThread]:
    thread = LoopThread("test-netwatch")
    yield thread
    thread.stop()


def _changed(watch: NetWatch, io: LoopThread, *changes: Change) -> None:
    io.loop.call_soon_threadsafe(watch._changed, list(changes))


def _connected(watch: NetWatch, io: LoopThread, control: Path) -> NetWatch:
    """`watch`, watching on `io` for a connection to a first hop on this machine (its address: 127.0.0.1)."""
    watch.start(io, control)
    watch.connected(lambda: ("127.0.0.1", 22))
    assert wait_for(lambda: watch._used == "127.0.0.1", 5, 0.01)
    return watch


def test_a_lost_address_is_a_lost_connection(io: LoopThread, tmp_path: Path) -> None:
    lost: list[str] = []
    watch = _connected(NetWatch(on_lost=lambda: lost.append("woken")), io, tmp_path / "main.sock")
    _changed(watch, io, Change("route"))  # nothing that concerns the connection
    assert not wait_for(lambda: watch.lost is not None, 0.2, 0.01) and watch.probes == 0
    watch._used = "192.0.2.10"  # as if the connection had gone out from an address this machine no longer has
    _changed(watch, io, Change("address", added=False, address="192.0.2.10"))
    assert wait_for(lambda: watch.lost is not None, 5, 0.01)
    assert "192.0.2.10 is no longer this machine's address" in str(watch.lost) and lost == ["woken"]
    watch.connected(lambda: ("127.0.0.1", 22))  # the next connection starts afresh
    assert watch.lost is None
    watch.stop()


def test_changes_elsewhere_cost_no_lookup_and_one_here_asks_for_a_measure(io: LoopThread, tmp_path: Path) -> None:
    moved: list[str] = []
    watch = _connected(NetWatch(on_moved=lambda: moved.append("measure")), io, tmp_path / "main.sock")
    elsewhere = [Change("route", dst="198.18.7.0/24"), Change("link", index=999, carrier=True)]
    _changed(watch, io, *elsewhere, Change("address", address="198.18.7.1", index=999))
    assert not wait_for(lambda: watch.looked > 0, 0.2, 0.01) and moved == []
    _changed(watch, io, Change("route", dst="127.0.0.0/8"))  # the way to the first hop: the same, still
    assert wait_for(lambda: moved == ["measure"], 5, 0.01)
    assert watch.looked == 1 and watch.probes == 0 and watch.lost is None
    watch.stop()


@pytest.mark.parametrize(("mode", "kept"), [("refuse", True), ("hang", False)])
def test_a_changed_route_is_probed(io: LoopThread, tmp_path: Path, mode: str, kept: bool) -> None:
    with fake_master(tmp_path / "main.sock", mode):
        watch = NetWatch()
        notes = watch.start(io, tmp_path / "main.sock")
        assert notes == [] or not sys.platform.startswith("linux")  # netlink needs no privilege to listen
        watch.connected(lambda: ("127.0.0.1", 22))
        assert wait_for(lambda: watch._used == "127.0.0.1", 5, 0.01)
        watch._before = "192.0.2.10"  # the route went out from another address until now
        _changed(watch, io, Change("route"))
        assert wait_for(lambda: watch.probes == 1, 5, 0.01)
        lost = wait_for(lambda: watch.lost is not None, 2, 0.01)
        assert lost is not kept, watch.lost
        if not kept:
            assert "did not answer within 1 s" in str(watch.lost)
        watch.stop()


# ------------------------------------------------------------------------------------------ the kernel's own

WATCH_IN_A_PRIVATE_NETWORK = """
import asyncio, subprocess, sys
from ecflow_remote.tunnel.netevents import NetlinkWatcher
changes = []
async def main():
    loop = asyncio.get_running_loop()
    for argv in ("ip link add c0 type veth peer name d0", "ip addr add 198.51.100.9/24 dev c0"):
        subprocess.run(argv.split(), check=True)  # there before the watch: the watcher's first question finds it
    watcher = NetlinkWatcher(loop, changes.extend)
    for argv in (
        "ip link add a0 type veth peer name b0", "ip addr add 192.0.2.1/24 dev a0", "ip link set a0 up",
        "ip link set b0 up", "ip link set b0 down", "ip link set b0 up", "ip addr del 192.0.2.1/24 dev a0",
    ):
        subprocess.run(argv.split(), check=True)
        await asyncio.sleep(0.05)
    watcher.stop()
asyncio.run(main())
for change in changes:
    print(change.kind, change.added, change.address, change.index, change.carrier)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="netlink is Linux's")
def test_netlink_reports_the_kernels_changes() -> None:
    """In a network namespace of the test's own (a user namespace: no root needed where the kernel allows it)."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rn", "true"]).returncode != 0:
        pytest.skip("no unprivileged network namespace here")
    done = subprocess.run(
        ["unshare", "-rn", sys.executable, "-c", WATCH_IN_A_PRIVATE_NETWORK], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    added = [line for line in lines if line.startswith("address True 192.0.2.1 ")]
    removed = [line for line in lines if line.startswith("address False 192.0.2.1 ")]
    assert added and removed, lines
    assert any(line.startswith("address True 198.51.100.9 ") for line in lines), lines
    assert any(line.startswith("route ") for line in lines), lines
    # b0 down then up: its peer a0 loses its carrier and gets it back (a cut link restored), and that is seen so.
    known: dict[int, bool] = {}
    links = [line.split() for line in lines if line.startswith("link True")]
    backs = [carrier_back(known, [Change("link", index=int(f[3]), carrier=f[4] == "True")]) for f in links]
    assert backs.count(True) >= 2, lines  # at the first bring-up, and after the cut
