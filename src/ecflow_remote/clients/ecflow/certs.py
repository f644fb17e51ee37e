"""Where an ecFlow client finds a TLS server's self-signed certificate, as ecflow_client 5.x looks for it."""

from __future__ import annotations

import functools
import os
import ssl
from pathlib import Path

from ecflow_remote.errors import ServerCertificateError


def certificates_dir() -> Path:
    """ecFlow's certificate directory: $ECF_SSL_DIR, else ~/.ecflowrc/ssl (Openssl::certificates_dir)."""
    found = os.environ.get("ECF_SSL_DIR")
    return Path(found) if found else Path.home() / ".ecflowrc" / "ssl"


def candidates(host: str, port: int, directory: Path | None = None) -> list[Path]:
    """The files that may hold the certificate of the server at host:port: the server's own first, then the
    shared one. ecflow_client with ECF_SSL=<host>.<port> reads only the first; with ECF_SSL=1 it prefers the
    shared server.crt. Here the server's own wins, so one home can hold several servers' certificates."""
    base = directory or certificates_dir()
    return [base / f"{host}.{port}.crt", base / "server.crt"]


def find(host: str, port: int) -> Path | None:
    """The first certificate file for host:port that exists, or None."""
    return next((p for p in candidates(host, port) if p.is_file()), None)


def missing_words(host: str, port: int, where: str) -> str:
    """The one line for a TLS server whose certificate is nowhere at home."""
    looked = " or ".join(str(p) for p in candidates(host, port))
    return (
        f'{where} has protocol = "ssl" but its certificate is not at home: looked for {looked}. Copy the '
        "server's server.crt (from the server account's ~/.ecflowrc/ssl) to the first"
    )


def ecf_ssl_value(host: str, port: int, certificate: Path) -> str:
    """What ECF_SSL must say for ecflow_client to read `certificate`: <host>.<port> for the server's own file,
    1 for the shared server.crt."""
    return f"{host}.{port}" if certificate.name == f"{host}.{port}.crt" else "1"


@functools.lru_cache(maxsize=32)
def _context(path: str, mtime_ns: int) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # As ecflow_client (ssl_connection.cpp): the peer's certificate must chain to this file (verify_peer), the host
    # name is not checked. Through a tunnel the name we connect to is a loopback address in any case.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    # A self-signed server certificate is its own trust anchor.
    ctx.verify_flags |= getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
    try:
        ctx.load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as e:
        raise ServerCertificateError(f"{path} is not a readable PEM certificate ({e})") from None
    return ctx


def verifying_context(certificate: Path) -> ssl.SSLContext:
    """A TLS client context that trusts exactly `certificate` (made again when the file changes)."""
    try:
        mtime = certificate.stat().st_mtime_ns
    except OSError as e:
        raise ServerCertificateError(f"cannot read {certificate}: {e.strerror}") from None
    return _context(str(certificate), mtime)


@functools.lru_cache(maxsize=1)
def unverified_context() -> ssl.SSLContext:
    """HTTPS as ecflow_client 5.15+ does it (HttpClient.cpp): no certificate verification."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
