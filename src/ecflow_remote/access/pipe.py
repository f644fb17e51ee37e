"""Byte pipes from a loopback listener to ssh's private unix socket, on an asyncio loop in a thread of its own.

ssh listens on unix sockets in the tunnel's 0700 run directory (-D for the SOCKS front, -L PATH:host:port for the
user-name relay), which no other local user can reach; a `PipeServer` here owns the TCP port in front of them. Each TCP
client gets its own connection to ssh's socket, and once the subclass's own work on the first bytes is done (the
SOCKS handshake, the request rewrite) bytes go straight through both ways: backpressure from either side pauses
reading on the other, a half-close is passed on (the answer may still be on its way), a reset aborts both.

Protocol callbacks, not streams: each chunk is handed straight to the other transport (no task switch, no extra
copy), which keeps the added latency of this hop in the tens of microseconds.

Only our own account's clients are served (Linux): the owner of each client's socket is asked of the kernel
(peers.owner_uid, ~10 µs) before anything is read, and a connection from any other uid, or whose owner cannot be
found, is reset at once and counted in `PipeServer.foreign`. Root is not let in either (it can read our run directory
anyway). Elsewhere (macOS has no sock_diag or /proc) there is no such check: the SOCKS front's and the web proxy's
passwords remain.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar, cast

from ecflow_remote.access import peers
from ecflow_remote.transport import link
from ecflow_remote.transport.agent.bridge import ChannelTransport
from ecflow_remote.transport.agent.frames import MuxError
from ecflow_remote.transport.agent.session import AgentSession
from ecflow_remote.transport.control import Answer, Handoff

T = TypeVar("T")
# Where a client's bytes go: a unix socket of ssh's, or a Centre host:port (through Upstreams: the far-side
# agent, or the socket ssh forwards that host:port to).
Target = Path | tuple[str, int]


@dataclass
class Upstreams:
    """What carries a tunnel's connections now, shared by all its listeners and changed by the supervisor as
    ssh comes and goes: the agent session, or (plain transport) ssh's unix sockets; neither while reconnecting."""

    agent: AgentSession | None = None
    sockets: dict[tuple[str, int], Path] = field(default_factory=dict)  # plain: Centre host:port -> ssh's -L socket
    socks: Path | None = None  # plain: ssh's -D socket
    control: Path | None = None  # the ControlMaster's socket (handover.py hands ecFlow clients to it)
    # The round trip through the ssh connection (agent pings, ssh's channel confirmations): kept across
    # reconnects, as the link outlives ssh; routes every new connection (transport/link.py).
    gauge: link.Gauge = field(default_factory=link.Gauge)

    def __post_init__(self) -> None:
        self.gauge.on_doubt = self.measure  # a free sample disagrees: the agent's pings tell more

    def measure(self) -> None:
        """The link may have changed (a free sample disagrees, the network changed): a running agent pings a
        burst at once. From any thread."""
        agent = self.live_agent()
        if agent is not None:
            agent.mux.loop.call_soon_threadsafe(agent.burst)

    def clear(self) -> None:
        """Nothing carries connections (ssh stopped): new clients are told so at once, not sent into a dead ssh."""
        self.agent, self.sockets, self.socks, self.control = None, {}, None, None

    def live_agent(self) -> AgentSession | None:
        agent = self.agent
        return agent if agent is not None and not agent.closed else None

    def route(self, target: tuple[str, int]) -> AgentSession | Path | None:
        """What carries a new connection to `target` now (link.carrier, by the round trip measured through ssh):
        the agent, ssh's own channel (its socket), or None (reconnecting)."""
        agent = self.live_agent()
        path = self.sockets.get(target)
        which = link.carrier(agent is not None, path is not None, self.gauge.slow())
        return agent if which == "agent" else path

    def socks_socket(self) -> Path | None:
        """ssh -D's socket, where SOCKS requests go now (None: the agent answers them)."""
        agent = self.live_agent()
        which = link.carrier(agent is not None, self.socks is not None, self.gauge.slow())
        return self.socks if which == "ssh" else None

    def carrier(self) -> str | None:
        """What carries a new connection to a forwarded endpoint now (status shows it): "agent", "ssh" or None."""
        return link.carrier(self.live_agent() is not None, bool(self.sockets), self.gauge.slow())


