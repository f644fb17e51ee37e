"""How one request reaches an ecFlow server: its framing in clear or inside TLS (ECF_SSL), or an HTTP(S) POST."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ecflow_remote.errors import NoReply, ProtocolError, ProtocolMismatch, ServerCertificateError

from . import certs
from .wire import HEADER_SIZE, MAX_REPLY, recv_frame, speaks

PROTOCOLS = ("plain", "ssl", "http", "https")
# ecflow_client 5.15+ (HttpClient.cpp) POSTs the request's JSON here and reads the reply's JSON from the body.
HTTP_PATH = "/v1/ecflow"
# How long the check "does it speak TLS?" waits for a handshake, after a plain request got no reply.
_PROBE_TIMEOUT = 3.0

# Fetches a certificate missing at home (the files looked for, in order); the path it wrote, or None.
CertificateFetcher = Callable[[list[Path]], Path | None]


@dataclass(frozen=True)
class EcflowChannel:
    """A server's protocol, and the name its certificate goes by (its host and port at the Centre, not the tunnel's
    loopback address); `fetch`: gets a certificate missing at home from elsewhere (the workstation), once."""

    protocol: str = "plain"
    server: tuple[str, int] | None = None
    fetch: CertificateFetcher | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {self.protocol!r}")

    def certificate(self, where: str, fallback: tuple[str, int]) -> Path:
        """The certificate to trust for this TLS server: at home, else fetched; ServerCertificateError if neither."""
        host, port = self.server or fallback
        found = certs.find(host, port)
        if found is None and self.fetch is not None:
            found = self.fetch(certs.candidates(host, port))
        if found is None:
            raise ServerCertificateError(certs.missing_words(host, port, where))
        return found


def exchange(
    sock: socket.socket,
    frame: bytes,
    channel: EcflowChannel,
    where: str,
    deadline: float,
    target: tuple[str, int],
    reconnect: Callable[[], socket.socket],
) -> bytes:
    """Send one framed request on the connected blocking `sock` as `channel` says and return the reply body.
    `target`: where sock goes (for certificate names and the HTTP Host header when the channel has no server);
    `reconnect`: a new connection, to check whether a silent server speaks TLS."""
    if channel.protocol == "plain":
        sock.sendall(frame)
        try:
            return recv_frame(sock, where, _left(deadline))
        except NoReply as e:
            raise silent_server(where, reconnect, frame) or e from None
    if channel.protocol == "ssl":
        certificate = channel.certificate(where, target)
        with _tls(sock, certs.verifying_context(certificate), where, certificate) as tls:
            tls.sendall(frame)
            return recv_frame(tls, where, _left(deadline))
    host, port = channel.server or target
    if channel.protocol == "https":
        with _tls(sock, certs.unverified_context(), where, None) as tls:
            return _post(tls, frame[HEADER_SIZE:], where, f"{host}:{port}", deadline)
    return _post(sock, frame[HEADER_SIZE:], where, f"{host}:{port}", deadline)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _tls(sock: socket.socket, ctx: ssl.SSLContext, where: str, certificate: Path | None) -> ssl.SSLSocket:
    """`sock` after a TLS handshake end to end (the tunnel only forwards the bytes)."""
    try:
        return ctx.wrap_socket(sock)
    except ssl.SSLCertVerificationError as e:
        raise ServerCertificateError(
            f"{where} presents a certificate that {certificate} does not vouch for ({e.verify_message}): copy the "
            "server's current server.crt there"
        ) from None
    except (ssl.SSLError, ConnectionError) as e:
        raise ProtocolMismatch(
            f"{where} did not complete a TLS handshake ({getattr(e, 'reason', None) or e}): it does not speak TLS; "
            'check protocol for it in the profile ("plain", or "http" for ecflow_server --http)'
        ) from None


def silent_server(where: str, reconnect: Callable[[], socket.socket], frame: bytes) -> ProtocolMismatch | None:
    """Why a server closed on the plain request `frame` without a word, if it is because it speaks TLS or HTTP
    (asked on new connections: a TLS handshake, then the same request POSTed); None if it answers neither."""
    # ecflow_server --http answers nothing but its own requests (not even GET /), so ask it the real one.
    body = frame[HEADER_SIZE:]
    if _answers(reconnect, _tls_handshake):
        # An https server (ecflow_server --http behind a TLS front) completes a handshake too: asked inside TLS.
        if _answers(reconnect, lambda sock: _https_answers(sock, body)):
            return ProtocolMismatch(speaks(where, "HTTPS", "https"))
        return ProtocolMismatch(speaks(where, "TLS", "ssl"))
    if _answers(reconnect, lambda sock: _http_answers(sock, body)):
        return ProtocolMismatch(speaks(where, "HTTP", "http"))
    return None


def _tls_handshake(sock: socket.socket) -> bool:
    with certs.unverified_context().wrap_socket(sock):
        return True


def _https_answers(sock: socket.socket, body: bytes) -> bool:
    with certs.unverified_context().wrap_socket(sock) as tls:
        return _http_answers(tls, body)


def _http_answers(sock: socket.socket, body: bytes) -> bool:
    sock.sendall(_post_head("ecflow", len(body)) + body)
    return sock.recv(5) == b"HTTP/"


def _answers(reconnect: Callable[[], socket.socket], probe: Callable[[socket.socket], bool]) -> bool:
    try:
        sock = reconnect()
    except (OSError, ProtocolError):
        return False
    try:
        sock.settimeout(_PROBE_TIMEOUT)
        return probe(sock)
    except (OSError, ValueError):
        return False
    finally:
        sock.close()


def _post_head(host: str, length: int) -> bytes:
    return (
        f"POST {HTTP_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


def _post(sock: socket.socket, body: bytes, where: str, host: str, deadline: float) -> bytes:
    """POST the request's JSON as ecflow_client --http does; the reply's JSON."""
    sock.settimeout(_left(deadline))
    sock.sendall(_post_head(host, len(body)) + body)
    response = http.client.HTTPResponse(sock)
    try:
        try:
            response.begin()
        except http.client.RemoteDisconnected:
            raise ProtocolMismatch(
                f"{where} closed the connection on an HTTP request: it does not speak HTTP (a plain or TLS server, "
                "or a dead one); check protocol for it in the profile"
            ) from None
        except http.client.BadStatusLine:
            raise ProtocolMismatch(
                f"{where} answered an HTTP request with something else: it does not speak HTTP; check protocol for "
                "it in the profile"
            ) from None
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > MAX_REPLY:
            raise ProtocolError(f"{where} announced an HTTP reply of {length} bytes, more than this client accepts")
        sock.settimeout(_left(deadline))
        data = response.read()
    except http.client.IncompleteRead as e:
        raise ProtocolError(f"{where} closed the connection inside an HTTP reply ({len(e.partial)} bytes)") from None
    except http.client.HTTPException as e:
        raise ProtocolError(f"{where} sent a broken HTTP reply ({e!r})") from None
    finally:
        response.close()
    if response.status != 200:
        text = data[:200].decode("utf-8", "replace").strip()
        raise ProtocolError(f"{where} answered HTTP {response.status} {response.reason}: {text}")
    return data
