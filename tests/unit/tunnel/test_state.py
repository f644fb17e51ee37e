"""The typed state between the supervisor and its callers survives state.json unchanged."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.tunnel.rundir import RunDir
from ecflow_remote.tunnel.state import Check, RunFiles, TunnelState

SERVER = Endpoint("server", "machine1", "machine1", 4141, "127.77.3.1", 4141, relay_user="user1")
LOGSERVER = Endpoint("logserver", "logserver1:9316", "logserver1", 9316, "127.0.0.1", 9050, forwarded=False)


def _state() -> TunnelState:
    return TunnelState(
        "up",
        "socks",
        "/home/u/profile.toml",
        1234,
        "tunnel up",
        pid=1240,
        pgids=[1239, 1240],
        started=1.5,
        since=2.5,
        reconnects=3,
        checks=[Check(SERVER, True, 0.8, "5.9.2"), Check(LOGSERVER, False, error="no answer (timed out)")],
        plan=Plan("socks", [SERVER, LOGSERVER], 9050, {"machine1": "127.77.3.1"}, proxy_auth=("u", "secret")),
        files=RunFiles(hosts="/run/x/hosts", proxychains="/run/x/proxychains.conf"),
        sessions={"jump": True, "main": False},
        certificate={"valid_until": 99.0, "seconds_left": 10.0, "source": "agent"},
        warnings=["server b: the password variable $PW is empty"],
    )


def test_round_trip_through_json(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path)
    state = _state()
    rundir.write_state(state)
    back = rundir.read_state()
    assert back is not None
    # The SOCKS password never reaches state.json: it comes back from its own 0600 file.
    assert back.plan is not None and back.plan.proxy_auth is None
    assert "secret" not in rundir.state_file.read_text()
    state.plan.proxy_auth = None  # type: ignore[union-attr]
    assert back == state
    assert (rundir.state_file.stat().st_mode & 0o777) == 0o600


def test_checks_and_servers_ok() -> None:
    state = _state()
    assert [c.endpoint.name for c in state.server_checks()] == ["machine1"]
    assert state.all_servers_ok()
    state = replace(state, checks=[Check(SERVER, False, error="refused")])
    assert not state.all_servers_ok()
    state = replace(state, checks=[])
    assert not state.all_servers_ok()  # no check yet is not "every server answers"


def test_a_file_that_is_not_a_state_reads_as_none(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path)
    assert rundir.read_state() is None
    rundir.state_file.write_text(json.dumps({"state": "up"}))  # another version's, or half a file
    assert rundir.read_state() is None
    rundir.state_file.write_text("{not json")
    assert rundir.read_state() is None


def test_run_files_merge_and_ignore_unknown_keys() -> None:
    files = RunFiles(hosts="/a").merged(RunFiles(system_hosts="/etc/hosts"))
    assert files == RunFiles(hosts="/a", system_hosts="/etc/hosts")
    assert RunFiles.from_json({"hosts": "/a", "future_file": "/b", "resolv": None}) == RunFiles(hosts="/a")
