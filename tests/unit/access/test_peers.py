"""peers.py: who owns the client end of a loopback connection (sock_diag, and the /proc/net/tcp fallback)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys

import pytest
from tests.unit.access.other_account import as_nobody, needs_root

from ecflow_remote.access import peers

linux = pytest.mark.skipif(sys.platform != "linux", reason="the peer check is Linux-only")


def _line(sl: int, local: str, remote: str, state: str, uid: int, inode: int) -> bytes:
    """A socket's line as the kernel prints it (net/ipv4/tcp_ipv4.c: get_tcp4_sock; tcp6 alike)."""
    middle = "00000000:00000000 00:00000000 00000000"
    return (
        f"{sl:4d}: {local} {remote} {state} {middle} {uid:5d} {0:8d} {inode} 1 0000000000000000 20 4 30 10 -1".encode()
    )


# Little-endian: a listener on 127.0.0.1:4141 (0x102D), our accepted end, the client's end (uid 1000, port 0xA42E),
# a TIME_WAIT leftover of an earlier client (uid 0, inode 0), and another account's client (uid 65534, 127.0.0.2).
TCP = b"\n".join(
    [
        b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
        _line(0, "0100007F:102D", "00000000:0000", "0A", 1000, 582),
        _line(1, "0100007F:102D", "0100007F:A42E", "01", 1000, 2286619),
        _line(2, "0100007F:A42E", "0100007F:102D", "01", 1000, 2286620),
        b"   3: 0100007F:A43C 0100007F:102D 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0000000012",
        _line(12, "0200007F:B000", "0100007F:102D", "01", 65534, 2286700),
        b"",
    ]
)
# ::1 port 3142 (0x0C46) and a client from ::1 port 50000 (0xC350), uid 1000; then a v4-mapped one, uid 1001.
_V6_LO = "00000000000000000000000001000000"
_V6_MAPPED = "0000000000000000FFFF00000100007F"
TCP6 = b"\n".join(
    [
        b"  sl  local_address                         remote_address                        st tx_queue ...",
        _line(0, f"{_V6_LO}:0C46", f"{'0' * 32}:0000", "0A", 1000, 9001),
        _line(1, f"{_V6_LO}:C350", f"{_V6_LO}:0C46", "01", 1000, 9002),
        _line(2, f"{_V6_MAPPED}:C351", f"{_V6_MAPPED}:0C46", "01", 1001, 9003),
        b"",
    ]
)
LO = socket.inet_pton(socket.AF_INET, "127.0.0.1")
LO2 = socket.inet_pton(socket.AF_INET, "127.0.0.2")
LO6 = socket.inet_pton(socket.AF_INET6, "::1")
MAPPED = socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1")


@pytest.mark.skipif(sys.byteorder != "little", reason="the sample tables are a little-endian kernel's")
def test_proc_table_parser() -> None:
    assert peers.find_in_table(TCP, LO, 0xA42E, LO, 0x102D) == 1000  # the client's end, not ours (line 1)
    assert peers.find_in_table(TCP, LO2, 0xB000, LO, 0x102D) == 65534  # another account's client
    assert peers.find_in_table(TCP, LO, 0xB000, LO, 0x102D) is None  # missing entry (other address, same port)
    assert peers.find_in_table(TCP, LO, 0xA43C, LO, 0x102D) is None  # TIME_WAIT/orphaned: inode 0, no owner
    cut = TCP + b"  13: 0100007F:C000 0100007F:102D 01 00000000:00000000 00:0000"
    assert peers.find_in_table(cut, LO, 0xC000, LO, 0x102D) is None  # a line cut off before uid and inode
    assert peers.find_in_table(TCP6, LO6, 0xC350, LO6, 0x0C46) == 1000
    assert peers.find_in_table(TCP6, MAPPED, 0xC351, MAPPED, 0x0C46) == 1001
    assert peers.find_in_table(TCP6, LO6, 0xC351, LO6, 0x0C46) is None
    assert peers.find_in_table(b"", LO, 0xA42E, LO, 0x102D) is None


def _diag_message(uid: int, inode: int) -> bytes:
    header = struct.pack("=IHHII", 88, 20, 0, 1, 0)
    return header + bytes(4 + 48 + 12) + struct.pack("=II", uid, inode) + bytes(8)


def test_diag_reply_parser() -> None:
    assert peers.parse_diag_reply(_diag_message(1000, 77)) == (True, 1000)
    assert peers.parse_diag_reply(_diag_message(0, 0)) == (True, None)  # orphaned: no owner to trust
    error = struct.pack("=IHHII", 108, 2, 0, 1, 0) + struct.pack("=i", -2) + bytes(88)  # NLMSG_ERROR, ENOENT
    assert peers.parse_diag_reply(error) == (False, None)
    assert peers.parse_diag_reply(b"") == (False, None)


@linux
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_owner_of_a_live_connection(family: int) -> None:
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    with socket.socket(family) as srv:
        srv.bind((host, 0))
        srv.listen()
        with socket.create_connection(srv.getsockname()[:2]) as c:
            conn, peer = srv.accept()
            with conn:
                local = conn.getsockname()[:2]
                assert peers.owner_uid(peer[:2], local) == os.getuid()
                # A client port with no socket behind it: nobody's (the caller refuses).
                assert peers.owner_uid((host, 1), local) is None
            assert c.getsockname()[:2] == peer[:2]


@linux
def test_proc_fallback_reads_the_live_table() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        with socket.create_connection(srv.getsockname()) as c, srv.accept()[0] as conn:
            port = c.getsockname()[1]
            assert peers._proc_lookup(socket.AF_INET, LO, port, LO, conn.getsockname()[1]) == os.getuid()
    assert peers.read_table("/proc/net/tcp").startswith(b"  sl")


@linux
def test_without_sock_diag_the_proc_table_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "_diag_lookup", lambda *a: (False, None))  # a kernel without inet_diag
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        with socket.create_connection(srv.getsockname()):
            conn, peer = srv.accept()
            with conn:
                assert peers.owner_uid(peer, conn.getsockname()) == os.getuid()
                assert peers.owner_uid(("127.0.0.1", 1), conn.getsockname()) is None


@needs_root
def test_owner_of_another_accounts_connection() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        code = (
            "import socket, sys\n"
            f"c = socket.create_connection(('127.0.0.1', {srv.getsockname()[1]}))\n"
            "print(c.getsockname()[1], flush=True)\n"
            "sys.stdin.read()\n"
        )
        with subprocess.Popen(as_nobody(code), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None and proc.stdin is not None
            port = int(proc.stdout.readline())
            conn, peer = srv.accept()
            with conn:
                assert peer[1] == port
                assert peers.owner_uid(peer, conn.getsockname()) == 65534
            proc.stdin.close()
