"""The Centre's network: one namespace per host, the home link to the jump host, and the Centre LAN behind it."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import random
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

NETNS_ETC = Path("/etc/netns")
LOCK_FILE = Path("/run/ecflow-remote-centre.lock")


BACKSTOP_METRIC = "4000"  # the home net's unreachable route, below (after) its connected route


def run(argv: Sequence[str], *, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a set-up command; on failure say which command and what it printed."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@contextmanager
def allocation_lock() -> Iterator[None]:
    """Serialise subnet choice between Centres started at the same moment (parallel test runs)."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = run(["ip", "-4", "route", "show", "table", "all"]).stdout
    out += run(["ip", "-4", "-o", "addr", "show"]).stdout
    nets = []
    for word in out.split():
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


def choose_subnets() -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    """A free /24 for the home link and one for the Centre LAN, overlapping nothing in this machine's routes."""
    used = _used_networks()
    # 198.18.0.0/15 is reserved for network benchmarks (RFC 2544): nothing real routes there, so it cannot clash
    # with the machine's own networks (its resolver sits in 10.x).
    candidates = list(range(1, 255))
    random.shuffle(candidates)
    for n in candidates:
        home = ipaddress.ip_network(f"198.18.{n}.0/24")
        lan = ipaddress.ip_network(f"198.19.{n}.0/24")
        if not any(home.overlaps(u) or lan.overlaps(u) for u in used if u.prefixlen > 0):
            return home, lan  # type: ignore[return-value]
    raise RuntimeError("no free subnet in 198.18.0.0/15 for a simulated Centre (too many running?)")


@dataclass(frozen=True)
class Host:
    """One Centre host: its name, its network namespace, its address."""

    name: str
    netns: str
    address: str


@dataclass
class Topology:
    """Everything the network set-up made, so that teardown can undo exactly that."""

    run_id: str
    home_net: str
    lan_net: str
    home_address: str
    jump_home_address: str
    jump: Host
    hosts: dict[str, Host]  # Centre hosts by name (not jump)

    @property
    def home_veth(self) -> str:
        return f"{self.run_id}h"

    @property
    def all_netns(self) -> list[str]:
        return [self.jump.netns, *(h.netns for h in self.hosts.values())]

    def host(self, name: str) -> Host:
        if name == self.jump.name:
            return self.jump
        return self.hosts[name]


def build(
    run_id: str,
    host_names: Sequence[str],
    extra_etc: dict[str, dict[str, str]],
    aliases: Mapping[str, Sequence[str]] | None = None,
    named: Callable[[], None] = lambda: None,
) -> Topology:
    """Create the namespaces, links, addresses, routes and per-namespace /etc files (`aliases`: a host's other names
    in the Centre's hosts files; `named()` as soon as the namespaces exist)."""
    with allocation_lock():
        home_net, lan_net = choose_subnets()
        home_hosts = list(home_net.hosts())
        lan_hosts = list(lan_net.hosts())
        jump = Host("jump", f"{run_id}-jump", str(lan_hosts[0]))
        hosts = {name: Host(name, f"{run_id}-{name}", str(lan_hosts[10 + i])) for i, name in enumerate(host_names)}
        jump_home_address = str(home_hosts[1])
        topo = Topology(run_id, str(home_net), str(lan_net), str(home_hosts[0]), jump_home_address, jump, hosts)
        for ns in topo.all_netns:
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        named()
        # Home link: the laptop (root namespace) sees only the jump host.
        run(
            [
                "ip",
                "link",
                "add",
                topo.home_veth,
                "type",
                "veth",
                "peer",
                "name",
                "home0",
                "netns",
                jump.netns,
            ]
        )
        run(["ip", "addr", "add", f"{topo.home_address}/24", "dev", topo.home_veth])
        run(["ip", "link", "set", topo.home_veth, "up"])
        run(["ip", "-n", jump.netns, "addr", "add", f"{jump_home_address}/24", "dev", "home0"])
        run(["ip", "-n", jump.netns, "link", "set", "home0", "up"])
        # The Centre LAN must be unreachable from home, exactly as at home: no route, and an explicit refusal.
        run(["ip", "route", "add", "unreachable", str(lan_net)])
        # And the home link's own net, behind its connected route: while the laptop's address is gone (a test
        # moving it, a teardown) nothing falls through to this machine's default route.
        run(["ip", "route", "add", "unreachable", str(home_net), "metric", BACKSTOP_METRIC])
    run(["ip", "netns", "exec", jump.netns, "sysctl", "-qw", "net.ipv4.ip_forward=0"])
    run(["ip", "-n", jump.netns, "link", "add", "lan", "type", "bridge"])
    run(["ip", "-n", jump.netns, "addr", "add", f"{jump.address}/24", "dev", "lan"])
    run(["ip", "-n", jump.netns, "link", "set", "lan", "up"])
    for i, host in enumerate(hosts.values()):
        port = f"p{i}"
        run(
            [
                "ip",
                "-n",
                jump.netns,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host.netns,
            ]
        )
        run(["ip", "-n", jump.netns, "link", "set", port, "master", "lan"])
        run(["ip", "-n", jump.netns, "link", "set", port, "up"])
        run(["ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0"])
        run(["ip", "-n", host.netns, "link", "set", "eth0", "up"])
    hosts_lines = ["127.0.0.1\tlocalhost", f"{jump.address}\tjump"]
    hosts_lines += ["\t".join([h.address, h.name, *(aliases or {}).get(h.name, ())]) for h in hosts.values()]
    for host in [jump, *hosts.values()]:
        etc = NETNS_ETC / host.netns
        etc.mkdir(parents=True, exist_ok=True)
        # `ip netns exec` bind-mounts every file here over /etc/<name>: a hosts view and resolver per host.
        (etc / "hosts").write_text("\n".join(hosts_lines) + "\n")
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        for name, text in extra_etc.get(host.name, {}).items():
            (etc / name).write_text(text)
    return topo


