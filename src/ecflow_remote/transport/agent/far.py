"""The agent's far end: relaying a stream to a TCP connection, the pipe over ssh's stdin/stdout, far_main()."""

import asyncio
import contextlib
import errno
import os
import socket
import struct
import sys
import time
from typing import Any, Dict, List, Optional, Tuple  # noqa: F401 (List: in a type comment, for 3.6)

from ecflow_remote.transport.agent.channel import Channel
from ecflow_remote.transport.agent.frames import (
    CAPABILITIES,
    CHUNK,
    COMPRESS_BELOW,
    READ_SIZE,
    RESOLVE_TTL,
    VERSION,
    WATER,
    WINDOW,
    MuxError,
)
from ecflow_remote.transport.agent.mux import Mux

RTT_PING_EVERY = 2.0  # while streams are open; none while none is (an agent standing by costs the link nothing)
RTT_PING_TIMEOUT = 10.0


def reset_connection(writer: Any) -> None:
    """Close with a TCP reset (SO_LINGER 0), so the peer sees an error, never a clean but empty reply."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def relay(chan: Channel, reader: Any, writer: Any) -> None:
    """Copy between a stream and a TCP connection (asyncio streams) both ways, with half closes; on a reset,
    an open failure or a dead session the TCP connection is aborted (its peer sees a reset, never a hang)."""

    async def upstream() -> None:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                chan.write_eof()
                return
            chan.write(data)
            await chan.drain()

    async def downstream() -> None:
        while True:
            data = await chan.read()
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    up = asyncio.ensure_future(upstream())
    down = asyncio.ensure_future(downstream())
    try:
        pending: "Any" = {up, down}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
    except MuxError:
        reset_connection(writer)
    except Exception as e:  # (the TCP side failed: the stream is reset with the reason)
        chan.abort("connection to %s:%d failed: %s" % (chan.host, chan.port, e))
        reset_connection(writer)
    finally:
        for task in (up, down):
            task.cancel()
        writer.close()


# ------------------------------------------------------------------------------------------- the far end


def open_error(e: BaseException) -> "Tuple[str, str]":
    """(code, words) for a failed connect() at the far end."""
    if isinstance(e, asyncio.TimeoutError):
        return "timeout", "timed out"
    if isinstance(e, socket.gaierror):
        return "unknown-host", "unknown host (%s)" % (e.strerror or e,)
    if isinstance(e, ConnectionRefusedError):
        return "refused", "connection refused"
    if isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable", "no route to host"
    return "error", str(e) or type(e).__name__


class FdPipe(object):
    """A non-blocking file descriptor (ssh's stdin or stdout) with the pipe interface the Mux wants."""

    def __init__(self, loop: Any, fd: int) -> None:
        self.loop = loop
        self.fd = fd
        os.set_blocking(fd, False)
        self._buf = bytearray()
        self._waiter: "Optional[asyncio.Future[None]]" = None
        self._error: "Optional[BaseException]" = None
        self._reader = asyncio.StreamReader(limit=2 * READ_SIZE)

    # reading (stdin)
    def start_reading(self) -> None:
        self.loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self._reader.feed_data(data)
        else:
            self.loop.remove_reader(self.fd)
            self._reader.feed_eof()

    async def read(self, n: int) -> bytes:
        return await self._reader.read(n)

    # writing (stdout)
    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        if not self._buf:
            try:
                n = os.write(self.fd, data)
            except (BlockingIOError, InterruptedError):
                n = 0
            data = data[n:]
            if not data:
                return
            self.loop.add_writer(self.fd, self._on_writable)
        self._buf += data

    def _on_writable(self) -> None:
        try:
            n = os.write(self.fd, self._buf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._error = e
            self.loop.remove_writer(self.fd)
            self._wake()
            return
        del self._buf[:n]
        if not self._buf:
            self.loop.remove_writer(self.fd)
        if len(self._buf) < WATER // 2:
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def buffered(self) -> int:
        return len(self._buf)

    async def wait_drained(self) -> None:
        while len(self._buf) >= WATER // 2 and self._error is None:
            self._waiter = self.loop.create_future()
            await self._waiter
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        pass


async def far_session(config: Dict[str, Any]) -> None:
    loop = asyncio.get_event_loop()
    stdin = FdPipe(loop, 0)
    stdout = FdPipe(loop, 1)
    timeout = float(config.get("connect_timeout", 10.0))

    resolved = {}  # type: Dict[Tuple[str, int], Tuple[float, List[Any]]]

    async def connect(host: str, port: int) -> "Tuple[asyncio.StreamReader, asyncio.StreamWriter]":
        # Names are looked up once per RESOLVE_TTL: a lookup runs in a thread (a hop that costs more than the
        # rest of a LAN request), and every ecFlow request is a new connection to the same few hosts.
        now = time.monotonic()
        cached = resolved.get((host, port))
        if cached is None or now - cached[0] > RESOLVE_TTL:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            cached = (now, [info[4] for info in infos])
            resolved[(host, port)] = cached
        error = None  # type: Optional[BaseException]
        for address in cached[1]:
            try:
                return await asyncio.open_connection(address[0], address[1], limit=2 * READ_SIZE)
            except OSError as e:
                error = e
        resolved.pop((host, port), None)
        raise error or OSError("no address for %s" % host)

    streams_opened = asyncio.Event()

    async def on_open(chan: Channel) -> None:
        streams_opened.set()
        try:
            reader, writer = await asyncio.wait_for(connect(chan.host, chan.port), timeout)
        except Exception as e:  # (every connect failure goes back to the local end, in words)
            code, words = open_error(e)
            mux.open_failed(chan, code, "%s:%d: %s" % (chan.host, chan.port, words))
            return
        if chan.error is not None:  # reset by the local end (or the session died) while connecting
            reset_connection(writer)
            return
        mux.opened(chan)
        await relay(chan, reader, writer)

    mux = Mux(
        stdin,
        stdout,
        window=int(config.get("window", WINDOW)),
        chunk=int(config.get("chunk", CHUNK)),
        compress=str(config.get("compress", "auto")),
        compress_below=float(config.get("compress_below", COMPRESS_BELOW)),
        on_open=on_open,
    )
    # The marker first: the local end skips whatever a login shell printed before it.
    stdout.write(str(config["marker"]).encode("ascii"))
    info = {
        "version": VERSION,
        "capabilities": CAPABILITIES,
        "marker": config["marker"],
        "python": "%d.%d.%d" % sys.version_info[:3],
        "pid": os.getpid(),
    }
    mux.send_hello(info)
    stdin.start_reading()
    mux.start()

    async def measure_round_trips() -> None:
        # This end paces and compresses what it sends by the link's round trip (pace.py): it measures its own, at
        # the start and while streams are open (again at once when one opens after none was).
        while mux.dead is None:
            with contextlib.suppress(Exception):  # a slow answer is no news; a dead session ends the loop
                await mux.ping(RTT_PING_TIMEOUT)
            await asyncio.sleep(RTT_PING_EVERY)
            if not mux.channels:
                streams_opened.clear()
                await streams_opened.wait()

    pinger = asyncio.ensure_future(measure_round_trips())
    await mux.wait_dead()
    pinger.cancel()


def far_main(config: Dict[str, Any]) -> None:
    """The far-side program: serve the streams until the pipe closes, then exit (nothing stays behind)."""
    sys.stdout = sys.stderr  # a stray print must never corrupt the frames on fd 1
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(far_session(config))
    finally:
        sys.stderr.flush()
        # Not a normal exit: a name lookup stuck in the executor's thread would hold the interpreter open.
        os._exit(0)
