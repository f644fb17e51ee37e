"""What the supervisor learns about each hop's pty session, with legs that ran a real short process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ecflow_remote.tunnel.sessions import PROOF, Sessions
from ecflow_remote.tunnel.sshleg import Leg


def _ended(tmp_path: Path, name: str, code: int, log: str) -> Leg:
    """A leg whose process ended with `code`, having logged `log`."""
    leg = Leg(name, [sys.executable, "-c", f"raise SystemExit({code})"], log=tmp_path / f"ssh-{name}.log")
    leg.log.write_text(log)  # type: ignore[union-attr]
    leg.proc = subprocess.Popen(leg.argv)
    leg.proc.wait()
    return leg


def test_a_hop_that_ends_its_session_goes_without_one_next_time(tmp_path: Path) -> None:
    sessions = Sessions()
    failure = sessions.failure(_ended(tmp_path, "jump", 1, "PTY allocation request failed\n"))
    assert "gives no interactive session" in failure.message and not failure.refused
    assert sessions.wanted == {"jump": False, "main": True}


def test_a_proven_hop_keeps_its_session_and_the_failure_is_ssh_s(tmp_path: Path) -> None:
    sessions = Sessions()
    leg = Leg("main", [], started=100.0)
    assert sessions.prove([leg], now=100.0 + PROOF / 2) == [100.0 + PROOF + 0.01]  # not yet: when it will be
    assert sessions.prove([leg], now=100.0 + PROOF + 1) == [] and sessions.proven == {"main"}
    failure = sessions.failure(_ended(tmp_path, "main", 1, "session closed\n"))
    assert failure.message.startswith("main leg: ") and "interactive session" not in failure.message
    assert sessions.wanted["main"]


def test_a_refusal_is_not_taken_for_a_hop_without_sessions(tmp_path: Path) -> None:
    sessions = Sessions()
    failure = sessions.failure(_ended(tmp_path, "main", 255, "user@gw: Permission denied (publickey).\n"))
    assert failure.refused and sessions.wanted["main"]
