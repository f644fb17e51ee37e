"""Who may use the page: this account only (peer uid), this address only (Host, Origin), with the token.

Jupyter's scheme: the URL printed at start carries a random token; the first request with it gets a session
cookie (HttpOnly, SameSite=Strict) and is redirected to the same URL without the token, so it leaves the address
bar and the history. Every request must come from a socket of our own uid (sock_diag, as the relay), name our
loopback address and port in Host (a DNS-rebinding page names its own host), and carry no foreign Origin. Anything
that changes something is a POST with the CSRF token (a custom header, which a cross-site form cannot send and a
cross-site fetch cannot send without a CORS preflight that is never granted).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import os
import secrets
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from ecflow_remote.access import peers

COOKIE = "ecflow_remote_session"
CSRF_HEADER = "X-CSRF-Token"
TOKEN_PARAM = "token"


@dataclass
class Guard:
    """The secrets and addresses of one running page server."""

    port: int = 0
    host: str = "127.0.0.1"
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    uid: int = field(default_factory=os.getuid)
    check_peers: bool = sys.platform.startswith("linux")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/?{TOKEN_PARAM}={self.token}"

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(f"http://{name}:{self.port}" for name in (self.host, "localhost"))

    def host_ok(self, host_header: str | None) -> bool:
        """The Host header names our own address and port (a rebinding attack's page names its own domain)."""
        return host_header is not None and f"http://{host_header.lower()}" in self.origins

    def origin_ok(self, origin: str | None, *, required: bool) -> bool:
        """No Origin (a plain navigation) is fine for reads; a present one must be ours; writes need one."""
        if origin is None:
            return not required
        parts = urlsplit(origin)
        return f"{parts.scheme}://{parts.netloc}".lower() in self.origins

    def token_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.token.encode())

    def session_ok(self, cookie: str | None) -> bool:
        return cookie is not None and hmac.compare_digest(cookie.encode(), self.session.encode())

    def csrf_ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.csrf.encode())

    def peer_ok(self, peer: object, local: object) -> bool:
        """The client's socket belongs to our uid (Linux; elsewhere the token alone guards)."""
        if not self.check_peers:
            return True
        if not (isinstance(peer, tuple) and isinstance(local, tuple)):
            return False
        try:
            return peers.owner_uid(peer[:2], local[:2]) == self.uid
        except (OSError, ValueError):
            return False


def redirect_page(url: str) -> str:
    """A page that sends the browser on to `url` (which carries the token), for a 0600 file the browser is given
    instead of the URL itself: a browser's command line is readable by every local account (/proc/PID/cmdline,
    ps), a file of ours is not. Jupyter's way (its jpserver-PID-open.html)."""
    quoted = html.escape(url, quote=True)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0;url={quoted}"><title>ecflow-remote web</title></head>\n'
        f'<body><p>Opening <a href="{quoted}">ecflow-remote web</a>…</p></body></html>\n'
    )


class PeerCheckedSite(web.SockSite):
    """The page's listening site, whose connections are checked on accept: one of another account is reset (SO_LINGER
    0) before a byte of it is parsed, as the relay and the other listeners do (the middleware checks it again)."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, guard: Guard) -> None:
        super().__init__(runner, sock)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)  # as SockSite.start, with a protocol factory of our own
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _PeerChecked(server, self._guard), sock=self._sock, backlog=self._backlog
        )


class _PeerChecked(asyncio.Protocol):
    """aiohttp's request handler behind a peer check: made only for a connection of our own account."""

    def __init__(self, make: Callable[[], asyncio.Protocol], guard: Guard) -> None:
        self._make = make
        self._guard = guard
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._guard.peer_ok(transport.get_extra_info("peername"), transport.get_extra_info("sockname")):
            self._inner = self._make()
            self._inner.connection_made(transport)
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if isinstance(transport, asyncio.Transport):
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
