"""Open a byte stream to host:port, directly or through a SOCKS5 proxy that resolves the name at the far end."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket

from ecflow_remote.errors import EcflowRemoteError

# SOCKS5 reply codes (RFC 1928) in words a user can act on.
_SOCKS_REPLIES = {
    1: "general failure at the far end (the Centre host may not exist or may be down)",
    2: "the proxy's rules do not allow this connection",
    3: "network unreachable from the far end",
    4: "host unreachable from the far end",
    5: "connection refused at the far end (nothing listens on that port)",
    6: "timed out at the far end",
    7: "the proxy does not support CONNECT",
    8: "the proxy does not support this address type",
}


class ConnectError(EcflowRemoteError):
    """A TCP connection (direct or through the SOCKS proxy) could not be made."""

    def __init__(self, message: str, *, host: str, port: int, proxy: tuple[str, int] | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.port = port
        self.proxy = proxy


class StreamTimeout(EcflowRemoteError):
    """The peer accepted the connection but did not answer in time."""


def describe_target(host: str, port: int, proxy: tuple[str, int] | None = None) -> str:
    """`machine1:4141` or `machine1:4141 via SOCKS proxy 127.0.0.1:9050`, for messages."""
    target = f"{host}:{port}"
    if proxy is not None:
        target += f" via SOCKS proxy {proxy[0]}:{proxy[1]}"
    return target


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    # Requests are one small write each; without this Nagle can hold the last segment back by an RTT.
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _os_error_words(e: OSError) -> str:
    if isinstance(e, ConnectionRefusedError) or e.errno == errno.ECONNREFUSED:
        return "connection refused (nothing listens there; is the server or the tunnel running?)"
    if isinstance(e, socket.gaierror):
        return f"unknown host ({e.strerror or e})"
    if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"no route to host ({e.strerror})"
    return e.strerror or str(e) or type(e).__name__


async def _open_direct(
    host: str, port: int, connect_timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    target = describe_target(host, port)
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        raise ConnectError(
            f"cannot connect to {target}: timed out after {connect_timeout:g}s; check the host name, "
            "the tunnel, and any firewall",
            host=host,
            port=port,
        ) from None
    except OSError as e:
        raise ConnectError(f"cannot connect to {target}: {_os_error_words(e)}", host=host, port=port) from e
    return reader, writer


async def _open_proxied(
    host: str,
    port: int,
    proxy: tuple[str, int],
    proxy_auth: tuple[str, str] | None,
    connect_timeout: float,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    # Imported here so that `import ecflow_remote.transport` stays cheap for direct connections.
    from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError, ProxyType
    from python_socks.async_.asyncio import Proxy

    target = describe_target(host, port, proxy)
    username, password = proxy_auth if proxy_auth is not None else (None, None)
    # rdns: the Centre's host names only resolve at the far end of the tunnel.
    socks = Proxy(ProxyType.SOCKS5, proxy[0], proxy[1], username=username, password=password, rdns=True)
    try:
        sock = await socks.connect(host, port, timeout=connect_timeout)
    except ProxyTimeoutError:
        raise ConnectError(
            f"cannot connect to {target}: timed out after {connect_timeout:g}s (the proxy or the far end "
            "did not answer); check that the tunnel is up",
            host=host,
            port=port,
            proxy=proxy,
        ) from None
    except ProxyConnectionError as e:
        raise ConnectError(
            f"cannot connect to {target}: the SOCKS proxy itself is not reachable "
            f"({e.strerror or e}); start the tunnel (ecflow-remote up) or check its port",
            host=host,
            port=port,
            proxy=proxy,
        ) from None
    except ProxyError as e:
        code = e.error_code
        if code is not None:
            why = _SOCKS_REPLIES.get(code, f"SOCKS error {code}")
        else:
            # OpenSSH's -D closes the client socket without a SOCKS reply when the far end refuses or the
            # name does not resolve there.
            why = (
                f"the proxy closed the connection ({e}): at the far end {host}:{port} refused, "
                "or the host name is unknown there"
            )
        raise ConnectError(f"cannot connect to {target}: {why}", host=host, port=port, proxy=proxy) from None
    except OSError as e:
        raise ConnectError(
            f"cannot connect to {target}: {_os_error_words(e)}", host=host, port=port, proxy=proxy
        ) from e
    try:
        reader, writer = await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
    return reader, writer


async def open_stream(
    host: str,
    port: int,
    *,
    proxy: tuple[str, int] | None = None,
    proxy_auth: tuple[str, str] | None = None,
    connect_timeout: float,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to host:port (through a SOCKS5 proxy when given); raises ConnectError saying why not."""
    if proxy is None:
        reader, writer = await _open_direct(host, port, connect_timeout)
    else:
        reader, writer = await _open_proxied(host, port, proxy, proxy_auth, connect_timeout)
    _set_nodelay(writer)
    return reader, writer


async def close_stream(writer: asyncio.StreamWriter) -> None:
    """Close without letting a peer that already went away turn into an error."""
    writer.close()
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        await writer.wait_closed()
