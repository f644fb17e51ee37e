"""A local port the tunnel needs, taken by another account, is reported with that account (issue 21): the
listener's uid from /proc/net/tcp, played by `nobody` listening on a loopback port."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.unit.access.other_account import as_nobody, needs_root

from ecflow_remote.errors import PortInUse
from ecflow_remote.plan import plan_for
from ecflow_remote.portowner import find_listener, held_by
from ecflow_remote.profile.load import load_profile

TABLE = (
    b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    b"   0: 0100007F:0C46 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1\n"
    b"   1: 0100007F:0C44 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1001        0 112 1\n"
    b"   2: 00000000:0C44 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 113 1\n"
)


def test_find_listener_reads_the_listening_row() -> None:
    assert find_listener(TABLE, "127.0.0.1", 0x0C46) == 1000
    assert find_listener(TABLE, "127.0.0.1", 0x0C44) == 65534  # the wildcard listener, not the connection's row
    assert find_listener(TABLE, "127.0.0.2", 0x0C46) is None
    assert find_listener(TABLE, "127.0.0.1", 3143) is None


LISTEN = """
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


@needs_root
def test_a_port_another_account_holds_is_named(tmp_path: Path) -> None:
    with subprocess.Popen(as_nobody(LISTEN), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as other:
        try:
            assert other.stdout is not None
            port = int(other.stdout.readline())
            assert held_by("127.0.0.1", port) == ", held by another account, nobody (uid 65534)"
            profile = tmp_path / "p.toml"
            profile.write_text(
                f'[gateway]\nhost = "u@ws"\nmethod = "socks"\nsocks_port = {port}\n\n'
                '[[server]]\nname = "m1"\nhost = "m1"\nport = 4141\n'
            )
            with pytest.raises(PortInUse, match=rf"127.0.0.1:{port} .* in use, held by another account, nobody"):
                plan_for(load_profile(profile))
        finally:
            other.kill()
