"""The local end of the far-side agent: start it over ssh, open streams through it, watch that it lives."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ecflow_remote.errors import AgentDied, AgentError, AgentOpenError, AgentUnavailable
from ecflow_remote.transport.agent import channel, far, frames, mux
from ecflow_remote.transport.agent.bootstrap import (
    EXIT_NO_PYTHON,
    EXIT_OLD_PYTHON,
    EXIT_SHORT_PAYLOAD,
    PYTHONS,
    Bootstrap,
)
from ecflow_remote.transport.agent.keepalive import Keepalive

MARKER_SEARCH_LIMIT = 1 << 20  # a login banner longer than this is not a banner


@dataclass(frozen=True)
class AgentOptions:
    """Tuning of one session; the defaults are the measured ones (see frames.py)."""

    window: int = frames.WINDOW
    chunk: int = frames.CHUNK
    compress: str = "auto"  # auto: only where it pays | always | never
    compress_below: float = frames.COMPRESS_BELOW
    connect_timeout: float = 10.0  # the far side's connect(): a target that never answers is refused then
    start_timeout: float = 20.0
    pythons: tuple[str, ...] = PYTHONS

    def far_config(self) -> dict[str, Any]:
        config = asdict(self)
        for local_only in ("start_timeout", "pythons"):
            config.pop(local_only)
        return config


class StreamPipe:
    """The pipe interface the Mux wants, over asyncio streams (ssh's stdout and stdin)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        # Shallow: the Mux writes only while less than WATER is queued here (see frames.WATER).
        writer.transport.set_write_buffer_limits(high=frames.WATER - 1, low=frames.WATER // 2)

    async def read(self, n: int) -> bytes:
        return await self.reader.read(n)

    def write(self, data: bytes) -> None:
        if self.writer.transport.is_closing():
            raise ConnectionResetError("the agent's stdin is closed")
        self.writer.write(data)

    def buffered(self) -> int:
        return self.writer.transport.get_write_buffer_size()

    async def wait_drained(self) -> None:
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


@dataclass
class _Tail:
    """The last few KiB of ssh's stderr, for error messages (never logged elsewhere)."""

    lines: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))

    def text(self) -> str:
        return "; ".join(line for line in self.lines if line)


def _exit_error(code: int | None, stderr: str, pythons: Sequence[str]) -> AgentError:
    if code == EXIT_NO_PYTHON:
        return AgentUnavailable(f"no python3 >= 3.6 on the far side (tried {', '.join(pythons)})")
    if code == EXIT_OLD_PYTHON:
        return AgentUnavailable("the far side's python3 is older than 3.6")
    if code == EXIT_SHORT_PAYLOAD:
        return AgentError("the agent's program was cut short on its way to the far side")
    detail = f": {stderr}" if stderr else ""
    return AgentError(f"the agent did not start (exit status {code}){detail}")


async def _find_marker(reader: asyncio.StreamReader, marker: bytes) -> tuple[bytes, bytes]:
    """(banner, rest): what a login shell printed before the marker, and the first frames after it."""
    buf = b""
    while True:
        i = buf.find(marker)
        if i >= 0:
            return buf[:i], buf[i + len(marker) :]
        data = await reader.read(65536)
        if not data:
            raise EOFError
        buf += data
        if len(buf) > MARKER_SEARCH_LIMIT:
            raise AgentError("the far side printed 1 MiB without the agent's start marker")


