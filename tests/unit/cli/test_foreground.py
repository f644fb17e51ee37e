"""A foreground `up`'s signals (cli/foreground.py), in a process of their own: a hang-up or TERM ends it as Ctrl-C
does, at once, later ones do not cut short the tunnel's going down, and a signal ignored from the start (nohup)
stays ignored."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

# Stands for `up`: waits inside owning(), then, once ended, "takes the tunnel down" while it sends itself the other
# signals (a terminal's TERM after its hang-up), and reports into a file (a hang-up sets stdout aside).
PROGRAM = r"""
import os, signal, sys, time
from ecflow_remote.cli import foreground
out = open(sys.argv[1], "w")
if sys.argv[2] == "nohup":
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
with foreground.owning() as owner:
    try:
        print("ready", flush=True)
        started = time.monotonic()
        owner.sleep(30)
        out.write("slept\n")
    except foreground.Ended as e:
        out.write(f"noticed within {time.monotonic() - started:.1f} s, stdout={os.path.realpath('/proc/self/fd/1')}\n")
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            os.kill(os.getpid(), sig)
        time.sleep(0.2)
        out.write(f"ended {e.signum} {e.exit_code}\n")
out.write(f"after {signal.getsignal(signal.SIGHUP)!r}\n")
out.close()
"""


def _run(tmp_path: Path, mode: str, *signals: int) -> list[str]:
    report = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, str(report), mode], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for sig in signals:
            proc.send_signal(sig)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return report.read_text().splitlines()


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGHUP, 129), (signal.SIGTERM, 143), (signal.SIGINT, 0)], ids=["HUP", "TERM", "INT"]
)
def test_each_ending_signal_ends_it_once(tmp_path: Path, sig: int, code: int) -> None:
    noticed, *lines = _run(tmp_path, "plain", sig)
    assert float(noticed.split()[2]) < 5, noticed  # not at the 30 s sleep's end (a loaded machine may lag)
    # The signals it sent itself while "going down" did not cut that short: it ended by the first one.
    assert lines[0] == f"ended {sig} {code}", lines
    # A hang-up: the terminal is gone, so what is still written goes to /dev/null instead of failing.
    assert noticed.endswith("stdout=/dev/null") == (sig == signal.SIGHUP), noticed
    assert lines[1] == "after <Handlers.SIG_DFL: 0>"  # Python's own handling again once `up` returns


def test_a_hang_up_ignored_from_the_start_stays_ignored(tmp_path: Path) -> None:
    """`nohup ecflow-remote up`: the user asked for the tunnel to outlive the terminal; TERM still ends it."""
    noticed, *lines = _run(tmp_path, "nohup", signal.SIGHUP, signal.SIGTERM)
    assert not noticed.endswith("stdout=/dev/null"), noticed  # the hang-up reached nothing
    assert lines[0] == "ended 15 143", lines
    assert lines[1] == "after <Handlers.SIG_IGN: 1>"
