"""The tunnel engine against the simulated Centre: every method, every server and log server, CLI and API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.integration.centres import assert_ping_reaches
from tests.integration.procs import pids_naming

from ecflow_remote.tunnel.rundir import wait_for

CLI = [sys.executable, "-m", "ecflow_remote"]
METHODS = ["local", "socks", "hosts"]


def cli(profile: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, "--profile", str(profile), *args], capture_output=True, text=True, timeout=90)
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.parametrize("method", METHODS)
def test_up_status_run_down(centre: Any, profile_for: Any, method: str) -> None:
    from ecflow_remote.tunnel.handle import Tunnel

    profile = profile_for(method)
    up = cli(profile, "up", "--detach")
    assert "Tunnel up" in up.stdout and method in up.stdout
    tunnel = Tunnel(profile)
    rundir = tunnel.rundir.path
    try:
        report = json.loads(cli(profile, "status", "--json").stdout)
        assert report["tunnel"]["state"] == "up" and report["tunnel"]["method"] == method
        assert isinstance(report["tunnel"]["pid"], int)
        assert {s["name"] for s in report["servers"]} == {"machine1", "machine2"}
        assert all(s["reachable"] and s["version"] == "5.9.2" for s in report["servers"]), report
        assert {lg["host"] for lg in report["logservers"]} == {"logserver1", "logserver2"}
        assert all(lg["reachable"] for lg in report["logservers"]), report
        for key in ("host", "port", "local_host", "local_port", "reachable"):
            assert all(key in row for row in report["servers"] + report["logservers"])
        for name in ("machine1", "machine2"):
            ping = cli(profile, "run", "--server", name, "--", "ecflow_client", "--ping")
            assert "succeeded" in ping.stdout
        if method in ("socks", "hosts"):
            # The Centre's own names and ports, as at the Centre.
            ping = cli(profile, "run", "--", "ecflow_client", "--host", "machine1", "--port", "4141", "--ping")
            assert "ping server(machine1:4141) succeeded" in ping.stdout
            code = "import ecflow; c = ecflow.Client('machine2', 3142); c.ping(); print('ok', c.server_version())"
            out = cli(profile, "run", "--", "/usr/bin/python3", "-c", code).stdout
            assert out.strip() == "ok 5.9.2"
    finally:
        down = cli(profile, "down")
    assert "Tunnel down" in down.stdout
    assert pids_naming(rundir) == []
    assert not (rundir / "state.json").exists()
    stopped = cli(profile, "status", "--json", check=False)
    assert stopped.returncode == 3  # not up, for scripts (0 while up: cli() checks it above)
    assert json.loads(stopped.stdout)["tunnel"]["state"] == "down"
    assert not rundir.exists()  # down removed everything, and asking for status made nothing


GET_BY_NAME = """
import socket, sys
s = socket.create_connection((sys.argv[1], 9316), timeout=10)
s.sendall(("get " + sys.argv[2] + "\\n").encode())
data = b"".join(iter(lambda: s.recv(65536), b""))
sys.stdout.buffer.write(data)
"""


@pytest.mark.parametrize("method", ["socks", "hosts"])
def test_job_output_from_both_log_servers_by_name(centre: Any, tunnel_up: Any, method: str) -> None:
    """Several log servers on the same port, each by its own Centre name: the how-to cannot do this."""
    tunnel = tunnel_up(method)
    for spec in centre.servers:
        path = centre.jobout(spec)
        proc = subprocess.run(
            [
                *CLI,
                "--profile",
                str(tunnel.profile.path),
                "run",
                "--",
                "/usr/bin/python3",
                "-c",
                GET_BY_NAME,
                spec.logserver,
                str(path),
            ],
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == path.read_bytes()


def test_job_output_from_both_log_servers_local(centre: Any, tunnel_up: Any) -> None:
    from ecflow_remote.clients.logserver import LogServerClient

    tunnel = tunnel_up("local")
    ports = set()
    for spec in centre.servers:
        e = next(e for e in tunnel.plan().logservers() if e.host == spec.logserver)
        ports.add(e.local_port)
        data = LogServerClient(e.local_host, e.local_port).get(str(centre.jobout(spec)))
        assert data == centre.jobout(spec).read_bytes()
    assert len(ports) == 2  # one kept 9316, the other was moved and reported


def test_python_api_context_manager(centre: Any, profile_for: Any) -> None:
    from ecflow_remote import EcflowClient, open_tunnel

    with open_tunnel(profile_for("hosts")) as tunnel:
        host, port = tunnel.endpoint("machine2")
        assert EcflowClient(host, port).server_version() == "5.9.2"
        rundir = tunnel.rundir.path
    assert pids_naming(rundir) == []


def test_kill_9_of_ssh_recovers(centre: Any, tunnel_up: Any) -> None:
    from ecflow_remote.clients.ecflow import EcflowClient

    tunnel = tunnel_up("local")
    before = tunnel.state()
    assert before is not None
    assert before is not None and before.pid is not None
    os.kill(before.pid, signal.SIGKILL)
    assert wait_for(
        lambda: (now := tunnel.state()) is not None and now.pid not in (None, before.pid) and now.state == "up",
        15,
    )
    host, port = tunnel.endpoint("machine1")
    assert_ping_reaches(centre, centre.server("machine1"), EcflowClient(host, port, user="after-kill-9"))
    assert tunnel.state().reconnects >= 1  # type: ignore[union-attr]


def test_second_up_reports_the_first(centre: Any, tunnel_up: Any) -> None:
    tunnel = tunnel_up("local")
    pid = str(tunnel.state().pid)  # type: ignore[union-attr]
    # The same tunnel again (a login script calling `up --detach` each time): it is there, so that is success.
    again = cli(tunnel.profile.path, "up", "--detach", check=False)
    assert again.returncode == 0 and again.stdout.startswith("Already up.") and pid in again.stdout, again
    # Another method for the same profile: not while this one runs.
    other = cli(tunnel.profile.path, "up", "--detach", "--method", "hosts", check=False)
    assert other.returncode == 1
    assert "already running" in other.stderr and pid in other.stderr
    assert tunnel.state().pid == int(pid)  # type: ignore[union-attr]


def test_failed_up_leaves_nothing(make_centre: Any, profile_for: Any) -> None:
    c = make_centre(certificate_validity="+1s")
    time.sleep(1.5)
    profile = profile_for("local", c)
    proc = cli(profile, "up", "--detach", check=False)
    assert proc.returncode == 1
    assert "certificate" in proc.stderr and "Traceback" not in proc.stderr
    from ecflow_remote.tunnel.handle import Tunnel

    rundir = Tunnel(profile).rundir.path
    assert pids_naming(rundir) == []
    assert not Tunnel(profile).is_running()


def test_foreground_up_until_ctrl_c(centre: Any, profile_for: Any) -> None:
    from ecflow_remote.tunnel.handle import Tunnel

    profile = profile_for("local")
    tunnel = Tunnel(profile)
    proc = subprocess.Popen(
        [*CLI, "--profile", str(profile), "up"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once every server answered
        assert first.startswith("Tunnel up"), first
        assert tunnel.is_running()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        out = first + out
    finally:
        if proc.poll() is None:
            proc.kill()
            tunnel.down()
    assert "Tunnel up" in out and "Tunnel down" in out, err
    assert not tunnel.is_running()
    assert pids_naming(tunnel.rundir.path) == []


def test_jump_without_sessions_still_tunnels(make_centre: Any, profile_for: Any) -> None:
    """A hop that refuses sessions (a Teleport proxy does): the tunnel comes up without a pty session there."""
    from ecflow_remote.clients.ecflow import EcflowClient
    from ecflow_remote.tunnel.handle import Tunnel

    c = make_centre(jump_sessions=False)
    tunnel = Tunnel(profile_for("local", c))
    try:
        tunnel.up()
        # Whether the refusal shows as an ended master or as a master without a pty, the tunnel must come up
        # and stay up: no reconnect loop.
        reconnects = tunnel.state().reconnects  # type: ignore[union-attr]
        time.sleep(2)
        state = tunnel.state()
        assert state is not None and state.state == "up" and state.reconnects <= reconnects + 1, state
        host, port = tunnel.endpoint("machine1")
        assert EcflowClient(host, port).server_version() == "5.9.2"
    finally:
        tunnel.down()


def test_a_dead_server_fails_up_by_name_unless_allowed(centre: Any, profile_for: Any) -> None:
    from ecflow_remote.tunnel.handle import Tunnel

    profile = profile_for("local")
    with open(profile, "a") as f:  # a server in maintenance: nothing listens on that port
        f.write('\n[[server]]\nname = "maintenance"\nhost = "machine2"\nport = 3999\n')
    failed = cli(profile, "up", "--detach", "--timeout", "6", check=False)
    assert failed.returncode == 1
    assert "maintenance (machine2:3999)" in failed.stderr and "Traceback" not in failed.stderr
    assert not Tunnel(profile).is_running() and pids_naming(Tunnel(profile).rundir.path) == []
    try:
        up = cli(profile, "up", "--detach", "--allow-unreachable")
        assert "not answering: maintenance" in up.stderr
        report = json.loads(cli(profile, "status", "--json").stdout)
        reachable = {s["name"]: s["reachable"] for s in report["servers"]}
        assert reachable == {"machine1": True, "machine2": True, "maintenance": False}
    finally:
        cli(profile, "down")
