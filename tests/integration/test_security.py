"""Security of a running tunnel: loopback-only listeners, a private run directory, no secrets in argv."""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from ecflow_remote.methods import free_port
from ecflow_remote.runstate import runtime_root
from ecflow_remote.tunnel import Tunnel

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


def _ssh_pids(tunnel: Tunnel) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"ssh" in argv.split(b"\0")[0] and str(tunnel.rundir.path).encode() in argv:
                pids.append(int(entry.name))
    return pids


@pytest.mark.parametrize("method", ["local", "hosts", "socks"])
def test_listeners_only_on_loopback(tunnel_up: Callable[..., Tunnel], method: str) -> None:
    tunnel = tunnel_up(method, **({"socks_port": free_port()} if method == "socks" else {}))
    state = tunnel.state() or {}
    pids = [*_ssh_pids(tunnel), state["supervisor_pid"]]
    listening = _listeners(pids)
    assert listening, "the tunnel listens nowhere?"
    assert all(a.is_loopback for a in listening), listening


def test_run_dir_private_and_no_secrets_in_argv(tunnel_up: Callable[..., Tunnel]) -> None:
    tunnel = tunnel_up("socks", socks_port=free_port())
    root = runtime_root()
    for d in (root, tunnel.rundir.path):
        st = d.stat()
        assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700, (d, oct(st.st_mode))
    files = tunnel.state()["files"]  # type: ignore[index]
    assert stat.S_IMODE(Path(files["proxychains"]).stat().st_mode) == 0o600
    for pid in _ssh_pids(tunnel):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        # The key and certificate stay in files named by the user's ssh_config, never in ssh's argv.
        assert "PRIVATE KEY" not in argv and "ssh-ed25519-cert" not in argv
