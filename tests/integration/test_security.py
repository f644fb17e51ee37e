"""Security of a running tunnel: loopback-only listeners, a private run directory, no secrets in argv."""

from __future__ import annotations

import ipaddress
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.integration.centres import settled
from tests.integration.procs import ssh_pids

from ecflow_remote.net import free_port
from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.tunnel.rundir import runtime_root

pytestmark = pytest.mark.integration


def _inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def _listeners(pids: list[int]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Local addresses of every TCP socket in LISTEN state that one of `pids` holds (/proc/net/tcp{,6})."""
    mine = set().union(*(_inodes(p) for p in pids))
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in mine:
                continue
            raw = bytes.fromhex(fields[1].split(":")[0])
            # The kernel prints each 32-bit word in host (little-endian) order.
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            addresses.append(ipaddress.IPv6Address(packed) if v6 else ipaddress.IPv4Address(packed))
    return addresses


@pytest.mark.parametrize("method", ["local", "hosts", "socks"])
def test_listeners_only_on_loopback(tunnel_up: Callable[..., Tunnel], method: str) -> None:
    tunnel = tunnel_up(method, **({"socks_port": free_port()} if method == "socks" else {}))
    state = tunnel.state()
    assert state is not None
    pids = [*ssh_pids(tunnel.rundir.path), state.supervisor_pid]
    listening = _listeners(pids)
    assert listening, "the tunnel listens nowhere?"
    assert all(a.is_loopback for a in listening), listening


def test_run_dir_private_and_no_secrets_in_argv(tunnel_up: Callable[..., Tunnel]) -> None:
    tunnel = tunnel_up("socks", socks_port=free_port())
    root = runtime_root()
    for d in (root, tunnel.rundir.path):
        st = d.stat()
        assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700, (d, oct(st.st_mode))
    files = tunnel.files()
    assert files.proxychains and stat.S_IMODE(Path(files.proxychains).stat().st_mode) == 0o600
    for pid in ssh_pids(tunnel.rundir.path):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        # The key and certificate stay in files named by the user's ssh_config, never in ssh's argv.
        assert "PRIVATE KEY" not in argv and "ssh-ed25519-cert" not in argv


# A plain TCP client (no SOCKS of its own) for `run`: proxychains carries it to the log server by name.
_PLAIN_VERSION = """
import socket
s = socket.create_connection(("logserver1", 9316), timeout=10)
s.sendall(b"version\\n")
reply = b""
while chunk := s.recv(4096):
    reply += chunk
print(reply.decode().strip())
"""


@pytest.mark.parametrize("transport", ["agent", "plain"])
def test_socks_port_needs_the_tunnels_credentials(tunnel_up: Callable[..., Tunnel], transport: str) -> None:
    """Only our front listens on TCP, and it wants this start's user and password (ssh -D, under plain forwards,
    has no authentication; through the agent the front answers CONNECT itself)."""
    from python_socks import ProxyError

    from ecflow_remote.access.socks import Credentials, socket_path
    from ecflow_remote.clients.logserver import LogServerClient
    from ecflow_remote.errors import ConnectError

    port = free_port()
    tunnel = tunnel_up("socks", socks_port=port, transport=transport)
    state = settled(tunnel)
    assert state is not None and state.files.socks_auth and state.files.proxychains
    files = state.files.__dict__
    creds = Credentials.read(state.files.socks_auth)
    assert creds is not None
    # Where the credentials are: two 0600 files in the 0700 run dir; never in state.json or any argv.
    for name in ("socks_auth", "proxychains"):
        assert stat.S_IMODE(Path(files[name]).stat().st_mode) == 0o600
    conf = Path(files["proxychains"]).read_text()
    assert f"socks5 127.0.0.1 {port} {creds.username} {creds.password}" in conf
    assert creds.password not in tunnel.rundir.state_file.read_text()
    for pid in [*ssh_pids(tunnel.rundir.path), state.supervisor_pid]:
        assert creds.password not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    # ssh listens on no TCP port of its own: the front is the one way in. Through the agent ssh runs no SOCKS
    # server at all; with plain forwards its SOCKS server is a unix socket only we can open.
    assert not _tcp_ports(ssh_pids(tunnel.rundir.path))
    if transport == "plain":
        sock = socket_path(tunnel.rundir.path)
        assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0
    assert state.transport == transport

    proxy = ("127.0.0.1", port)
    for auth in (None, ("ecflow-remote", "wrong"), ("intruder", creds.password)):
        with pytest.raises((ConnectError, ProxyError)):
            LogServerClient("logserver1", 9316, proxy=proxy, proxy_auth=auth, connect_timeout=5).version()
    right = LogServerClient("logserver1", 9316, proxy=proxy, proxy_auth=creds.pair(), connect_timeout=5)
    assert right.version()
    # What a user's own tools get through `run`: the generated proxychains config carries the credentials.
    run = [sys.executable, "-m", "ecflow_remote", "--profile", str(tunnel.profile.path), "run", "--"]
    proc = subprocess.run([*run, "/usr/bin/python3", "-c", _PLAIN_VERSION], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == right.version(), proc.stderr
    # And `status` (native clients, given the plan's credentials) sees the log servers through the front.
    checks = {c.endpoint.host: c for c in tunnel.check() if c.endpoint.kind == "logserver"}
    assert checks["logserver1"].reachable and checks["logserver2"].reachable, checks


def _tcp_ports(pids: list[int]) -> set[int]:
    """Local ports of the TCP listeners `pids` hold."""
    mine = set().union(*(_inodes(p) for p in pids))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in mine:
                ports.add(int(fields[1].split(":")[1], 16))
    return ports
