"""The link's figure for the supervisor: whether the main leg compresses, and what the state shows of the link."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecflow_remote.access.pipe import Upstreams
from ecflow_remote.clients.connect import connect_time
from ecflow_remote.profile.model import Profile
from ecflow_remote.transport import control, link, ssh
from ecflow_remote.tunnel import decisions

CHANNEL_TIMEOUT = 2.0  # a channel's confirmation through the jump master: a round trip, however slow the link
# Channels asked at most while the answers say "slow": a busy CPU only ever adds to a round trip, so one slow
# answer of a loaded LAN is asked again (the smallest counts), and a home link costs two round trips more, once.
PROBES = 3


def compress_main(
    profile: Profile,
    rundir: Path,
    upstreams: Upstreams,
    agent_usable: bool,
    through_jump: bool,
    first_hop: Callable[[], tuple[str, int] | None],
) -> bool:
    """Whether the main leg runs ssh -C (decisions.compress_plain). `agent_usable`: false with `plain`, or once the
    far side showed it has no python3; `first_hop`: where ssh's first connection goes (asked only if needed).
    Unmeasured yet (a first start without the agent): a channel through
    the jump master to the workstation's sshd times the link (one round trip before the main leg starts, only
    then); without a jump master the first hop's handshake is the only hint."""
    gauge = upstreams.gauge
    slow = gauge.slow()
    if not agent_usable and slow is None and through_jump:
        target = ssh.workstation_address(profile)
        best = asyncio.run(_smallest_round_trip(ssh.jump_socket(rundir), target)) if target else None
        if best is not None:
            gauge.add(best)
            slow = gauge.slow()
    hop = first_hop() if not agent_usable and slow is None else None
    hint = connect_time(hop) if hop is not None else None
    return decisions.compress_plain(agent_usable, slow, hint)


async def _smallest_round_trip(jump: Path, target: tuple[str, int]) -> float | None:
    """The smallest of up to PROBES channel confirmations through the jump master, stopping at the first that says
    the link is fast (None: the master opened none)."""
    best: float | None = None
    for _ in range(PROBES):
        answer = await control.ask(jump, target, CHANNEL_TIMEOUT)
        if not answer.opened or answer.seconds is None:
            break
        best = answer.seconds if best is None else min(best, answer.seconds)
        if best < link.SLOW:
            break
    return best


def changes(
    upstreams: Upstreams, carrier: str | None, link_rtt: float | None
) -> tuple[str | None, float | None] | None:
    """What the state should change to show the link now (the carrier of new connections, the figure in ms):
    None unless the carrier changed or the figure moved by a quarter (or half a millisecond)."""
    figure = upstreams.gauge.figure()
    rtt = round(figure * 1000, 1) if figure is not None else link_rtt
    now = upstreams.carrier()
    moved = rtt is not None and (link_rtt is None or abs(rtt - link_rtt) > max(0.5, 0.25 * link_rtt))
    return (now, rtt) if now != carrier or moved else None


def free_samples(upstreams: Upstreams) -> dict[str, Any]:
    """What the health round's clients take to time the link for free (Clients.master and .timed: its ecFlow
    pings' channels, confirmed by ssh's master one round trip after asking): while a far-side agent stands by
    beside ssh's own channels, whose pings then rest (transport/agent/keepalive.py); nothing otherwise (the plain
    transport's rounds stay on ssh's forward sockets)."""
    if upstreams.live_agent() is None or upstreams.control is None:
        return {}
    return {"master": upstreams.control, "timed": upstreams.gauge.add_free}
