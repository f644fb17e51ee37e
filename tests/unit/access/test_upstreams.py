"""What carries a new connection: the agent on a slow link, ssh's own channel on a fast one, nothing meanwhile."""

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

    def slow_link(self) -> bool:
        return self.slow


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
    upstreams = Upstreams(agent=cast(Any, agent), sockets=sockets, socks=SOCK)
    route = upstreams.route(TARGET)
    assert (route is agent and expected == "agent") or route == expected


def test_socks_requests_follow_the_same_rule() -> None:
    assert Upstreams(agent=cast(Any, FakeAgent(slow=True)), socks=SOCK).socks_socket() is None
    assert Upstreams(agent=cast(Any, FakeAgent(slow=False)), socks=SOCK).socks_socket() == SOCK
    assert Upstreams(agent=None, socks=SOCK).socks_socket() == SOCK
