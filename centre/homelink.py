"""The home link knob: a round trip, rates and a bottleneck queue between home and the jump host.

The kernel here has no netem and no fq (so no delay qdisc at all): the home link becomes a "wire" namespace
between home and the jump host, where linkemu.py forwards every frame through a drop-tail queue at the link's
rate and then a one-way delay of RTT/2, in each direction. Frames, not TCP streams: handshakes, slow start and
losses happen as on a real link. Without a knob the wire is a plain kernel bridge (a LAN).
"""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from centre import linkemu, network
from centre.network import Topology

HOME_PORT = "tohome"  # the wire namespace's end of the laptop's link
JUMP_PORT = "tojump"  # its end of the jump host's home0
BRIDGE = "lan"


@dataclass(frozen=True)
class HomeLink:
    """A home link: round trip (s), rates (Mbit/s), and the bottleneck buffer (s of data at each rate)."""

    rtt: float
    down_mbit: float
    up_mbit: float
    # A home router's buffer: one round trip plus 10 ms of data by default, enough for one TCP stream to fill
    # the link, too little to hide megabytes (latency under load stays honest).
    buffer: float | None = None

    def __post_init__(self) -> None:
        if self.rtt < 0 or self.down_mbit <= 0 or self.up_mbit <= 0 or (self.buffer is not None and self.buffer <= 0):
            raise ValueError(f"home link: rtt must be ≥ 0, rates and buffer > 0 (got {self})")

    @property
    def queue(self) -> float:
        return self.buffer if self.buffer is not None else self.rtt + 0.010

    def describe(self) -> str:
        return f"{self.rtt * 1000:g} ms, {self.down_mbit:g}/{self.up_mbit:g} Mbit/s"


def wire_netns(topo: Topology) -> str:
    # Named like the Centre's hosts: teardown and cleanup_stale find it by the run id prefix.
    return f"{topo.run_id}-wire"


def _insert_wire(topo: Topology) -> str:
    """Put the wire namespace between home and jump (once): the direct veth is replaced by two, same addresses."""
    ns = wire_netns(topo)
    if ns in network.list_netns(topo.run_id):
        return ns
    run = network.run
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "dev", "lo", "up"])
    # No address and no IPv6 here: the wire's kernel neither answers nor sends anything of its own.
    run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
    run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])
    run(["ip", "link", "del", "dev", topo.home_veth])
    # home ↔ wire ↔ jump; both outer ends keep their names, so cut_link() and teardown work unchanged.
    run(f"ip link add name {topo.home_veth} type veth peer name {HOME_PORT} netns {ns}".split())
    run(f"ip -n {ns} link add name {JUMP_PORT} type veth peer name home0 netns {topo.jump.netns}".split())
    run(["ip", "addr", "add", f"{topo.home_address}/24", "dev", topo.home_veth])
    run(["ip", "-n", topo.jump.netns, "addr", "add", f"{topo.jump_home_address}/24", "dev", "home0"])
    run(["ip", "link", "set", "dev", topo.home_veth, "up"])
    run(["ip", "-n", topo.jump.netns, "link", "set", "dev", "home0", "up"])
    for port in (HOME_PORT, JUMP_PORT):
        run(["ip", "-n", ns, "link", "set", "dev", port, "up"])
    return ns


def _bridge(ns: str, on: bool) -> None:
    """A kernel bridge joins the wire's two ends (a LAN), or not (the emulator carries the frames)."""
    run = network.run
    has = run(["ip", "-n", ns, "link", "show", "dev", BRIDGE], check=False).returncode == 0
    if on and not has:
        run(["ip", "-n", ns, "link", "add", "name", BRIDGE, "type", "bridge"])
        for port in (HOME_PORT, JUMP_PORT):
            run(["ip", "-n", ns, "link", "set", "dev", port, "master", BRIDGE])
        run(["ip", "-n", ns, "link", "set", "dev", BRIDGE, "up"])
    elif not on and has:
        # A bridge port would hand the emulator a copy of every frame the bridge forwards too.
        run(["ip", "-n", ns, "link", "del", "dev", BRIDGE])


def apply(
    topo: Topology, link: HomeLink | None, log: Path, named: Callable[[], None] = lambda: None
) -> subprocess.Popen[bytes] | None:
    """Make the home link `link` (None: a LAN); the caller has stopped any earlier emulator. Its process, if any.
    `named()` once the wire's namespace exists, before anything runs in it."""
    ns = _insert_wire(topo)
    named()
    if link is None:
        _bridge(ns, True)
        return None
    _bridge(ns, False)
    argv = [
        "ip",
        "netns",
        "exec",
        ns,
        sys.executable,
        linkemu.__file__,
        HOME_PORT,
        JUMP_PORT,
        f"--rtt={link.rtt}",
        f"--down-mbit={link.down_mbit}",
        f"--up-mbit={link.up_mbit}",
        f"--buffer={link.queue}",
    ]
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, start_new_session=True
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    line = proc.stdout.readline() if ready else b""
    proc.stdout.close()
    if line.strip() != b"ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"home link emulator did not start (see {log})")
    return proc
