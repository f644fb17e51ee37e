"""Pacing: nothing paced on a fast link; on a slow one the cap keeps the link full with a short queue."""

from __future__ import annotations

from ecflow_remote.transport.agent.pace import MIN_INFLIGHT, RTT_MEMORY, SLOW_LINK_RTT, START_INFLIGHT, Pacer


def run_link(pacer: Pacer, rate: float, rtt: float, seconds: float, start: float = 0.0) -> tuple[float, float]:
    """A sender that writes whenever the pacer allows (64 KiB at most at a time) into a link of `rate` bytes/s and
    `rtt`, whose ACKs come back when the bytes have crossed it. Returns (delivery rate over the second half, the
    queue in seconds at the end)."""
    sent, link_free, acks = pacer.acked, start, []
    half, delivered_at_half = start + seconds / 2, None
    steps = int(seconds / 0.0005)
    for i in range(steps):
        now = start + i * 0.0005
        while acks and acks[0][0] <= now:
            pacer.on_ack(acks.pop(0)[1], now)
        if delivered_at_half is None and now >= half:
            delivered_at_half = pacer.acked
        room = pacer.room(sent)
        if room is not None and room > 0:
            n = min(room, 64 << 10)
            pacer.on_sent(sent, sent + n, now)
            # The peer acknowledges every 16 KiB it reads, as each piece arrives.
            for piece in range(0, n, 16 << 10):
                size = min(16 << 10, n - piece)
                link_free = max(link_free, now) + size / rate
                acks.append((link_free + rtt, sent + piece + size))
            sent += n
    end = start + steps * 0.0005
    assert delivered_at_half is not None
    return (pacer.acked - delivered_at_half) / (end - half), max(0.0, link_free - end)


def test_nothing_is_paced_before_a_round_trip_or_on_a_fast_link() -> None:
    pacer = Pacer()
    assert pacer.limit() is None and pacer.room(10**9) is None and not pacer.slow_link()
    pacer.on_rtt(SLOW_LINK_RTT / 10, now=0.0)
    assert pacer.limit() is None and not pacer.slow_link()


def test_a_new_stream_may_send_at_once_and_the_room_is_the_cap_less_what_is_unacknowledged() -> None:
    pacer = Pacer()
    pacer.on_rtt(0.040, now=0.0)
    pacer.on_rtt(0.300, now=0.1)  # a ping queued behind a transfer: the minimum is the link's
    assert pacer.slow_link() and pacer.min_rtt == 0.040
    assert pacer.limit() == START_INFLIGHT
    assert pacer.room(1000) == START_INFLIGHT - 1000


def test_on_a_home_link_the_link_stays_full_and_the_queue_short() -> None:
    for rate, rtt in ((12.5e6, 0.030), (6.25e6, 0.040), (2.5e6, 0.080)):  # 100 Mbit/s at 30 ms, ...
        pacer = Pacer()
        pacer.on_rtt(rtt, now=0.0)
        delivered, queue = run_link(pacer, rate, rtt, seconds=3.0)
        assert delivered > 0.95 * rate, (rate, delivered)
        # ssh's window alone would let 2 MB queue: 160-320 ms here. The cap holds it near a quarter round trip.
        assert queue < 0.25 * rtt + 0.010, (rate, queue)


def test_a_standing_queue_brings_the_cap_down_and_an_unused_cap_does_not_grow() -> None:
    pacer = Pacer()
    pacer.on_rtt(0.030, now=0.0)
    run_link(pacer, 12.5e6, 0.030, seconds=2.0)
    grown = pacer.cap
    assert grown > 12.5e6 * 0.030  # at least the bandwidth-delay product
    # The link slows to a fifth: a queue stands, and the cap follows the new rate.
    delivered, queue = run_link(pacer, 2.5e6, 0.030, seconds=2.0, start=2.0)
    assert pacer.cap < grown / 3 and pacer.cap >= MIN_INFLIGHT
    assert delivered > 0.95 * 2.5e6 and queue < 0.25 * 0.030 + 0.010
    # A reader that takes little (nothing more is written): ACKs come, the cap stays.
    sent, caps = pacer.acked, []
    for i in range(100):
        now = 5.0 + i * 0.01
        pacer.room(sent)
        pacer.on_sent(sent, sent + 1000, now)
        sent += 1000
        pacer.on_ack(sent, now + 0.030)
        caps.append(pacer.cap)
    assert len(set(caps[5:])) == 1  # (the first round was still the busy link's)


def test_the_minimum_round_trip_is_the_recent_one() -> None:
    pacer = Pacer()
    pacer.on_rtt(0.020, now=0.0)
    pacer.on_rtt(0.050, now=1.0)
    assert pacer.min_rtt == 0.020
    pacer.on_rtt(0.060, now=RTT_MEMORY + 0.5)  # the 20 ms sample is forgotten, the 50 ms one not yet
    assert pacer.min_rtt == 0.050
