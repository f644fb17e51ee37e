"""The log-server finder: its rounds (against a fake server that answers news/sync as ecFlow 5.9.2 does), its
answers in the one document of Wanted services, and a real child answering a round."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ecflow_remote.clients.ecflow.defs import parse_defs
from ecflow_remote.clients.ecflow.logservers import find_logservers
from ecflow_remote.endpoints import Wanted
from ecflow_remote.profile.model import Gateway, Profile, Server, SshTarget
from ecflow_remote.tunnel.events import Events
from ecflow_remote.tunnel.logfinder import Finder, FinderProcess, answer_line, logservers_wanted, read_answer


def test_answers_round_trip() -> None:
    wanted = [Wanted("logserver", "ls1:9316", "ls1", 9316, ("m1 /lab", "m2 /ops")), Wanted("server", "s", "h", 1)]
    assert read_answer(answer_line(wanted).encode()) == wanted
    assert "\n" not in answer_line(wanted)  # one answer, one line


@pytest.mark.parametrize(
    "line",
    [
        '{"version": 1, "servers": [{"kind": "bogus", "name": "n", "host": "h", "port": 1}]}',
        '{"version": 1, "servers": [{"kind": "logserver", "name": "n", "host": "h", "port": "1"}]}',
        '[["logserver", "n", "h", 1, []]]',  # the finder's former second format
        "{}",
        "x",
    ],
)
def test_a_broken_answer_is_refused(line: str) -> None:
    with pytest.raises(ValueError):
        read_answer(line.encode())


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


def test_found_log_servers_are_used_by_their_suites() -> None:
    want = logservers_wanted(find_logservers({"machine1": parse_defs(DEFS)}))
    assert [(w.name, w.used_by) for w in want] == [
        ("logserver1:9316", ("machine1 /lab",)),
        ("logserver3:9316", ("machine1 /ops",)),
        # f2's ECF_LOGHOST with the suite's ECF_LOGPORT, inherited as ecFlow does
        ("logserver3.centre.int:9316", ("machine1 /lab",)),
    ]


def test_a_log_server_no_forward_could_take_is_left_out() -> None:
    defs = DEFS.replace("edit ECF_LOGHOST logserver1", "edit ECF_LOGHOST 'log server'")
    names = [w.name for w in logservers_wanted(find_logservers({"machine1": parse_defs(defs)}))]
    assert names == ["logserver3:9316", "logserver3.centre.int:9316"]


def test_a_real_child_answers_each_round_and_ends_with_the_parent_side(tmp_path: Path) -> None:
    # No tunnel runs for this profile: the child answers an empty round (and the next round tries again).
    profile_path = tmp_path / "p.toml"
    profile_path.write_text('[gateway]\nhost = "u@w"\n[[server]]\nname = "m"\nhost = "m"\nport = 4141\n')
    profile = Profile(profile_path, Gateway(jump=(), host=SshTarget("u", "w")), (Server("m", "m", 4141),))
    events = Events()
    finder = FinderProcess(profile, events)
    try:
        for _ in range(2):
            finder.start()
            finder.start()  # a round already asked for: not asked twice
            deadline = time.monotonic() + 20
            answer = None
            while answer is None and time.monotonic() < deadline:
                events.wait(deadline - time.monotonic())  # the answer wakes the wait: nothing polls
                answer = finder.answer()
            assert answer == []
        proc = finder._proc
        assert proc is not None and proc.poll() is None
    finally:
        finder.stop()
        events.close()
    assert proc.poll() is not None


def test_a_round_s_request_carries_the_plan_s_token_and_the_sockets(tmp_path: Path) -> None:
    from ecflow_remote.plan import Endpoint, Plan
    from ecflow_remote.tunnel.logfinder import read_request, request_line

    plan = Plan("local", [Endpoint("server", "m", "m.centre", 4141, "127.0.0.1", 4141)])
    direct = {("m.centre", 4141): tmp_path / "ecf.sock"}
    token, sockets = read_request(request_line(plan, direct))
    assert sockets == direct and token != 0
    grown = Plan("local", [*plan.endpoints, Endpoint("logserver", "l:9316", "l", 9316, "127.0.0.1", 9316)])
    assert read_request(request_line(grown, direct))[0] != token
    assert read_request("round")[0] == 0 and read_request("round")[1] == {}  # unreadable: the plan read anew


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
    finder = Finder()
    clients: Any = FakeClients(a=a, b=b)

    def round_() -> set[str]:
        trees = asyncio.run(finder.round(clients, ["a", "b"]))
        return {w.name for w in logservers_wanted(find_logservers(trees))}

    # b refuses its first watch: a's log servers only.
    assert round_() == {"logserver1:9316", "logserver3:9316", "logserver3.centre.int:9316"}
    # a's poll fails: its last tree stands; b's first tree comes.
    second = round_()
    assert {"logserver3:9316", "logserver9:9316"} <= second
    # a's watch is made anew, b's is polled.
    assert round_() == second and (a.watches, b.watches) == (2, 2)
