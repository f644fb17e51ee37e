"""Open a byte stream to host:port, directly or through a SOCKS5 proxy that resolves the name at the far end."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from ecflow_remote.errors import ConnectError

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


def describe_target(host: str, port: int, proxy: tuple[str, int] | None = None) -> str:
    """`machine1:4141` or `machine1:4141 via SOCKS proxy 127.0.0.1:9050`, for messages."""
    target = f"{host}:{port}"
    if proxy is not None:
        target += f" via SOCKS proxy {proxy[0]}:{proxy[1]}"
    return target


def _set_nodelay_socket(sock: socket.socket) -> None:
    # Requests are one small write each; without this Nagle can hold the last segment back by an RTT.
    if sock.family in (socket.AF_INET, socket.AF_INET6):
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


# The failure mapping below is shared by the asyncio path (open_stream) and the blocking one (open_socket), so
# both say the same words for the same failure. Each returns the error to raise and the cause to chain (None
# hides the context, as `raise ... from None`).


def _direct_failure(
    e: OSError, host: str, port: int, connect_timeout: float
) -> tuple[ConnectError, BaseException | None]:
    target = describe_target(host, port)
    if isinstance(e, TimeoutError):
        return (
            ConnectError(
                f"cannot connect to {target}: timed out after {connect_timeout:g}s; check the host name, "
                "the tunnel, and any firewall",
                host=host,
                port=port,
            ),
            None,
        )
    return ConnectError(f"cannot connect to {target}: {_os_error_words(e)}", host=host, port=port), e


def _proxy_failure(
    e: Exception, host: str, port: int, proxy: tuple[str, int], connect_timeout: float
) -> tuple[ConnectError, BaseException | None] | None:
    """The ConnectError for a python_socks or OS error while connecting through the proxy; None for others."""
    from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError

    target = describe_target(host, port, proxy)
    if isinstance(e, ProxyTimeoutError):
        why = (
            f"timed out after {connect_timeout:g}s (the proxy or the far end did not answer); "
            "check that the tunnel is up"
        )
        cause: BaseException | None = None
    elif isinstance(e, ProxyConnectionError):
        why = (
            f"the SOCKS proxy itself is not reachable ({e.strerror or e}); "
            "start the tunnel (ecflow-remote up) or check its port"
        )
        cause = None
    elif isinstance(e, ProxyError):
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
        cause = None
    elif isinstance(e, OSError):
        why = _os_error_words(e)
        cause = e
    else:
        return None
    return ConnectError(f"cannot connect to {target}: {why}", host=host, port=port, proxy=proxy), cause


def _socks_proxy(proxy: tuple[str, int], proxy_auth: tuple[str, str] | None, *, sync: bool) -> Any:
    # Imported here so that `import ecflow_remote.clients.connect` stays cheap for direct connections.
    from python_socks import ProxyType

    if sync:
        from python_socks.sync import Proxy as SyncProxy

        cls: Any = SyncProxy
    else:
        from python_socks.async_.asyncio import Proxy as AsyncProxy

        cls = AsyncProxy
    username, password = proxy_auth if proxy_auth is not None else (None, None)
    # rdns: the Centre's host names only resolve at the far end of the tunnel.
    return cls(ProxyType.SOCKS5, proxy[0], proxy[1], username=username, password=password, rdns=True)


def _numeric_address(host: str, port: int) -> list[tuple[Any, ...]] | None:
    """The address of a numeric IPv4/IPv6 host without getaddrinfo (which asyncio runs in a thread); None for names."""
    for family, address in ((socket.AF_INET, (host, port)), (socket.AF_INET6, (host, port, 0, 0))):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
    return None


async def _sock_connect(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, address: tuple[Any, ...], deadline: float
) -> None:
    """loop.sock_connect for a resolved address, by loop time `deadline`; no trip round the event loop (nor a timer)
    when the handshake is already over as connect() returns, as it is to the tunnel's local end on 127.0.0.1."""
    try:
        sock.connect(address)
        return
    except (BlockingIOError, InterruptedError):
        pass
    try:
        sock.getpeername()  # ENOTCONN while the handshake is still going
        return
    except OSError:
        pass
    fut = loop.create_future()

    def on_writable() -> None:
        if fut.done():
            return
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            # The words asyncio's sock_connect uses, so errors read the same as through open_connection.
            fut.set_exception(OSError(err, f"Connect call failed {address}"))
        else:
            fut.set_result(None)

    fd = sock.fileno()
    loop.add_writer(fd, on_writable)
    try:
        async with asyncio.timeout_at(deadline):
            await fut
    finally:
        loop.remove_writer(fd)


