"""Native clients for a tunnel's endpoints, each with its route (forward or SOCKS front) and identity: one factory
for the supervisor's health checks, `status`, `suites`, `output`, the API and the tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecflow_remote.access.identity import Auth
from ecflow_remote.net import same_host
from ecflow_remote.plan import Endpoint, Plan, Route
from ecflow_remote.profile.model import DEFAULT_LOGSERVER_PORT
from ecflow_remote.transport import control

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import AsyncEcflowClient, EcflowClient
    from ecflow_remote.clients.logserver import AsyncLogServerClient, LogServerClient


@dataclass(frozen=True)
class Clients:
    """Makes clients for one plan; `auth`: who the native client is to each server (by server name). `direct`:
    ssh's own forward socket for a Centre host:port (the plain transport), which the supervisor's health checks and
    the finder's rounds connect to straight, past our listener and its hand-over to ssh's master: an idle tunnel's
    rounds then wake ssh alone (see README, "Idle")."""

    plan: Plan
    auth: Mapping[str, Auth] = field(default_factory=dict)
    # Gets a TLS server's certificate missing at home from the workstation (tunnel/certfetch.py); None: never.
    fetch_certificate: Callable[[list[Path]], Path | None] | None = None
    direct: Mapping[tuple[str, int], Path] = field(default_factory=dict)
    # With both: the ecFlow servers' `direct` connections are asked of ssh's master at `master` instead (a stdio
    # forward, as `ssh -W`), and the time it takes to confirm each channel (one round trip through ssh) goes to
    # `timed`: the health round measures the link for free (transport/link.py).
    master: Path | None = None
    timed: Callable[[float], None] | None = None

    def ecflow(self, server: str, *, connect_timeout: float = 5.0, read_timeout: float = 30.0) -> AsyncEcflowClient:
        """An asyncio ecFlow client for a profile server, as the profile's ecFlow user (or custom user)."""
        from ecflow_remote.clients.ecflow import AsyncEcflowClient

        host, port, options = self._ecflow_args(server, connect_timeout, read_timeout)
        endpoint = self.plan.endpoint(server)
        path = self.direct.get((endpoint.host, endpoint.port))
        if path is not None and endpoint.forwarded and endpoint.protocol == "plain":  # (TLS, HTTP: as before)
            if self.master is not None and self.timed is not None:
                target = (endpoint.host, endpoint.port)
                return _timed_ecflow(self.master, target, self.timed)(host, port, name=server, **options)
            return _direct_ecflow(path)(host, port, name=server, **options)
        return AsyncEcflowClient(host, port, name=server, **options)

    def ecflow_sync(self, server: str, *, connect_timeout: float = 5.0, read_timeout: float = 30.0) -> EcflowClient:
        """The blocking twin of `ecflow`."""
        from ecflow_remote.clients.ecflow import EcflowClient

        host, port, options = self._ecflow_args(server, connect_timeout, read_timeout)
        return EcflowClient(host, port, name=server, **options)

    def logserver_endpoint(self, host: str, port: int = DEFAULT_LOGSERVER_PORT) -> Endpoint | None:
        """The tunnel's endpoint for a log server named as ECF_LOGHOST names it (short or fully qualified)."""
        for e in self.plan.logservers():
            if same_host(e.host, host) and e.port == port:
                return e
        return None

    def logserver(
        self, host: str, port: int = DEFAULT_LOGSERVER_PORT, *, connect_timeout: float = 5.0, read_timeout: float = 30.0
    ) -> AsyncLogServerClient:
        """An asyncio client for a log server of the tunnel; LookupError if the tunnel does not reach it."""
        from ecflow_remote.clients.logserver import AsyncLogServerClient

        endpoint = self._logserver(host, port)
        route = self.plan.route(endpoint)
        options = _options(route, connect_timeout, read_timeout)
        path = self.direct.get((endpoint.host, endpoint.port))
        if path is not None and endpoint.forwarded:
            return _direct_logserver(path)(route.host, route.port, name=f"{host}:{port}", **options)
        return AsyncLogServerClient(route.host, route.port, name=f"{host}:{port}", **options)

    def logserver_sync(
        self, host: str, port: int = DEFAULT_LOGSERVER_PORT, *, connect_timeout: float = 5.0, read_timeout: float = 30.0
    ) -> LogServerClient:
        """The blocking twin of `logserver`."""
        from ecflow_remote.clients.logserver import LogServerClient

        route = self.plan.route(self._logserver(host, port))
        options = _options(route, connect_timeout, read_timeout)
        return LogServerClient(route.host, route.port, name=f"{host}:{port}", **options)

    def _ecflow_args(self, server: str, connect_timeout: float, read_timeout: float) -> tuple[str, int, dict[str, Any]]:
        """Where a server's client connects, and its options: route, time limits and identity."""
        endpoint = self.plan.endpoint(server)
        route = self.plan.route(endpoint)
        # A server the profile does not name (a system list's) is asked as gateway.ecflow_user, as its relay says.
        who = self.auth.get(server) or Auth(endpoint.relay_user)
        options = {**_options(route, connect_timeout, read_timeout), **who.client_kwargs()}
        if endpoint.protocol != "plain":
            # TLS end to end through the forwarded port: the certificate goes by the server's own host and port.
            options.update(protocol=endpoint.protocol, server=(endpoint.host, endpoint.port))
            if self.fetch_certificate is not None:
                options["fetch_certificate"] = self.fetch_certificate
        return route.host, route.port, options

    def _logserver(self, host: str, port: int) -> Endpoint:
        endpoint = self.logserver_endpoint(host, port)
        if endpoint is None:
            raise LookupError(f"the tunnel does not reach the log server {host}:{port}")
        return endpoint


