"""The socks method's authenticated SOCKS5 front: user/password (RFC 1929) on the TCP port, relayed to ssh -D."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

# ssh -D listens on a unix socket in the tunnel's 0700 run directory (OpenSSH >= 6.7 takes a path for -D, and
# makes it 0600): no other local user can reach it. Only this front, which asks for the password, listens on TCP.
SOCKET_NAME = "socks.sock"
CREDENTIALS_NAME = "socks-auth"
USERNAME = "ecflow-remote"
# A client that opens a connection and never finishes the handshake must not hold it (and a slot of ours) forever.
HANDSHAKE_TIMEOUT = 10.0

_NO_ACCEPTABLE = b"\x05\xff"
_ASK_PASSWORD = b"\x05\x02"
_AUTH_OK = b"\x01\x00"
_AUTH_FAILED = b"\x01\x01"
# The greeting we send ssh on the client's behalf: SOCKS5, one method, no authentication (ssh -D asks for none).
_UPSTREAM_GREETING = b"\x05\x01\x00"
_UPSTREAM_ACCEPT = b"\x05\x00"
# A CONNECT reply "general failure" (bound address 0.0.0.0:0), for when ssh's socket cannot be reached.
_GENERAL_FAILURE = b"\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00"


def socket_path(rundir: Path) -> Path:
    return rundir / SOCKET_NAME


@dataclass(frozen=True)
class Credentials:
    """One tunnel start's SOCKS user and password: random, never in argv, logs or state.json."""

    username: str
    password: str

    @classmethod
    def new(cls) -> Credentials:
        # Hex: proxychains.conf separates fields by white space and has no quoting.
        return cls(USERNAME, secrets.token_hex(24))

    def pair(self) -> tuple[str, str]:
        return self.username, self.password

    def write(self, rundir: Path) -> Path:
        path = rundir / CREDENTIALS_NAME
        write_private(path, json.dumps({"username": self.username, "password": self.password}) + "\n")
        return path

    @classmethod
    def read(cls, path: Path | str) -> Credentials | None:
        try:
            data = json.loads(Path(path).read_text())
            return cls(str(data["username"]), str(data["password"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def __repr__(self) -> str:
        return f"Credentials({self.username!r}, '***')"  # never the password, even in a traceback


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file that is 0600 from its first byte (chmod after writing leaves a window)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


# ----------------------------------------------------------------------------------------------- the relay
# Protocol callbacks, not streams: each chunk is handed straight to the other transport (no task switch, no
# extra copy), which keeps the added latency of this hop in the tens of microseconds.


class _Client(asyncio.Protocol):
    """A TCP client of the front: the SOCKS5 greeting and password check here, then bytes to and from ssh."""

    def __init__(self, front: SocksFront) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.buf = bytearray()
        self.state = "greeting"  # greeting -> auth -> authed
        self.upstream_ready = False
        self.upstream_failed = False
        self.relaying = False
        self.eof = False
        self.timer: asyncio.TimerHandle | None = None
        self.connecting: asyncio.Task[None] | None = None

    # -- transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.front.connections.add(self)
        self.timer = self.front.loop.call_later(HANDSHAKE_TIMEOUT, self.close)

    def data_received(self, data: bytes) -> None:
        if self.relaying:
            assert self.upstream is not None and self.upstream.transport is not None
            self.upstream.transport.write(data)
            return
        self.buf += data
        if self.state == "greeting":
            self._greeting()
        if self.state == "auth":
            self._auth()
        if self.state == "authed":
            self._maybe_relay()

    def eof_received(self) -> bool:
        if not self.relaying:
            self.close()
            return False
        self.eof = True
        up = self.upstream
        if up is not None and up.transport is not None and up.transport.can_write_eof():
            up.transport.write_eof()
        if up is not None and up.eof:
            self.close()
        return True  # half-closed: ssh's answer may still be on its way

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        if self.connecting is not None and not self.connecting.done():
            self.connecting.cancel()
        up = self.upstream
        if up is not None and up.transport is not None:
            # A reset client aborts at once; a clean close lets what was written reach ssh first.
            (up.transport.abort if exc is not None else up.transport.close)()

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    # -- the handshake
    def _greeting(self) -> None:
        if len(self.buf) < 2:
            return
        if self.buf[0] != 5:  # SOCKS4 has no password: refused like any other protocol
            self.close()
            return
        end = 2 + self.buf[1]
        if len(self.buf) < end:
            return
        methods = self.buf[2:end]
        del self.buf[:end]
        if 2 not in methods:
            self._write(_NO_ACCEPTABLE)
            self.close()
            return
        self._write(_ASK_PASSWORD)
        self.state = "auth"
        # ssh's side of the handshake overlaps with the password exchange: one round trip less per connection.
        self.connecting = self.front.loop.create_task(self._connect_upstream())

    def _auth(self) -> None:
        buf = self.buf
        if len(buf) < 2:
            return
        if buf[0] != 1:
            self.close()
            return
        ulen = buf[1]
        if len(buf) < 3 + ulen:
            return
        plen = buf[2 + ulen]
        end = 3 + ulen + plen
        if len(buf) < end:
            return
        user, password = bytes(buf[2 : 2 + ulen]), bytes(buf[3 + ulen : end])
        del buf[:end]
        creds = self.front.credentials
        # Both compared, in constant time, so the reply's timing tells nothing about either.
        ok_user = hmac.compare_digest(user, creds.username.encode())
        ok_password = hmac.compare_digest(password, creds.password.encode())
        if not (ok_user and ok_password):
            self.front.refused += 1
            self._write(_AUTH_FAILED)
            self.close()
            return
        self._write(_AUTH_OK)
        self.state = "authed"

    async def _connect_upstream(self) -> None:
        loop = self.front.loop
        try:
            await loop.create_unix_connection(lambda: _Upstream(self), str(self.front.upstream))
        except OSError:
            # ssh is reconnecting (or gone): the client gets a SOCKS failure once it has proved who it is.
            self.upstream_failed = True
            if self.state == "authed":
                self._maybe_relay()

    def upstream_connected(self) -> None:
        self.upstream_ready = True
        if self.state == "authed":
            self._maybe_relay()

    def _maybe_relay(self) -> None:
        if self.relaying or self.transport is None or self.transport.is_closing():
            return
        if self.upstream_failed:
            self._write(_GENERAL_FAILURE)
            self.close()
            return
        if not self.upstream_ready:
            return  # bytes keep collecting in self.buf until ssh's socket is connected
        assert self.upstream is not None and self.upstream.transport is not None
        self.relaying = True
        if self.timer is not None:
            self.timer.cancel()
        if self.buf:
            # The client's CONNECT request (and anything after it), right behind our greeting without waiting for
            # its answer (ssh parses its buffer, so pipelining is safe): ssh answers the client itself.
            self.upstream.transport.write(bytes(self.buf))
            self.buf.clear()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()  # flushes what is written, then connection_lost closes ssh's side

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _Upstream(asyncio.Protocol):
    """The connection to ssh's unix socket for one client."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.greeted = False
        self.buf = b""
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # Here, not after create_unix_connection returns: ssh's reply can be read before that task resumes.
        self.client.upstream = self
        client = self.client.transport
        if client is None or client.is_closing():
            transport.close()
            return
        transport.write(_UPSTREAM_GREETING)
        self.client.upstream_connected()

    def data_received(self, data: bytes) -> None:
        client = self.client
        if not self.greeted:
            self.buf += data
            if len(self.buf) < 2:
                return
            if self.buf[:2] != _UPSTREAM_ACCEPT:
                client.upstream_failed = True
                client.relaying = False
                client._maybe_relay()
                return
            self.greeted = True  # ssh's answer to our greeting is ours: the client already had the front's
            data, self.buf = self.buf[2:], b""
            if not data:
                return
        if client.transport is not None:
            client.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        client = self.client
        if not client.relaying:
            client.close()
            return False
        if client.transport is not None and client.transport.can_write_eof():
            client.transport.write_eof()
        if client.eof:
            client.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        client = self.client
        if client.transport is not None:
            (client.transport.abort if exc is not None else client.transport.close)()

    def pause_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.resume_reading()


class SocksFront:
    """The authenticated SOCKS5 listener at `listen`, relaying to ssh -D at the unix socket `upstream`.

    Runs its own event loop in a daemon thread, so the synchronous supervisor only calls start() and stop(); it
    outlives ssh reconnects (a client arriving while ssh is away gets a SOCKS failure, not a refused port).
    """

    def __init__(self, listen: tuple[str, int], upstream: Path, credentials: Credentials) -> None:
        self.listen = listen
        self.upstream = upstream
        self.credentials = credentials
        self.loop = asyncio.new_event_loop()
        self.connections: set[_Client] = set()
        self.refused = 0  # clients that gave the wrong user or password
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SocksFront:
        """Listen (an OSError here, e.g. the port is taken, reaches the caller) and serve from a thread."""
        host, port = self.listen
        self._server = self.loop.run_until_complete(
            self.loop.create_server(lambda: _Client(self), host, port, reuse_address=True, backlog=512)
        )
        self.listen = (host, self._server.sockets[0].getsockname()[1])  # port 0: the one the kernel chose
        self._thread = threading.Thread(target=self.loop.run_forever, name="socks-front", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return self.listen[1]

    def stop(self) -> None:
        """Stop listening and drop every connection; the loop and its thread end."""
        if self._thread is None:
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
        if self._server is not None:
            self._server.close()
        for client in list(self.connections):
            if client.upstream is not None and client.upstream.transport is not None:
                client.upstream.transport.abort()
            client.abort()
        # Let the transports' connection_lost callbacks run (they close sockets) before the loop stops.
        for _ in range(3):
            await asyncio.sleep(0)

    def __enter__(self) -> SocksFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
