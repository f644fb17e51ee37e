"""A home link in a process: frames between two interfaces pass a bounded bottleneck queue at the link's rate,
then a one-way delay; standard library only (it is run by path inside the Centre's wire namespace)."""

from __future__ import annotations

import argparse
import collections
import os
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_VNET_HDR = 15  # frames keep their GSO and checksum-offload state: no segmenting or checksumming here
PACKET_IGNORE_OUTGOING = 23  # our own sends must not come back to us
VNET_HDR = struct.Struct("=BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
ETH_HLEN = 14
FCS = 4  # counted per frame on the wire, as a real Ethernet link would
RECV_SIZE = 1 << 18


def wire_bytes(frame: memoryview) -> int:
    """Bytes this frame occupies on the link: a GSO frame is many MTU-sized frames, each with its own headers."""
    gso_size: int = VNET_HDR.unpack_from(frame)[3]
    length = len(frame) - VNET_HDR.size
    if gso_size == 0 or length < ETH_HLEN + 40:
        return length + FCS
    ip = VNET_HDR.size + ETH_HLEN
    tcp = ip + (frame[ip] & 0x0F) * 4
    headers = tcp - VNET_HDR.size + (frame[tcp + 12] >> 4) * 4 if len(frame) > tcp + 12 else tcp - VNET_HDR.size
    payload = max(0, length - headers)
    segments = max(1, -(-payload // gso_size))
    return length + (segments - 1) * headers + segments * FCS


class Direction:
    """One way of the link: a drop-tail queue drained at `rate`, then `delay` in flight (a FIFO: both constant)."""

    def __init__(self, out: socket.socket, mbit: float, delay: float, limit: int) -> None:
        self.out = out
        self.byte_time = 8 / (mbit * 1e6)
        self.delay = delay
        self.limit = limit
        self.busy_until = 0.0  # when the last accepted frame has been serialised onto the link
        self.flight: collections.deque[tuple[float, bytes]] = collections.deque()
        self.dropped = 0
        self.passed = 0

    def arrive(self, now: float, frame: bytes, size: int) -> None:
        start = max(now, self.busy_until)
        if (start - now) / self.byte_time + size > self.limit:
            self.dropped += 1  # a full bottleneck buffer: the sender's TCP sees a loss, as at home
            return
        self.busy_until = start + size * self.byte_time
        self.flight.append((self.busy_until + self.delay, frame))

    def deliver(self, now: float) -> float | None:
        """Send every frame whose time has come; when the next one is due (None: nothing in flight)."""
        flight = self.flight
        while flight and flight[0][0] <= now:
            frame = flight.popleft()[1]
            try:
                self.out.send(frame)
                self.passed += 1
            except OSError:
                self.dropped += 1  # the far interface is down (a cut link): the frame is lost
        return flight[0][0] if flight else None


def open_port(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    # Room for bursts while this process is scheduled out; frames still pass the queue model on arrival.
    s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE
    s.bind((ifname, ETH_P_ALL))
    s.setblocking(False)
    return s


def serve(home_if: str, jump_if: str, rtt: float, down_mbit: float, up_mbit: float, buffer: float) -> None:
    home, jump = open_port(home_if), open_port(jump_if)
    # The queue holds `buffer` seconds of data at each direction's rate: a real bottleneck buffer, not megabytes.
    up = Direction(jump, up_mbit, rtt / 2, max(int(up_mbit * 1e6 / 8 * buffer), 3 * 1514))
    down = Direction(home, down_mbit, rtt / 2, max(int(down_mbit * 1e6 / 8 * buffer), 3 * 1514))
    inbound = {home.fileno(): (home, up), jump.fileno(): (jump, down)}
    buf = bytearray(RECV_SIZE)
    view = memoryview(buf)
    clock = time.monotonic
    print("ready", flush=True)
    while True:
        now = clock()
        due = [t for t in (up.deliver(now), down.deliver(now)) if t is not None]
        timeout = max(0.0, min(due) - clock()) if due else None
        ready, _, _ = select.select(list(inbound), [], [], timeout)
        now = clock()
        for fd in ready:
            sock, direction = inbound[fd]
            while True:
                try:
                    n = sock.recv_into(buf)
                except BlockingIOError:
                    break
                if n >= VNET_HDR.size + ETH_HLEN:
                    direction.arrive(now, bytes(view[:n]), wire_bytes(view[:n]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("home_if")
    ap.add_argument("jump_if")
    ap.add_argument("--rtt", type=float, required=True, help="round trip, seconds (half each way)")
    ap.add_argument("--down-mbit", type=float, required=True)
    ap.add_argument("--up-mbit", type=float, required=True)
    ap.add_argument("--buffer", type=float, required=True, help="bottleneck queue, seconds of data at the rate")
    a = ap.parse_args()
    try:
        serve(a.home_if, a.jump_if, a.rtt, a.down_mbit, a.up_mbit, a.buffer)
    except KeyboardInterrupt:
        return 0
    except OSError as e:
        print(f"linkemu: {e}", file=sys.stderr)
        return 1
    return 0


def realtime() -> None:
    """A real link never waits for a CPU: run before every ordinary process (it blocks in select, never spins)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except OSError:
        os.nice(-10)


if __name__ == "__main__":
    realtime()
    sys.exit(main())
