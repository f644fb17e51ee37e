"""Which process a pid is now (executable, owner, group, start time), and who holds a lock, asked without side
effects: a recorded pid is only killed when all of these still say it is the process that was recorded."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    """What identifies a running process: `start` is unique per boot for one pid (clock ticks since boot from
    /proc/PID/stat field 22, or `ps -o lstart` where there is no /proc)."""

    pid: int
    exe: str  # the executable's file name ("ssh"), not its command line, which any process can choose
    uid: int
    pgid: int
    start: str


def process_info(pid: int) -> ProcessInfo | None:
    """The process with this pid now, or None when there is none (or it cannot be inspected: not ours)."""
    if PROC.is_dir():
        return _from_proc(pid)
    return _from_ps(pid)


def _from_proc(pid: int) -> ProcessInfo | None:
    base = PROC / str(pid)
    try:
        stat_text = (base / "stat").read_text()
        uid = os.stat(base).st_uid
        exe = os.readlink(base / "exe")
    except OSError:
        return None  # gone, or another account's (its exe link is not readable)
    # The command name (field 2) may hold spaces and parentheses: the fields that follow start after the last ')'.
    fields = stat_text[stat_text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): pgrp is field 5, starttime field 22.
    return ProcessInfo(pid, _exe_name(exe), uid, int(fields[2]), fields[19])


def _exe_name(exe: str) -> str:
    # An executable replaced since it started (a package upgrade) reads as "/usr/bin/ssh (deleted)".
    return os.path.basename(exe.removesuffix(" (deleted)"))


def _from_ps(pid: int) -> ProcessInfo | None:
    try:
        out = subprocess.run(
            ["ps", "-o", "uid=,pgid=,lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=10
        ).stdout.split()
        comm = subprocess.run(["ps", "-o", "comm=", "-p", str(pid)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if len(out) < 3 or not comm.stdout.strip():
        return None
    return ProcessInfo(pid, _exe_name(comm.stdout.strip()), int(out[0]), int(out[1]), " ".join(out[2:]))


def flock_holders(path: Path) -> list[int] | None:
    """Pids holding a flock() on `path`, read from /proc/locks (taking or testing the lock would take it for a
    moment, and a supervisor starting in that moment would think another one runs); None without /proc/locks."""
    try:
        st = os.stat(path)
        lines = (PROC / "locks").read_text().splitlines()
    except FileNotFoundError:
        return [] if (PROC / "locks").exists() else None
    except OSError:
        return None
    holders = []
    for line in lines:
        # `1: FLOCK  ADVISORY  WRITE 12554 fe:00:2157994 0 EOF`; waiters are marked `->` and hold nothing.
        parts = line.split()
        if len(parts) < 6 or parts[1] != "FLOCK":
            continue
        device, _, inode = parts[5].rpartition(":")
        if inode != str(st.st_ino):
            continue
        pid = int(parts[4])
        if device == f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}" or _has_open(pid, path):
            holders.append(pid)
    return holders


def _has_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (a file system that shows another device in /proc/locks)."""
    try:
        return any(os.readlink(fd) == str(path) for fd in (PROC / str(pid) / "fd").iterdir())
    except OSError:
        return False
