"""The link's figure from round trips measured through ssh, and where each new connection goes by it."""

from __future__ import annotations

import pytest

from ecflow_remote.transport import link
from ecflow_remote.transport.link import Gauge, carrier, judge


@pytest.mark.parametrize(
    ("previous", "figure", "expected"),
    [
        (None, None, None),  # never measured
        (None, 0.0008, False),  # a LAN
        (None, 0.030, True),  # a home link
        (False, 0.008, False),  # between the thresholds: the judgement stands (no flapping)
        (True, 0.008, True),
        (True, 0.004, False),  # clearly fast again
        (None, 0.007, False),  # a LAN through a loaded laptop's four processes
        (False, link.SLOW, True),
        (True, None, True),  # no sample in the window (an idle plain tunnel): the last judgement stands
    ],
)
def test_judge(previous: bool | None, figure: float | None, expected: bool | None) -> None:
    assert judge(previous, figure) is expected


@pytest.mark.parametrize(
    ("agent", "channel", "slow", "expected"),
    [
        (True, True, True, "agent"),  # a home link: one round trip a request, compression, pacing
        (True, True, False, "ssh"),  # a LAN: ssh's own channel is quicker
        (True, True, None, "ssh"),  # not measured yet (the agent has just started)
        (True, False, False, "agent"),  # nothing forwarded there by ssh (a found log server)
        (False, True, True, "ssh"),  # no agent (plain, no python3 there, or it died)
        (False, False, None, None),  # reconnecting
    ],
)
def test_carrier(agent: bool, channel: bool, slow: bool | None, expected: str | None) -> None:
    assert carrier(agent, channel, slow) == expected


def test_the_figure_is_the_smallest_recent_round_trip() -> None:
    gauge = Gauge(samples=3)
    assert gauge.figure(0.0) is None and gauge.slow(0.0) is None
    assert not gauge.add(0.012, 0.0)  # a busy start: one slow sample on a LAN...
    assert gauge.slow(0.0) is True
    assert not gauge.add(0.0007, 0.1)  # ...corrected by the next at once (the smallest counts: nothing more asked)
    gauge.add(0.0015, 0.2)
    assert gauge.figure(0.2) == 0.0007 and gauge.slow(0.2) is False


def test_one_slow_sample_is_outvoted_and_a_move_is_seen_within_a_burst() -> None:
    gauge = Gauge(samples=3)
    for t in range(5):
        assert not gauge.add(0.0008, float(t))  # the office: every sample agrees
    assert not gauge.add(0.0009, 5.0)
    assert gauge.add(0.015, 8.0)  # a busy moment: disagrees, so the keepalive asks again...
    assert not gauge.add(0.0008, 8.2) and gauge.slow(8.2) is False  # ...and the link is still the office's
    assert gauge.add(0.031, 11.0) and gauge.slow(11.0) is False  # home, from here: the first sample asks for more
    gauge.add(0.030, 11.2)
    assert gauge.slow(11.2) is False  # the office's last sample still counts...
    gauge.add(0.032, 11.4)
    assert gauge.slow(11.4) is True and gauge.figure(11.4) == 0.030  # ...not once three home samples came
    assert not gauge.add(0.0009, 20.0) and gauge.slow(20.0) is False  # back at the office: the next sample says so


def test_an_idle_gauge_keeps_its_judgement() -> None:
    gauge = Gauge(window=30.0)
    gauge.add(0.030, 0.0)
    assert gauge.figure(100.0) is None and gauge.slow(100.0) is True


def test_a_flip_wakes_whoever_shows_it() -> None:
    gauge, flips = Gauge(), []
    gauge.on_change = lambda: flips.append(gauge.slow(0.0))
    gauge.add(0.030, 0.0)
    gauge.add(0.031, 0.1)
    gauge.add(0.0005, 0.2)
    assert len(flips) == 2


def test_a_free_sample_that_disagrees_asks_the_agent_for_more() -> None:
    gauge, asked = Gauge(), []
    gauge.on_doubt = lambda: asked.append(gauge.last)
    gauge.add_free(0.0008)  # the first: nothing judged yet, it agrees with itself
    gauge.add_free(0.0009)
    assert asked == []
    gauge.add_free(0.031)  # a new connection's channel took a home link's round trip: a burst of pings
    assert asked == [0.031] and gauge.slow() is False  # one sample judges nothing: the burst's pings will
    assert gauge.add(0.030)  # the keepalive's own samples answer through add's result, never on_doubt
    assert asked == [0.031]
