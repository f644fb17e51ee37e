"""The three ways through the gateway (local, socks, hosts): which forwards, endpoints and names each gives."""

from __future__ import annotations

import hashlib
import socket
import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from ecflow_remote.errors import EcflowRemoteError, PortInUse, UnknownServer
from ecflow_remote.net import free_port, port_free
from ecflow_remote.portowner import held_by
from ecflow_remote.profile.model import Profile

# Loopback addresses for the hosts method (and for ecFlow servers under socks): one per Centre host, so every
# host keeps its own ports and any number of log servers share 9316. Linux routes all of 127/8 to lo.
ALIAS_NET = "127.77."


@dataclass(frozen=True)
class Endpoint:
    """A Centre service and where it is reachable on this machine while the tunnel is up."""

    kind: Literal["server", "logserver"]
    name: str
    host: str
    port: int
    local_host: str
    local_port: int
    forwarded: bool = True  # False: reached through the SOCKS proxy, not an ssh -L forward
    # Set: the server's ecflow_user, or its custom_user (relay_custom). Our relay (relay.py) listens on the local
    # endpoint and presents this name (a custom user with the password, which only the supervisor holds); ssh
    # forwards to a private unix socket behind it.
    relay_user: str | None = None
    relay_custom: bool = False
    # Where the tunnel learnt of it: the profile; "found", a log server the profile's servers' definitions name
    # (ECF_LOGHOST/ECF_LOGPORT); "system", an ecFlow server a system server list names (tunnel/found.py).
    origin: Literal["profile", "found", "system"] = "profile"
    # Who uses it (found: "server /suite" per suite; system: the list files naming it).
    used_by: tuple[str, ...] = ()
    # An ecFlow server's protocol (the profile's server.protocol): "plain", "ssl", "http" or "https".
    protocol: str = "plain"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["used_by"] = list(self.used_by)  # as JSON gives it back
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Endpoint:
        """An endpoint from its to_json(), ignoring keys it does not have (a health check adds its own)."""
        known = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        if "used_by" in known:
            known["used_by"] = tuple(str(u) for u in known["used_by"] or ())
        if known.get("origin") not in ("profile", "found", "system"):
            known.pop("origin", None)
        return cls(**known)


@dataclass(frozen=True)
class Route:
    """How a client reaches an endpoint now: its local forward, or its Centre name through the SOCKS front."""

    host: str
    port: int
    proxy: tuple[str, int] | None = None
    proxy_auth: tuple[str, str] | None = field(default=None, repr=False)

    def proxy_kwargs(self) -> dict[str, Any]:
        """The keywords every native client (ecFlow, log server) takes for the proxy."""
        return {"proxy": self.proxy, "proxy_auth": self.proxy_auth}


@dataclass
class Plan:
    method: str
    endpoints: list[Endpoint]
    socks_port: int | None = None
    # Names a launched program must resolve to loopback (its private hosts view): host -> local address.
    hosts: dict[str, str] = field(default_factory=dict)
    # The SOCKS front's (user, password) for this tunnel start: made before the plan (the supervisor) or read from
    # the run directory's 0600 file (Tunnel.plan()); never serialized (state.json, --json) or shown.
    proxy_auth: tuple[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def forwards(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.forwarded]

    def servers(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.kind == "server"]

    def logservers(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.kind == "logserver"]

    def endpoint(self, name: str) -> Endpoint:
        """The ecFlow server called `name`; UnknownServer naming the known ones otherwise."""
        for e in self.servers():
            if e.name == name:
                return e
        known = ", ".join(e.name for e in self.servers()) or "none"
        raise UnknownServer(f"no server named {name!r} in the tunnel. Known servers: {known}.")

    def route(self, endpoint: Endpoint) -> Route:
        if endpoint.forwarded:
            return Route(endpoint.local_host, endpoint.local_port)
        if self.socks_port is None:
            raise EcflowRemoteError(f"{endpoint.name} is reached through a SOCKS proxy, but the tunnel has none")
        return Route(endpoint.host, endpoint.port, ("127.0.0.1", self.socks_port), self.proxy_auth)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "endpoints": [e.to_json() for e in self.endpoints],
            "socks_port": self.socks_port,
            "hosts": self.hosts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], proxy_auth: tuple[str, str] | None = None) -> Plan:
        return cls(
            data["method"],
            [Endpoint.from_json(e) for e in data["endpoints"]],
            data.get("socks_port"),
            dict(data.get("hosts", {})),
            proxy_auth,
        )


def alias_net(profile: Profile) -> str:
    """127.77.K.: K from the profile's path, so two profiles' tunnels can be up at once without a clash."""
    digest = hashlib.sha256(str(profile.path.resolve()).encode()).digest()
    return f"{ALIAS_NET}{digest[0] % 250 + 1}."


def alias_addresses(profile: Profile, hosts: list[str]) -> dict[str, str]:
    if len(hosts) > 250:
        raise EcflowRemoteError(f"{len(hosts)} Centre hosts: the hosts method has room for 250 at most")
    net = alias_net(profile)
    aliases = {host: f"{net}{i + 1}" for i, host in enumerate(hosts)}
    if sys.platform == "darwin":
        missing = [a for a in aliases.values() if not _can_bind(a)]
        if missing:
            cmds = "; ".join(f"sudo ifconfig lo0 alias {a} up" for a in missing)
            raise EcflowRemoteError(f"macOS routes only 127.0.0.1 to loopback; add the aliases once: {cmds}")
    return aliases


