"""tunnel/health.py: what a check records and how it words a failure, against small servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tests.unit.samples import DATA, Serve

from ecflow_remote.clients.ecflow import wire
from ecflow_remote.errors import ConnectError
from ecflow_remote.net import free_port
from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.tunnel import health
from ecflow_remote.tunnel.clients import Clients
from ecflow_remote.tunnel.state import Check

PING_REPLY = (DATA / "reply_ping_5.9.2.bin").read_bytes()
VERSION_REPLY = (DATA / "reply_version_5.9.2.bin").read_bytes()


def server(name: str, port: int, forwarded: bool = True) -> Endpoint:
    return Endpoint("server", name, f"{name}.centre", 4141, "127.0.0.1", port, forwarded)


def logserver(port: int) -> Endpoint:
    return Endpoint("logserver", "logserver1:9316", "logserver1", 9316, "127.0.0.1", port)


def ecflow_answering(serve: Serve) -> int:
    """An ecFlow server answering a ping with 5.9.2's ping reply and anything else with its version (the check
    sends both at once, on two connections)."""

    def on_connection(conn: socket.socket) -> None:
        header = conn.recv(wire.HEADER_SIZE, socket.MSG_WAITALL)
        body = conn.recv(wire.decode_header(header), socket.MSG_WAITALL)
        conn.sendall(PING_REPLY if b'"api_": 8' in body.replace(b'"api_":8', b'"api_": 8') else VERSION_REPLY)

    return serve(on_connection)


@pytest.fixture
def silent(serve: Serve) -> Iterator[int]:
    """A port that accepts and never answers."""
    done = threading.Event()

    def hold(conn: socket.socket) -> None:
        done.wait(10)

    yield serve(hold)
    done.set()


def test_check_json_is_the_endpoint_plus_the_outcome() -> None:
    endpoint = server("m1", 40000, forwarded=False)
    data = Check(endpoint, True, 1.5, "5.9.2").to_json()
    expected = {"reachable": True, "latency_ms": 1.5, "version": "5.9.2", "error": None, "lasting": False}
    assert data == {**endpoint.to_json(), **expected}
    assert "endpoint" not in data
    assert json.loads(json.dumps(data)) == data  # what state.json and --json hold


def test_words() -> None:
    assert health.words(TimeoutError()) == "no answer (timed out)"
    refused = ConnectError("cannot connect to 127.0.0.1:1: refused", host="127.0.0.1", port=1)
    assert health.words(refused) == "cannot connect to 127.0.0.1:1: refused"
    assert health.words(ValueError()) == "ValueError"  # never an empty message


def test_every_endpoint_checked_each_with_its_outcome(serve: Serve, silent: int) -> None:
    """One answering server, one refusing, one silent, a log server that answers: each gets its own verdict, in
    the plan's order (servers, then log servers)."""
    closed = free_port()  # nothing listens there now

    def logserver_version(conn: socket.socket) -> None:
        assert conn.recv(100) == b"version\n"
        conn.sendall(b"2\n")  # what ecflow_logsvr.pl answers

    plan = Plan(
        "local",
        [
            server("answers", ecflow_answering(serve)),
            server("refuses", closed),
            logserver(serve(logserver_version)),
            server("silent", silent),
        ],
    )
    checks = asyncio.run(health.check_all(Clients(plan), timeout=0.5))
    assert [c.endpoint.name for c in checks] == ["answers", "refuses", "silent", "logserver1:9316"]
    answers, refuses, quiet, logs = checks
    assert answers.reachable and answers.version == "5.9.2" and answers.error is None
    assert answers.latency_ms is not None and answers.latency_ms >= 0
    assert not refuses.reachable and refuses.latency_ms is None and refuses.version is None
    assert refuses.error is not None and f"127.0.0.1:{closed}" in refuses.error
    assert not quiet.reachable and quiet.error == "no answer (timed out)"
    assert logs.reachable and logs.version == "2"


