"""The web proxy: the Centre's web pages (JupyterHub and friends) in a browser at home, through the tunnel.

An HTTP proxy on loopback: CONNECT (https and websockets pass end to end, untouched) and plain-HTTP requests in
absolute form (rewritten to origin form, one request per connection). Only the Centre's names are carried (the
profile's [web] domains, as the PAC file says); any other name gets a 403 naming the rule, and nothing of it
leaves the laptop. The connection goes where the SOCKS front's do (pipe.Client): the far-side agent, else a stdio
forward of ssh's master; either way the name is resolved at the far side.

Who may use it: on Linux only our own uid (pipe.PipeServer's peer check, before a byte is read). Elsewhere (macOS
cannot tell a loopback client's owner) every request must carry Proxy-Authorization with this tunnel's user and
password (Basic; made anew at each `up`, kept in a 0600 run file); the PAC itself holds no secret and is served to
anyone who asks, at /proxy.pac.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
from urllib.parse import urlsplit

from ecflow_remote.access import pipe
from ecflow_remote.access.socks import HANDSHAKE_TIMEOUT, Credentials
from ecflow_remote.profile.webtable import is_centre_name
from ecflow_remote.transport.agent.frames import OpenFailed

PAC_PATH = "/proxy.pac"
CREDENTIALS_NAME = "web-auth"
MAX_HEAD = 64 * 1024  # a request head larger than this is no browser's (431)
REALM = "ecflow-remote web proxy"
# Hop-by-hop headers meant for the proxy: never passed on to the Centre's server.
_PROXY_HEADERS = (b"proxy-authorization", b"proxy-connection", b"keep-alive")


def pac_text(patterns: tuple[str, ...], proxy: tuple[str, int]) -> str:
    """A PAC file sending the Centre's names to the proxy and everything else DIRECT (no fallback to DIRECT for
    the Centre's: a name of the Centre never reaches the home network's resolver)."""
    tests = " ||\n        ".join(f'shExpMatch(host, "{p}")' for p in patterns) or "false"
    return f"""\
// ecflow-remote: the Centre's names through the tunnel's web proxy, every other one directly.
function FindProxyForURL(url, host) {{
    host = host.toLowerCase();
    if ({tests})
        return "PROXY {proxy[0]}:{proxy[1]}";
    return "DIRECT";
}}
"""


def parse_target(method: bytes, target: bytes) -> tuple[str, int, bytes] | str:
    """(host, port, origin-form path) of a proxy request's target, or why it cannot be carried: CONNECT's
    authority (host:port, [v6]:port), or an absolute http:// URL."""
    try:
        text = target.decode("ascii")
    except UnicodeDecodeError:
        return "the request's target is not ASCII"
    if method == b"CONNECT":
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            return f"CONNECT needs host:port, not {text!r}"
        return host.strip("[]"), int(port), b""
    url = urlsplit(text)
    if url.scheme != "http" or not url.hostname:
        return f"{text[:80]!r} is not an absolute http:// URL (set this address as your browser's proxy)"
    try:
        number = url.port or 80
    except ValueError:
        return f"{text[:80]!r} has no valid port"
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return url.hostname, number, path.encode("ascii")


def split_head(head: bytes) -> tuple[list[bytes], list[tuple[bytes, bytes]]] | None:
    """The request line's words and the headers (name lower-cased, value stripped) of a head without its final
    blank line; None when it is not HTTP/1."""
    lines = head.split(b"\r\n")
    words = lines[0].split(b" ")
    if len(words) != 3 or not words[2].startswith(b"HTTP/1."):
        return None
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            return None
        headers.append((name.lower(), value.strip()))
    return words, headers


def rewritten(words: list[bytes], path: bytes, head: bytes) -> bytes:
    """An absolute-form request's head for the origin server: origin form, the proxy's headers taken out, and
    `Connection: close` (the next request on the browser's connection may be for another host) unless it upgrades."""
    lines = head.split(b"\r\n")[1:]
    kept = [line for line in lines if line.partition(b":")[0].strip().lower() not in _PROXY_HEADERS]
    upgrading = any(line.partition(b":")[0].strip().lower() == b"upgrade" for line in kept)
    if not upgrading:
        kept = [line for line in kept if line.partition(b":")[0].strip().lower() != b"connection"]
        kept.append(b"Connection: close")
    return b"\r\n".join([b" ".join([words[0], path, words[2]]), *kept]) + b"\r\n\r\n"


def authorized(headers: list[tuple[bytes, bytes]], credentials: Credentials) -> bool:
    """Whether Proxy-Authorization carries this tunnel's user and password (compared in constant time)."""
    expected = f"{credentials.username}:{credentials.password}".encode()
    for name, value in headers:
        scheme, _, token = value.partition(b" ")
        if name == b"proxy-authorization" and scheme.lower() == b"basic":
            try:
                given = base64.b64decode(token.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(given, expected)
    return False


def _reply(status: str, text: str, extra: str = "", content_type: str = "text/plain; charset=utf-8") -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"Cache-Control: no-store\r\nConnection: close\r\n{extra}\r\n"
    ).encode() + body


class _Upstream(pipe.Upstream):
    """The Centre's side of one browser connection. Through the far-side agent a failed connect at the far end
    comes as the stream's loss: a browser still waiting for an answer (a plain-HTTP request) gets the 502 that says
    why, as through ssh's master, not a closed connection."""

    def connection_lost(self, exc: Exception | None) -> None:
        client = self.client
        if isinstance(exc, OpenFailed) and isinstance(client, _Client) and not client.answered:
            client.refused_by_master = exc.message or exc.code
            client.unreachable()
            return
        super().connection_lost(exc)