class Upstream(asyncio.Protocol):
    """The connection to ssh's unix socket for one client: what ssh sends goes back to the client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses, but have the same methods).
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.client.upstream_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.client.transport is not None:
            self.client.transport.write(data)

    def eof_received(self) -> bool:
        client = self.client
        client.upstream_eof = True
        if client.transport is not None and client.transport.can_write_eof():
            try:
                client.transport.write_eof()
            except OSError:
                # The client went meanwhile (reset): only its connection ends. Raised into the agent's frame
                # reader, it would end the whole session (every stream) with "Transport endpoint is not connected".
                client.transport.abort()
                return True
        if client.eof:
            client.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        client = self.client.transport
        if client is not None:
            (client.abort if exc is not None else client.close)()

    def pause_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.resume_reading()


class Client(asyncio.Protocol):
    """A TCP client of the listener, with its own connection to its target: ssh's unix socket at a path, or a
    stream of the far-side agent to host:port.

    Subclasses read what comes before the pipe in received() and set `piping` once the rest of the client's bytes
    may go through unread; send() forwards bytes of their own choosing (held in `pending` until ssh's socket is
    connected).
    """

    upstream_protocol: type[Upstream] = Upstream  # a subclass for ssh's side, if it has work of its own
    # A Centre host:port that no ssh socket forwards, without the agent: a stdio forward of ssh's master
    # (`ssh -W`), to a socket pair whose other end is piped here. For clients whose targets are any Centre name
    # (the web proxy); the forwarded endpoints' listeners keep to their own sockets.
    through_master: ClassVar[bool] = False

    def __init__(self, server: PipeServer, target: Target) -> None:
        self.server = server
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None  # ssh's side, once connected
        self.pending = bytearray()  # bytes for ssh sent before its socket was connected
        self.piping = False  # the client's bytes go to ssh as they come
        self.eof = False  # the client has half-closed
        self.upstream_eof = False  # ssh has half-closed
        self.connecting: asyncio.Task[None] | None = None
        self.refused_by_master: str | None = None  # why ssh's master did not open a stdio forward (through_master)

    # -- hooks
    def started(self) -> None:
        """The client is connected (and counted): start a handshake, or connect() at once."""

    def received(self, data: bytes) -> None:
        """Bytes from the client while not yet piping."""

    def connected(self) -> None:
        """ssh's socket is connected (`upstream` is set); called before any pending bytes are written to it."""

    def unreachable(self) -> None:
        """ssh's socket cannot be connected (ssh is reconnecting, or gone): by default the client is closed, as with
        a refused port."""
        self.close()

    # -- ssh's side
    def connect(self) -> None:
        """Connect to the target: a stream of the agent if one runs, else ssh's socket; unreachable() if neither."""
        target = self.target
        if isinstance(target, Path):
            self._connect_unix(target)
            return
        upstreams = self.server.upstreams
        agent = upstreams.route(target)
        if agent is None and self.through_master and upstreams.control is not None:
            self._connect_master(upstreams.control, target)
            return
        if not isinstance(agent, AgentSession):
            self._connect_unix(agent)
            return
        # The stream exists at once and what is written follows its OPEN without waiting (one round trip per
        # request); a failed connect at the far end resets the client.
        try:
            chan = agent.stream(*target)
        except MuxError:
            self.unreachable()
            return
        ChannelTransport(chan, self.upstream_protocol(self), self.server.loop)

    def _connect_unix(self, path: Path | None) -> None:
        if path is None:
            self.unreachable()
        else:
            self.connecting = self.server.loop.create_task(self._connect(path))

    async def _connect(self, path: Path) -> None:
        try:
            await self.server.loop.create_unix_connection(lambda: self.upstream_protocol(self), str(path))
        except OSError:
            self.unreachable()

    def _connect_master(self, control: Path, target: tuple[str, int]) -> None:
        ours, theirs = socket.socketpair()

        def decided(answer: Answer) -> None:
            theirs.close()  # the master holds its own copies once opened
            if not answer.opened or self.transport is None or self.transport.is_closing():
                ours.close()
                if not answer.opened:
                    self.refused_by_master = answer.reason
                    self.unreachable()
                return
            self.connecting = self.server.loop.create_task(self._adopt(ours))

        handoff = Handoff(self.server.loop, control, theirs.fileno(), target, decided, self.server.handoffs.discard)
        if not handoff.start():
            ours.close()
            theirs.close()
            self.unreachable()
            return
        self.server.handoffs.add(handoff)

    async def _adopt(self, sock: socket.socket) -> None:
        try:
            await self.server.loop.create_unix_connection(lambda: self.upstream_protocol(self), sock=sock)
        except OSError:
            sock.close()
            self.unreachable()

    def upstream_made(self, transport: asyncio.Transport) -> None:
        # From the upstream protocol's connection_made, not after create_unix_connection returns: ssh's reply can
        # be read before that task resumes.
        if self.transport is None or self.transport.is_closing():
            transport.close()
            return
        self.upstream = transport
        self.connected()
        if self.pending:
            transport.write(bytes(self.pending))
            self.pending.clear()
        if self.eof and transport.can_write_eof():
            transport.write_eof()

    def send(self, data: bytes) -> None:
        """Bytes for ssh: written now, or once its socket is connected."""
        if self.upstream is not None:
            self.upstream.write(data)
        else:
            self.pending += data

    # -- transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses, but have the same methods).
        transport = cast(asyncio.Transport, transport)
        if not self.server.admits(transport):
            self.server.foreign += 1
            transport.abort()  # before a byte is read; nothing about the client is logged
            return
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)
        self.started()

    def data_received(self, data: bytes) -> None:
        if not self.piping:
            self.received(data)
        elif self.upstream is not None:
            self.upstream.write(data)
        else:
            self.pending += data

    def eof_received(self) -> bool:
        self.eof = True
        up = self.upstream
        if up is not None and up.can_write_eof():
            up.write_eof()
        if self.upstream_eof:
            self.close()
        return True  # half-closed: ssh's answer may still be on its way

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.connecting is not None and not self.connecting.done():
            self.connecting.cancel()
        up = self.upstream
        if up is not None:
            # A reset client aborts at once; a clean close lets what was written reach ssh first.
            (up.abort if exc is not None else up.close)()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()  # flushes what is written, then connection_lost closes ssh's side

    def abort(self) -> None:
        if self.upstream is not None:
            self.upstream.abort()
        if self.transport is not None:
            self.transport.abort()


