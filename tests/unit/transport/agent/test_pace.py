"""Pacing: nothing paced on a fast link, bytes in flight near the bandwidth-delay product on a slow one."""

from __future__ import annotations

from ecflow_remote.transport.agent.pace import GAIN, MIN_INFLIGHT, SLOW_LINK_RTT, Pacer


def test_nothing_is_paced_before_a_round_trip_or_on_a_fast_link() -> None:
    pacer = Pacer()
    assert pacer.limit() is None and pacer.room(10**9) is None and not pacer.slow_link()
    pacer.on_rtt(SLOW_LINK_RTT / 10, now=0.0)
    assert pacer.limit() is None and not pacer.slow_link()


def test_a_slow_link_keeps_about_two_bandwidth_delay_products_in_flight() -> None:
    pacer = Pacer()
    pacer.on_rtt(0.040, now=0.0)
    pacer.on_rtt(0.300, now=0.1)  # a ping queued behind a transfer: the minimum is the link's
    assert pacer.slow_link() and pacer.min_rtt == 0.040
    assert pacer.limit() == 2 * MIN_INFLIGHT  # no rate yet: the floor, so a stream starts at once
    # ACKs of 6.25 MB/s (50 Mbit/s) for a second.
    for i in range(101):
        pacer.on_ack(int(i * 62_500), now=1.0 + i * 0.01)
    assert abs(pacer.rate - 6_250_000) < 1
    assert pacer.limit() == int(GAIN * 6_250_000 * 0.040) + MIN_INFLIGHT
    sent = pacer.acked + pacer.limit()  # type: ignore[operator]
    assert pacer.room(sent) == 0 and pacer.room(sent - 1000) == 1000


def test_old_acks_are_ignored_and_the_rate_is_the_recent_maximum() -> None:
    pacer = Pacer()
    pacer.on_rtt(0.030, now=0.0)
    for i in range(50):
        pacer.on_ack(i * 100_000, now=i * 0.01)  # 10 MB/s
    fast = pacer.rate
    pacer.on_ack(10, now=1.0)  # a stale total changes nothing
    assert pacer.acked == 49 * 100_000
    for i in range(1, 50):
        pacer.on_ack(49 * 100_000 + i * 10_000, now=0.49 + i * 0.01)  # then 1 MB/s: the maximum holds a while
    assert pacer.rate == fast
    for i in range(1, 700):
        pacer.on_ack(49 * 100_000 + 49 * 10_000 + i * 10_000, now=0.98 + i * 0.01)
    assert pacer.rate < fast / 5  # ...and is forgotten after RATE_MEMORY
