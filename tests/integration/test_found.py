"""Endpoints that join a running tunnel, against the simulated Centre: log servers that only the suites name (the
profile names none), and ecFlow servers that only a system server list on the workstation names."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from centre.howto import free_port
from tests.integration.centres import settled
from tests.integration.procs import cmdline
from tests.integration.test_ui_home import one_server_profile, workstation_lists, write_lists

from ecflow_remote import output
from ecflow_remote.clients.connect import accepts
from ecflow_remote.clients.ecflow import EcflowClient
from ecflow_remote.tunnel import forwards
from ecflow_remote.tunnel.handle import Tunnel
from ecflow_remote.tunnel.rundir import wait_for

pytestmark = pytest.mark.integration
__all__ = ["workstation_lists"]  # the fixture, shared with test_ui_home

CLI = str(Path(sys.executable).parent / "ecflow-remote")


def cli(profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "COLUMNS": "160"}  # the status table on one line per row
    result = subprocess.run([CLI, "--profile", str(profile), *args], capture_output=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def found_logservers(tunnel: Tunnel, count: int) -> bool:
    return len([e for e in tunnel.plan().logservers() if e.origin == "found"]) >= count


@pytest.mark.parametrize("method", ["local", "hosts", "socks"])
def test_log_servers_only_the_suites_name_are_found_shown_and_used(method: str, centre: Any, tmp_path: Path) -> None:
    """A profile without [[logserver]]: after `up` the supervisor asks each server's definition, adds both log
    servers (ECF_LOGHOST/ECF_LOGPORT of lab and ops), status shows them as found with the suite using each,
    `output` reads the job output through them, and the API's logserver_client finds them."""
    extra = {"socks_port": free_port()} if method == "socks" else {}
    path = centre.write_profile(tmp_path / f"found-{method}.toml", method, logservers=(), **extra)
    assert "[[logserver]]" not in path.read_text()
    tunnel = Tunnel(path)
    try:
        tunnel.up()
        assert tunnel.wait_found(20)  # the first look, right after up, found both
        assert found_logservers(tunnel, 2), tunnel.state()
        report = json.loads(cli(path, "status", "--json").stdout)
        rows = {row["host"]: row for row in report["logservers"]}
        assert set(rows) == {"logserver1", "logserver2"}, report
        for spec in centre.servers:
            row = rows[spec.logserver]
            assert row["origin"] == "found" and row["used_by"] == [f"{spec.host} /{spec.suite}"], row
            assert row["reachable"] is True and row["version"], row
            assert ("via" in row) == (method == "socks")
        assert all(row["origin"] == "profile" for row in report["servers"])
        if method != "socks":
            # Beside the agent, ssh's own channel to each (taken on a fast link), added through main.sock.
            joined = [e for e in tunnel.plan().logservers() if e.origin == "found"]
            assert all(accepts(p) for p in forwards.sockets_for(tunnel.rundir.path, joined).values())
        table = cli(path, "status").stdout.decode()
        assert "found: machine1 /lab" in table and "found: machine2 /ops" in table, table

        for spec in centre.servers:
            node = f"/{spec.suite}/f1/hello"
            source = asyncio.run(output.locate(tunnel, spec.host, node))
            assert source.via_logserver and source.endpoint is not None and source.endpoint.origin == "found"
            got = cli(path, "output", spec.host, node).stdout
            assert got == centre.jobout(spec).read_bytes()
        # The API: a Tunnel made before the log servers were found finds them (its plan is read again).
        assert tunnel.logserver_client_sync("logserver2", 9316).version()

        if method == "hosts":
            # Programs launched from now on see the found names in their hosts view, on their own ports.
            e = next(e for e in tunnel.plan().logservers() if e.host == "logserver2")
            assert e.local_port == 9316 and e.local_host.startswith("127.77.")
            seen = cli(path, "run", "--", "getent", "hosts", "logserver2").stdout.decode()
            assert seen.split() == [e.local_host, "logserver2"]
    finally:
        tunnel.down()


