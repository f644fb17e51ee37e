"""Rewrites the user name in ecFlow requests to a server's configured ecflow_user.

For each server with an `ecflow_user`, ssh forwards the Centre's port to a unix socket in the tunnel's 0700 run
directory (`-L PATH:host:port`, socket 0600), and this relay listens on the server's loopback endpoint instead.
Every request a client sends is one frame (8-character hex length, then cereal JSON); in a user command whose
`user_` is the laptop's own login name (what ecflow_client, ecflow_ui and python3-ecflow take from getpwuid) that
value, and nothing else, is replaced by the configured name. Everything else passes untouched: custom-user
requests (`cu_`, which carry their own name and password), task commands (no `user_`), other names, replies, and
anything that is not a well-formed request (the server judges those; a request the relay cannot read keeps the
laptop's name, so the failure is a refusal, never more access).

Never wider than the profile: only the configured name, only on that server's own endpoint, loopback only; and
nothing but the relay can reach the unix socket, so no request reaches the server unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import pwd
import re
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecflow_remote.ecflow.wire import HEADER_SIZE, ProtocolError, decode_header, encode_header

# A bigger request (a `--load` of a very large definition) is passed through unread: parsing it would hold the
# relay's loop for seconds. Its user name then stays the laptop's, and the server refuses it (never widens).
MAX_REWRITE = 64 * 1024 * 1024
_REQUEST_KEY = "21ClientToServerRequest"


def socket_path(rundir: Path, server: str) -> Path:
    """Where ssh forwards a relayed server: short (sun_path is 104-108 bytes) and unique per server name."""
    return rundir / f"ecf-{hashlib.sha256(server.encode()).hexdigest()[:10]}.sock"


def login_name() -> str:
    """This user's login name as ecFlow clients find it (getpwuid(getuid()), not USER/LOGNAME)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


# --------------------------------------------------------------------------------------------- the rewrite


def _user_bases(obj: Any, found: list[dict[str, Any]]) -> None:
    """Every object in the request that is a UserCmd base (a `user_` string next to the ClientToServerCmd base)."""
    if isinstance(obj, dict):
        if isinstance(obj.get("user_"), str) and isinstance(obj.get("value0"), dict) and "cl_host_" in obj["value0"]:
            found.append(obj)
        for value in obj.values():
            if isinstance(value, (dict, list)):
                _user_bases(value, found)
    elif isinstance(obj, list):
        for value in obj:
            if isinstance(value, (dict, list)):
                _user_bases(value, found)


def rewrite_body(body: bytes, local_user: str, new_user: str) -> bytes | None:
    """The request body with the laptop user's name replaced by `new_user`, or None to pass it on unchanged.

    Only the bytes of the `user_` values change: the rest of the request is forwarded byte for byte (no re-encoding,
    so nothing cereal wrote differently from Python's json can be altered). Rewritten only when every UserCmd base
    in the request (a group command has several) names `local_user` and none is a custom user.
    """
    if local_user == new_user or len(body) > MAX_REWRITE:
        return None
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or _REQUEST_KEY not in obj:
        return None
    bases: list[dict[str, Any]] = []
    _user_bases(obj[_REQUEST_KEY], bases)
    if not bases:
        return None  # task commands and the like: no user name to present
    if any(b.get("cu_") for b in bases):
        return None  # a custom user carries its own name and password
    if any(b["user_"] != local_user for b in bases):
        return None  # another name (a passwd view, another local user's client): not ours to change
    # Unescaped quotes cannot occur inside a JSON string, so each match is a real `user_` member.
    pattern = re.compile(rb'"user_"(\s*:\s*)' + re.escape(json.dumps(local_user).encode()))
    replacement = json.dumps(new_user).encode()
    out, n = pattern.subn(lambda m: b'"user_"' + m.group(1) + replacement, body)
    if n != len(bases):
        return None  # escaped differently from what we can match exactly: leave the request as it is
    return out


def rewrite_frames(buf: bytearray, local_user: str, new_user: str) -> tuple[bytes, bool]:
    """Take the complete frames off the front of `buf`: (bytes to forward, whether to stop parsing).

    A header that is not ecFlow's ends parsing: the rest of the connection is piped as it comes.
    """
    out = bytearray()
    while len(buf) >= HEADER_SIZE:
        try:
            length = decode_header(bytes(buf[:HEADER_SIZE]))
        except ProtocolError:
            out += buf
            buf.clear()
            return bytes(out), True
        if length > MAX_REWRITE:
            # Not read: forwarded as it streams in.
            out += buf
            buf.clear()
            return bytes(out), True
        end = HEADER_SIZE + length
        if len(buf) < end:
            break
        body = bytes(buf[HEADER_SIZE:end])
        new = rewrite_body(body, local_user, new_user)
        if new is None:
            out += buf[:end]
        else:
            out += encode_header(len(new)) + new
        del buf[:end]
    return bytes(out), False


