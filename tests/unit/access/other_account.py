"""Clients run as another account (uid 65534 via setpriv): what the peer check must turn away."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def as_nobody(code: str) -> list[str]:
    """argv running `code` in Debian's python3 as uid/gid 65534, with no groups."""
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", code]


def foreign_client(port: int, data: bytes) -> str:
    """What a client of another account gets from our listener on 127.0.0.1:`port` after sending `data`: 'reset',
    'eof', or the bytes it read."""
    code = f"""
import socket
c = socket.create_connection(("127.0.0.1", {port}), timeout=10)
try:
    c.sendall({data!r})
    got = c.recv(100)
    print(repr(got) if got else "eof")
except ConnectionResetError:
    print("reset")
"""
    proc = subprocess.run(as_nobody(code), capture_output=True, text=True, timeout=30, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


needs_root = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists(),
    reason="runs a client as another uid: Linux, root, setpriv",
)