def test_plain_forwards_grow_through_the_main_legs_control_socket(centre: Any, tmp_path: Path) -> None:
    """Plain OpenSSH forwards, no agent: the found log servers are forwarded through the main leg's ControlMaster
    (`ssh -O forward`) while it runs, status shows them reachable, `output` reads through them, and a reconnect
    (the main leg killed) starts ssh with their forwards on its command line."""
    path = centre.write_profile(tmp_path / "plain.toml", "local", logservers=(), transport="plain")
    tunnel = Tunnel(path)
    try:
        tunnel.up()
        assert tunnel.wait_found(20) and found_logservers(tunnel, 2), tunnel.state()
        state = tunnel.state()
        assert state is not None and state.transport == "plain" and state.found_note is None, state
        main = cmdline(state.pid or 0)
        assert "-M" in main and not any("logserver" in a for a in main), main  # not there at start: added since
        control = tunnel.rundir.path / "main.sock"
        assert stat.S_ISSOCK(control.stat().st_mode) and stat.S_IMODE(control.stat().st_mode) & 0o077 == 0
        report = json.loads(cli(path, "status", "--json").stdout)
        assert report["tunnel"]["found_note"] is None and report["tunnel"]["transport"] == "plain"
        rows = {row["host"]: row for row in report["logservers"]}
        assert set(rows) == {"logserver1", "logserver2"}, report
        assert all(row["origin"] == "found" and row["reachable"] is True and row["version"] for row in rows.values())
        spec = centre.server("machine1")
        source = asyncio.run(output.locate(tunnel, "machine1", "/lab/f1/hello"))
        assert source.via_logserver and source.endpoint is not None and source.endpoint.origin == "found"
        assert cli(path, "output", "machine1", "/lab/f1/hello").stdout == centre.jobout(spec).read_bytes()
        log = centre.logserver_log(next(lg for lg in centre.logservers if lg.host == spec.logserver)).read_text()
        assert f"getf {centre.jobout(spec)}" in log, log

        os.kill(main_pid := state.pid or 0, signal.SIGKILL)
        assert wait_for(lambda: _up_again(tunnel, main_pid), 30), tunnel.state()
        again = tunnel.state()
        assert again is not None and again.transport == "plain"
        assert any(a.endswith(":logserver2:9316") for a in cmdline(again.pid or 0))
        assert tunnel.logserver_client_sync("logserver2", 9316).version()
    finally:
        tunnel.down()


def _up_again(tunnel: Tunnel, before: int) -> bool:
    state = tunnel.state()
    return state is not None and state.state == "up" and state.pid not in (None, before)


