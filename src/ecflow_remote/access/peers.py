"""Which local account opened a loopback TCP connection (Linux): the owner of the client's end of it.

A connection to one of our loopback listeners has two sockets in this network namespace: ours (local = our
address and port) and the client's (local = the peer address and port we see, remote = ours). The client's socket
carries the uid of whoever created it. The kernel is asked for exactly that socket over sock_diag netlink (what
`ss` uses): one request, one hashed lookup, ~10 µs whatever the size of the machine's socket table. Only a kernel
without inet_diag falls back to /proc/net/tcp{,6}: reading it walks every bucket of the TCP hash table, a page of
text per read (milliseconds on a large machine), too slow to be the path taken for every connection.

Nothing is cached: every answer comes from the kernel at the moment of the connection. A socket whose owner has
already closed it (inode 0: orphaned, or TIME_WAIT) has no owner to trust (older kernels report root there), so
it counts as not found, and a connection whose owner is not found is refused by the caller.
"""

from __future__ import annotations

import socket
import struct

from ecflow_remote.portowner import proc_hex, read_table

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_REQ = struct.Struct("=BBBBI")  # inet_diag_req_v2: family, protocol, ext, pad, states
_SOCKID_TAIL = struct.Struct("=III")  # interface, cookie (INET_DIAG_NOCOOKIE: both words ~0)
# inet_diag_msg: family, state, timer, retrans (4), sockid (48), expires, rqueue, wqueue (12), then uid, inode.
_MSG_UID_INODE = struct.Struct("=II")
_MSG_UID_OFFSET = _NLMSG_HDR.size + 4 + 48 + 12

Address = tuple[str, int]
_V4_MAPPED = bytes(10) + b"\xff\xff"


def _pack(host: str) -> tuple[int, bytes]:
    if ":" in host:
        return socket.AF_INET6, socket.inet_pton(socket.AF_INET6, host.split("%")[0])
    return socket.AF_INET, socket.inet_pton(socket.AF_INET, host)


def _candidates(peer: Address, local: Address) -> list[tuple[int, bytes, bytes]]:
    """(family, peer address, local address) to look for; a v4-mapped pair may be a plain IPv4 client socket."""
    (family, src), (local_family, dst) = _pack(peer[0]), _pack(local[0])
    if family != local_family:
        return []
    if family == socket.AF_INET6 and src[:12] == _V4_MAPPED and dst[:12] == _V4_MAPPED:
        return [(socket.AF_INET, src[12:], dst[12:]), (family, src, dst)]
    return [(family, src, dst)]


def owner_uid(peer: Address, local: Address) -> int | None:
    """The uid owning the client socket of the TCP connection from `peer` to our `local` end, or None (no such
    socket in this network namespace, or already closed by its owner). Linux only.

    sock_diag first; /proc/net only when sock_diag cannot even find our own end of the connection (no inet_diag in
    this kernel), so a refused client costs two quick requests, never a walk of the whole table.
    """
    candidates = _candidates(peer, local)
    for family, src, dst in candidates:
        found, uid = _diag_lookup(family, src, peer[1], dst, local[1])
        if found:
            return uid
    for family, src, dst in candidates:
        if _diag_lookup(family, dst, local[1], src, peer[1])[0]:
            return None  # sock_diag works (it sees our end): the client's socket is not there
    for family, src, dst in candidates:
        uid = _proc_lookup(family, src, peer[1], dst, local[1])
        if uid is not None:
            return uid
    return None


# --------------------------------------------------------------------------------------------- sock_diag


def _diag_lookup(family: int, src: bytes, sport: int, dst: bytes, dport: int) -> tuple[bool, int | None]:
    """Ask sock_diag for the TCP socket src:sport -> dst:dport: (whether the kernel found it, its owner's uid)."""
    sockid = struct.pack("!HH16s16s", sport, dport, src, dst) + _SOCKID_TAIL.pack(0, 0xFFFFFFFF, 0xFFFFFFFF)
    body = _REQ.pack(family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
    request = _NLMSG_HDR.pack(_NLMSG_HDR.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + body
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
            nl.send(request)
            # The kernel answers within send(): the reply (or an error message) is already queued.
            reply = nl.recv(4096, socket.MSG_DONTWAIT)
    except OSError:
        return False, None
    return parse_diag_reply(reply)


def parse_diag_reply(reply: bytes) -> tuple[bool, int | None]:
    """(found, uid) from a sock_diag answer to one exact request: not found for an error answer (no such socket,
    no inet_diag); uid None for an orphaned socket (inode 0)."""
    if len(reply) < _MSG_UID_OFFSET + _MSG_UID_INODE.size:
        return False, None
    if _NLMSG_HDR.unpack_from(reply)[1] != _SOCK_DIAG_BY_FAMILY:
        return False, None  # NLMSG_ERROR
    uid, inode = _MSG_UID_INODE.unpack_from(reply, _MSG_UID_OFFSET)
    return True, (uid if inode else None)


# ------------------------------------------------------------------------------------------ /proc/net/tcp


def find_in_table(table: bytes, src: bytes, sport: int, dst: bytes, dport: int) -> int | None:
    """The uid of the socket src:sport -> dst:dport in the text of /proc/net/tcp or tcp6; None if absent or
    orphaned (inode 0)."""
    needle = f" {proc_hex(src)}:{sport:04X} {proc_hex(dst)}:{dport:04X} ".encode()
    at = table.find(needle)
    while at >= 0:
        end = table.find(b"\n", at)
        fields = table[at : end if end >= 0 else len(table)].split()
        # local, remote, st, tx:rx, tr:when, retrnsmt, uid, timeout, inode
        if len(fields) >= 9 and fields[6].isdigit() and fields[8].isdigit() and int(fields[8]) != 0:
            return int(fields[6])
        at = table.find(needle, at + 1)
    return None


def _proc_lookup(family: int, src: bytes, sport: int, dst: bytes, dport: int) -> int | None:
    path = "/proc/net/tcp6" if family == socket.AF_INET6 else "/proc/net/tcp"
    try:
        table = read_table(path)
    except OSError:
        return None
    return find_in_table(table, src, sport, dst, dport)
