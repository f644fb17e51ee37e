"""Presents each relayed server's own identity in ecFlow requests: its ecflow_user name, or its custom user and
password.

For each server with an `ecflow_user` or a `custom_user`, ssh forwards the Centre's port to a unix socket in the
tunnel's 0700 run directory (`-L PATH:host:port`, socket 0600), or the agent carries it, and this relay listens on
the server's loopback endpoint instead. Every request a client sends is one frame (8-character hex length, then
cereal JSON); in a user command whose `user_` is the laptop's own login name (what ecflow_client, ecflow_ui and
python3-ecflow send when no ECF_USER is set) that value is replaced by the configured name, and for a custom user
the two members ecflow_client itself would send after it are added (`pswd_`, the password crypt()ed as ecFlow
sends it, and `cu_`). So one program reaches every server, each with its own identity, and no launched program
is given a user name or a password. Everything else passes untouched: requests that already carry a custom user
or a password of their own, task commands (no `user_`), other names, replies, and anything that is not a
well-formed request (the server judges those; a request the relay cannot read keeps the laptop's name, so the
failure is a refusal, never more access). An `http` server's requests (ecflow_client --http, ecflow_ui 5.14 and
later: the same JSON POSTed with a Content-Length) are rewritten alike, their Content-Length set anew; TLS and
HTTPS ones cannot be read, so those servers are not relayed.

Never wider than the profile: only the configured identity, only on that server's own endpoint, loopback only; and
nothing but the relay can reach the unix socket, so no request reaches the server unread.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecflow_remote.access import pipe
from ecflow_remote.clients.ecflow import wire
from ecflow_remote.clients.ecflow.wire import HEADER_SIZE, decode_header, encode_header
from ecflow_remote.errors import ProtocolError
from ecflow_remote.net import is_loopback
from ecflow_remote.plan import Endpoint
from ecflow_remote.unix import login_name

# A bigger request (a `--load` of a very large definition) is passed through unread: parsing it would hold the
# relay's loop for seconds. Its user name then stays the laptop's, and the server refuses it (never widens). It is
# also the most a connection can make the relay hold (where no peer check keeps other accounts out: macOS).
MAX_REWRITE = 16 * 1024 * 1024
# A client that holds a request unfinished (or sends none) this long is dropped: it would hold a slot and its
# buffer for ever. Waiting for the server's reply is not idle.
IDLE_TIMEOUT = 60.0
_REQUEST_KEY = "21ClientToServerRequest"


def socket_path(rundir: Path, server: str) -> Path:
    """Where ssh forwards a relayed server: short (sun_path is 104-108 bytes) and unique per server name."""
    return rundir / f"ecf-{hashlib.sha256(server.encode()).hexdigest()[:10]}.sock"


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


@dataclass(frozen=True)
class Presented:
    """The identity a relay presents for one server: a user name, and for a custom user the flag and the password
    as it travels (already crypt()ed, as ecflow_client sends it; never shown)."""

    user: str
    custom: bool = False
    password: str = field(default="", repr=False)


def presented_for(endpoint: Endpoint, passwords: Mapping[str, str]) -> Presented | None:
    """What the relay presents on `endpoint`: its ecflow_user, or its custom user with the password (crypt()ed, by
    server name in `passwords`; one not read goes without, as the native client's); None: not relayed."""
    if not endpoint.relay_user:
        return None
    if not endpoint.relay_custom:
        return Presented(endpoint.relay_user)
    return Presented(endpoint.relay_user, True, passwords.get(endpoint.name, ""))


def rewrite_body(body: bytes, local_user: str, present: Presented | str) -> bytes | None:
    """The request body with the laptop user's name replaced by the presented identity, or None to pass it on
    unchanged.

    Only the bytes of the `user_` values change, and for a custom user `pswd_` and `cu_` are inserted right after
    each, in the order cereal reads them (UserCmd::serialize); the rest of the request is forwarded byte for byte
    (no re-encoding, so nothing cereal wrote differently from Python's json can be altered). Rewritten only when
    every UserCmd base in the request (a group command has several) names `local_user`, none is a custom user and,
    for a custom user, none carries a password of its own.
    """
    if isinstance(present, str):
        present = Presented(present)
    if (local_user == present.user and not present.custom) or len(body) > MAX_REWRITE:
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
    if present.custom and any(b.get("pswd_") for b in bases):
        return None  # the login name's own password (ECF_PASSWD): the program's choice, the server judges it
    # Unescaped quotes cannot occur inside a JSON string, so each match is a real `user_` member (always after
    # the base's value0, hence the comma: its layout is reused for the members added after it).
    pattern = re.compile(rb'(,\s*)"user_"(\s*:\s*)' + re.escape(json.dumps(local_user).encode()))

    def replacement(m: re.Match[bytes]) -> bytes:
        comma, colon = m.group(1), m.group(2)
        out = comma + b'"user_"' + colon + json.dumps(present.user).encode()
        if present.custom:
            # The members UserCmd writes after user_ only when set: pswd_ (non-empty), then cu_ (true).
            if present.password:
                out += comma + b'"pswd_"' + colon + json.dumps(present.password).encode()
            out += comma + b'"cu_"' + colon + b"true"
        return out

    out, n = pattern.subn(replacement, body)
    if n != len(bases):
        return None  # escaped differently from what we can match exactly: leave the request as it is
    return out


def present(request: dict[str, Any], local_user: str, present: Presented) -> dict[str, Any]:
    """`request` as the relay passes it on (rewritten, or as it was): for a check of what a server makes of it."""
    body = rewrite_body(wire.encode_json(request), local_user, present)
    return request if body is None else dict(json.loads(body))


def rewrite_frames(buf: bytearray, local_user: str, present: Presented | str) -> tuple[bytes, bool]:
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
        new = rewrite_body(body, local_user, present)
        if new is None:
            out += buf[:end]
        else:
            out += encode_header(len(new)) + new
        del buf[:end]
    return bytes(out), False


# The most of an HTTP request's head the relay reads before it gives up parsing and pipes the rest.
MAX_HEAD = 16 * 1024


def rewrite_http(buf: bytearray, local_user: str, present: Presented | str) -> tuple[bytes, bool]:
    """As rewrite_frames, for HTTP/1.1 requests: a POST whose body rewrite_body changes goes on with that body and
    its Content-Length set anew. A request without exactly one Content-Length (chunked, say), an oversize one or a
    head that never ends ends parsing: the rest of the connection is piped as it comes."""
    out = bytearray()
    while buf:
        head_end = buf.find(b"\r\n\r\n", 0, MAX_HEAD)
        if head_end < 0:
            if len(buf) < MAX_HEAD:
                break  # the head is not complete yet
            return _piped(out, buf), True
        lines = bytes(buf[:head_end]).split(b"\r\n")
        fields = [line.partition(b":") for line in lines[1:]]
        lengths = [value.strip() for name, _, value in fields if name.strip().lower() == b"content-length"]
        chunked = any(name.strip().lower() == b"transfer-encoding" for name, _, _ in fields)
        if chunked or len(lengths) != 1 or not lengths[0].isdigit() or int(lengths[0]) > MAX_REWRITE:
            return _piped(out, buf), True
        end = head_end + 4 + int(lengths[0])
        if len(buf) < end:
            break
        new = rewrite_body(bytes(buf[head_end + 4 : end]), local_user, present) if lines[0][:5] == b"POST " else None
        if new is None:
            out += buf[:end]
        else:
            kept = [line for line in lines[1:] if line.partition(b":")[0].strip().lower() != b"content-length"]
            out += b"\r\n".join([lines[0], *kept, b"Content-Length: %d" % len(new)]) + b"\r\n\r\n" + new
        del buf[:end]
    return bytes(out), False


def _piped(out: bytearray, buf: bytearray) -> bytes:
    out += buf
    buf.clear()
    return bytes(out)


# ----------------------------------------------------------------------------------------------- the relay


@dataclass(frozen=True)
class RelayRoute:
    """One relayed server: its loopback endpoint, where its requests go (ssh's unix socket, or the Centre's
    host:port through the agent), and the identity to present (a name, or a Presented custom user)."""

    listen: tuple[str, int]
    upstream: pipe.Target
    user: Presented | str
    http: bool = False  # the server speaks HTTP (protocol = "http"), not ecFlow's framing


class _Client(pipe.Client):
    """A client of one relayed endpoint: requests read and rewritten, replies piped straight back."""

    def __init__(self, relay: Relay, route: RelayRoute) -> None:
        super().__init__(relay, route.upstream)
        self.relay = relay
        self.route = route
        self.buf = bytearray()  # the front of a request not yet complete (piping: past a frame we do not parse)
        self.idle: asyncio.TimerHandle | None = None

    def started(self) -> None:
        # Connect to ssh at once: the request is read meanwhile, so the hop adds no round trip.
        self.connect()
        self._watch(True)

    def received(self, data: bytes) -> None:
        self.buf += data
        rewrite = rewrite_http if self.route.http else rewrite_frames
        out, self.piping = rewrite(self.buf, self.relay.local_user, self.route.user)
        if out:
            self.send(out)
        self._watch(bool(self.buf) and not self.piping)

    def _watch(self, waiting: bool) -> None:
        """(Re)start the idle timer while a request is awaited or unfinished; stop it once none is."""
        if self.idle is not None:
            self.idle.cancel()
        self.idle = self.server.loop.call_later(IDLE_TIMEOUT, self.abort) if waiting else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._watch(False)
        super().connection_lost(exc)

    def eof_received(self) -> bool:
        if self.buf:  # a cut-off request: the server gets what was sent and judges it
            self.send(bytes(self.buf))
            self.buf.clear()
        self._watch(False)  # nothing more can come: what is left is the server's reply
        return super().eof_received()


class Relay(pipe.PipeServer):
    """The relays of one tunnel: a loopback listener per route, all served by one event loop in a daemon thread
    (pipe.PipeServer, like socks.SocksFront); it outlives ssh reconnects."""

    thread_name = "ecflow-relay"

    def __init__(
        self, routes: Sequence[RelayRoute], local_user: str | None = None, io: pipe.LoopThread | None = None
    ) -> None:
        for route in routes:
            if not is_loopback(route.listen[0]):
                raise ValueError(f"the ecFlow relay listens on loopback only, not {route.listen[0]}")
        super().__init__(io)
        self.routes = list(routes)
        self.local_user = local_user if local_user is not None else login_name()

    def open_listeners(self) -> None:
        for i, route in enumerate(self.routes):
            host, port = route.listen
            actual = self.listen_on(host, port, functools.partial(_Client, self, route))  # port 0: kernel's choice
            self.routes[i] = RelayRoute((host, actual), route.upstream, route.user, route.http)