def _can_bind(address: str) -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


def plan_for(profile: Profile, method: str | None = None, proxy_auth: tuple[str, str] | None = None) -> Plan:
    """Choose every local endpoint for `profile` under `method` (the profile's own by default); `proxy_auth`: the
    SOCKS front's user and password for this start (socks method)."""
    method = method or profile.gateway.method
    if method == "local":
        return _plan_local(profile)
    if method == "hosts":
        return _plan_hosts(profile)
    if method == "socks":
        return _plan_socks(profile, proxy_auth)
    raise EcflowRemoteError(f"unknown method {method!r}: use local, socks or hosts")


def server_endpoint(profile: Profile, name: str, host: str, port: int, local_host: str, local_port: int) -> Endpoint:
    # Servers with a custom user or an ecflow_user are reached through the relay (only their own endpoints, their
    # identity): launched programs send the login name, the relay presents the server's own. Plain and HTTP ones
    # only: the relay cannot rewrite what it cannot read (TLS, HTTPS).
    server = profile.server(name)
    custom = server.custom_user is not None
    user = server.custom_user if custom else server.ecflow_user
    if server.protocol not in ("plain", "http"):
        user, custom = None, False
    return Endpoint(
        "server",
        name,
        host,
        port,
        local_host,
        local_port,
        relay_user=user,
        relay_custom=custom,
        protocol=server.protocol,
    )


def _plan_local(profile: Profile) -> Plan:
    """The how-to's Method 1: everything on 127.0.0.1, original ports where free, else free ones (reported)."""
    taken: set[int] = set()
    endpoints = []
    targets = [("server", s.name, s.host, s.port) for s in profile.servers]
    targets += [("logserver", f"{lg.host}:{lg.port}", lg.host, lg.port) for lg in profile.logservers]
    for kind, name, host, port in targets:
        local = port if port not in taken and port_free("127.0.0.1", port) else free_port()
        taken.add(local)
        if kind == "server":
            endpoints.append(server_endpoint(profile, name, host, port, "127.0.0.1", local))
        else:
            endpoints.append(Endpoint("logserver", name, host, port, "127.0.0.1", local))
    # A log server named in ECF_LOGHOST resolves to loopback for launched programs; only the ones that kept
    # their own port can be reached that way (the how-to's limit that the hosts method removes).
    hosts = {e.host: "127.0.0.1" for e in endpoints if e.kind == "logserver" and e.local_port == e.port}
    return Plan("local", endpoints, hosts=hosts)


def _aliased(profile: Profile, through_socks: set[str]) -> tuple[list[Endpoint], dict[str, str]]:
    aliases = alias_addresses(profile, profile.centre_hosts())
    endpoints = []
    for s in profile.servers:
        _check_free(aliases[s.host], s.port, f"server {s.name}")
        endpoints.append(server_endpoint(profile, s.name, s.host, s.port, aliases[s.host], s.port))
    for lg in profile.logservers:
        forwarded = "logserver" not in through_socks
        if forwarded:
            _check_free(aliases[lg.host], lg.port, f"log server {lg.host}")
        endpoints.append(
            Endpoint("logserver", f"{lg.host}:{lg.port}", lg.host, lg.port, aliases[lg.host], lg.port, forwarded)
        )
    hosts = {e.host: e.local_host for e in endpoints if e.forwarded}
    return endpoints, hosts


def _check_free(host: str, port: int, what: str) -> None:
    if not port_free(host, port):
        raise PortInUse(
            f"{host}:{port} for {what} is in use{held_by(host, port)}: is another tunnel (or ecflow-remote) running? "
            "See `ecflow-remote status`, or stop the other program."
        )


def _plan_hosts(profile: Profile) -> Plan:
    endpoints, hosts = _aliased(profile, set())
    return Plan("hosts", endpoints, hosts=hosts)


def _plan_socks(profile: Profile, proxy_auth: tuple[str, str] | None) -> Plan:
    """SOCKS for everything, plus loopback forwards for ecFlow servers: proxychains cannot carry ecFlow's
    Boost.Asio sockets on Linux (it dup2()s over a socket registered with epoll), so those bypass it. The SOCKS
    port is our password-checking front (socks.py); ssh -D itself listens on a private unix socket."""
    port = profile.gateway.socks_port
    if not port_free("127.0.0.1", port):
        raise PortInUse(
            f"127.0.0.1:{port} (gateway.socks_port) is in use{held_by('127.0.0.1', port)}: another SOCKS proxy or "
            "tunnel runs "
            f"there. Stop it, or set socks_port in {profile.path} to a free port."
        )
    endpoints, hosts = _aliased(profile, {"logserver"})
    # Log servers are reached through the proxy by their real names and ports.
    endpoints = [
        e if e.forwarded else Endpoint(e.kind, e.name, e.host, e.port, "127.0.0.1", port, False) for e in endpoints
    ]
    return Plan("socks", endpoints, socks_port=port, hosts=hosts, proxy_auth=proxy_auth)
