"""Plain forwards whose clients ssh's ControlMaster takes over: accepted here, checked, handed over at once.

On a fast link (and with the plain transport) a client of a forwarded endpoint's listener would be piped through
Python to the unix socket ssh forwards that server to: 0.5-0.7 ms a request on a LAN. Here its socket itself goes
to ssh's master as a stdio forward (transport/control.py), right after accept() and the uid check, in the same
callback: no transport, no task, no turn of the loop first, and not a byte read. ssh moves the bytes from then on.
What the master cannot take (no master now, a refusal), the agent's routes and every route without `handoff` are
served by pipe.PipeForwards' clients as before.

Every plain forward hands off (Listeners sets Route.handoff; the relay rewrites bytes, so it cannot): ecFlow's
clients read the answer by its length and close, and log servers' clients, which read until EOF, get it too: ssh
drains and closes a stdio forward when the far side ends it (force_drain, control.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from ecflow_remote.access import pipe
from ecflow_remote.transport.control import Answer, Handoff

BACKLOG = 512  # as pipe.PipeServer's listeners
ACCEPTS_PER_WAKE = 64
INHERITS_NODELAY = sys.platform == "linux"


class HandoverForwards(pipe.PipeForwards):
    """pipe.PipeForwards whose handoff routes' clients go to ssh's master where Upstreams.route picks ssh's own channel.

    `handoffs` holds the control connection of every client now in ssh's hands (the master closes it when the
    client's channel ends); `handed_off` counts them all."""

    def __init__(self, routes: Sequence[pipe.PipeRoute], io: pipe.LoopThread | None = None) -> None:
        super().__init__(routes, io)
        self.handed_off = 0
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def listen_route(self, route: pipe.PipeRoute) -> int:
        if not route.handoff or not isinstance(route.target, tuple):
            return super().listen_route(route)
        server = self._run(self._listen_raw(route))
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def _listen_raw(self, route: pipe.PipeRoute) -> asyncio.Server:
        # An asyncio.Server that never serves (stop() closes it like the others); its socket is accepted from here.
        host, port = route.listen
        family, kind, proto, _, address = (await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as e:  # worded as asyncio's, which Listeners reads the address from
                raise OSError(e.errno, f"error while attempting to bind on address {address!r}: {e.strerror}") from None
            # Linux passes TCP_NODELAY on to accepted sockets (_accept sets it elsewhere): ssh writes each answer
            # into it, and Nagle's wait for an ACK would hold the tail of a long one.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.listen(BACKLOG)
            sock.setblocking(False)
            local = sock.getsockname()
            server = await self.loop.create_server(lambda: self.client(route), sock=sock, start_serving=False)
        except BaseException:
            sock.close()
            raise
        self.loop.add_reader(sock.fileno(), self._accept, sock, local, route)
        return server

    def _accept(self, listener: socket.socket, local: tuple[str, int], route: pipe.PipeRoute) -> None:
        # Every system call here is on the way of the client's first request (tens of µs each on a small VM):
        # the local address is the listener's (bound to one address), the socket is left blocking (ssh makes it
        # non-blocking, asyncio too if it is piped).
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                conn, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:  # out of file descriptors or memory: wait a second, as asyncio's own accept does
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.loop.remove_reader(listener.fileno())
                    self.loop.call_later(1, self._listen_again, listener, local, route)
                return
            if not self.admits_address(peer, local):
                self.foreign += 1
                conn.close()  # before a byte is read; nothing about the client is logged
                continue
            if not INHERITS_NODELAY:
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not self._hand_over(conn, route):
                self._serve(conn, route)

    def _listen_again(self, listener: socket.socket, local: tuple[str, int], route: pipe.PipeRoute) -> None:
        if not self._closing and listener.fileno() != -1:
            self.loop.add_reader(listener.fileno(), self._accept, listener, local, route)

    def _hand_over(self, conn: socket.socket, route: pipe.PipeRoute) -> bool:
        """Give the client to ssh's master where ssh's own channel would carry it; False: it cannot be now."""
        control, target = self.upstreams.control, route.target
        if control is None or not isinstance(target, tuple) or not isinstance(self.upstreams.route(target), Path):
            return False
        handoff = Handoff(
            self.loop, control, conn.fileno(), target, lambda answer: self._handed(conn, route, answer), self._ended
        )
        if not handoff.start():
            return False
        self.handoffs.add(handoff)
        return True

    def _handed(self, conn: socket.socket, route: pipe.PipeRoute, answer: Answer) -> None:
        if answer.opened:
            # The master confirms once the far side has opened the channel: one round trip through ssh, for free.
            if answer.seconds is not None:
                self.upstreams.gauge.add_free(answer.seconds)
            # Our own copy only: close() does not shut the connection down, ssh's copies keep it.
            self.handed_off += 1
            conn.close()
        elif self._closing:
            conn.close()
        else:
            self._serve(conn, route)  # the master never read from it (its channel was not open)

    def _ended(self, handoff: Handoff) -> None:
        self.handoffs.discard(handoff)

    def _serve(self, conn: socket.socket, route: pipe.PipeRoute) -> None:
        """A client piped like any other (through ssh's unix socket or the agent)."""
        task = self.loop.create_task(self._pipe(conn, route))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pipe(self, conn: socket.socket, route: pipe.PipeRoute) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: self.client(route), conn)
        except OSError:
            conn.close()

    async def _close(self) -> None:
        self._closing = True
        await super()._close()