# ----------------------------------------------------------------------------------------------- the relay


@dataclass(frozen=True)
class Route:
    """One relayed server: its loopback endpoint, ssh's unix socket behind it, and the name to present."""

    listen: tuple[str, int]
    upstream: Path
    user: str


class _Client(asyncio.Protocol):
    """A client of one relayed endpoint: requests read and rewritten, replies piped straight back."""

    def __init__(self, relay: Relay, route: Route) -> None:
        self.relay = relay
        self.route = route
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending = bytearray()  # rewritten bytes waiting for ssh's socket
        self.piping = False  # past a frame we do not parse: bytes go through as they come
        self.eof = False
        self.upstream_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.relay.connections.add(self)
        # Connect to ssh at once: the request is read meanwhile, so the hop adds no round trip.
        self.relay.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            await self.relay.loop.create_unix_connection(lambda: _Upstream(self), str(self.route.upstream))
        except OSError:
            # ssh is reconnecting (or gone): the client sees its connection closed, as with a refused port.
            self.close()

    def upstream_made(self, transport: asyncio.Transport) -> None:
        if self.transport is None or self.transport.is_closing():
            transport.close()
            return
        self.upstream = transport
        if self.pending:
            transport.write(bytes(self.pending))
            self.pending.clear()
        if self.eof and transport.can_write_eof():
            transport.write_eof()

    def _send(self, data: bytes) -> None:
        if not data:
            return
        if self.upstream is not None:
            self.upstream.write(data)
        else:
            self.pending += data

    def data_received(self, data: bytes) -> None:
        if self.piping:
            self._send(data)
            return
        self.buf += data
        out, self.piping = rewrite_frames(self.buf, self.relay.local_user, self.route.user)
        self._send(out)

    def eof_received(self) -> bool:
        self.eof = True
        if self.buf:  # a cut-off request: the server gets what was sent and judges it
            self._send(bytes(self.buf))
            self.buf.clear()
        if self.upstream is not None and self.upstream.can_write_eof():
            self.upstream.write_eof()
        if self.upstream_eof:
            self.close()
        return True  # half-closed: the reply may still be on its way

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.connections.discard(self)
        if self.upstream is not None:
            (self.upstream.abort if exc is not None else self.upstream.close)()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.upstream is not None:
            self.upstream.abort()
        if self.transport is not None:
            self.transport.abort()


class _Upstream(asyncio.Protocol):
    """The connection to ssh's unix socket for one client; replies go back untouched."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.client.upstream_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.client.transport is not None:
            self.client.transport.write(data)

    def eof_received(self) -> bool:
        client = self.client
        client.upstream_eof = True
        if client.transport is not None and client.transport.can_write_eof():
            client.transport.write_eof()
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


class Relay:
    """The relays of one tunnel: a loopback listener per route, all served by one event loop in a daemon thread
    (like socks.SocksFront); it outlives ssh reconnects."""

    def __init__(self, routes: Sequence[Route], local_user: str | None = None) -> None:
        for route in routes:
            if not _is_loopback(route.listen[0]):
                raise ValueError(f"the ecFlow relay listens on loopback only, not {route.listen[0]}")
        self.routes = list(routes)
        self.local_user = local_user if local_user is not None else login_name()
        self.loop = asyncio.new_event_loop()
        self.connections: set[_Client] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._thread: threading.Thread | None = None

    def start(self) -> Relay:
        """Listen on every route (an OSError, e.g. a port taken, reaches the caller) and serve from a thread."""
        try:
            for i, route in enumerate(self.routes):
                host, port = route.listen
                server = self.loop.run_until_complete(
                    self.loop.create_server(
                        lambda route=route: _Client(self, route),  # type: ignore[misc]
                        host,
                        port,
                        reuse_address=True,
                        backlog=512,
                    )
                )
                self._servers.append(server)
                actual = (host, server.sockets[0].getsockname()[1])  # port 0: the one the kernel chose
                self.routes[i] = Route(actual, route.upstream, route.user)
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self.loop.run_forever, name="ecflow-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection; the loop and its thread end."""
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
        for client in list(self.connections):
            client.abort()
        for _ in range(3):
            await asyncio.sleep(0)

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
