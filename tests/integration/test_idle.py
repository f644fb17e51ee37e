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

from ecflow_remote.tunnel.found import Wanted
from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.tunnel.rundir import wait_for

pytestmark = pytest.mark.integration

ROUNDS = 2
MAX_WAKEUPS = 3.0  # per second, every thread of the supervisor; its 50 ms loop woke about 26 times a second


def wakeups(pid: int) -> tuple[int, int]:
    """Every thread's voluntary context switches (each a sleep ended: a wakeup), and all its switches (also the
    times it was preempted while running, which a loaded test machine adds)."""
    voluntary = total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines() if ":" in line)
            voluntary += int(fields["voluntary_ctxt_switches"])
            total += int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])
    return voluntary, total


def test_an_idle_supervisor_wakes_for_its_rounds_only_and_still_answers_at_once(centre: Any, tmp_path: Path) -> None:
    """Two servers, plain forwards on the LAN, log servers only the suites name (the finder's to find): over whole
    health rounds the supervisor wakes at most MAX_WAKEUPS times a second on average; then a request to carry one
    more server is answered within a second, and a killed ssh leg is noticed within a second."""
    path = centre.write_profile(tmp_path / "idle.toml", "local", logservers=(), transport="plain")
    tunnel = Tunnel(path)
    try:
        tunnel.up()
        assert tunnel.wait_found(20)
        assert wait_for(lambda: len(tunnel.plan().logservers()) == 2, 20), tunnel.state()  # the finder found both
        state = tunnel.state()
        assert state is not None
        pid, state_file = state.supervisor_pid, tunnel.rundir.state_file

        def next_round(after: int) -> int:  # a health round rewrites the state file
            assert wait_for(lambda: state_file.stat().st_mtime_ns != after, 15, 0.02), "no health round in 15 s"
            return state_file.stat().st_mtime_ns

        stamp = next_round(state_file.stat().st_mtime_ns)
        t0, first = time.monotonic(), wakeups(pid)
        for _ in range(ROUNDS):
            stamp = next_round(stamp)
        last, elapsed = wakeups(pid), time.monotonic() - t0
        rate, switched = (last[0] - first[0]) / elapsed, (last[1] - first[1]) / elapsed
        assert rate <= MAX_WAKEUPS, f"the idle supervisor woke {rate:.1f} times a second ({switched:.1f} switches)"

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
