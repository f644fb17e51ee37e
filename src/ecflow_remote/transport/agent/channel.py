"""One stream of the agent's multiplexer: receive buffer, credit, EOF, per-stream compression (both ends)."""

import asyncio
import collections
import time
import zlib
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ecflow_remote.transport.agent.frames import (
    COMPRESS_MIN,
    CREDIT,
    CREDIT_BODY,
    DATA,
    DATA_Z,
    EOF,
    HEADER,
    READ_SIZE,
    RESET,
    SEND_HIGH,
    SKIP_FIRST,
    SKIP_MAX,
    MuxError,
    StreamReset,
    compresses,
    frame,
    should_compress,
)

if TYPE_CHECKING:
    from typing import Deque


class Channel(object):
    """One stream: a byte stream in each direction, with its own credit, EOF and counters."""

    def __init__(self, mux: "Any", sid: int, host: str, port: int) -> None:
        # The Mux, typed loosely: mux.py imports this module, and importing it back would be a cycle.
        self.mux = mux
        self.sid = sid
        self.host = host
        self.port = port
        self.opened_at = time.monotonic()
        # Receive side: what the peer sent and nobody has read yet.
        self._inbuf: "Deque[bytes]" = collections.deque()
        self._inlen = 0
        self._in_eof = False
        self._unacked = 0  # consumed bytes not yet given back as credit
        self._error: "Optional[MuxError]" = None
        self._read_waiter: "Optional[asyncio.Future[None]]" = None
        self._dz: "Any" = None
        # A sink (the local side's bridge to an asyncio protocol) takes data as it arrives, without a reader task.
        self._sink: "Any" = None
        self._sink_paused = False
        # Send side.
        self._out = bytearray()
        self._credit = mux.window
        self._eof_pending = False
        self._eof_sent = False
        self._queued = False
        self._drain_waiter: "Optional[asyncio.Future[None]]" = None
        self._z: "Any" = None
        self._z_skip_until = 0
        self._z_skip = SKIP_FIRST
        # Open state: None while pending, True once the far side connected (or always, on the far side).
        self._open_result: "Optional[bool]" = None
        self._open_waiter: "Optional[asyncio.Future[None]]" = None
        self.raw_out = 0
        self.wire_out = 0
        self.raw_in = 0
        self.wire_in = 0
        self.frames_z = 0

    # --------------------------------------------------------------------------------------- public API
    @property
    def closed(self) -> bool:
        return self._error is not None or (self._in_eof and self._eof_sent and not self._inbuf)

    @property
    def error(self) -> "Optional[MuxError]":
        return self._error

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        if self._eof_pending:
            raise MuxError("write after write_eof")
        if data:
            self._out += data
            self.mux._schedule(self)

    async def drain(self) -> None:
        while len(self._out) > SEND_HIGH and self._error is None:
            self._drain_waiter = self.mux.loop.create_future()
            await self._drain_waiter
        if self._error is not None:
            raise self._error

    def write_eof(self) -> None:
        if self._error is None and not self._eof_pending:
            self._eof_pending = True
            self.mux._schedule(self)

    async def read(self, n: int = READ_SIZE) -> bytes:
        """Up to n bytes; b"" at EOF; raises the stream's error (reset, open failed, session died)."""
        while not self._inbuf:
            if self._error is not None:
                raise self._error
            if self._in_eof:
                return b""
            self._read_waiter = self.mux.loop.create_future()
            await self._read_waiter
        parts = []
        size = 0
        while self._inbuf and size < n:
            part = self._inbuf.popleft()
            if size + len(part) > n:
                self._inbuf.appendleft(part[n - size :])
                part = part[: n - size]
            parts.append(part)
            size += len(part)
        self._inlen -= size
        self._consumed(size)
        return b"".join(parts)

    async def opened(self) -> None:
        """Wait for the far side's connect(); raises OpenFailed (or the stream's error)."""
        while self._open_result is None and self._error is None:
            self._open_waiter = self.mux.loop.create_future()
            await self._open_waiter
        if self._open_result is not True and self._error is not None:
            raise self._error

    def set_sink(self, sink: "Any") -> None:
        """Deliver what arrives to sink.data(bytes) / sink.eof() / sink.error(exc) as it comes, not through read()."""
        self._sink = sink
        self._flush_sink()

    def pause_sink(self) -> None:
        """Hold incoming data (and its credit) until resume_sink(): the peer stops once the window is used."""
        self._sink_paused = True

    def resume_sink(self) -> None:
        self._sink_paused = False
        self._flush_sink()

    @property
    def buffered(self) -> int:
        """Bytes written and not yet sent (waiting for credit or for the pipe)."""
        return len(self._out)

    def abort(self, reason: str) -> None:
        """Reset the stream in both directions (the peer gets RESET)."""
        if self._error is None and not (self._in_eof and self._eof_sent):
            self.mux._send_control(frame(RESET, self.sid, reason.encode("utf-8", "replace")))
        self._fail(StreamReset(reason))

    def stats(self) -> Dict[str, Any]:
        return {
            "target": "%s:%d" % (self.host, self.port),
            "raw_out": self.raw_out,
            "wire_out": self.wire_out,
            "raw_in": self.raw_in,
            "wire_in": self.wire_in,
            "compressed_frames_out": self.frames_z,
        }

    # --------------------------------------------------------------------------------------- internals
    def _wake(self, attr: str) -> None:
        waiter = getattr(self, attr)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        setattr(self, attr, None)

    def _fail(self, error: MuxError) -> None:
        if self._error is None:
            self._error = error
            self._out = bytearray()
        for attr in ("_read_waiter", "_drain_waiter", "_open_waiter"):
            self._wake(attr)
        self.mux._forget(self)
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.error(self._error)

    def _feed(self, data: bytes) -> None:
        if self._error is not None or self._in_eof:
            return
        if data:
            self._inbuf.append(data)
            self._inlen += len(data)
            self._wake("_read_waiter")
            self._flush_sink()

    def _feed_eof(self) -> None:
        self._in_eof = True
        self._wake("_read_waiter")
        self._flush_sink()
        self._maybe_done()

    def _flush_sink(self) -> None:
        while self._sink is not None and not self._sink_paused and self._inbuf:
            data = self._inbuf.popleft()
            self._inlen -= len(data)
            self._consumed(len(data))
            self._sink.data(data)
        if self._sink is not None and not self._inbuf and self._in_eof:
            sink, self._sink = self._sink, None
            sink.eof()

    def _consumed(self, n: int) -> None:
        if self._in_eof or self._error is not None:
            return
        self._unacked += n
        # Credit in quarter windows: few CREDIT frames, and never less than 3/4 of a window in flight.
        if self._unacked >= self.mux.window // 4:
            self.mux._send_control(frame(CREDIT, self.sid, CREDIT_BODY.pack(self._unacked)))
            self._unacked = 0

    def _set_open(self, ok: bool) -> None:
        self._open_result = ok
        self._wake("_open_waiter")

    def _sendable(self) -> bool:
        if self._error is not None:
            return False
        return (bool(self._out) and self._credit > 0) or (self._eof_pending and not self._out and not self._eof_sent)

    def _take(self) -> "Optional[List[bytes]]":
        """The next frame of this stream (header and payload as separate parts), or None."""
        if self._out and self._credit > 0:
            n = min(self.mux.chunk, self._credit, len(self._out))
            chunk = bytes(self._out[:n])
            del self._out[:n]
            self._credit -= n
            if len(self._out) <= SEND_HIGH:
                self._wake("_drain_waiter")
            kind, payload = self._encode(chunk)
            self.raw_out += n
            self.wire_out += len(payload)
            return [HEADER.pack(kind, self.sid, len(payload)), payload]
        if self._eof_pending and not self._out and not self._eof_sent:
            self._eof_sent = True
            self._maybe_done()
            return [HEADER.pack(EOF, self.sid, 0)]
        return None

    def _encode(self, chunk: bytes) -> "Tuple[int, bytes]":
        mux = self.mux
        if (
            len(chunk) < COMPRESS_MIN
            or self.raw_out < self._z_skip_until
            or not should_compress(
                mux.compress,
                time.monotonic(),
                mux.last_backlog,
                mux.drain_rate,
                mux.compress_below,
                mux.pacer.slow_link(),
            )
        ):
            return DATA, chunk
        if not compresses(chunk):
            self._skip_compression()
            return DATA, chunk
        if self._z is None:
            self._z = zlib.compressobj(1, zlib.DEFLATED, -15)
        z = self._z.compress(chunk) + self._z.flush(zlib.Z_SYNC_FLUSH)
        if len(z) > 0.9 * len(chunk):
            # The probe said yes but the chunk as a whole did not shrink: it is sent compressed (the stream's
            # compressor has already seen it), but no more tries for a while.
            self._skip_compression()
        else:
            self._z_skip = SKIP_FIRST
        self.frames_z += 1
        return DATA_Z, z

    def _skip_compression(self) -> None:
        self._z_skip_until = self.raw_out + self._z_skip
        self._z_skip = min(self._z_skip * 2, SKIP_MAX)

    def _decompress(self, payload: bytes) -> bytes:
        if self._dz is None:
            self._dz = zlib.decompressobj(-15)
        return bytes(self._dz.decompress(payload))

    def _maybe_done(self) -> None:
        if self._in_eof and self._eof_sent:
            self.mux._forget(self)