class LoopThread:
    """One asyncio loop in a daemon thread: every listener of a tunnel and its agent session share it (a stream
    can only be used from its session's loop)."""

    def __init__(self, name: str = "tunnel-io") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop from another thread and wait for its result (or its exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


class PipeServer:
    """TCP listeners whose clients are piped to their targets, served by an event loop in a daemon thread: the
    server's own, or a LoopThread shared with the agent and the tunnel's other listeners.

    The synchronous supervisor only calls start() and stop(); the server outlives ssh reconnects (a client that
    arrives while ssh is away is answered by its Client subclass, not refused a port).
    """

    thread_name = "pipe"
    # Serve only clients whose socket our own uid owns (module docstring); Linux only.
    check_peers: ClassVar[bool] = sys.platform == "linux"

    def __init__(self, io: LoopThread | None = None) -> None:
        self.io = io
        self.loop = io.loop if io is not None else asyncio.new_event_loop()
        self.connections: set[Client] = set()
        self.foreign = 0  # connections refused because another account (or no account found) opened them
        # Control connections of the stdio forwards ssh's master carries for this server's clients (closed: ended).
        self.handoffs: set[Handoff] = set()
        # What carries clients whose target is a Centre host:port; the supervisor shares one among its servers.
        self.upstreams = Upstreams()
        self._servers: list[asyncio.Server] = []
        self._thread: threading.Thread | None = None

    def open_listeners(self) -> None:
        """Open every listener, with listen_on()."""
        raise NotImplementedError

    def admits(self, transport: asyncio.BaseTransport) -> bool:
        """Whether a new client may be served: its socket belongs to our own uid (always, where not checked)."""
        return self.admits_address(transport.get_extra_info("peername"), transport.get_extra_info("sockname"))

    def admits_address(self, peer: object, local: object) -> bool:
        """admits() for a client connected from `peer` to our `local` address."""
        if not self.check_peers:
            return True
        if not (isinstance(peer, tuple) and isinstance(local, tuple)):
            return False
        try:
            return peers.owner_uid(peer[:2], local[:2]) == os.getuid()
        except (OSError, ValueError):
            return False

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.io is not None:
            return self.io.run(coro, 10)
        return self.loop.run_until_complete(coro)

    def listen_on(self, host: str, port: int, factory: Callable[[], Client]) -> int:
        """Listen on (host, port) for clients made by `factory`; the port listened on (port 0: the kernel's
        choice)."""
        server = self._run(self._listen(host, port, factory))
        self._servers.append(server)
        actual: int = server.sockets[0].getsockname()[1]
        return actual

    async def _listen(self, host: str, port: int, factory: Callable[[], Client]) -> asyncio.Server:
        return await self.loop.create_server(factory, host, port, reuse_address=True, backlog=512)

    def start(self) -> Self:
        """Listen (an OSError, e.g. a port taken, reaches the caller) and serve from a thread."""
        try:
            self.open_listeners()
        except BaseException:
            self.stop()
            raise
        if self.io is None:
            self._thread = threading.Thread(target=self.loop.run_forever, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection; an own loop and its thread end."""
        if self.io is not None:
            with contextlib.suppress(Exception):
                self.io.run(self._close(), 5)
            self._servers.clear()
            return
        if self._thread is None:
            for server in self._servers:
                server.close()
            self.loop.close()
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self._thread = None
        if not self.loop.is_running():
            self.loop.close()

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for handoff in list(self.handoffs):
            handoff.close()  # the master ends their channels
        for client in list(self.connections):
            client.abort()
        # Let the transports' connection_lost callbacks run (they close sockets) before the loop stops.
        for _ in range(3):
            await asyncio.sleep(0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class PipeRoute:
    """A loopback listener and where its clients go."""

    listen: tuple[str, int]
    target: Target
    handoff: bool = False  # its clients may be handed to ssh's master (handover.py: an ecFlow server's)


class _Forwarded(Client):
    def started(self) -> None:
        self.piping = True
        self.connect()


class PipeForwards(PipeServer):
    """Plain forwards: each route's listener piped to its target untouched (ssh's socket, or the agent)."""

    thread_name = "forwards"

    def __init__(self, routes: Sequence[PipeRoute], io: LoopThread | None = None) -> None:
        super().__init__(io)
        self.routes = list(routes)

    def open_listeners(self) -> None:
        for i, route in enumerate(self.routes):
            self.routes[i] = PipeRoute((route.listen[0], self.listen_route(route)), route.target, route.handoff)

    def listen_route(self, route: PipeRoute) -> int:
        """Listen for the route's clients; the port listened on."""
        return self.listen_on(*route.listen, lambda: self.client(route))

    def client(self, route: PipeRoute) -> Client:
        return _Forwarded(self, route.target)
