"""What a process tree costs while it idles, read from /proc (Linux): CPU seconds and wakeups (context switches)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Sample:
    """One look at a process tree."""

    at: float  # time.monotonic()
    cpu: float  # seconds: user + system of every live process, plus what the children they reaped used
    switches: int  # voluntary + involuntary context switches of every thread of every live process
    pids: frozenset[int]
    each: dict[int, tuple[float, int]]  # pid: (cpu, switches)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first); None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def tree(roots: Iterable[int]) -> set[int]:
    """The roots and every live descendant (ssh's ProxyCommand children, the finder, helpers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid for pid in roots if _stat(pid) is not None]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def threads(pid: int) -> dict[int, tuple[float | None, int]]:
    """Per thread of `pid`: its CPU seconds on the nanosecond clock (/proc/…/schedstat; None without it) and its
    context switches (/proc/PID/status alone counts the main thread only)."""
    out: dict[int, tuple[float | None, int]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            lines = (task / "status").read_text().splitlines()
        except OSError:
            continue
        try:
            ns: float | None = int((task / "schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            ns = None
        out[int(task.name)] = (ns, sum(int(line.split()[1]) for line in lines if "ctxt_switches:" in line))
    return out


def sample(roots: Iterable[int]) -> Sample:
    """The tree's CPU time and wakeups so far. Processes started and reaped between two samples count in their
    parent's cutime/cstime (their context switches are lost: /proc keeps no total for reaped children)."""
    pids = tree(roots)
    each: dict[int, tuple[float, int]] = {}
    for pid in pids:
        fields = _stat(pid)
        if fields is None:
            continue
        # utime + stime (clock ticks: 10 ms steps), or the threads' nanosecond clock where the kernel keeps it;
        # plus cutime + cstime: reaped children.
        ticks, reaped = sum(int(f) for f in fields[11:13]) / TICK, sum(int(f) for f in fields[13:15]) / TICK
        tasks = threads(pid)
        precise = [ns for ns, _ in tasks.values()]
        own = sum(ns for ns in precise if ns is not None) if precise and None not in precise else ticks
        each[pid] = (own + reaped, sum(n for _, n in tasks.values()))
    cpu = sum(c for c, _ in each.values())
    return Sample(time.monotonic(), cpu, sum(n for _, n in each.values()), frozenset(each), each)


@dataclass(frozen=True)
class Cost:
    cpu_per_minute: float  # CPU seconds per minute
    wakeups_per_second: float
    seconds: float

    @property
    def cpu_per_hour(self) -> float:
        return self.cpu_per_minute * 60


def between(first: Sample, last: Sample) -> Cost:
    elapsed = last.at - first.at
    return Cost((last.cpu - first.cpu) / elapsed * 60, (last.switches - first.switches) / elapsed, elapsed)


def each_between(first: Sample, last: Sample) -> dict[int, Cost]:
    """Per process alive in both samples: what it cost between them."""
    elapsed = last.at - first.at
    return {
        pid: Cost((cpu - first.each[pid][0]) / elapsed * 60, (n - first.each[pid][1]) / elapsed, elapsed)
        for pid, (cpu, n) in last.each.items()
        if pid in first.each
    }


def name(pid: int) -> str:
    """A process's command line, shortened for a table."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    return " ".join(a for a in argv[:4] if a)[:70]
