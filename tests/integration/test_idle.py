"""An idle tunnel costs what happens, not a polling tick: the supervisor sleeps between its health rounds, and a
request, the finder's discovery and a leg's death still get their answer at once."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ecflow_remote.endpoints import Wanted
from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.tunnel.rundir import wait_for

pytestmark = pytest.mark.integration

ROUNDS = 2
MAX_WAKEUPS = 1.0  # per second, the supervisor's main thread (its rounds); its 50 ms loop woke about 26 a second
# Every thread: the listeners' loop thread also wakes at each of the system's network changes (the network watch),
# which a test machine running other network namespaces has many of, and a laptop few.
MAX_WAKEUPS_ALL = 3.0


def finder_of(pid: int) -> int:
    """The supervisor's finder process (each health round is followed by a finder's round)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if b"ecflow_remote.tunnel.logfinder" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return int(child)
    raise AssertionError(f"the supervisor {pid} has no finder process")


def read_chars(pid: int) -> int:
    """What a process has read so far (/proc/PID/io): the finder reads only in its rounds."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError(f"no rchar in /proc/{pid}/io")


def wakeups(pid: int, main_only: bool = False) -> tuple[int, int]:
    """Every thread's (or the main thread's) voluntary context switches (each a sleep ended: a wakeup), and all
    its switches (also the times it was preempted while running, which a loaded test machine adds)."""
    voluntary = total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if main_only and task.name != str(pid):
            continue
        with contextlib.suppress(OSError):
            fields = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines() if ":" in line)
            voluntary += int(fields["voluntary_ctxt_switches"])
            total += int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])
    return voluntary, total


def test_an_idle_supervisor_wakes_for_its_rounds_only_and_still_answers_at_once(centre: Any, tmp_path: Path) -> None:
    """Two servers, plain forwards on the LAN, log servers only the suites name (the finder's to find): over whole
    health rounds the supervisor's main thread wakes at most MAX_WAKEUPS times a second on average (all its threads
    MAX_WAKEUPS_ALL); then a request to carry one
    more server is answered within a second, and a killed ssh leg is noticed within a second."""
    path = centre.write_profile(tmp_path / "idle.toml", "local", logservers=(), transport="plain")
    tunnel = Tunnel(path)
    try:
        tunnel.up()
        assert tunnel.wait_found(20)
        assert wait_for(lambda: len(tunnel.plan().logservers()) == 2, 20), tunnel.state()  # the finder found both
        state = tunnel.state()
        assert state is not None
        pid = state.supervisor_pid
        finder = finder_of(pid)

        def next_round(after: int) -> int:
            # A round's end: the finder has read (its request, then the servers' news) and then 0.3 s nothing.
            # (The state file is no sign: a round that changes only latencies does not rewrite it.)
            assert wait_for(lambda: read_chars(finder) != after, 15, 0.02), "no health round in 15 s"
            seen = [read_chars(finder)]
            while wait_for(lambda: read_chars(finder) != seen[-1], 0.3, 0.02):
                seen.append(read_chars(finder))
            return seen[-1]

        stamp = next_round(read_chars(finder))
        t0, first, first_main = time.monotonic(), wakeups(pid), wakeups(pid, main_only=True)
        for _ in range(ROUNDS):
            stamp = next_round(stamp)
        last, last_main, elapsed = wakeups(pid), wakeups(pid, main_only=True), time.monotonic() - t0
        rate, switched = (last[0] - first[0]) / elapsed, (last[1] - first[1]) / elapsed
        main_rate = (last_main[0] - first_main[0]) / elapsed
        said = f"{main_rate:.1f} times a second (main thread), {rate:.1f} all threads ({switched:.1f} switches)"
        assert main_rate <= MAX_WAKEUPS and rate <= MAX_WAKEUPS_ALL, f"the idle supervisor woke {said}"

        t0 = time.monotonic()
        plan = tunnel.carry([Wanted("server", "spare", "machine2", 4999)], timeout=10)
        assert any(e.name == "spare" for e in plan.servers()), plan
        assert time.monotonic() - t0 < 1.0  # answered as it came, not at the next round

        main = tunnel.state()
        assert main is not None and main.pid is not None
        os.kill(main.pid, signal.SIGKILL)
        t0 = time.monotonic()
        assert wait_for(lambda: (s := tunnel.state()) is not None and s.state != "up", 5, 0.01)
        assert time.monotonic() - t0 < 1.0  # SIGCHLD woke it: no tick, no health round waited for
        assert wait_for(lambda: (s := tunnel.state()) is not None and s.state == "up", 30), tunnel.state()
    finally:
        tunnel.down()
