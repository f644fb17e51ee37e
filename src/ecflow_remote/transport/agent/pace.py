"""Pacing on both ends: on a slow link, bytes in flight stay near the link's bandwidth-delay product.

ssh's channel window (2 MB) and the kernel's socket buffers would otherwise let seconds of a big output queue up
between the two ends, and a small reply behind them waits that long (bytes queued / link rate). Each end
acknowledges the wire bytes it has read (ACK frames); the sender keeps what is sent but not yet acknowledged
under a limit from the measured delivery rate and the smallest round trip, like BBR's: enough to keep the link
full, little more. On a fast link (round trip under SLOW_LINK_RTT: the same site) nothing is paced, as queues
there drain in microseconds.

Far-side module (Python 3.6, standard library only): see frames.py.
"""

import collections
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from typing import Deque, Tuple

SLOW_LINK_RTT = 0.005  # seconds: above this the link is a home link (pace, compress what compresses)
ACK_EVERY = 16 << 10  # wire bytes read between two ACKs
MIN_INFLIGHT = 128 << 10  # never less in flight: a fresh stream starts at once, and ACKs can run late
GAIN = 2.0  # times the bandwidth-delay product allowed in flight (room for the rate to grow)
RTT_MEMORY = 10.0  # seconds a round-trip sample counts for the minimum
RATE_SPAN_RTTS = 2  # a delivery-rate sample spans this many round trips
RATE_MEMORY = 5.0  # seconds a delivery-rate sample counts for the maximum


class Pacer:
    """How many wire bytes may be in flight; fed with round trips (pings) and the peer's ACKs."""

    def __init__(self) -> None:
        self.acked = 0  # wire bytes the peer has read
        self._rtts: "Deque[Tuple[float, float]]" = collections.deque()  # (when, round trip)
        self._acks: "Deque[Tuple[float, int]]" = collections.deque()  # (when, acked total)
        self._rates: "Deque[Tuple[float, float]]" = collections.deque()  # (when, bytes/s), decreasing

    @property
    def min_rtt(self) -> "Optional[float]":
        return min(r for _, r in self._rtts) if self._rtts else None

    @property
    def rate(self) -> float:
        """The largest recent delivery rate, in wire bytes per second (0 before any)."""
        return self._rates[0][1] if self._rates else 0.0

    def slow_link(self) -> bool:
        rtt = self.min_rtt
        return rtt is not None and rtt >= SLOW_LINK_RTT

    def on_rtt(self, rtt: float, now: float) -> None:
        self._rtts.append((now, rtt))
        while self._rtts and now - self._rtts[0][0] > RTT_MEMORY and len(self._rtts) > 1:
            self._rtts.popleft()

    def on_ack(self, total: int, now: float) -> None:
        if total <= self.acked:
            return
        self.acked = total
        acks = self._acks
        acks.append((now, total))
        # The rate over a few round trips: a shorter span measures ACK bunching (a reader that stalled, then read
        # a burst), not the link, and an overestimate lets a queue build.
        span = max(RATE_SPAN_RTTS * (self.min_rtt or 0.0), 0.02)
        while len(acks) > 2 and now - acks[1][0] >= span:
            acks.popleft()
        then, before = acks[0]
        if now - then >= span:
            self._add_rate(now, (total - before) / (now - then))

    def _add_rate(self, now: float, rate: float) -> None:
        rates = self._rates
        while rates and rates[-1][1] <= rate:
            rates.pop()  # a monotonic deque: the front is the window's maximum
        rates.append((now, rate))
        while now - rates[0][0] > RATE_MEMORY:
            rates.popleft()

    def limit(self) -> "Optional[int]":
        """Wire bytes allowed in flight, or None for no limit (fast link, or no round trip measured yet)."""
        if not self.slow_link():
            return None
        rtt = self.min_rtt or 0.0
        return max(MIN_INFLIGHT, int(GAIN * self.rate * rtt)) + MIN_INFLIGHT

    def room(self, sent: int) -> "Optional[int]":
        """How many more wire bytes may go now, given `sent` in all; None: no limit."""
        limit = self.limit()
        return None if limit is None else limit - (sent - self.acked)