@pytest.mark.parametrize(("method", "transport"), [("local", "agent"), ("hosts", "agent"), ("hosts", "plain")])
def test_system_list_servers_join_the_running_tunnel(
    method: str, transport: str, centre: Any, workstation_lists: Path, tmp_path: Path
) -> None:
    """One server in the profile, three in a system list on the workstation: `ui`'s reading of the lists asks the
    supervisor to carry the two others, the rewritten list points at their new endpoints, the one that exists
    answers there, and status shows them apart, with the list naming them. The same with plain forwards: ssh's
    forward is added through the main leg's control socket."""
    from ecflow_remote.ui.start import carry_through
    from ecflow_remote.ui.systemlists import system_lists

    main, more = write_lists(centre, workstation_lists)
    path = one_server_profile(centre, tmp_path / "p.toml", method, f'[ui]\nsystem_servers = ["{main}"]')
    path.write_text(path.read_text().replace(f'method = "{method}"', f'method = "{method}"\ntransport = "{transport}"'))
    tunnel = Tunnel(path)
    try:
        tunnel.up()
        state = settled(tunnel)
        assert state is not None and state.transport == transport
        # The first round of log-server finding is over (machine1's suite names logserver1): the plan holds still.
        assert wait_for(lambda: tunnel.plan().logservers()[0].used_by == ("machine1 /lab",), 20)
        lists = system_lists(tunnel.profile, tunnel.plan(), tunnel.rundir.path, carry_through(tunnel))
        assert lists.error is None and lists.unreachable == (), lists
        plan = tunnel.plan()
        m2 = centre.server("machine2")
        sys_m2 = next(e for e in plan.servers() if e.name == "sys-m2")
        assert (sys_m2.host, sys_m2.port, sys_m2.origin) == (m2.host, m2.port, "system")
        assert sys_m2.used_by == (str(main), str(more))
        rows = {s.name: (s.host, s.port) for s in lists.servers}
        if method == "local":
            assert rows["sys-m2"] == ("localhost", sys_m2.local_port)
        else:
            assert rows["sys-m2"] == (m2.host, m2.port) and sys_m2.local_port == m2.port
            # A program launched now reaches it by the Centre's name (the hosts view has the new name).
            ping = cli(path, "run", "--", "ecflow_client", "--host", m2.host, "--port", str(m2.port), "--ping")
            assert b"ping server(" in ping.stdout + ping.stderr
        assert EcflowClient(sys_m2.local_host, sys_m2.local_port).ping() > 0
        report = json.loads(cli(path, "status", "--json").stdout)
        servers = {row["name"]: row for row in report["servers"]}
        assert servers["machine1"]["origin"] == "profile"
        assert servers["sys-m2"]["origin"] == "system" and servers["sys-m2"]["reachable"] is True
        assert servers["sys-far"]["origin"] == "system" and servers["sys-far"]["reachable"] is False
        # Asked again (a second `ui`): nothing new to carry, the same endpoints.
        again = system_lists(tunnel.profile, tunnel.plan(), tunnel.rundir.path, carry_through(tunnel))
        assert again.servers == lists.servers and tunnel.plan() == plan
    finally:
        tunnel.down()


def test_output_asks_for_a_log_server_named_since_the_last_look(make_centre: Any, tmp_path: Path) -> None:
    """A suite that starts naming another log server while the tunnel runs: `output` has the supervisor carry it at
    once (a request, not the next round), and reads through it; the API's carry() does the same for any log
    server, even one no suite names."""
    from centre.centre import DEFAULT_LOGSERVERS, LogServerSpec

    from ecflow_remote.endpoints import Wanted

    centre = make_centre(logservers=(*DEFAULT_LOGSERVERS, LogServerSpec("logserver3")))
    spec = centre.server("machine1")
    path = one_server_profile(centre, tmp_path / "p.toml", "local")
    tunnel = Tunnel(path)
    try:
        tunnel.up()
        assert wait_for(lambda: tunnel.plan().logservers()[0].used_by == ("machine1 /lab",), 20)
        # machine2 is not in the profile: nothing names logserver2 to the supervisor, only this request.
        plan = tunnel.carry([Wanted("logserver", "logserver2:9316", "logserver2", 9316, ("asked",))])
        e = next(e for e in plan.logservers() if e.host == "logserver2")
        assert (e.origin, e.used_by) == ("found", ("asked",))
        assert tunnel.logserver_client_sync("logserver2").version()

        # /lab/f1 now names a log server that no suite named before (every log server serves the same outputs).
        alter = ["--alter", "add", "variable", "ECF_LOGHOST", "logserver3", "/lab/f1"]
        centre.ecflow_client(spec.host, spec.port, alter)
        source = asyncio.run(output.locate(tunnel, "machine1", "/lab/f1/hello"))
        assert source.logserver == ("logserver3", 9316)
        assert source.endpoint is not None and source.endpoint.origin == "found"
        assert cli(path, "output", "machine1", "/lab/f1/hello").stdout == centre.jobout(spec).read_bytes()
        assert f"getf {centre.jobout(spec)}" in centre.logserver_log(LogServerSpec("logserver3")).read_text()
    finally:
        tunnel.down()
