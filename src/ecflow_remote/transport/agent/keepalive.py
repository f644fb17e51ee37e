"""The agent's keepalive: pings that prove it answers and time the link, often while it is needed, rarely not.

While the link is judged slow, while streams run on the agent, and until the link is first judged, it pings every
`interval` (3 s): the agent carries, or may carry at any moment, and a hung one must be noticed. While it only
stands by beside ssh's own channels on a fast link with no stream on it, it pings every `rest` (30 s): the link is
then timed for free by what runs anyway (ssh's channel confirmations: new connections', the health round's), and
anything that hints at a change asks for a burst at once (`burst()`: a free sample that disagrees, a network change),
so the idle agent costs a ping per half minute, not one per 3 s. A stream opened on a resting agent ends its rest
with a ping at once (a hung agent is then noticed within `timeout`, as before).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from ecflow_remote.errors import AgentDied

# Pings a moment apart (at the start, and when a round trip disagrees with the link's judgement): a few, so that one
# slow sample of a busy moment is outvoted, and a laptop that moved is judged anew within a second.
BURST, AGAIN = 5, 0.2  # enough quick pings to fill link.SAMPLES (about 1 s)


class Pinged(Protocol):
    """What the keepalive needs of a session."""

    @property
    def closed(self) -> bool: ...

    def busy(self) -> bool: ...

    async def ping(self, timeout: float) -> float: ...

    def die(self, reason: str) -> None: ...


class Keepalive:
    """Pings `session` until it ends; no answer within `timeout` ends it (the reason says so). `on_rtt` gets each
    round trip and answers whether more are wanted soon (then the next BURST pings follow AGAIN apart). `fast()`:
    whether the link is judged fast now; with it, and no stream on the agent, the pings are `rest` apart. Runs on
    the session's loop: burst() and woken() only from there."""

    def __init__(
        self,
        session: Pinged,
        interval: float,
        timeout: float,
        on_rtt: Callable[[float], bool] | None = None,
        rest: float | None = None,
        fast: Callable[[], bool] | None = None,
    ) -> None:
        self.session = session
        self.interval = interval
        self.timeout = timeout
        self.on_rtt = on_rtt
        self.rest = rest
        self.fast = fast
        self.resting = False  # asleep for `rest`
        self._quick = BURST  # the first pings: the link measured at once
        self._doubt = False  # whether the last round trip disagreed with the judgement (then no rest yet)
        self._wake = asyncio.Event()

    def burst(self) -> None:
        """The link may have changed (a free sample disagrees, the network changed): the next BURST pings AGAIN
        apart, the first at once (a burst already running is made that long again)."""
        if self._quick == 0:
            self._wake.set()
        self._quick = BURST

    def woken(self) -> None:
        """A stream opened: a resting keepalive pings at once (and the next pings are `interval` apart)."""
        if self.resting:
            self._wake.set()

    def delay(self) -> float:
        """Seconds until the next ping."""
        if self._quick:
            return AGAIN
        if (
            self.rest is not None
            and self.fast is not None
            and not self._doubt
            and not self.session.busy()
            and self.fast()
        ):
            return self.rest
        return self.interval

    async def run(self) -> None:
        session = self.session
        while not session.closed:
            try:
                rtt = await session.ping(self.timeout)
            except TimeoutError:
                session.die(f"the agent did not answer a ping within {self.timeout:g}s (link dead?)")
                return
            except AgentDied:  # the session died meanwhile: its own reason stands
                return
            # Its own samples start a burst only between bursts (one per `interval` at most on a link that
            # flaps around a threshold); a burst that ends in doubt is followed by `interval`, not `rest`.
            self._doubt = self.on_rtt is not None and self.on_rtt(rtt)
            if self._doubt and self._quick == 0:
                self.burst()
            self._quick = max(self._quick - 1, 0)
            delay = self.delay()
            self._wake.clear()
            self.resting = delay == self.rest and delay != self.interval
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            finally:
                self.resting = False