def test_failed_servers_are_looked_into_within_one_more_timeout(serve: Serve, silent: int) -> None:
    """`why` hears of each server that failed, with its error; its words make the check lasting. All of it within
    one more timeout: a question that hangs leaves its server as it was (it may still answer)."""

    asked: list[tuple[str, type[BaseException]]] = []

    async def why(endpoint: Endpoint, error: Exception) -> str | None:
        asked.append((endpoint.name, type(error)))
        if endpoint.name == "hangs":
            await asyncio.sleep(30)
        return None if isinstance(error, TimeoutError) else f"refused at the far end ({endpoint.name})"

    plan = Plan(
        "local",
        [
            server("answers", ecflow_answering(serve)),
            server("refused", free_port()),
            server("silent", silent),
            server("hangs", free_port()),
        ],
    )
    checks, took = asyncio.run(_timed(health.check_all(Clients(plan), 0.5, why)))
    assert took < 2.5, took  # the checks' 0.5 s, then at most 0.5 s of questions (not the 30 s one)
    assert [n for n, _ in asked] == ["refused", "silent", "hangs"]
    assert dict(asked)["silent"] is TimeoutError
    answers, refused, quiet, hangs = checks
    assert answers.reachable and not answers.lasting
    assert refused.lasting and refused.error == "refused at the far end (refused)"
    assert not quiet.lasting and quiet.error == "no answer (timed out)"
    assert not hangs.lasting and hangs.error is not None and "127.0.0.1" in hangs.error


async def _timed(coro: Any) -> tuple[Any, float]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    result = await coro
    return result, loop.time() - t0


def test_log_servers_that_answered_are_given_again_unless_a_server_fails(serve: Serve) -> None:
    """`answered` log servers are not asked (an idle tunnel's rounds); once an ecFlow server of the round fails
    they are asked again, and a log server that fails then says so."""
    asked: list[int] = []

    def logserver_version(conn: socket.socket) -> None:
        asked.append(1)
        assert conn.recv(100) == b"version\n"
        conn.sendall(b"2\n")

    logs = logserver(serve(logserver_version))
    given = Check(logs, True, 9.5, "2")
    plan = Plan("local", [server("answers", ecflow_answering(serve)), logs])
    checks = asyncio.run(health.check_all(Clients(plan), 0.5, answered={("logserver1", 9316): given}))
    assert checks[-1] is given and asked == []
    failing = Plan("local", [server("refuses", free_port()), logs])
    checks = asyncio.run(health.check_all(Clients(failing), 0.5, answered={("logserver1", 9316): given}))
    assert asked == [1] and checks[-1] is not given and checks[-1].reachable
    gone = Plan("local", [server("refuses", free_port()), logserver(free_port())])
    checks = asyncio.run(health.check_all(Clients(gone), 0.5, answered={("logserver1", 9316): given}))
    assert not checks[-1].reachable


def test_direct_clients_connect_to_ssh_s_forward_socket(tmp_path: Any) -> None:
    """Clients.direct: the check goes to the unix socket (as ssh's -L PATH:host:port), not the listener's port."""
    path = tmp_path / "ecf.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            header = conn.recv(wire.HEADER_SIZE, socket.MSG_WAITALL)
            conn.recv(wire.decode_header(header), socket.MSG_WAITALL)
            conn.sendall(PING_REPLY)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    plan = Plan("local", [server("m1", free_port())])  # nothing listens on its loopback port
    try:
        check = asyncio.run(
            health.check_server(Clients(plan, direct={("m1.centre", 4141): path}), plan.endpoints[0], 2, "5.9.2")
        )
    finally:
        thread.join(5)
        listener.close()
    assert check.reachable, check.error
    missing = Clients(plan, direct={("m1.centre", 4141): tmp_path / "none.sock"})
    check = asyncio.run(health.check_server(missing, plan.endpoints[0], 2, "5.9.2"))
    # A direct check that fails (not by a timeout) is tried again through the listener, whose error it then shows.
    assert (
        not check.reachable and check.error is not None and f"127.0.0.1:{plan.endpoints[0].local_port}" in check.error
    )
