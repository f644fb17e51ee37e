"""Native clients for a tunnel's endpoints, each with its route (forward or SOCKS front) and identity: one factory
for the supervisor's health checks, `status`, `suites`, `output`, the API and the tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecflow_remote.access.identity import Auth
from ecflow_remote.clients.logprotocol import DEFAULT_PORT
from ecflow_remote.plan import Endpoint, Plan, Route

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import AsyncEcflowClient, EcflowClient
    from ecflow_remote.clients.logserver import AsyncLogServerClient, LogServerClient


@dataclass(frozen=True)
class Clients:
    """Makes clients for one plan; `auth`: who the native client is to each server (by server name)."""

    plan: Plan
    auth: Mapping[str, Auth] = field(default_factory=dict)
    # Gets a TLS server's certificate missing at home from the workstation (tunnel/certfetch.py); None: never.
    fetch_certificate: Callable[[list[Path]], Path | None] | None = None

    def ecflow(self, server: str, *, connect_timeout: float = 5.0, read_timeout: float = 30.0) -> AsyncEcflowClient:
        """An asyncio ecFlow client for a profile server, as the profile's ecFlow user (or custom user)."""
        from ecflow_remote.clients.ecflow import AsyncEcflowClient

        host, port, options = self._ecflow_args(server, connect_timeout, read_timeout)
        return AsyncEcflowClient(host, port, name=server, **options)

    def ecflow_sync(self, server: str, *, connect_timeout: float = 5.0, read_timeout: float = 30.0) -> EcflowClient:
        """The blocking twin of `ecflow`."""
        from ecflow_remote.clients.ecflow import EcflowClient

        host, port, options = self._ecflow_args(server, connect_timeout, read_timeout)
        return EcflowClient(host, port, name=server, **options)

    def logserver_endpoint(self, host: str, port: int = DEFAULT_PORT) -> Endpoint | None:
        """The tunnel's endpoint for a log server named as ECF_LOGHOST names it (short or fully qualified)."""
        for e in self.plan.logservers():
            if same_host(e.host, host) and e.port == port:
                return e
        return None

    def logserver(
        self, host: str, port: int = DEFAULT_PORT, *, connect_timeout: float = 5.0, read_timeout: float = 30.0
    ) -> AsyncLogServerClient:
        """An asyncio client for a log server of the tunnel; LookupError if the tunnel does not reach it."""
        from ecflow_remote.clients.logserver import AsyncLogServerClient

        route = self.plan.route(self._logserver(host, port))
        options = _options(route, connect_timeout, read_timeout)
        return AsyncLogServerClient(route.host, route.port, name=f"{host}:{port}", **options)

    def logserver_sync(
        self, host: str, port: int = DEFAULT_PORT, *, connect_timeout: float = 5.0, read_timeout: float = 30.0
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


def same_host(a: str, b: str) -> bool:
    """ECF_LOGHOST may be fully qualified while the profile uses the short name, or the other way round."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b or a.split(".", 1)[0] == b.split(".", 1)[0]
