"""A Centre's namespaces by the kernel's own identity, and the processes left in them, from any mount view (Linux).

`ip netns add` names a network namespace by a bind mount at /run/netns/NAME, and a test session's mount view is
private (isolation.py): from any other view the name is an empty file, `ip netns pids NAME` fails, and a Centre
whose session was killed without its teardown (pytest killed by a timeout) keeps its sshd, ecflow_server and task
processes running for ever. So the Centre records each namespace's inode (the `net:[N]` of /proc/PID/ns/net) and
the session's own mount namespace when it is a private one, and a cleanup finds the processes by those.

Inodes of freed namespaces are given again (the lowest free number first), and other Centres run beside this one:
a network namespace is also checked by its cookie (SO_NETNS_COOKIE, Linux 5.14+: never given twice), and a process
of the recorded mount namespace must still see this Centre's names in its mounts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from centre.isolation import libc

NETNS_RUN_DIR = Path("/run/netns")
SO_NETNS_COOKIE = 71  # asm-generic/socket.h, Linux 5.14
_CLONE_NEWNET = 0x40000000


def parse_link(link: str, kind: str) -> int | None:
    """The inode in a /proc/PID/ns/KIND link (`net:[4026532285]`), else None."""
    prefix = f"{kind}:["
    if not (link.startswith(prefix) and link.endswith("]")):
        return None
    number = link[len(prefix) : -1]
    return int(number) if number.isdigit() else None


def ns_inode(pid: int | str, kind: str) -> int | None:
    """The inode of a process's namespace of `kind` (net, mnt); None when the process is gone."""
    try:
        return parse_link(os.readlink(f"/proc/{pid}/ns/{kind}"), kind)
    except OSError:
        return None


def private_mount_namespace() -> int | None:
    """This process's mount namespace when it made it itself (isolation.py): neither the machine's (PID 1's) nor
    its parent's, which others may share (a shell's own view, where several sessions run)."""
    own = ns_inode("self", "mnt")
    return own if own is not None and own not in (ns_inode(1, "mnt"), ns_inode(os.getppid(), "mnt")) else None


def cookie(ns_file: str | Path) -> int | None:
    """The kernel's never-reused id of the network namespace at `ns_file` (an nsfs file or its bind mount); None
    where it cannot be read (before Linux 5.14). Asked from a thread of its own: entering a network namespace
    (setns) changes the calling thread only, and the thread ends right after."""
    found: list[int] = []

    def probe() -> None:
        try:
            fd = os.open(ns_file, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            if libc().setns(fd, _CLONE_NEWNET) != 0:
                return
        finally:
            os.close(fd)
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            found.append(int.from_bytes(s.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little"))

    thread = threading.Thread(target=probe, name="netns-cookie")
    thread.start()
    thread.join()
    return found[0] if found else None


def identify(names: Iterable[str]) -> dict[str, dict[str, int | None]]:
    """For each network namespace named in this mount view: its inode and cookie (what the state file keeps)."""
    ids: dict[str, dict[str, int | None]] = {}
    for name in names:
        path = NETNS_RUN_DIR / name
        with contextlib.suppress(OSError):
            ids[name] = {"inode": path.stat().st_ino, "cookie": cookie(path)}
    return ids


def sees_names(mountinfo: str, run_id: str) -> bool:
    """Whether a process's mounts (its /proc/PID/mountinfo) include a namespace name of Centre `run_id`."""
    prefix = f"{NETNS_RUN_DIR}/{run_id}-"
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4].startswith(prefix):
            return True
    return False


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _spared() -> set[int]:
    """This process and its ancestors: a cleanup never kills its own caller."""
    spared, pid = set(), os.getpid()
    while pid > 0 and pid not in spared:
        spared.add(pid)
        status = _read(f"/proc/{pid}/status")
        ppid = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "0")
        pid = int(ppid)
    return spared


def leftovers(run_id: str, netns: Mapping[str, Mapping[str, int | None]], session: int | None) -> list[int]:
    """The processes still in Centre `run_id`'s recorded network namespaces (`netns`: identify's record), and with
    `session` those of that mount namespace (the one the Centre was made in, its owner gone) that still see the
    Centre's names (not when it is this process's or the machine's view); never this process or its ancestors."""
    wanted = {inode: i.get("cookie") for i in netns.values() if (inode := i.get("inode")) is not None}
    if session in (ns_inode("self", "mnt"), ns_inode(1, "mnt")):
        session = None
    spared = _spared()
    by_netns: dict[int, list[int]] = {}
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spared:
            continue
        pid = int(entry)
        net = ns_inode(pid, "net")
        if net is not None and net in wanted:
            by_netns.setdefault(net, []).append(pid)
        elif (
            session is not None
            and ns_inode(pid, "mnt") == session
            and sees_names(_read(f"/proc/{pid}/mountinfo"), run_id)
        ):
            found.append(pid)
    for inode, pids in by_netns.items():
        recorded = wanted[inode]
        # The same namespace, not a later one given the freed inode: its cookie, asked through one of its processes.
        if recorded is None or any(cookie(f"/proc/{pid}/ns/net") == recorded for pid in pids[:3]):
            found += pids
    return found