class _Client(pipe.Client):
    """One browser connection: its request head read here, then piped to the Centre host it names."""

    through_master = True
    upstream_protocol = _Upstream

    def __init__(self, proxy: WebProxy) -> None:
        super().__init__(proxy, ("", 0))
        self.proxy = proxy
        self.buf = bytearray()
        self.tunnelled = False  # CONNECT: the browser waits for our 200 before its first byte
        self.answered = False  # the browser has had a reply of ours (200 or an error)
        self.timer: asyncio.TimerHandle | None = None

    def started(self) -> None:
        self.timer = self.proxy.loop.call_later(HANDSHAKE_TIMEOUT, self.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        super().connection_lost(exc)

    def eof_received(self) -> bool:
        if not self.piping:
            self.close()
            return False
        return super().eof_received()

    def received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                self._answer("431 Request Header Fields Too Large", "the request head is too large")
            return
        head, rest = bytes(self.buf[:end]), bytes(self.buf[end + 4 :])
        self.buf.clear()
        self._request(head, rest)

    def _request(self, head: bytes, rest: bytes) -> None:
        parsed = split_head(head)
        if parsed is None:
            self._answer("400 Bad Request", "not an HTTP/1 request")
            return
        words, headers = parsed
        method, target = words[0], words[1]
        if target.startswith(b"/"):
            self._own(method, target)
            return
        if self.proxy.credentials is not None and not authorized(headers, self.proxy.credentials):
            self.proxy.refused += 1
            self._answer(
                "407 Proxy Authentication Required",
                "sign in with this tunnel's proxy user and password (see `ecflow-remote open --print`)\n",
                f'Proxy-Authenticate: Basic realm="{REALM}"\r\n',
            )
            return
        where = parse_target(method, target)
        if isinstance(where, str):
            self._answer("400 Bad Request", where + "\n")
            return
        host, port, path = where
        if not is_centre_name(host, self.proxy.domains) or _is_loopback(host):
            self.proxy.refused += 1
            self._answer(
                "403 Forbidden",
                f"ecflow-remote's web proxy carries only the Centre's names ({', '.join(self.proxy.domains)}); "
                f"{host} is not one of them, so it was not sent to the Centre. Reach it directly (the PAC file "
                "does), or add its domain to [web] domains in your profile.\n",
            )
            return
        self.target = (host, port)
        self.piping = True
        if self.timer is not None:
            self.timer.cancel()
        self.proxy.carried += 1
        if method == b"CONNECT":
            self.tunnelled = True
        else:
            self.send(rewritten(words, path, head))
        self.connect()
        if rest:
            self.send(rest)

    def _own(self, method: bytes, target: bytes) -> None:
        """A request to the proxy itself: the PAC file, or a word on what this address is."""
        if target.split(b"?")[0] == PAC_PATH.encode() and method in (b"GET", b"HEAD"):
            self._answer("200 OK", self.proxy.pac(), content_type="application/x-ns-proxy-autoconfig")
            return
        self._answer(
            "404 Not Found",
            f"this is ecflow-remote's web proxy for the Centre: use it as your browser's proxy, or its PAC file "
            f"http://{self.proxy.listen[0]}:{self.proxy.port}{PAC_PATH} (ecflow-remote open URL does both)\n",
        )

    def connected(self) -> None:
        if self.tunnelled and not self.answered:
            self.answered = True
            self._write(b"HTTP/1.1 200 Connection established\r\n\r\n")

    def unreachable(self) -> None:
        if self.answered:
            self.close()
            return
        if self.refused_by_master is not None:
            host, port = self.target if isinstance(self.target, tuple) else ("?", 0)
            why = f"the Centre could not open {host}:{port}: {self.refused_by_master}"
        else:
            why = "the tunnel to the Centre is not up now (reconnecting?): see `ecflow-remote status`"
        self._answer("502 Bad Gateway", why + "\n")

    def _answer(self, status: str, text: str, extra: str = "", content_type: str = "text/plain; charset=utf-8") -> None:
        self.answered = True
        self.piping = False
        self._write(_reply(status, text, extra, content_type))
        self.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class WebProxy(pipe.PipeServer):
    """The web proxy's listener at `listen` (port 0: the kernel's choice), carrying requests for names matching
    `domains` to the Centre; with `credentials`, every proxied request must carry them (no peer check here)."""

    thread_name = "web-proxy"

    def __init__(
        self,
        listen: tuple[str, int],
        domains: tuple[str, ...],
        credentials: Credentials | None = None,
        io: pipe.LoopThread | None = None,
    ) -> None:
        super().__init__(io)
        self.listen = listen
        self.domains = domains
        self.credentials = credentials
        self.carried = 0  # requests sent towards the Centre
        self.refused = 0  # requests refused: another name, or no valid proxy credentials

    def open_listeners(self) -> None:
        host, port = self.listen
        self.listen = (host, self.listen_on(host, port, lambda: _Client(self)))

    @property
    def port(self) -> int:
        return self.listen[1]

    @property
    def url(self) -> str:
        return f"http://{self.listen[0]}:{self.port}"

    @property
    def pac_url(self) -> str:
        return self.url + PAC_PATH

    def pac(self) -> str:
        return pac_text(self.domains, self.listen)


def _is_loopback(host: str) -> bool:
    # A pattern never sends the laptop's own addresses to the Centre's loopback.
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower().rstrip(".") == "localhost"