async def _connect_direct_socket(host: str, port: int, connect_timeout: float) -> socket.socket:
    """What asyncio.open_connection does to connect (each address in turn, the same errors), minus the streams;
    TimeoutError after connect_timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + connect_timeout
    infos = _numeric_address(host, port)
    if infos is None:
        async with asyncio.timeout_at(deadline):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError("getaddrinfo() returned empty list")
    errors: list[OSError] = []
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await _sock_connect(loop, sock, address, deadline)
        except OSError as e:
            sock.close()
            errors.append(e)
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    if len(errors) == 1 or all(str(e) == str(errors[0]) for e in errors):
        raise errors[0]
    raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")


async def open_socket_async(
    host: str,
    port: int,
    *,
    proxy: tuple[str, int] | None = None,
    proxy_auth: tuple[str, str] | None = None,
    connect_timeout: float,
) -> socket.socket:
    """open_stream without the streams: a connected non-blocking socket (TCP_NODELAY) for the loop's sock_* calls,
    or ConnectError saying why not. A request/reply client saves the transport, protocol and stream objects."""
    if proxy is None:
        try:
            sock = await _connect_direct_socket(host, port, connect_timeout)
        except OSError as e:  # TimeoutError included
            error, cause = _direct_failure(e, host, port, connect_timeout)
            raise error from cause
    else:
        socks = _socks_proxy(proxy, proxy_auth, sync=False)
        try:
            sock = await socks.connect(host, port, timeout=connect_timeout)
        except Exception as e:
            failure = _proxy_failure(e, host, port, proxy, connect_timeout)
            if failure is None:
                raise  # not a connection's failure: as it came
            raise failure[0] from failure[1]
    try:
        _set_nodelay_socket(sock)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def open_stream(
    host: str,
    port: int,
    *,
    proxy: tuple[str, int] | None = None,
    proxy_auth: tuple[str, str] | None = None,
    connect_timeout: float,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to host:port (through a SOCKS5 proxy when given), as streams; raises ConnectError saying why not."""
    sock = await open_socket_async(host, port, proxy=proxy, proxy_auth=proxy_auth, connect_timeout=connect_timeout)
    try:
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise


def open_socket(
    host: str,
    port: int,
    *,
    proxy: tuple[str, int] | None = None,
    proxy_auth: tuple[str, str] | None = None,
    connect_timeout: float,
    timeout: float | None = None,
) -> socket.socket:
    """open_stream for blocking code: a connected socket (TCP_NODELAY, `timeout` per operation), or ConnectError.

    No event loop is involved, which saves a few hundred microseconds per connection in the sync clients.
    """
    if proxy is None:
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as e:  # TimeoutError included
            error, cause = _direct_failure(e, host, port, connect_timeout)
            raise error from cause
    else:
        socks = _socks_proxy(proxy, proxy_auth, sync=True)
        try:
            sock = socks.connect(host, port, timeout=connect_timeout)
        except Exception as e:
            failure = _proxy_failure(e, host, port, proxy, connect_timeout)
            if failure is None:
                raise  # not a connection's failure: as it came
            raise failure[0] from failure[1]
    try:
        _set_nodelay_socket(sock)
        sock.settimeout(timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def accepts(address: str | Path | tuple[str, int], timeout: float = 0.5) -> bool:
    """Does `address` (a unix socket path, or host and port) take a connection now: listening, not merely there."""
    try:
        if isinstance(address, tuple):
            socket.create_connection(address, timeout=timeout).close()
        else:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(timeout)
                s.connect(str(address))
    except OSError:
        return False
    return True


def connect_time(address: tuple[str, int], timeout: float = 1.0) -> float | None:
    """Seconds a TCP connection to `address` takes to open — one round trip (the SYN's answer), the name lookup
    not counted; None when it does not open within `timeout`."""
    try:
        infos = socket.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM)
    except OSError:
        return None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as s:
            s.settimeout(timeout)
            t0 = time.perf_counter()
            try:
                s.connect(sockaddr)
            except OSError:
                continue
            return time.perf_counter() - t0
    return None


