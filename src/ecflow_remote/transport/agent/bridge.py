"""An agent stream as an asyncio transport: the listeners' protocols serve it exactly like a socket to ssh."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ecflow_remote.transport.agent.channel import Channel
from ecflow_remote.transport.agent.frames import SEND_HIGH, MuxError

CLOSE_GRACE = 30.0  # seconds a closed connection's stream waits for the far side's EOF before it is reset


class ChannelTransport(asyncio.Transport):
    """Drives `protocol` (connection_made, data_received, eof_received, connection_lost, pause/resume_writing)
    from a Channel, with callbacks rather than a reader task: each frame's data reaches the protocol in the same
    loop iteration it arrives in. Backpressure both ways: pause_reading() holds the stream's credit (the far side
    stops after a window), and a send buffer over SEND_HIGH pauses the protocol's writer until it drains."""

    def __init__(self, chan: Channel, protocol: asyncio.BaseProtocol, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__({"peername": (chan.host, chan.port)})
        self._chan = chan
        self._protocol: Any = protocol
        self._loop = loop
        self._closing = False
        self._lost = False
        self._eof_in = False
        self._eof_out = False
        self._writing_paused = False
        protocol.connection_made(self)
        chan.set_sink(self)

    # -- what the Channel calls (its sink)
    def data(self, data: bytes) -> None:
        if not self._closing:
            self._protocol.data_received(data)

    def eof(self) -> None:
        self._eof_in = True
        if self._closing:
            self._lose(None)
            return
        keep_open = self._protocol.eof_received()
        if not keep_open:
            self.close()
        elif self._eof_out:
            self._lose(None)

    def error(self, exc: BaseException | None) -> None:
        self._lose(exc if isinstance(exc, Exception) else ConnectionResetError(str(exc)))

    # -- asyncio.Transport
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._eof_out or not data:
            return
        try:
            self._chan.write(bytes(data))
        except MuxError as e:
            self._lose(e)
            return
        if not self._writing_paused and self._chan.buffered > SEND_HIGH:
            self._writing_paused = True
            self._protocol.pause_writing()
            self._loop.create_task(self._drained())

    async def _drained(self) -> None:
        with contextlib.suppress(MuxError):
            await self._chan.drain()
        self._writing_paused = False
        if not self._lost:
            self._protocol.resume_writing()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._eof_out or self._lost:
            return
        self._eof_out = True
        self._chan.write_eof()
        if self._eof_in:
            self._lose(None)

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def close(self) -> None:
        """What was written still goes, then EOF; the stream ends when the far side's EOF comes back (the far
        end closes its connection after ours)."""
        if self._closing or self._lost:
            return
        self._closing = True
        self.write_eof()
        if self._eof_in:
            self._lose(None)
        else:
            # Nobody reads any more: the far side's remaining bytes must not stall on credit; and a far end that
            # never closes must not keep the stream for ever.
            self._chan.resume_sink()
            self._loop.call_later(CLOSE_GRACE, self.abort)

    def abort(self) -> None:
        if self._lost:
            return
        self._lose(None)  # first: the stream's own failure below must not reach the protocol as an error
        self._chan.abort("the local connection was reset")

    def pause_reading(self) -> None:
        self._chan.pause_sink()

    def resume_reading(self) -> None:
        self._chan.resume_sink()

    def is_reading(self) -> bool:
        return not self._chan._sink_paused

    def get_write_buffer_size(self) -> int:
        return self._chan.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # the stream's own SEND_HIGH and credit rule here

    # -- internals
    def _lose(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._loop.call_soon(self._protocol.connection_lost, exc)