class AgentSession:
    """One agent: many streams to any host:port the far side can reach, over one ssh session."""

    def __init__(
        self,
        mux_: mux.Mux,
        hello: dict[str, Any],
        banner: bytes,
        process: asyncio.subprocess.Process | None,
        stderr: _Tail,
    ) -> None:
        self.mux = mux_
        self.hello = hello
        self.banner = banner
        self.process = process
        self._stderr = stderr
        self._watchers: set[asyncio.Task[Any]] = set()
        self.keeping: Keepalive | None = None  # its keepalive, once started
        if process is not None:
            self._spawn(self._watch_process(process))

    # ------------------------------------------------------------------------------------- starting
    @classmethod
    async def start(cls, argv: Sequence[str], options: AgentOptions | None = None, **spawn: Any) -> AgentSession:
        """Run `argv + [remote command]` (an ssh command line up to its destination) and start the agent;
        `spawn`: more keywords for the subprocess (env, preexec_fn).

        Raises AgentUnavailable when the far side has no python3 >= 3.6 (fall back to plain forwards), and
        AgentError for anything else (ssh failed: its own words)."""
        options = options or AgentOptions()
        boot = Bootstrap.new(options.far_config(), options.pythons)
        process = await asyncio.create_subprocess_exec(
            *argv,
            boot.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=2 * frames.READ_SIZE,
            **spawn,
        )
        assert process.stdin and process.stdout and process.stderr
        tail = _Tail()
        collector = asyncio.ensure_future(_collect(process.stderr, tail))
        try:
            session = await cls.attach(process.stdout, process.stdin, boot, options, process=process, stderr=tail)
        except BaseException:
            await _stop_process(process)
            collector.cancel()
            raise
        session._watchers.add(collector)
        collector.add_done_callback(session._watchers.discard)
        return session

    @classmethod
    async def attach(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        boot: Bootstrap,
        options: AgentOptions | None = None,
        *,
        process: asyncio.subprocess.Process | None = None,
        stderr: _Tail | None = None,
    ) -> AgentSession:
        """Start the agent over any byte pipe whose far end runs `boot.command`."""
        options = options or AgentOptions()
        tail = stderr or _Tail()
        pipe = StreamPipe(reader, writer)
        session_mux = mux.Mux(
            pipe,
            pipe,
            window=options.window,
            chunk=options.chunk,
            compress=options.compress,
            compress_below=options.compress_below,
        )
        # Frames follow the program's bytes at once: the far side must read exactly the payload and leave
        # them (the ping below fails the start otherwise), and nothing waits a round trip for the marker.
        writer.write(boot.payload)
        session_mux.start_writing()
        session_mux.send_hello({"version": frames.VERSION, "capabilities": frames.CAPABILITIES})
        ping = asyncio.ensure_future(session_mux.ping(options.start_timeout))
        # A failed start says why by itself; the ping's own failure is only a consequence.
        ping.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            async with asyncio.timeout(options.start_timeout):
                try:
                    banner, rest = await _find_marker(reader, boot.marker)
                except EOFError:
                    code = await process.wait() if process is not None else None
                    await asyncio.sleep(0.01)  # let the stderr reader take the last lines
                    raise _exit_error(code, tail.text(), options.pythons) from None
                session_mux.start_reading(rest)
                try:
                    hello = await session_mux.wait_hello()
                    await ping
                except frames.SessionDied as e:
                    raise AgentError(f"the agent started but its pipe failed: {e}") from None
        except TimeoutError:
            session_mux.die("the agent did not start")
            raise AgentError(
                f"the agent did not answer within {options.start_timeout:g}s"
                + (f": {tail.text()}" if tail.text() else "")
            ) from None
        except BaseException:
            session_mux.die("the agent did not start")
            raise
        finally:
            ping.cancel()
        if hello.get("version") != frames.VERSION or hello.get("marker") != boot.marker.decode():
            session_mux.die("version mismatch")
            raise AgentError(f"the far side runs agent protocol {hello.get('version')}, this is {frames.VERSION}")
        session_mux.last_rtt = None  # the start ping timed the ssh connection too, not the link
        return cls(session_mux, hello, banner, process, tail)

    # ------------------------------------------------------------------------------------- streams
    async def open(self, host: str, port: int, *, wait: bool = False) -> channel.Channel:
        """A stream to host:port (name resolved at the far side). Without wait it is usable at once: what is
        written follows the OPEN without waiting for the far side (one round trip per request); with wait, the
        far side's connect() result is awaited (AgentOpenError on failure)."""
        if self.mux.dead is not None:
            raise AgentDied(str(self.mux.dead))
        chan = self.stream(host, port)
        if wait:
            try:
                await chan.opened()
            except frames.OpenFailed as e:
                raise AgentOpenError(
                    f"cannot connect to {host}:{port} from the far side: {e.message}", code=e.code, host=host, port=port
                ) from None
            except frames.SessionDied as e:
                raise AgentDied(str(e)) from None
        return chan

    def stream(self, host: str, port: int) -> channel.Channel:
        """A stream to host:port, usable at once (open() without waiting); MuxError subclasses when the session
        is gone."""
        chan = self.mux.open(host, port)
        if self.keeping is not None:
            self.keeping.woken()
        return chan

    async def pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int) -> None:
        """Relay an accepted local connection to host:port through the agent; a dead agent aborts it."""
        try:
            chan = await self.open(host, port)
        except AgentDied:
            far.reset_connection(writer)
            return
        await far.relay(chan, reader, writer)

    # ------------------------------------------------------------------------------------- liveness
    async def ping(self, timeout: float = 5.0) -> float:
        """Round trip through ssh and the agent, in seconds (AgentDied if the session is gone)."""
        try:
            return await self.mux.ping(timeout)
        except frames.SessionDied as e:
            raise AgentDied(str(e)) from None

    def keepalive(
        self,
        interval: float = 3.0,
        timeout: float = 10.0,
        on_rtt: Callable[[float], bool] | None = None,
        *,
        rest: float | None = None,
        fast: Callable[[], bool] | None = None,
    ) -> Keepalive:
        """PING every `interval`; no PONG within `timeout` ends the session (reason says so). `on_rtt` is given
        each round trip and answers whether more are wanted soon (the link seems to have changed, or it is the
        start): then the next pings follow a moment apart, a few at most, before `interval` again. With `rest`,
        pings are that far apart while `fast()` and no stream is open (keepalive.py)."""
        self.keeping = Keepalive(self, interval, timeout, on_rtt, rest, fast)
        self._spawn(self.keeping.run())
        return self.keeping

    def burst(self) -> None:
        """The link may have changed: its keepalive pings a few times at once (on the session's loop)."""
        if self.keeping is not None:
            self.keeping.burst()

    def busy(self) -> bool:
        """Whether a stream is open on the session."""
        return bool(self.mux.channels)

    def die(self, reason: str) -> None:
        """End the session now, for `reason`."""
        self.mux.die(reason)

    def slow_link(self) -> bool:
        """Whether the link's smallest recent round trip is a home link's (pace.SLOW_LINK_RTT or more)."""
        return self.mux.pacer.slow_link()

    @property
    def closed(self) -> bool:
        return self.mux.dead is not None

    @property
    def reason(self) -> str | None:
        """Why the session ended, in words (None while it runs)."""
        return None if self.mux.dead is None else str(self.mux.dead)

    async def wait_closed(self) -> str:
        """Wait for the session to end; its reason."""
        return str(await self.mux.wait_dead())

    async def close(self) -> None:
        """End the session: every local connection on it is aborted, the agent and ssh exit."""
        self.mux.die("closed")
        if self.process is not None:
            await _stop_process(self.process)
        for task in list(self._watchers):
            task.cancel()

    def stats(self) -> dict[str, Any]:
        """Counters: raw and wire bytes each way (totals and per open stream), streams, last RTT, drain rate."""
        stats = self.mux.stats()
        stats["far_python"] = self.hello.get("python")
        stats["far_pid"] = self.hello.get("pid")
        return stats

    # ------------------------------------------------------------------------------------- internals
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        return task

    async def _watch_process(self, process: asyncio.subprocess.Process) -> None:
        dead = asyncio.ensure_future(self.mux.wait_dead())
        exited = asyncio.ensure_future(process.wait())
        await asyncio.wait({dead, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            await asyncio.sleep(0)
            detail = f": {self._stderr.text()}" if self._stderr.text() else ""
            self.mux.die(f"ssh exited with status {process.returncode}{detail}")
            dead.cancel()
        else:
            exited.cancel()
        await _stop_process(process)


async def _collect(stream: asyncio.StreamReader, tail: _Tail) -> None:
    while line := await stream.readline():
        tail.lines.append(line.decode(errors="replace").strip())


async def _stop_process(process: asyncio.subprocess.Process, grace: float = 3.0) -> None:
    """Let ssh end by itself after its stdin closed (the agent exits on EOF), else terminate, then kill."""
    if process.stdin is not None:
        process.stdin.close()
    for action in (None, process.terminate, process.kill):
        if process.returncode is not None:
            break
        if action is not None:
            with contextlib.suppress(ProcessLookupError):
                action()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace)
    if process.stdin is not None:
        # Takes the stdin pipe's own error (EPIPE when ssh went first), which asyncio would otherwise log.
        with contextlib.suppress(Exception):
            await process.stdin.wait_closed()
    # Nobody reads ssh's stdout after a session died: close the pipes now, not in a finalizer after the loop.
    transport = getattr(process, "_transport", None)
    if transport is not None:
        transport.close()
