"""Endpoints that join a running tunnel: placement per method, who uses them, the request files `ui` writes, and
the finder's rounds (against a fake server that answers news/sync as ecFlow 5.9.2 does)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ecflow_remote.clients.ecflow.defs import parse_defs
from ecflow_remote.clients.ecflow.logservers import find_logservers
from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.tunnel import found
from ecflow_remote.tunnel.state import Check, RunFiles, TunnelState

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


def base(method: str) -> Plan:
    if method == "local":
        server = Endpoint("server", "machine1", "machine1", 4141, "127.0.0.1", 4141)
        log = Endpoint("logserver", "logserver1:9316", "logserver1", 9316, "127.0.0.1", 9316)
        return Plan("local", [server, log], hosts={"logserver1": "127.0.0.1"})
    server = Endpoint("server", "machine1", "machine1", 4141, f"{NET}1", 4141)
    if method == "socks":
        log = Endpoint("logserver", "logserver1:9316", "logserver1", 9316, "127.0.0.1", 1080, False)
        return Plan("socks", [server, log], socks_port=1080, hosts={"machine1": f"{NET}1"})
    log = Endpoint("logserver", "logserver1:9316", "logserver1", 9316, f"{NET}2", 9316)
    return Plan("hosts", [server, log], hosts={"machine1": f"{NET}1", "logserver1": f"{NET}2"})


def wanted() -> list[found.Wanted]:
    return found.logservers_wanted(find_logservers({"machine1": parse_defs(DEFS)}))


def merge(
    plan: Plan, want: list[found.Wanted], busy: frozenset[tuple[str, int]] = frozenset(), user: str | None = None
) -> Plan:
    ports = iter(range(40000, 40100))
    return found.merge(plan, want, NET, lambda h, p: (h, p) not in busy, lambda h: next(ports), user)


def test_found_log_servers_are_used_by_their_suites() -> None:
    want = wanted()
    assert [(w.name, w.used_by) for w in want] == [
        ("logserver1:9316", ("machine1 /lab",)),
        ("logserver3:9316", ("machine1 /ops",)),
        # f2's ECF_LOGHOST with the suite's ECF_LOGPORT, inherited as ecFlow does
        ("logserver3.centre.int:9316", ("machine1 /lab",)),
    ]


def test_local_method_places_new_log_servers_on_their_own_port_where_free() -> None:
    plan = base("local")
    new = merge(plan, wanted(), busy=frozenset({("127.0.0.1", 9316)}))
    added = found.added(plan, new)
    # The short and the qualified name of one host are one log server (as ECF_LOGHOST may use either).
    assert [(e.host, e.origin, e.local_host, e.local_port) for e in added] == [
        ("logserver3", "found", "127.0.0.1", 40000)
    ]
    assert added[0].used_by == ("machine1 /ops", "machine1 /lab")
    # The profile's own log server keeps its origin and learns who uses it.
    own = next(e for e in new.endpoints if e.host == "logserver1")
    assert own.origin == "profile" and own.used_by == ("machine1 /lab",)
    # Moved off its port, logserver3 cannot be reached by name: not in the hosts view.
    assert new.hosts == {"logserver1": "127.0.0.1"}
    # Free on the machine, but logserver1's here already: the plan's own ports count as taken.
    free = merge(plan, wanted())
    assert [(e.local_port, e.host) for e in found.added(plan, free)] == [(40000, "logserver3")]


def test_local_method_gives_a_kept_port_its_name() -> None:
    plan = Plan("local", [Endpoint("server", "m1", "machine1", 4141, "127.0.0.1", 4141)])
    new = merge(plan, wanted())
    assert [(e.host, e.local_port) for e in found.added(plan, new)] == [("logserver1", 9316), ("logserver3", 40000)]
    assert new.hosts == {"logserver1": "127.0.0.1"}


def test_hosts_method_gives_a_new_host_the_next_alias_and_its_own_port() -> None:
    plan = base("hosts")
    new = merge(plan, wanted())
    (e,) = found.added(plan, new)
    assert (e.host, e.local_host, e.local_port, e.forwarded) == ("logserver3", f"{NET}3", 9316, True)
    assert new.hosts["logserver3"] == f"{NET}3"
    # A second service of a known host shares its alias.
    more = merge(new, [found.Wanted("server", "sys", "machine1", 4142, ("/lists/a",))], user="user1")
    (s,) = found.added(new, more)
    assert (s.local_host, s.local_port, s.origin, s.relay_user) == (f"{NET}1", 4142, "system", "user1")


def test_socks_method_reaches_found_log_servers_through_the_front() -> None:
    plan = base("socks")
    new = merge(plan, wanted())
    (e,) = found.added(plan, new)
    assert (e.forwarded, e.local_host, e.local_port) == (False, "127.0.0.1", 1080)
    assert new.hosts == plan.hosts
    # ecFlow servers still need a loopback forward (proxychains cannot carry ecFlow's sockets).
    more = merge(new, [found.Wanted("server", "sys", "machine7", 4141)])
    (s,) = found.added(new, more)
    assert s.forwarded and s.local_host == f"{NET}2" and more.hosts["machine7"] == s.local_host


def test_merging_again_adds_nothing_and_a_clashing_name_is_told_apart() -> None:
    plan = base("hosts")
    once = merge(plan, wanted())
    assert merge(once, wanted()) == once
    clash = merge(once, [found.Wanted("server", "machine1", "machine9", 4141)])
    (e,) = found.added(once, clash)
    assert e.name == "machine1@machine9:4141" and clash.endpoint("machine1").host == "machine1"
    assert found.without(clash, [e]).hosts == once.hosts


def test_no_alias_left_is_a_value_error() -> None:
    hosts = {f"h{i}": f"{NET}{i}" for i in range(1, 255)}
    with pytest.raises(ValueError, match="no loopback address left"):
        merge(Plan("hosts", [], hosts=hosts), [found.Wanted("server", "s", "new", 1)])


def test_endpoints_and_state_keep_origin_and_users_through_json() -> None:
    e = Endpoint("logserver", "l:1", "l", 1, "127.0.0.1", 2, origin="found", used_by=("m /s",))
    back = Check.from_json(json.loads(json.dumps(Check(e, True).to_json()))).endpoint
    assert back == e
    # An older state without the fields, and an unknown origin, still read.
    assert Endpoint.from_json({**e.to_json(), "origin": "?", "used_by": None}).origin == "profile"
    state = TunnelState("up", "local", "/p", 1, found_note="note", found_rounds=2, plan=Plan("local", [e]))
    again = TunnelState.from_json(json.loads(json.dumps(state.to_json())))
    assert (again.found_note, again.found_rounds) == ("note", 2)
    assert again.plan is not None and again.plan.endpoints == [e]


def test_requests_round_trip_and_bad_ones_are_refused_with_a_reason(tmp_path: Path) -> None:
    path = found.write_request(tmp_path, [found.Wanted("server", "sys-m2", "machine2", 3142, ("/a",))])
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert found.parse_request(path.read_bytes()) == [found.Wanted("server", "sys-m2", "machine2", 3142, ("/a",))]
    with pytest.raises(ValueError, match="bad server name 'x y'"):
        found.parse_request(json.dumps({"version": 1, "servers": [{"name": "x y", "host": "h"}]}).encode())
    with pytest.raises(ValueError, match="bad port True"):
        found.parse_request(json.dumps({"version": 1, "servers": [{"name": "x", "host": "h", "port": True}]}).encode())
    with pytest.raises(ValueError, match="over"):
        found.parse_request(b" " * (found.MAX_REQUEST + 1))
    with pytest.raises(ValueError, match="not a version 1 request"):
        found.parse_request(b'{"servers": []}')
    log = found.Wanted("logserver", "l:1", "l", 1, ("m /s",))
    assert found.parse_request(found.request_bytes([log])) == [log]
    with pytest.raises(ValueError, match="bad kind 'ssh'"):
        found.parse_request(b'{"version": 1, "servers": [{"kind": "ssh", "name": "a", "host": "h", "port": 22}]}')


def test_a_request_file_waits_for_its_answer(tmp_path: Path) -> None:
    # (for a supervisor from before the inbox)
    assert found.ask_by_file(tmp_path, []) is True
    # Nobody answers: False, and the request is taken back.
    assert found.ask_by_file(tmp_path, [found.Wanted("server", "s", "h", 1)], timeout=0.1) is False
    assert list(tmp_path.iterdir()) == []
    # A supervisor gone: no wait at all.
    assert found.ask_by_file(tmp_path, [found.Wanted("server", "s", "h", 1)], timeout=30, alive=lambda: False) is False


def test_rewrite_files_writes_the_hosts_view_for_new_names(tmp_path: Path) -> None:
    from ecflow_remote.profile.model import Gateway, Profile, SshTarget

    profile = Profile(tmp_path / "p.toml", Gateway((), SshTarget("u", "machine1")), ())
    plan = merge(base("hosts"), wanted())
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
