"""The pure-Python ecFlow and log-server clients against the simulated Centre, through the how-to's raw tunnels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ecflow_remote.clients.ecflow import Defs, EcflowClient
from ecflow_remote.clients.logserver import LogServerClient
from ecflow_remote.errors import ConnectError, LogFileUnavailable, ServerError

pytestmark = pytest.mark.integration

# Runs inside the Centre with python3-ecflow: the reference view of each server's tree.
REFERENCE = """
import ecflow, json
c = ecflow.Client({host!r}, {port})
c.sync_local()
d = c.get_defs()
print(json.dumps([
    dict(path=n.get_abs_node_path(), state=str(n.get_state()), suspended=n.is_suspended(),
         variables={{v.name(): v.value() for v in n.variables}})
    for n in d.get_all_nodes()
] + [dict(path="", variables={{v.name(): v.value() for v in d.user_variables}})]))
"""


def reference_view(centre: Any, server: Any) -> list[dict[str, Any]]:
    out = centre.python_in(server.host, REFERENCE.format(host=server.host, port=server.port))
    view: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])
    return view


def native_view(defs: Defs) -> list[dict[str, Any]]:
    view: list[dict[str, Any]] = [
        dict(path=n.path, state=n.state, suspended=n.suspended, variables=n.variables)
        for n in defs
        if n.kind != "alias"
    ]
    return [*view, dict(path="", variables=defs.user_variables)]


def assert_same_tree(centre: Any, server: Any, client: EcflowClient) -> None:
    before = native_view(client.get_defs())
    reference = reference_view(centre, server)
    after = native_view(client.get_defs())
    assert [n["path"] for n in before] == [n["path"] for n in reference]
    compared: set[str] = set()
    for mine, theirs, later in zip(before, reference, after, strict=True):
        assert mine["variables"] == theirs["variables"], mine["path"]
        if mine["path"]:
            assert mine["suspended"] == theirs["suspended"], mine["path"]
            # Jobs run while we look: a state that moved between our two fetches is not compared.
            if mine["state"] == later["state"]:
                assert mine["state"] == theirs["state"], mine["path"]
                compared.add(mine["path"])
    # The suspended family never moves: its states are always compared, so the check above cannot skip them all.
    still = {f"/{server.suite}/f2", f"/{server.suite}/f2/later"}
    assert still <= compared, f"states compared: {sorted(compared)}"


def test_ping_version_and_tree_through_local_forwards(centre: Any, local_forward: Any) -> None:
    for server in centre.servers:
        host, port = local_forward.endpoint(server.host, server.port)
        client = EcflowClient(host, port)
        assert 0 < client.ping() < 5
        assert client.server_version().startswith("5.")
        defs = client.get_defs()
        assert [s.name for s in defs.suites] == [server.suite]
        assert defs.find(f"/{server.suite}/f2").suspended
        assert defs.find(f"/{server.suite}/f1/hello").logserver() == (server.logserver, 9316)
        assert_same_tree(centre, server, client)
        node = client.get_node(f"/{server.suite}/f1")
        assert [c.path for c in node.children] == [f"/{server.suite}/f1/{t}" for t in ("hello", "long", "fails")]


def test_same_through_socks_by_centre_host_names(centre: Any, socks_proxy: Any) -> None:
    for server in centre.servers:
        client = EcflowClient(server.host, server.port, proxy=socks_proxy.address)
        assert client.ping() > 0
        assert client.server_version().startswith("5.")
        assert_same_tree(centre, server, client)


def test_error_reply_is_a_server_error_with_the_servers_text(centre: Any, local_forward: Any) -> None:
    server = centre.servers[0]
    client = EcflowClient(*local_forward.endpoint(server.host, server.port))
    with pytest.raises(ServerError) as info:
        client.get_node(f"/{server.suite}/no_such_node")
    assert f"/{server.suite}/no_such_node" in info.value.server_text
    assert "Cannot find node" in info.value.server_text


def _finished_tasks(defs: Defs) -> list[Any]:
    return [n for n in defs if n.is_task and n.try_no > 0 and n.state in ("complete", "aborted")]


@pytest.mark.parametrize("method", ["local_forward", "socks_proxy"])
def test_job_output_from_each_log_server_is_byte_identical(
    centre: Any, method: str, request: pytest.FixtureRequest
) -> None:
    tunnel = request.getfixturevalue(method)
    checked = 0
    for server in centre.servers:
        if method == "local_forward":
            ecflow = EcflowClient(*tunnel.endpoint(server.host, server.port))
        else:
            ecflow = EcflowClient(server.host, server.port, proxy=tunnel.address)
        defs = ecflow.get_defs()
        tasks = _finished_tasks(defs)
        assert tasks, f"no finished task on {server.host} yet"
        for task in tasks:
            loghost, logport = task.logserver()
            assert loghost == server.logserver
            if method == "local_forward":
                logs = LogServerClient(*tunnel.endpoint(loghost, logport))
            else:
                logs = LogServerClient(loghost, logport, proxy=tunnel.address)
            path = task.jobout_path()
            assert path.startswith(str(centre.outputs_dir / server.suite))
            on_disk = Path(path).read_bytes()
            mtime, data = logs.getf(path)
            assert data == on_disk
            assert mtime == int(Path(path).stat().st_mtime)
            assert logs.get(path) == on_disk
            seen: list[tuple[int, int | None]] = []

            def progress(done: int, total: int | None, seen: list[tuple[int, int | None]] = seen) -> None:
                seen.append((done, total))

            assert logs.read(path, progress=progress).data == on_disk
            assert seen[-1] == (len(on_disk), len(on_disk))
            checked += 1
        with pytest.raises(LogFileUnavailable):
            logs.getf(str(centre.outputs_dir / server.suite / "f1" / "no_such_task.1"))
    assert checked >= 2


def test_connect_errors_through_socks_name_the_target_and_proxy(centre: Any, socks_proxy: Any) -> None:
    proxy = socks_proxy.address
    for host, port in [("machine1", 1), ("no-such-host", 4141)]:
        with pytest.raises(ConnectError) as info:
            EcflowClient(host, port, proxy=proxy, connect_timeout=5).ping()
        message = str(info.value)
        assert f"{host}:{port} via SOCKS proxy {proxy[0]}:{proxy[1]}" in message
