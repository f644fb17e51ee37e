"""Pacing on both ends: on a slow link, bytes in flight grow while the link's queue stays short, and shrink when not.

ssh's channel window (2 MB) and the kernel's socket buffers would otherwise let seconds of a big output queue up
between the two ends, and a small reply behind them waits that long (bytes queued / link rate). Each end
acknowledges the wire bytes it has read (ACK frames); the sender keeps what is sent but not yet acknowledged under
a limit (`cap`) steered by delay, as TCP Vegas and LEDBAT do: every ACK times the newest bytes it covers, and once a
round trip the smallest of those times, less the link's own round trip, is the queue the stream keeps standing.
Short: the cap grows (doubling until the first queue is seen, then by a quarter); long: it shrinks. So a big output
keeps the link full with a few milliseconds of queue, and a ping behind it waits about that, not the 2 MB. On a
fast link (round trip under SLOW_LINK_RTT: the same site) nothing is paced, as queues there drain in microseconds.

Far-side module (Python 3.6, standard library only): see frames.py.
"""

import collections
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from typing import Deque, Tuple

SLOW_LINK_RTT = 0.005  # seconds: above this the link is a home link (pace, compress what compresses)
ACK_EVERY = 16 << 10  # wire bytes read between two ACKs
START_INFLIGHT = 256 << 10  # the cap before anything is measured: a fresh stream starts at once
MIN_INFLIGHT = 4 * ACK_EVERY  # never less (a 10 Mbit/s link at 30 ms holds 37 KB)
MAX_INFLIGHT = 32 << 20  # nor more (a bandwidth-delay product no home link has)
RTT_MEMORY = 10.0  # seconds a round-trip sample counts for the minimum
# The standing queue (seconds, a fraction of the round trip, with a floor for the timing noise of busy processes):
# below QUEUE_LOW the link is not full yet and the cap grows; above it the link is full, its delivery rate is the
# link's, and the cap becomes that rate times the round trip plus QUEUE_TARGET.
QUEUE_LOW, QUEUE_LOW_FLOOR = 0.10, 0.002
QUEUE_TARGET, QUEUE_TARGET_FLOOR = 0.25, 0.004
GROW = 1.25  # the cap's step per round trip while the queue is short (doubling before the first queue)
RATE_ROUNDS = 8  # the link's rate: the best of this many rounds' delivery rates (one round's is noisy: ±30 %)
IDLE_RESTART = 0.5  # seconds without a write after which the cap doubles again until a queue stands
SENT_RECORDS = 4096  # (offset, time) pairs kept to time ACKs: plenty for a cap of writes of up to 64 KiB


class Pacer:
    """How many wire bytes may be in flight; fed with round trips (pings), what is sent and the peer's ACKs."""

    def __init__(self) -> None:
        self.acked = 0  # wire bytes the peer has read
        self.cap = START_INFLIGHT  # wire bytes allowed in flight on a slow link
        self._rtts: "Deque[Tuple[float, float]]" = collections.deque()  # (when, round trip)
        self._sent: "Deque[Tuple[int, float]]" = collections.deque()  # (wire offset written, when)
        self._starting = True  # doubling until the first standing queue
        self._sent_last: "Optional[float]" = None
        self._round_start, self._round_acked, self._round_end = 0.0, 0, 0.0
        self._round_min: "Optional[float]" = None  # the smallest ACK time this round
        self._round_full = False  # whether the cap was used up this round (else growing it proves nothing)
        self._rates: "Deque[float]" = collections.deque(maxlen=RATE_ROUNDS)
        self._queued_rounds = 0  # rounds in a row that saw a queue

    @property
    def min_rtt(self) -> "Optional[float]":
        return self._rtts[0][1] if self._rtts else None

    def slow_link(self) -> bool:
        rtt = self.min_rtt
        return rtt is not None and rtt >= SLOW_LINK_RTT

    def on_rtt(self, rtt: float, now: float) -> None:
        rtts = self._rtts
        while rtts and rtts[-1][1] >= rtt:
            rtts.pop()  # a monotonic deque (every ACK is a sample): the front is the window's minimum
        rtts.append((now, rtt))
        while now - rtts[0][0] > RTT_MEMORY and len(rtts) > 1:
            rtts.popleft()

    def on_sent(self, start: int, end: int, now: float) -> None:
        """Wire bytes [start, end) were written at `now`. The first ACK_EVERY of them time the write: the peer
        acknowledges that much at a time, and more would add their own crossing of the link to the sample."""
        if self._sent_last is not None and now - self._sent_last > IDLE_RESTART:
            self._starting = True  # after a pause the link may be another's: find its rate again, doubling
        self._sent_last = now
        self._sent.append((min(end, start + ACK_EVERY), now))
        if len(self._sent) > SENT_RECORDS:
            self._sent.popleft()

    def on_ack(self, total: int, now: float) -> None:
        if total <= self.acked:
            return
        self.acked = total
        # The newest write this ACK covers: its bytes were read just now, so the time is theirs alone (an older
        # write's time would include the wait of the bytes read in the same burst).
        written = None
        while self._sent and self._sent[0][0] <= total:
            written = self._sent.popleft()[1]
        if written is not None:
            sample = now - written
            self.on_rtt(sample, now)
            self._round_min = sample if self._round_min is None else min(self._round_min, sample)
        self._end_round(now)

    def _end_round(self, now: float) -> None:
        rtt = self.min_rtt
        if rtt is None or now < self._round_end:
            return
        if self._round_min is not None and self._round_full and rtt >= SLOW_LINK_RTT:
            self._rates.append((self.acked - self._round_acked) / max(now - self._round_start, 1e-3))
            rate = max(self._rates)
            own = ACK_EVERY / rate if rate > 0 else 0.0  # a sample's own crossing, at the link's rate
            queued = self._round_min - rtt - own > max(QUEUE_LOW * rtt, QUEUE_LOW_FLOOR)
            self._queued_rounds = self._queued_rounds + 1 if queued else 0
            cap = float(self.cap)
            if self._queued_rounds >= 2:
                # A standing queue (one round's may be a burst's, or the rate still ramping up): set, not stepped,
                # as the queue seen now is what the cap of a round trip ago made.
                self._starting = False
                cap = rate * (rtt + own + max(QUEUE_TARGET * rtt, QUEUE_TARGET_FLOOR))
            elif not queued:
                cap = self.cap * (2.0 if self._starting else GROW)
            self.cap = max(MIN_INFLIGHT, min(MAX_INFLIGHT, int(cap)))
        self._round_min = None
        self._round_full = False
        self._round_start, self._round_acked, self._round_end = now, self.acked, now + rtt

    def limit(self) -> "Optional[int]":
        """Wire bytes allowed in flight, or None for no limit (fast link, or no round trip measured yet)."""
        return self.cap if self.slow_link() else None

    def room(self, sent: int) -> "Optional[int]":
        """How many more wire bytes may go now, given `sent` in all; None: no limit."""
        limit = self.limit()
        if limit is None:
            return None
        room = limit - (sent - self.acked)
        if room <= limit // 4:
            self._round_full = True
        return room
