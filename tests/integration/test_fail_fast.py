"""`up` stops within seconds on what waiting cannot change (issue 19, item 4): a port nothing listens on at the far
end, a name the far end cannot resolve, a password file missing or unreadable. Each names the server and
the cause, says that nothing is left running and how to go on; none waits out the 30 s timeout, and nothing of the
tunnel is left. A server that is merely silent still gets the whole wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.integration.centres import PASSWORD_BESIDE_PLAIN
from tests.integration.procs import pids_naming, ssh_pids
from tests.integration.profiles import write_profile

from ecflow_remote.errors import TunnelError
from ecflow_remote.tunnel.handle import Tunnel

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "ecflow_remote"]
# The old behaviour took the whole default timeout (30 s); a start, a check and one more question to the far end
# take about 1.5 s here. Generous for a loaded 2-CPU machine, far from 30 s.
FAST = 10.0


def up_fails(profile: Path) -> tuple[str, float]:
    """`up --detach` with the default 30 s timeout: its stderr and how long it took; it must fail, and leave
    nothing running."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [*CLI, "--profile", str(profile), "up", "--detach"], capture_output=True, text=True, timeout=90
    )
    took = time.monotonic() - t0
    tunnel = Tunnel(profile)
    try:
        assert proc.returncode == 1, proc
        assert "Traceback" not in proc.stderr
        assert not tunnel.is_running()
        rundir = tunnel.rundir.path
        assert pids_naming(rundir) == [] and ssh_pids(rundir) == []
    finally:
        tunnel.down()
    return proc.stderr, took


def assert_way_on(message: str) -> None:
    assert "nothing is left running" in message, message
    assert "--allow-unreachable" in message, message
    assert "tunnel up" not in message.lower(), message  # it is not: `up` took it down


def with_server(profile: Path, name: str, host: str, port: int) -> Path:
    with open(profile, "a") as f:
        f.write(f'\n[[server]]\nname = "{name}"\nhost = "{host}"\nport = {port}\n')
    return profile


def test_a_port_nothing_listens_on_fails_up_at_once(centre: Any, profile_for: Any) -> None:
    profile = with_server(profile_for("local"), "maintenance", "machine2", 3999)
    message, took = up_fails(profile)
    assert took < FAST, (took, message)
    assert "maintenance (machine2:3999)" in message, message
    assert "connection refused at machine1" in message and "nothing listens on machine2:3999" in message, message
    assert_way_on(message)


def test_a_name_the_far_end_cannot_resolve_fails_up_at_once(centre: Any, profile_for: Any) -> None:
    profile = with_server(profile_for("hosts"), "ghost", "nosuchhost", 4141)
    message, took = up_fails(profile)
    assert took < FAST, (took, message)
    assert "ghost (nosuchhost:4141)" in message, message
    assert "nosuchhost does not resolve at machine1" in message, message
    assert_way_on(message)


@pytest.mark.parametrize("problem", ["missing", "unreadable"])
def test_a_password_file_not_read_fails_up_at_once(make_centre: Any, tmp_path: Path, problem: str) -> None:
    """(A file others can read is refused with the profile already, before anything starts. The tests run as root,
    whom no mode keeps from reading: a directory in the file's place is what cannot be read here.)"""
    c = make_centre(servers=PASSWORD_BESIDE_PLAIN)
    pwfile = tmp_path / "pw"
    if problem == "unreadable":
        pwfile.mkdir(mode=0o700)
    profile = write_profile(
        c, tmp_path / "p.toml", servers={"machine1": {"custom_user": "bob", "password": f"file:{pwfile}"}}
    )
    message, took = up_fails(profile)
    assert took < FAST, (took, message)
    assert "machine1 (machine1:4141)" in message and f"password (file:{pwfile}) was not read" in message, message
    assert ("does not exist" if problem == "missing" else "is not a regular file") in message, message
    assert_way_on(message)


def test_allowed_unreachable_names_the_cause_and_keeps_the_others(centre: Any, profile_for: Any) -> None:
    """The way on the message names: the tunnel comes up for the others, the dead one named with its cause."""
    profile = with_server(profile_for("local"), "maintenance", "machine2", 3999)
    tunnel = Tunnel(profile)
    try:
        proc = subprocess.run(
            [*CLI, "--profile", str(profile), "up", "--detach", "--allow-unreachable"],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert proc.returncode == 0, proc
        assert "not answering: maintenance (connection refused at machine1" in proc.stderr, proc.stderr
        state = tunnel.state()
        assert state is not None
        assert {c.endpoint.name: c.reachable for c in state.server_checks()} == {
            "machine1": True,
            "machine2": True,
            "maintenance": False,
        }
    finally:
        tunnel.down()


def test_a_silent_server_still_gets_the_whole_wait(centre: Any, profile_for: Any) -> None:
    """A server that takes the connection and never answers may yet answer: `up` waits its timeout for it."""
    from centre.services import in_host

    # At the workstation (machine1): a listener that accepts and never answers.
    code = (
        "import socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('0.0.0.0', 3777)); s.listen(8); print('ready', flush=True)\n"
        "held = []\n"
        "while True: held.append(s.accept())\n"
    )
    argv = in_host(centre.host("machine1"), ["/usr/bin/python3", "-c", code])
    silent = subprocess.Popen(argv, stdout=subprocess.PIPE, start_new_session=True)
    profile = with_server(profile_for("local"), "silent", "machine1", 3777)
    try:
        assert silent.stdout is not None and silent.stdout.readline().startswith(b"ready")
        t0 = time.monotonic()
        proc = subprocess.run(
            [*CLI, "--profile", str(profile), "up", "--detach", "--timeout", "8"],
            capture_output=True,
            text=True,
            timeout=90,
        )
        took = time.monotonic() - t0
        assert proc.returncode == 1 and took >= 8, (took, proc)
        assert "not every server answered a ping within 8 s" in proc.stderr, proc.stderr
        assert "silent (machine1:3777): no answer" in proc.stderr, proc.stderr
        assert_way_on(proc.stderr)
    finally:
        os.killpg(silent.pid, signal.SIGKILL)
        silent.wait()
        Tunnel(profile).down()


def test_through_the_far_side_agent_too(make_centre: Any, profile_for: Any) -> None:
    """Over a home link, with the far-side agent running: the question to the far end goes through the agent (its
    OPEN, waited for, says refused) once the agent has timed the link as slow, else through ssh's master; either
    way `up` fails at once. (The agent's own answer: tests/unit/tunnel/test_causes.py.)"""
    from centre import HomeLink

    c = make_centre(home_link=HomeLink(rtt=0.030, down_mbit=50, up_mbit=10))
    profile = with_server(profile_for("local", c, transport="agent"), "maintenance", "machine2", 3999)
    tunnel = Tunnel(profile)
    t0 = time.monotonic()
    with pytest.raises(TunnelError) as failed:
        tunnel.up()
    took = time.monotonic() - t0
    message = str(failed.value)
    try:
        assert took < FAST, (took, message)
        assert "maintenance (machine2:3999): connection refused at machine1" in message, message
        assert_way_on(message)
        assert not tunnel.is_running() and pids_naming(tunnel.rundir.path) == []
    finally:
        tunnel.down()
