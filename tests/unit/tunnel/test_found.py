"""Endpoints that join a running tunnel: who uses them, the request files `ui` writes, the files rewritten, and
the finder's rounds (against a fake server that answers news/sync as ecFlow 5.9.2 does)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ecflow_remote.clients.ecflow.defs import parse_defs
from ecflow_remote.clients.ecflow.logservers import find_logservers
from ecflow_remote.endpoints import Wanted
from ecflow_remote.plan import Endpoint, Plan, merge
from ecflow_remote.tunnel import found
from ecflow_remote.tunnel.state import RunFiles

NET = "127.77.9."
DEFS = """\
#5.9.2
defs_state NET
suite lab
  edit ECF_LOGHOST logserver1
  edit ECF_LOGPORT 9316
  family f1
    task hello
  endfamily
  family f2
    edit ECF_LOGHOST logserver3.centre.int
    task other
  endfamily
endsuite
suite ops
  edit ECF_LOGHOST logserver3
  edit ECF_LOGPORT 9316
  task t
endsuite
# enddef
"""


def wanted() -> list[Wanted]:
    return found.logservers_wanted(find_logservers({"machine1": parse_defs(DEFS)}))


def test_found_log_servers_are_used_by_their_suites() -> None:
    want = wanted()
    assert [(w.name, w.used_by) for w in want] == [
        ("logserver1:9316", ("machine1 /lab",)),
        ("logserver3:9316", ("machine1 /ops",)),
        # f2's ECF_LOGHOST with the suite's ECF_LOGPORT, inherited as ecFlow does
        ("logserver3.centre.int:9316", ("machine1 /lab",)),
    ]


def test_requests_round_trip_and_bad_ones_are_refused_with_a_reason(tmp_path: Path) -> None:
    path = found.write_request(tmp_path, [Wanted("server", "sys-m2", "machine2", 3142, ("/a",))])
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert found.parse_request(path.read_bytes()) == [Wanted("server", "sys-m2", "machine2", 3142, ("/a",))]
    with pytest.raises(ValueError, match="bad server name 'x y'"):
        found.parse_request(json.dumps({"version": 1, "servers": [{"name": "x y", "host": "h"}]}).encode())
    with pytest.raises(ValueError, match="bad port True"):
        found.parse_request(json.dumps({"version": 1, "servers": [{"name": "x", "host": "h", "port": True}]}).encode())
    with pytest.raises(ValueError, match="over"):
        found.parse_request(b" " * (found.MAX_REQUEST + 1))
    with pytest.raises(ValueError, match="not a version 1 request"):
        found.parse_request(b'{"servers": []}')
    log = Wanted("logserver", "l:1", "l", 1, ("m /s",))
    assert found.parse_request(found.request_bytes([log])) == [log]
    with pytest.raises(ValueError, match="bad kind 'ssh'"):
        found.parse_request(b'{"version": 1, "servers": [{"kind": "ssh", "name": "a", "host": "h", "port": 22}]}')


def test_a_request_file_waits_for_its_answer(tmp_path: Path) -> None:
    # (for a supervisor from before the inbox)
    assert found.ask_by_file(tmp_path, []) is True
    # Nobody answers: False, and the request is taken back.
    assert found.ask_by_file(tmp_path, [Wanted("server", "s", "h", 1)], timeout=0.1) is False
    assert list(tmp_path.iterdir()) == []
    # A supervisor gone: no wait at all.
    assert found.ask_by_file(tmp_path, [Wanted("server", "s", "h", 1)], timeout=30, alive=lambda: False) is False


def test_rewrite_files_writes_the_hosts_view_for_new_names(tmp_path: Path) -> None:
    from ecflow_remote.profile.model import Gateway, Profile, SshTarget

    profile = Profile(tmp_path / "p.toml", Gateway((), SshTarget("u", "machine1")), ())
    server = Endpoint("server", "machine1", "machine1", 4141, f"{NET}1", 4141)
    log = Endpoint("logserver", "logserver1:9316", "logserver1", 9316, f"{NET}2", 9316)
    base = Plan("hosts", [server, log], hosts={"machine1": f"{NET}1", "logserver1": f"{NET}2"})
    plan = merge(base, wanted(), NET, lambda h, p: True, lambda h: 1)
    files, problems = found.rewrite_files(profile, plan, tmp_path, None, RunFiles(socks_auth="/x"))
    assert problems == [] and files.socks_auth == "/x" and files.hosts == str(tmp_path / "hosts")
    assert f"{NET}3\tlogserver3" in (tmp_path / "hosts").read_text()


class FakeWatch:
    """A watch whose polls answer from a script: a tree, or an exception."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.defs = parse_defs(server.next())

    async def __aenter__(self) -> FakeWatch:
        return self

    async def poll(self) -> None:
        self.defs = parse_defs(self.server.next())


class FakeServer:
    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.watches = 0

    def next(self) -> str:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def watch(self) -> FakeWatch:
        self.watches += 1
        return FakeWatch(self)


class FakeClients:
    def __init__(self, **servers: FakeServer) -> None:
        self.servers = servers

    def ecflow(self, name: str, **_: float) -> FakeServer:
        return self.servers[name]


def test_the_finder_keeps_a_watch_per_server_and_a_silent_servers_last_tree() -> None:
    import asyncio

    ops = DEFS.replace("logserver3", "logserver9")
    a = FakeServer(DEFS, ConnectionError("down"), DEFS)
    b = FakeServer(OSError("refused"), ops, ops)
    finder = found.Finder()
    clients: Any = FakeClients(a=a, b=b)

    def round_() -> set[str]:
        trees = asyncio.run(finder.round(clients, ["a", "b"]))
        return {w.name for w in found.logservers_wanted(find_logservers(trees))}

    # b refuses its first watch: a's log servers only.
    assert round_() == {"logserver1:9316", "logserver3:9316", "logserver3.centre.int:9316"}
    # a's poll fails: its last tree stands; b's first tree comes.
    second = round_()
    assert {"logserver3:9316", "logserver9:9316"} <= second
    # a's watch is made anew, b's is polled.
    assert round_() == second and (a.watches, b.watches) == (2, 2)
