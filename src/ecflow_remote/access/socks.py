"""The socks method's authenticated SOCKS5 front: user/password (RFC 1929) on the TCP port; CONNECT answered here
and carried by the far-side agent, or (plain transport) relayed to ssh -D."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from ecflow_remote.access import pipe
from ecflow_remote.safefile import write_private

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
# CONNECT replies (bound address 0.0.0.0:0): general failure (ssh's socket or the agent cannot be reached),
# command not supported, address type not supported, and success.
_GENERAL_FAILURE = b"\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00"
_NO_COMMAND = b"\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00"
_NO_ADDRESS_TYPE = b"\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00"
_SUCCEEDED = b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"


def parse_connect(buf: bytes | bytearray) -> tuple[tuple[str, int] | bytes | None, int]:
    """A SOCKS5 request at the front of `buf`: ((host, port), its length) for a CONNECT, (an error reply, 0)
    for anything else, (None, 0) while incomplete."""
    if len(buf) < 5:
        return None, 0
    if buf[0] != 5:
        return _GENERAL_FAILURE, 0
    if buf[1] != 1:  # BIND and UDP ASSOCIATE: an ecFlow or log-server client never asks for them
        return _NO_COMMAND, 0
    kind = buf[3]
    if kind == 1:
        start, end = 4, 8
    elif kind == 4:
        start, end = 4, 20
    elif kind == 3:
        start, end = 5, 5 + buf[4]
    else:
        return _NO_ADDRESS_TYPE, 0
    if len(buf) < end + 2:
        return None, 0
    raw = bytes(buf[start:end])
    try:
        host = raw.decode("ascii") if kind == 3 else str(ipaddress.ip_address(raw))
    except UnicodeDecodeError:  # the Centre's host names are ASCII (an IDN would come punycoded)
        return _GENERAL_FAILURE, 0
    return (host, int.from_bytes(buf[end : end + 2], "big")), end + 2


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

    def write(self, rundir: Path, name: str = CREDENTIALS_NAME) -> Path:
        path = rundir / name
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


# ----------------------------------------------------------------------------------------------- the front


class _Upstream(pipe.Upstream):
    """The connection to ssh's unix socket for one client: our greeting's answer taken off, then piped."""

    client: _Client

    def __init__(self, client: _Client) -> None:
        super().__init__(client)
        self.greeted = False
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        if not self.greeted:
            client = self.client
            self.buf += data
            if len(self.buf) < 2:
                return
            if self.buf[:2] != _UPSTREAM_ACCEPT:
                client.upstream_failed = True
                client.piping = False
                client._maybe_relay()
                return
            self.greeted = True  # ssh's answer to our greeting is ours: the client already had the front's
            data, self.buf = self.buf[2:], b""
            if not data:
                return
        super().data_received(data)

    def eof_received(self) -> bool:
        if not self.client.piping:
            self.client.upstream_eof = True
            self.client.close()
            return False
        return super().eof_received()


class _Client(pipe.Client):
    """A TCP client of the front: the SOCKS5 greeting and password check here, then bytes to and from ssh."""

    upstream_protocol: type[pipe.Upstream] = _Upstream

    def __init__(self, front: SocksFront) -> None:
        # Plain: ssh -D's socket; through the agent the target is the CONNECT's, known after the handshake.
        self.ssh_socket = front.ssh_socket()
        super().__init__(front, self.ssh_socket or ("", 0))
        self.front = front
        self.buf = bytearray()
        self.state = "greeting"  # greeting -> auth -> authed
        self.upstream_failed = False
        self.timer: asyncio.TimerHandle | None = None
        if self.ssh_socket is None:
            self.upstream_protocol = pipe.Upstream  # the agent's stream carries no greeting of ssh's to take off

    def started(self) -> None:
        self.timer = self.front.loop.call_later(HANDSHAKE_TIMEOUT, self.close)

    def received(self, data: bytes) -> None:
        self.buf += data
        if self.state == "greeting":
            self._greeting()
        if self.state == "auth":
            self._auth()
        if self.state == "authed":
            self._maybe_relay()

    def eof_received(self) -> bool:
        if not self.piping:
            self.close()
            return False
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        super().connection_lost(exc)

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
        if self.ssh_socket is not None:
            # ssh's side of the handshake overlaps with the password exchange: one round trip less per connection.
            self.connect()

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

    def unreachable(self) -> None:
        # ssh is reconnecting (or gone): the client gets a SOCKS failure once it has proved who it is.
        self.upstream_failed = True
        if self.piping:
            self.close()  # (agent: the CONNECT was answered already; the agent went away in between)
        elif self.state == "authed":
            self._maybe_relay()

    def connected(self) -> None:
        assert self.upstream is not None
        if self.ssh_socket is None:
            return  # the agent's stream: nothing to greet
        self.upstream.write(_UPSTREAM_GREETING)
        if self.state == "authed":
            self._maybe_relay()

    def _maybe_relay(self) -> None:
        if self.piping or self.transport is None or self.transport.is_closing():
            return
        if self.ssh_socket is None:
            self._connect_through_agent()
            return
        if self.upstream_failed:
            self._write(_GENERAL_FAILURE)
            self.close()
            return
        if self.upstream is None:
            return  # bytes keep collecting in self.buf until ssh's socket is connected
        self.piping = True
        if self.timer is not None:
            self.timer.cancel()
        if self.buf:
            # The client's CONNECT request (and anything after it), right behind our greeting without waiting for
            # its answer (ssh parses its buffer, so pipelining is safe): ssh answers the client itself.
            self.upstream.write(bytes(self.buf))
            self.buf.clear()

    def _connect_through_agent(self) -> None:
        """Answer the CONNECT at once and send what follows it behind the agent's OPEN: the client's request
        then costs one round trip, as with a forwarded port. A target the far side cannot reach resets the
        connection (the client sees a reset rather than a SOCKS refusal)."""
        request, size = parse_connect(self.buf)
        if request is None:
            return
        if isinstance(request, bytes):
            self._write(request)
            self.close()
            return
        if self.front.upstreams.live_agent() is None:
            self._write(_GENERAL_FAILURE)
            self.close()
            return
        del self.buf[:size]
        self.target = request
        self.piping = True
        if self.timer is not None:
            self.timer.cancel()
        self._write(_SUCCEEDED)
        self.connect()
        if self.buf:
            self.send(bytes(self.buf))
            self.buf.clear()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class SocksFront(pipe.PipeServer):
    """The authenticated SOCKS5 listener at `listen`, relaying to ssh -D at the unix socket `upstream`, or with
    no upstream, connecting through the far-side agent (pipe.PipeServer.agent).

    Runs its own event loop in a daemon thread (pipe.PipeServer), so the synchronous supervisor only calls start() and
    stop(); it outlives ssh reconnects (a client arriving while ssh is away gets a SOCKS failure, not a refused
    port).
    """

    thread_name = "socks-front"

    def __init__(
        self,
        listen: tuple[str, int],
        upstream: Path | None,
        credentials: Credentials,
        io: pipe.LoopThread | None = None,
    ) -> None:
        super().__init__(io)
        self.listen = listen
        self.upstream = upstream
        self.credentials = credentials
        self.refused = 0  # clients that gave the wrong user or password

    def ssh_socket(self) -> Path | None:
        """Where a new client's SOCKS request goes: ssh -D's socket (plain), None when the agent carries it."""
        return self.upstream if self.upstream is not None else self.upstreams.socks_socket()

    def open_listeners(self) -> None:
        host, port = self.listen
        self.listen = (host, self.listen_on(host, port, lambda: _Client(self)))  # port 0: the kernel's choice

    @property
    def port(self) -> int:
        return self.listen[1]
