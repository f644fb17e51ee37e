"""What carries a new connection: the agent on a slow link, ssh's own channel on a fast one, nothing meanwhile; the
link judged by the round trips measured through ssh (the gauge), whatever the agent's own pacer thinks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from ecflow_remote.access.pipe import Upstreams

TARGET = ("machine1", 4141)
SOCK = Path("/run/x/fwd.sock")


class FakeAgent:
    def __init__(self, slow: bool, closed: bool = False) -> None:
        self.slow = slow
        self.closed = closed

    def slow_link(self) -> bool:  # the agent's pacer: no longer what routes
        return not self.slow


def upstreams(agent: FakeAgent | None, **kw: Any) -> Upstreams:
    up = Upstreams(agent=cast(Any, agent), **kw)
    if agent is not None:
        up.gauge.add(0.030 if agent.slow else 0.0005)
    return up


@pytest.mark.parametrize(
    ("agent", "sockets", "expected"),
    [
        (FakeAgent(slow=True), {TARGET: SOCK}, "agent"),  # home link: one round trip, compression, pacing
        (FakeAgent(slow=False), {TARGET: SOCK}, SOCK),  # LAN: ssh's own channel is faster
        (FakeAgent(slow=False), {}, "agent"),  # no channel forwarded there (a found log server): the agent
        (FakeAgent(slow=True, closed=True), {TARGET: SOCK}, SOCK),  # the agent died: what is left
        (None, {TARGET: SOCK}, SOCK),  # plain transport
        (None, {}, None),  # reconnecting: nothing (the client is told at once)
    ],
)
def test_route(agent: FakeAgent | None, sockets: dict[tuple[str, int], Path], expected: object) -> None:
    route = upstreams(agent, sockets=sockets, socks=SOCK).route(TARGET)
    assert (route is agent and expected == "agent") or route == expected


def test_socks_requests_follow_the_same_rule() -> None:
    assert upstreams(FakeAgent(slow=True), socks=SOCK).socks_socket() is None
    assert upstreams(FakeAgent(slow=False), socks=SOCK).socks_socket() == SOCK
    assert upstreams(None, socks=SOCK).socks_socket() == SOCK


def test_a_laptop_that_moves_gets_the_agent_for_new_connections() -> None:
    up = Upstreams(agent=cast(Any, FakeAgent(slow=False)), sockets={TARGET: SOCK})
    up.gauge.add(0.0006, now=0.0)
    assert up.route(TARGET) == SOCK and up.carrier() == "ssh"
    up.gauge.add(0.031)  # now: the office's sample has expired
    assert up.route(TARGET) is up.agent and up.carrier() == "agent"