def _options(route: Route, connect_timeout: float, read_timeout: float) -> dict[str, Any]:
    """What every native client takes besides host and port: the proxy (socks) and its time limits."""
    return {**route.proxy_kwargs(), "connect_timeout": connect_timeout, "read_timeout": read_timeout}


async def _connect_unix(path: Path, timeout: float, host: str, port: int) -> socket.socket:
    """A non-blocking connection to one of ssh's forward sockets; ConnectError in the words a TCP refusal gets."""
    from ecflow_remote.errors import ConnectError

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        try:
            sock.connect(str(path))  # a unix socket connects at once (no trip round the loop) unless its backlog
        except BlockingIOError:  # is full
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().sock_connect(sock, str(path))
    except OSError as e:  # TimeoutError included: ssh gone, or its socket not there yet
        sock.close()
        raise ConnectError(
            f"ssh's forward socket {path.name} did not take the connection: {e}", host=host, port=port
        ) from e
    except BaseException:
        sock.close()
        raise
    return sock


def _direct_ecflow(path: Path) -> type[AsyncEcflowClient]:
    """AsyncEcflowClient whose connections go to ssh's forward socket `path`."""
    from ecflow_remote.clients.ecflow import AsyncEcflowClient

    class Direct(AsyncEcflowClient):
        async def connect_socket_async(self) -> socket.socket:
            return await _connect_unix(path, self.connect_timeout, self.host, self.port)

    return Direct


def _timed_ecflow(master: Path, target: tuple[str, int], timed: Callable[[float], None]) -> type[AsyncEcflowClient]:
    """AsyncEcflowClient whose connections are channels of ssh's master `master` to `target`, each timed."""
    from ecflow_remote.clients.ecflow import AsyncEcflowClient
    from ecflow_remote.errors import ConnectError

    class Timed(AsyncEcflowClient):
        async def connect_socket_async(self) -> socket.socket:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    sock, took = await control.open_channel(master, target)
            except TimeoutError:
                raise  # a master on a dead link: as a read that never ends through its forward socket
            except OSError as e:
                raise ConnectError(f"ssh's master did not open a channel: {e}", host=self.host, port=self.port) from e
            timed(took)
            return sock

    return Timed


def _direct_logserver(path: Path) -> type[AsyncLogServerClient]:
    """AsyncLogServerClient whose connections go to ssh's forward socket `path`."""
    from ecflow_remote.clients.logserver import AsyncLogServerClient

    class Direct(AsyncLogServerClient):
        async def connect_stream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            sock = await _connect_unix(path, self.connect_timeout, self.host, self.port)
            try:
                return await asyncio.open_unix_connection(sock=sock)
            except BaseException:
                sock.close()
                raise

    return Direct
