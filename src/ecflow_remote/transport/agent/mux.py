"""The agent's multiplexer, on both ends: many streams over one byte pipe, control first, round robin, credit."""

import asyncio
import collections
import contextlib
import json
import struct
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set

from ecflow_remote.transport.agent.channel import Channel
from ecflow_remote.transport.agent.frames import (
    ACK,
    ACK_BODY,
    BACKLOG_MEMORY,
    CHUNK,
    COMPRESS_BELOW,
    CREDIT,
    CREDIT_BODY,
    DATA,
    DATA_Z,
    EOF,
    HEADER,
    HELLO,
    MAX_PAYLOAD,
    NAMES,
    OPEN,
    OPEN_FAILED,
    OPENED,
    PING,
    PONG,
    PORT,
    READ_SIZE,
    RESET,
    WATER,
    WINDOW,
    FrameError,
    OpenFailed,
    SessionDied,
    StreamReset,
    frame,
)
from ecflow_remote.transport.agent.pace import ACK_EVERY, Pacer

if TYPE_CHECKING:
    from typing import Deque


class Mux(object):
    """Many streams over one byte pipe. The local end opens streams; the far end connects them (on_open)."""

    def __init__(
        self,
        reader: Any,
        writer: Any,
        window: int = WINDOW,
        chunk: int = CHUNK,
        compress: str = "auto",
        compress_below: float = COMPRESS_BELOW,
        on_open: "Optional[Callable[[Channel], Any]]" = None,
    ) -> None:
        self.loop = asyncio.get_event_loop()
        self.reader = reader  # async read(n) -> bytes
        self.writer = writer  # write(bytes), buffered() -> int, async wait_drained(); see StreamPipe/FdPipe
        self.window = window
        self.chunk = chunk
        self.compress = compress
        self.compress_below = compress_below
        self.on_open = on_open
        self.channels: "Dict[int, Channel]" = {}
        self._control: "Deque[bytes]" = collections.deque()
        self._ready: "Deque[Channel]" = collections.deque()
        self._kick = asyncio.Event()
        self._next_sid = 1
        self._pings: "Dict[bytes, asyncio.Future[float]]" = {}
        self._ping_seq = 0
        self.peer_hello: "Optional[Dict[str, Any]]" = None
        self._hello_waiter: "asyncio.Future[Dict[str, Any]]" = self.loop.create_future()
        self.dead: "Optional[SessionDied]" = None
        self._dead_waiter: "asyncio.Future[SessionDied]" = self.loop.create_future()
        self._tasks: "Set[asyncio.Future[Any]]" = set()
        self.last_backlog = -1e9
        self.drain_rate = 1e12
        self.last_rtt: "Optional[float]" = None
        self.wire_out = 0
        self.wire_in = 0
        self.pacer = Pacer()
        self._acked_in = 0  # wire_in when we last sent an ACK
        self.streams_total = 0
        self.pings_answered = 0  # the peer's pings (its own round-trip measurements)
        self.done_totals = {"raw_out": 0, "wire_out": 0, "raw_in": 0, "wire_in": 0}  # of forgotten streams

    # --------------------------------------------------------------------------------------- lifecycle
    def start(self, initial: bytes = b"") -> None:
        self.start_writing()
        self.start_reading(initial)

    def start_writing(self) -> None:
        """Frames go out from now on (the local end starts this right behind the far program's bytes)."""
        self._spawn(self._pump())

    def start_reading(self, initial: bytes = b"") -> None:
        """Frames are read from now on; `initial` is what came after the start marker."""
        self._spawn(self._read_loop(initial))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_dead(self) -> SessionDied:
        return await asyncio.shield(self._dead_waiter)

    async def wait_hello(self) -> Dict[str, Any]:
        return await asyncio.shield(self._hello_waiter)

    def die(self, reason: str) -> None:
        """End the session: every stream fails with SessionDied(reason), the pipe is closed."""
        if self.dead is not None:
            return
        self.dead = SessionDied(reason)
        for chan in list(self.channels.values()):
            chan._fail(self.dead)
        for fut in list(self._pings.values()):
            if not fut.done():
                fut.set_exception(self.dead)
        if not self._hello_waiter.done():
            self._hello_waiter.set_exception(self.dead)
            self._hello_waiter.exception()  # retrieved: nobody may be waiting for it
        self._dead_waiter.set_result(self.dead)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):  # the pipe may already be gone in any way
            self.writer.close()

    # --------------------------------------------------------------------------------------- streams
    def open(self, host: str, port: int) -> Channel:
        """A new stream to host:port: OPEN goes out at once, data written to it follows without waiting."""
        if self.dead is not None:
            raise self.dead
        sid = self._next_sid
        self._next_sid += 1
        chan = Channel(self, sid, host, port)
        self.channels[sid] = chan
        self.streams_total += 1
        self._send_control(frame(OPEN, sid, PORT.pack(port) + host.encode("utf-8")))
        return chan

    async def ping(self, timeout: float = 5.0) -> float:
        """Round-trip time in seconds of a PING through the whole pipe (including whatever is queued)."""
        if self.dead is not None:
            raise self.dead
        self._ping_seq += 1
        token = struct.pack("!Q", self._ping_seq)
        fut: "asyncio.Future[float]" = self.loop.create_future()
        self._pings[token] = fut
        t0 = time.monotonic()
        self._send_control(frame(PING, 0, token))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        finally:
            self._pings.pop(token, None)
        now = time.monotonic()
        self.last_rtt = now - t0
        self.pacer.on_rtt(self.last_rtt, now)
        return self.last_rtt

    def send_hello(self, info: Dict[str, Any]) -> None:
        self._send_control(frame(HELLO, 0, json.dumps(info).encode("utf-8")))

    def opened(self, chan: Channel) -> None:
        chan._set_open(True)
        self._send_control(frame(OPENED, chan.sid))

    def open_failed(self, chan: Channel, code: str, message: str) -> None:
        body = json.dumps({"code": code, "message": message}).encode("utf-8")
        self._send_control(frame(OPEN_FAILED, chan.sid, body))
        chan._fail(OpenFailed(code, message))

    # --------------------------------------------------------------------------------------- sending
    def _send_control(self, data: bytes) -> None:
        if self.dead is None:
            self._control.append(data)
            self._kick.set()

    def _schedule(self, chan: Channel) -> None:
        if not chan._queued and chan._sendable():
            chan._queued = True
            self._ready.append(chan)
            self._kick.set()

    def _forget(self, chan: Channel) -> None:
        if self.channels.get(chan.sid) is chan:
            del self.channels[chan.sid]
            for key in self.done_totals:
                self.done_totals[key] += getattr(chan, key)

    def _next_data_frame(self) -> "Optional[List[bytes]]":
        # One chunk per ready stream, round robin: a big stream never holds back a small one for more than one
        # chunk.
        while self._ready:
            chan = self._ready.popleft()
            chan._queued = False
            parts = chan._take()
            self._schedule(chan)
            if parts is not None:
                return parts
        return None

    async def _pump(self) -> None:
        try:
            while True:
                parts: "List[bytes]" = []
                size = 0
                # Control frames (credit, ACK, open, ping) first and never paced: they are tiny, everything
                # else waits for them, and the peer's pacing waits for our ACKs.
                while self._control and size < WATER:
                    part = self._control.popleft()
                    parts.append(part)
                    size += len(part)
                room = self.pacer.room(self.wire_out + size)
                while size < WATER and (room is None or room > 0):
                    more = self._next_data_frame()
                    if more is None:
                        break
                    parts.extend(more)
                    n = sum(len(p) for p in more)
                    size += n
                    if room is not None:
                        room -= n
                if parts:
                    self.writer.write(b"".join(parts))
                    self.pacer.on_sent(self.wire_out, self.wire_out + size, time.monotonic())
                    self.wire_out += size
                elif not self._control:
                    # Nothing to send, or data waiting for the peer's ACKs (on_ack kicks, as does new work).
                    self._kick.clear()
                    await self._kick.wait()
                    continue
                before = self.writer.buffered()
                if before >= WATER:
                    # The pipe is the bottleneck now: wait (shallow queue), and learn how fast it drains.
                    t0 = time.monotonic()
                    await self.writer.wait_drained()
                    t1 = time.monotonic()
                    drained = before - self.writer.buffered()
                    if t1 > t0 and drained > 0:
                        rate = drained / (t1 - t0)
                        recent = t1 - self.last_backlog < BACKLOG_MEMORY
                        self.drain_rate = 0.7 * self.drain_rate + 0.3 * rate if recent else rate
                    self.last_backlog = t1
        except asyncio.CancelledError:
            raise
        except Exception as e:  # (any failure to write ends the session, with its reason)
            self.die("cannot write to the agent's pipe: %s" % (e,))

    # --------------------------------------------------------------------------------------- receiving
    async def _read_loop(self, initial: bytes) -> None:
        buf = bytearray(initial)
        try:
            while True:
                pos = 0
                while len(buf) - pos >= HEADER.size:
                    kind, sid, n = HEADER.unpack_from(buf, pos)
                    if n > MAX_PAYLOAD or kind not in NAMES:
                        raise FrameError("bad frame header %r" % (bytes(buf[pos : pos + HEADER.size]),))
                    end = pos + HEADER.size + n
                    if len(buf) < end:
                        break
                    payload = bytes(buf[pos + HEADER.size : end])
                    pos = end
                    self.wire_in += HEADER.size + n
                    self._on_frame(kind, sid, payload)
                del buf[:pos]
                if self.wire_in - self._acked_in >= ACK_EVERY:
                    self._acked_in = self.wire_in
                    self._send_control(frame(ACK, 0, ACK_BODY.pack(self.wire_in)))
                data = await self.reader.read(READ_SIZE)
                if not data:
                    self.die("the agent's pipe closed")
                    return
                buf += data
        except asyncio.CancelledError:
            raise
        except Exception as e:  # (a broken pipe or protocol ends the session, with its reason)
            self.die("agent pipe failed: %s" % (e,))

    def _on_frame(self, kind: int, sid: int, payload: bytes) -> None:
        if kind in (DATA, DATA_Z):
            chan = self.channels.get(sid)
            if chan is not None:
                data = chan._decompress(payload) if kind == DATA_Z else payload
                chan.wire_in += len(payload)
                chan.raw_in += len(data)
                chan._feed(data)
        elif kind == CREDIT:
            chan = self.channels.get(sid)
            if chan is not None:
                chan._credit += CREDIT_BODY.unpack(payload)[0]
                self._schedule(chan)
        elif kind == EOF:
            chan = self.channels.get(sid)
            if chan is not None:
                chan._feed_eof()
        elif kind == OPEN:
            self._on_open(sid, payload)
        elif kind == OPENED:
            chan = self.channels.get(sid)
            if chan is not None:
                chan._set_open(True)
        elif kind == OPEN_FAILED:
            chan = self.channels.get(sid)
            if chan is not None:
                info = json.loads(payload.decode("utf-8"))
                chan._fail(OpenFailed(str(info.get("code")), str(info.get("message"))))
        elif kind == RESET:
            chan = self.channels.get(sid)
            if chan is not None:
                chan._fail(StreamReset(payload.decode("utf-8", "replace") or "reset by the peer"))
        elif kind == ACK:
            self.pacer.on_ack(ACK_BODY.unpack(payload)[0], time.monotonic())
            self._kick.set()
        elif kind == PING:
            self.pings_answered += 1
            self._send_control(frame(PONG, sid, payload))
        elif kind == PONG:
            fut = self._pings.get(payload)
            if fut is not None and not fut.done():
                fut.set_result(time.monotonic())
        elif kind == HELLO:
            self.peer_hello = json.loads(payload.decode("utf-8"))
            if not self._hello_waiter.done():
                self._hello_waiter.set_result(self.peer_hello)

    def _on_open(self, sid: int, payload: bytes) -> None:
        if self.on_open is None:
            self._send_control(frame(OPEN_FAILED, sid, b'{"code": "error", "message": "this end opens nothing"}'))
            return
        port = PORT.unpack(payload[: PORT.size])[0]
        chan = Channel(self, sid, payload[PORT.size :].decode("utf-8"), port)
        self.channels[sid] = chan
        self.streams_total += 1
        self._spawn(self.on_open(chan))

    def stats(self) -> Dict[str, Any]:
        totals: "Dict[str, Any]" = dict(self.done_totals)
        for chan in self.channels.values():
            for key in totals:
                totals[key] += getattr(chan, key)
        totals.update(
            wire_bytes_out=self.wire_out,
            wire_bytes_in=self.wire_in,
            streams_open=len(self.channels),
            streams_total=self.streams_total,
            rtt=self.last_rtt,
            drain_rate=self.drain_rate if self.drain_rate < 1e12 else None,
            streams={sid: chan.stats() for sid, chan in self.channels.items()},
        )
        return totals
