"""The finder's process boundary: its answers as JSON lines, and a real child answering a round."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ecflow_remote.endpoints import Wanted
from ecflow_remote.profile.model import Gateway, Profile, Server, SshTarget
from ecflow_remote.tunnel.events import Events
from ecflow_remote.tunnel.logfinder import FinderProcess, wanted_from_json, wanted_to_json


def test_answers_round_trip() -> None:
    wanted = [Wanted("logserver", "ls1:9316", "ls1", 9316, ("m1 /lab", "m2 /ops")), Wanted("server", "s", "h", 1)]
    assert wanted_from_json(wanted_to_json(wanted)) == wanted


@pytest.mark.parametrize("line", ['[["bogus", "n", "h", 1, []]]', '[["logserver", "n", "h", "1", []]]', "{}", "x"])
def test_a_broken_answer_is_refused(line: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        wanted_from_json(line)


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