def wait_accepting(
    address: tuple[str, int], stop: Callable[[], bool], every: float = 0.1, patience: float = 2.0
) -> bool:
    """Until `address` takes a TCP connection (True) or stop() says so (False). A new attempt starts every `every`
    seconds and each is given `patience`, several in flight at once: a link that comes back is seen about one
    round trip later however slow it is (one attempt at a time with a short timeout would never see a slow link,
    with a long one it would wait out that timeout first)."""
    infos: list[Any] = []
    pending: dict[socket.socket, float] = {}
    try:
        while not stop():
            started = time.monotonic()
            if not infos:
                with contextlib.suppress(OSError):
                    infos = socket.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM)
            if infos:
                family, kind, proto, _, sockaddr = infos[0]
                s = socket.socket(family, kind, proto)
                s.setblocking(False)
                code = s.connect_ex(sockaddr)
                if code == 0:
                    s.close()
                    return True
                if code in (errno.EINPROGRESS, errno.EAGAIN):
                    pending[s] = started + patience
                else:
                    s.close()  # refused or unreachable at once: the next attempt in `every`
            while (left := started + every - time.monotonic()) > 0:
                if not pending:
                    time.sleep(left)
                    break
                _, ready, _ = select.select([], list(pending), [], left)
                for s in ready:
                    del pending[s]
                    ok = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                    s.close()
                    if ok:
                        return True
            for s, deadline in list(pending.items()):
                if time.monotonic() > deadline:
                    del pending[s]
                    s.close()
        return False
    finally:
        for s in pending:
            s.close()


async def close_stream(writer: asyncio.StreamWriter) -> None:
    """Close without letting a peer that already went away turn into an error."""
    writer.close()
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        await writer.wait_closed()


class DestinationOptions(TypedDict, total=False):
    """Destination's keyword arguments, for the clients that pass them on."""

    proxy: tuple[str, int] | None
    proxy_auth: tuple[str, str] | None
    connect_timeout: float
    read_timeout: float
    name: str | None


class Destination:
    """Where a client connects (host:port, directly or through a SOCKS5 proxy) and its time limits; the base of the
    ecFlow and log-server clients, which open a new connection per request."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        proxy: tuple[str, int] | None = None,
        proxy_auth: tuple[str, str] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        name: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.proxy = proxy
        self.proxy_auth = proxy_auth
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # How messages name it: through a tunnel host:port is a loopback address the user never wrote.
        self.name = name

    @property
    def where(self) -> str:
        return self.name or describe_target(self.host, self.port, self.proxy)

    async def connect_stream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """open_stream to this endpoint."""
        return await open_stream(
            self.host, self.port, proxy=self.proxy, proxy_auth=self.proxy_auth, connect_timeout=self.connect_timeout
        )

    async def connect_socket_async(self) -> socket.socket:
        """open_socket_async to this endpoint: a non-blocking socket for loop.sock_sendall / sock_recv."""
        return await open_socket_async(
            self.host, self.port, proxy=self.proxy, proxy_auth=self.proxy_auth, connect_timeout=self.connect_timeout
        )

    def connect_socket(self) -> socket.socket:
        """open_socket to this endpoint, each blocking operation limited to read_timeout."""
        return open_socket(
            self.host,
            self.port,
            proxy=self.proxy,
            proxy_auth=self.proxy_auth,
            connect_timeout=self.connect_timeout,
            timeout=self.read_timeout,
        )
