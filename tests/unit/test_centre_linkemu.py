"""The home-link emulator's queue model: rate, delay and a bounded drop-tail buffer, on a clock of our own."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from centre.linkemu import FCS, VNET_HDR, Direction, wire_bytes


class Out:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, frame: bytes) -> int:
        self.sent.append(frame)
        return len(frame)


def frame(size: int) -> bytes:
    return bytes(VNET_HDR.size) + bytes(size)


def test_frames_leave_after_serialisation_plus_delay() -> None:
    out = Out()
    d = Direction(out, mbit=8, delay=0.015, limit=10_000)  # 1 byte per µs
    d.arrive(0.0, frame(1000), 1000)
    d.arrive(0.0, frame(1000), 1000)
    assert d.deliver(0.0159) == pytest.approx(0.016)  # first: 1 ms on the wire + 15 ms
    assert d.deliver(0.01601) == pytest.approx(0.017)
    assert len(out.sent) == 1
    assert d.deliver(0.01701) is None and len(out.sent) == 2


def test_queue_is_bounded_and_drops_the_tail() -> None:
    out = Out()
    d = Direction(out, mbit=8, delay=0.0, limit=5000)
    for _ in range(20):  # a burst far faster than the link
        d.arrive(0.0, frame(1000), 1000)
    assert len(d.flight) == 5 and d.dropped == 15
    # Once the queue drains, frames are accepted again.
    d.arrive(0.003, frame(1000), 1000)
    assert len(d.flight) == 6


def test_a_gso_frame_counts_as_its_segments() -> None:
    headers = 14 + 20 + 32
    body = bytearray(VNET_HDR.size + headers + 3 * 1448)
    struct.pack_into("=BBHHHH", body, 0, 1, 1, headers, 1448, 0, 0)
    body[VNET_HDR.size + 14] = 0x45  # IPv4, 20-byte header
    body[VNET_HDR.size + 14 + 9] = 6  # TCP
    body[VNET_HDR.size + 34 + 12] = 8 << 4  # 32-byte TCP header
    view: Any = memoryview(bytes(body))
    assert wire_bytes(view) == 3 * (headers + 1448 + FCS)
    assert wire_bytes(memoryview(frame(60))) == 60 + FCS
