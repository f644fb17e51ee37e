"""The tunnel's plan: every endpoint (the profile's at the start, the services that join it while up), the names
launched programs see, and how a client reaches each one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from ecflow_remote.endpoints import (
    LOOPBACK,
    Kind,
    Placement,
    Wanted,
    alias_net,
    as_method,
    by_centre_names,
    check_aliases,
    through_socks,
)
from ecflow_remote.errors import EcflowRemoteError, PortInUse, UnknownServer
from ecflow_remote.net import free_port, port_free, same_host
from ecflow_remote.portowner import held_by
from ecflow_remote.profile.model import Method, Profile


@dataclass(frozen=True)
class Endpoint:
    """A Centre service and where it is reachable on this machine while the tunnel is up."""

    kind: Kind
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
    # (ECF_LOGHOST/ECF_LOGPORT); "system", an ecFlow server a system server list names (merge).
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
    method: Method
    endpoints: list[Endpoint]
    socks_port: int | None = None
    # Names a launched program must resolve to loopback (its private hosts view): host -> local address.
    hosts: dict[str, str] = field(default_factory=dict)
    # The SOCKS front's (user, password) for this tunnel start: made before the plan (the supervisor) or read from
    # the run directory's 0600 file (Tunnel.plan()); never serialized (state.json, --json) or shown.
    proxy_auth: tuple[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def by_centre_names(self) -> bool:
        """Launched programs use the Centre's names and ports (hosts, socks), not localhost and local ports."""
        return by_centre_names(self.method)

    @property
    def through_socks(self) -> bool:
        """Launched programs go through the SOCKS front (socks), log servers by their Centre names."""
        return through_socks(self.method)

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
            as_method(data["method"]),
            [Endpoint.from_json(e) for e in data["endpoints"]],
            data.get("socks_port"),
            dict(data.get("hosts", {})),
            proxy_auth,
        )


def plan_for(profile: Profile, method: Method | None = None, proxy_auth: tuple[str, str] | None = None) -> Plan:
    """Choose every local endpoint for `profile` under `method` (the profile's own by default); `proxy_auth`: the
    SOCKS front's user and password for this start (socks method). Where each goes: endpoints.Placement."""
    method = method or profile.gateway.method
    socks_port = _socks_port(profile) if through_socks(method) else None
    # At a hosts or socks start every service keeps its own port on its host's address, or the start fails.
    placement = Placement(
        method,
        alias_net(profile),
        is_free=port_free,
        pick_port=free_port,
        moves=not by_centre_names(method),
        socks_port=socks_port,
    )
    endpoints: list[Endpoint] = []
    hosts: dict[str, str] = {}
    for s in profile.servers:
        spot = placement.place("server", s.host, s.port, f"server {s.name}")
        endpoints.append(server_endpoint(profile, s.name, s.host, s.port, spot.address, spot.port))
        if spot.named:
            hosts[s.host] = spot.address
    for lg in profile.logservers:
        spot = placement.place("logserver", lg.host, lg.port, f"log server {lg.host}")
        name = f"{lg.host}:{lg.port}"
        endpoints.append(Endpoint("logserver", name, lg.host, lg.port, spot.address, spot.port, spot.forwarded))
        if spot.named:
            hosts[lg.host] = spot.address
    check_aliases(placement.unbound)
    return Plan(method, endpoints, socks_port, hosts, proxy_auth)


def _socks_port(profile: Profile) -> int:
    """The SOCKS front's port (our password-checking front, socks.py; ssh -D itself listens on a private unix
    socket). ecFlow servers still get loopback forwards: proxychains cannot carry ecFlow's Boost.Asio sockets on
    Linux (it dup2()s over a socket registered with epoll), so those bypass it."""
    port = profile.gateway.socks_port
    if not port_free(LOOPBACK, port):
        raise PortInUse(
            f"{LOOPBACK}:{port} (gateway.socks_port) is in use{held_by(LOOPBACK, port)}: another SOCKS proxy or "
            f"tunnel runs there. Stop it, or set socks_port in {profile.path} to a free port."
        )
    return port


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


# ------------------------------------------------------------------------------------------------ joining


def known(plan: Plan, want: Wanted) -> Endpoint | None:
    """The plan's endpoint for a wanted service: log servers as ECF_LOGHOST names them (short or qualified)."""
    for e in plan.endpoints:
        if e.kind != want.kind or e.port != want.port:
            continue
        if same_host(e.host, want.host) if want.kind == "logserver" else e.host.lower() == want.host.lower():
            return e
    return None


def merge(
    plan: Plan,
    wanted: Sequence[Wanted],
    net: str,
    is_free: Callable[[str, int], bool],
    pick_port: Callable[[str], int],
    relay_user: str | None = None,
) -> Plan:
    """A new plan: `plan` with every wanted service it lacks placed as at the start (endpoints.Placement, but moved
    to `pick_port` where its own port is taken), and who uses each one updated. `net`: the profile's alias_net;
    `relay_user`: gateway.ecflow_user, presented for system servers too. NoAddressLeft when a new host has none."""
    endpoints = list(plan.endpoints)
    hosts = dict(plan.hosts)
    placement = Placement(
        plan.method,
        net,
        is_free=is_free,
        pick_port=pick_port,
        addresses=plan.hosts,
        taken=[(e.local_host, e.local_port) for e in endpoints if e.forwarded],
        socks_port=plan.socks_port,
    )
    for want in wanted:
        have = known(Plan(plan.method, endpoints), want)
        if have is not None:
            if want.used_by and have.origin != "system":
                merged = tuple(dict.fromkeys((*have.used_by, *want.used_by)))
                endpoints[endpoints.index(have)] = replace(have, used_by=merged)
            continue
        origin: Literal["found", "system"] = "found" if want.kind == "logserver" else "system"
        name = want.name
        if any(e.kind == "server" and e.name == name for e in endpoints) and want.kind == "server":
            name = f"{want.name}@{want.host}:{want.port}"  # a profile server of that name is another one
        user = relay_user if want.kind == "server" else None
        spot = placement.place(want.kind, want.host, want.port, f"{want.kind} {name}")
        if spot.named:
            hosts.setdefault(want.host, spot.address)
        e = Endpoint(want.kind, name, want.host, want.port, spot.address, spot.port, spot.forwarded, relay_user=user)
        endpoints.append(replace(e, origin=origin, used_by=want.used_by))
    check_aliases(placement.unbound)
    return replace(plan, endpoints=endpoints, hosts=hosts)


def added(old: Plan, new: Plan) -> list[Endpoint]:
    """Endpoints of `new` that `old` does not have (by kind, host and port)."""
    have = {(e.kind, e.host, e.port) for e in old.endpoints}
    return [e for e in new.endpoints if (e.kind, e.host, e.port) not in have]


def without(plan: Plan, dropped: Sequence[Endpoint]) -> Plan:
    """`plan` without these endpoints (and without the host names only they used)."""
    gone = {(e.kind, e.host, e.port) for e in dropped}
    endpoints = [e for e in plan.endpoints if (e.kind, e.host, e.port) not in gone]
    still = {e.host for e in endpoints}
    hosts = {h: a for h, a in plan.hosts.items() if h in still}
    return replace(plan, endpoints=endpoints, hosts=hosts)
