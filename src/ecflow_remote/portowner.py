"""Which local account holds a listening TCP port, to name it when a port the tunnel needs is taken (Linux: the
socket's uid in /proc/net/tcp{,6}; macOS has no such table: `lsof -nP -iTCP:PORT -sTCP:LISTEN` names the process
and its user, for your own processes, or all of them with sudo)."""

from __future__ import annotations

import os
import socket
import sys

_LISTEN = b"0A"


def proc_hex(packed: bytes) -> str:
    """An address as /proc/net/tcp{,6} prints it: each 32-bit word as a host-order number, %08X."""
    return "".join(f"{int.from_bytes(packed[i : i + 4], sys.byteorder):08X}" for i in range(0, len(packed), 4))


def read_table(path: str) -> bytes:
    """The whole of a /proc/net table (the kernel hands it out a page per read)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _addresses(host: str) -> set[bytes]:
    """`host` and the wildcard address, as /proc/net/tcp and tcp6 print them (a v4 listener on :: counts too)."""
    found = {proc_hex(bytes(4)).encode(), proc_hex(bytes(16)).encode()}
    try:
        v4 = socket.inet_pton(socket.AF_INET, host)
    except OSError:
        return found
    return found | {proc_hex(v4).encode(), proc_hex(bytes(10) + b"\xff\xff" + v4).encode()}


def find_listener(table: bytes, host: str, port: int) -> int | None:
    """The uid of the socket listening on `host`:`port` (or on the wildcard address) in the text of
    /proc/net/tcp or tcp6; None if there is none."""
    wanted = _addresses(host)
    suffix = f":{port:04X}".encode()
    for line in table.splitlines()[1:]:
        # sl, local, remote, st, tx:rx, tr:when, retrnsmt, uid, timeout, inode
        fields = line.split()
        if len(fields) < 10 or fields[3] != _LISTEN or not fields[1].endswith(suffix):
            continue
        if fields[1][: -len(suffix)] in wanted and fields[7].isdigit():
            return int(fields[7])
    return None


def listener_uid(host: str, port: int) -> int | None:
    """The uid holding `host`:`port` in LISTEN (Linux); None when unknown (not found, or not Linux)."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            uid = find_listener(read_table(path), host, port)
        except OSError:
            continue
        if uid is not None:
            return uid
    return None


def held_by(host: str, port: int) -> str:
    """`, held by ACCOUNT` for the account listening on `host`:`port`, "" when unknown: for a port-in-use message."""
    uid = listener_uid(host, port)
    if uid is None:
        return ""
    from ecflow_remote.safepath import account

    whose = "you" if uid == os.getuid() else f"another account, {account(uid)}"
    return f", held by {whose}"
