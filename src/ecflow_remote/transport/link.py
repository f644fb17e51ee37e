"""The link's round trip as measured through the ssh connection itself, and the pure rule that routes by it.

The first hop's address says nothing when ssh reaches it through a ProxyCommand (Teleport's `tsh proxy ssh`), a
local relay or a VPN client's port, and one TCP handshake timed while the laptop is busy starting says little
more. So the figure comes from the tunnel's own connection: the far-side agent's pings, and, for free, the time
ssh's master takes to confirm a channel (a handed-over connection's, the supervisor's health round's: one round
trip through ssh each). It is the smallest of the last SAMPLES samples (of the last WINDOW seconds): a loaded CPU or
a queue behind a big output only ever adds to a round trip, so the minimum is the link's own. A sample that
disagrees with the judgement asks for more at once (Gauge.add's answer; `on_doubt` for free ones: the agent pings
a burst), so a laptop that moves is judged anew about a second after its first sample there, and one slow sample of
a busy moment is outvoted.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

# Seconds. From SLOW the link is a home link: the agent carries. Not pace.SLOW_LINK_RTT's 5 ms: through ssh a round
# trip on a LAN crosses four processes (ssh, two sshd, the agent), and on a loaded 2-CPU laptop their scheduling
# alone made LAN figures of 5-8 ms for seconds (seen in tests); home links are 10 ms and more. Below FAST a
# slow-judged link is fast again (the gap keeps a link near the threshold from flapping).
SLOW = 0.010
FAST = 0.006
SAMPLES = 5  # the newest samples that count: the figure is their smallest (a loaded LAN gives a few slow ones)
WINDOW = 30.0  # seconds a sample counts at most (an idle tunnel's figure: its health rounds' channels, 2 per 10 s)


def judge(previously_slow: bool | None, figure: float | None) -> bool | None:
    """Whether the link is slow now: `figure` (the window's smallest round trip; None: no sample) against the
    thresholds, with hysteresis around the previous judgement (None: none yet). No sample: the previous one stands."""
    if figure is None:
        return previously_slow
    if previously_slow:
        return figure >= FAST
    return figure >= SLOW


def carrier(agent_runs: bool, has_channel: bool, slow: bool | None) -> str | None:
    """What carries a new connection: "agent", "ssh" (ssh's own channel), or None (nothing now: reconnecting).
    The agent on a slow link (one round trip a request, compression, pacing) and wherever ssh forwards nothing
    (a found log server, the SOCKS method's other hosts); ssh's own channel on a fast link (the agent's hop costs
    more than the round trip it saves; also with `transport = "agent"`, which only insists that the agent runs)
    and until the link is judged (the readiness check's connections, handed to ssh, are its first samples)."""
    if not agent_runs:
        return "ssh" if has_channel else None
    if not has_channel or slow:
        return "agent"
    return "ssh"


class Gauge:
    """Round-trip samples through the ssh connection, the figure and the judgement they give. Fed from the
    listeners' loop thread, read from the supervisor's too: appends and the judgement's one assignment are atomic
    under the GIL, and readers copy the deque."""

    def __init__(self, samples: int = SAMPLES, window: float = WINDOW) -> None:
        self.window = window
        self._samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=samples)  # (when, rtt)
        self._slow: bool | None = None
        self.last: float | None = None  # the newest sample
        self.count = 0
        self.on_change: Callable[[], None] | None = None  # called (from the feeding thread) when the judgement flips
        # Called (from the feeding thread) when a sample disagrees with the judgement: more samples are wanted soon.
        self.on_doubt: Callable[[], None] | None = None

    def add(self, rtt: float, now: float | None = None) -> bool:
        """A sample; whether it disagrees with the judgement now (then more samples should follow soon)."""
        now = time.monotonic() if now is None else now
        self._samples.append((now, rtt))
        self.last = rtt
        self.count += 1
        return judge(None, rtt) != self._judge(now)

    def add_free(self, rtt: float) -> None:
        """A sample taken for free (a channel's confirmation through ssh): added, and one that disagrees calls
        on_doubt (the agent's keepalive, whose own samples ask through add's answer, then pings a burst)."""
        if self.add(rtt) and self.on_doubt is not None:
            self.on_doubt()

    def figure(self, now: float | None = None) -> float | None:
        """The smallest of the newest samples that are under `window` seconds old (None: none)."""
        now = time.monotonic() if now is None else now
        return min((rtt for when, rtt in list(self._samples) if now - when <= self.window), default=None)

    def slow(self, now: float | None = None) -> bool | None:
        """The judgement now (None: never measured); no recent sample keeps the last one."""
        return self._judge(now)

    def _judge(self, now: float | None) -> bool | None:
        slow = judge(self._slow, self.figure(now))
        if slow != self._slow:
            self._slow = slow
            if self.on_change is not None:
                self.on_change()
        return slow
