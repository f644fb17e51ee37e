"""The files a supervisor writes for launched programs (hosts view, proxychains, the opt-in system hosts block), as
one typed RunFiles. (No password file: the relay presents custom users' passwords, which stay in memory.)"""

from __future__ import annotations

from pathlib import Path

from ecflow_remote.access.socks import Credentials
from ecflow_remote.errors import SystemHostsError
from ecflow_remote.hosts import system
from ecflow_remote.hosts.view import MARK, hosts_text, private_view_available
from ecflow_remote.plan import Plan
from ecflow_remote.profile.model import Profile
from ecflow_remote.safefile import write_private
from ecflow_remote.tunnel.state import RunFiles


def proxychains_text(plan: Plan) -> str:
    assert plan.socks_port is not None
    # The SOCKS front asks for the tunnel's user and password (this file is 0600, in a 0700 directory).
    auth = f" {plan.proxy_auth[0]} {plan.proxy_auth[1]}" if plan.proxy_auth else ""
    return f"""\
{MARK}: private proxychains config for the socks method (never the global one)
strict_chain
quiet_mode
proxy_dns
remote_dns_subnet 224
tcp_read_time_out 15000
tcp_connect_time_out 8000
# Loopback goes direct: the Centre's ecFlow servers are forwarded there (proxychains cannot carry ecFlow's
# Boost.Asio sockets on Linux), and local programs stay local.
localnet 127.0.0.0/255.0.0.0
[ProxyList]
socks5 127.0.0.1 {plan.socks_port}{auth}
"""


def write_support_files(
    profile: Profile,
    plan: Plan,
    rundir: Path,
    credentials: Credentials | None = None,
) -> RunFiles:
    """Every file launched programs and native clients need for this plan, written into the run directory."""
    hosts = resolv = proxychains = socks_auth = None
    if plan.hosts:
        hosts = rundir / "hosts"
        # Made anew (a link put there is replaced, never written through); readable, as /etc/hosts is.
        write_private(hosts, hosts_text(plan), mode=0o644)
        resolv = rundir / "resolv.conf"
        # The program's resolver stays the one this process sees (under the test suite: 127.0.0.1 only).
        try:
            resolver = Path("/etc/resolv.conf").read_text()
        except OSError:
            resolver = "nameserver 127.0.0.1\n"
        write_private(resolv, resolver, mode=0o644)
    if plan.socks_port is not None:
        proxychains = rundir / "proxychains.conf"
        write_private(proxychains, proxychains_text(plan))
    if credentials is not None:
        socks_auth = credentials.write(rundir)
    return RunFiles(*(str(p) if p is not None else None for p in (hosts, resolv, proxychains, socks_auth)))


def install_system_hosts(profile: Profile, plan: Plan, tag: str) -> tuple[RunFiles, list[str]]:
    """system_hosts, where launched programs get no private view: the plan's names in the system file. The run
    files naming it (spawn then skips the private hosts view), and warnings for the user."""
    if not plan.hosts or not profile.gateway.system_hosts or private_view_available():
        return RunFiles(), []
    path = system.hosts_path()
    system.add(path, tag, plan.hosts, f"{profile.path} ({plan.method} method)")
    hidden = system.shadowed(path, tag, plan.hosts)
    warnings = [f"{path} maps {', '.join(hidden)} before ecflow-remote's block: yours win"] if hidden else []
    return RunFiles(system_hosts=str(path)), warnings


def remove_system_hosts(tag: str, files: RunFiles | None) -> bool:
    """Remove the tunnel's block (down, supervisor exit, or a later up/down after a kill -9). True if removed."""
    used = files is not None and files.system_hosts is not None
    path = Path(files.system_hosts) if files is not None and files.system_hosts else system.hosts_path()
    try:
        present = system.has_block(path, tag)
    except SystemHostsError:
        if used:
            raise
        return False  # the system file is unreadable or odd, and this tunnel never used it
    return present and system.remove(path, tag)