def set_link(netns: str, device: str, up: bool) -> None:
    run(["ip", "-n", netns, "link", "set", device, "up" if up else "down"])


def move_home(topo: Topology, keep_old: bool = False, gap: float = 0.0) -> str:
    """The laptop moves to another network (Wi-Fi to a phone's hotspot): its end of the home link gets a new
    address, the route to the jump host goes out from it, and the old address is removed first (keep_old: it stays,
    as when a VPN comes up and routes the jump host anew; gap: seconds without an address in between, as while a
    DHCP server answers). Only this Centre's own link changes. The new address."""
    new = str(ipaddress.ip_network(topo.home_net)[101])
    dev, jump = topo.home_veth, topo.jump_home_address
    if not keep_old:
        run(["ip", "addr", "del", f"{topo.home_address}/24", "dev", dev])  # its routes go with it
    if gap:
        # No way to the jump host meanwhile, as on a laptop between networks (here the machine's own default route
        # would take the packets instead, to wherever this machine's network sends them).
        run(["ip", "route", "replace", "unreachable", f"{jump}/32"])
    try:
        time.sleep(gap)
        run(["ip", "addr", "add", f"{new}/32", "dev", dev])
        run(["ip", "route", "replace", f"{jump}/32", "dev", dev, "src", new])
    except BaseException:
        run(["ip", "route", "del", f"{jump}/32"], check=False)  # the veth takes the rest with it at teardown
        raise
    topo.home_address = new
    return new


def netns_pids(netns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def destroy(run_id: str, lan_net: str | None) -> None:
    """Remove every namespace, link, route and /etc/netns entry of one Centre; safe to call twice."""
    for ns in list_netns(run_id):
        run(["ip", "netns", "del", ns], check=False)
    # Deleting the jump namespace destroys the veth pair, but a crash between `link add` and the move may not.
    run(["ip", "link", "del", f"{run_id}h"], check=False)
    if lan_net:
        run(["ip", "route", "del", "unreachable", lan_net], check=False)
        home_net = lan_net.replace("198.19.", "198.18.", 1)  # the pair choose_subnets made
        run(["ip", "route", "del", "unreachable", home_net, "metric", BACKSTOP_METRIC], check=False)
    for etc in NETNS_ETC.glob(f"{run_id}-*"):
        shutil.rmtree(etc, ignore_errors=True)
    with contextlib.suppress(OSError):
        NETNS_ETC.rmdir()  # only when empty: it may hold other tools' namespaces


def all_netns() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def list_netns(run_id: str) -> list[str]:
    return [ns for ns in all_netns() if ns.startswith(run_id + "-")]
