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
    gauge = Gauge(window=3.0)
    assert gauge.figure(0.0) is None and gauge.slow(0.0) is None
    gauge.add(0.012, 0.0)  # a busy start: one slow sample on a LAN...
    assert gauge.slow(0.0) is True
    gauge.add(0.0007, 0.1)  # ...corrected by the next one at once
    gauge.add(0.0015, 0.2)
    assert gauge.figure(0.2) == 0.0007 and gauge.slow(0.2) is False


def test_a_laptop_that_moves_to_a_slow_link_is_seen_within_the_window() -> None:
    gauge = Gauge(window=3.0)
    for t in range(5):
        gauge.add(0.0008, float(t))  # the office
    for t in range(5, 12):
        gauge.add(0.031, float(t))  # home, from t=5: the office's samples still count for a while...
        if t < 4 + 3:
            assert gauge.slow(float(t)) is False
    assert gauge.slow(8.0) is True and gauge.figure(8.0) == 0.031  # ...not beyond the window
    gauge.add(0.0009, 12.0)  # back at the office: the next sample says so
    assert gauge.slow(12.0) is False


def test_an_idle_gauge_keeps_its_judgement() -> None:
    gauge = Gauge(window=3.0)
    gauge.add(0.030, 0.0)
    assert gauge.figure(100.0) is None and gauge.slow(100.0) is True
