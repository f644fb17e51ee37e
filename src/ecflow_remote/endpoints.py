"""Where each Centre service is reachable on this machine under the tunnel's method: the method's questions, the
loopback addresses, and one placement for the services a tunnel starts with and for those that join it while up."""

from __future__ import annotations

import hashlib
import re
import socket
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from ecflow_remote.errors import EcflowRemoteError, NoAddressLeft, PortInUse
from ecflow_remote.portowner import held_by
from ecflow_remote.profile.model import METHODS, Method, Profile

Kind = Literal["server", "logserver"]
LOOPBACK: Final = "127.0.0.1"
# Loopback addresses for the hosts method (and for ecFlow servers under socks): one per Centre host, so every
# host keeps its own ports and any number of log servers share 9316. Linux routes all of 127/8 to lo.
ALIAS_NET: Final = "127.77."
# A profile's addresses are 127.77.K.1 to 127.77.K.254, the host numbers of a /24: .0 and .255 would bind on Linux
# (all of 127/8 is loopback) but are a /24's network and broadcast numbers, which tools and firewall rules take for
# no host's. So a tunnel has room for 254 Centre hosts, at the start as when services join. (The start once said
# 250: that is K's range, 1 to 250 (alias_net), not the hosts'.)
MAX_HOSTS: Final = 254


# ------------------------------------------------------------------------------------------------ the method


def by_centre_names(method: Method) -> bool:
    """hosts and socks: each Centre host has a loopback address of its own, so its services keep their ports and
    launched programs (ecflow_ui included) use the Centre's names; local: everything on 127.0.0.1, a service moved
    to another port where its own is taken, and programs given localhost and the local port."""
    return method != "local"


def through_socks(method: Method) -> bool:
    """socks: launched programs reach the Centre through the SOCKS front (proxychains), log servers by their Centre
    names through it; ecFlow servers keep loopback forwards (proxychains cannot carry ecFlow's sockets)."""
    return method == "socks"


def as_method(value: object) -> Method:
    """A method as state.json or a command line spells it; ValueError naming the methods otherwise."""
    for method in METHODS:
        if value == method:
            return method
    raise ValueError(f"{value!r} is not a method: use one of {', '.join(METHODS)}")


# ------------------------------------------------------------------------------------------------ addresses


def alias_net(profile: Profile) -> str:
    """127.77.K.: K from the profile's path, so two profiles' tunnels can be up at once without a clash."""
    digest = hashlib.sha256(str(profile.path.resolve()).encode()).digest()
    return f"{ALIAS_NET}{digest[0] % 250 + 1}."


def next_alias(used: Iterable[str], net: str) -> str:
    """The address after the highest of `net` in use; NoAddressLeft past the last."""
    numbers = [int(a.rsplit(".", 1)[1]) for a in used if a.startswith(net)]
    following = max(numbers, default=0) + 1
    if following > MAX_HOSTS:
        raise NoAddressLeft(f"no loopback address left in {net}0/24 for another Centre host ({MAX_HOSTS} at most)")
    return f"{net}{following}"


def check_aliases(addresses: Iterable[str]) -> None:
    """macOS routes only 127.0.0.1 to loopback: NoAddressLeft with the command adding the aliases it lacks."""
    missing = sorted(set(addresses))
    if missing:
        cmds = "; ".join(f"sudo ifconfig lo0 alias {a} up" for a in missing)
        raise NoAddressLeft(f"macOS routes only 127.0.0.1 to loopback; add the aliases once: {cmds}")


def _bindable(address: str) -> bool:
    if sys.platform != "darwin":  # Linux routes all of 127/8 to lo
        return True
    with socket.socket() as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


# ------------------------------------------------------------------------------------------------ placement


@dataclass(frozen=True)
class Spot:
    """Where one service is reachable here: an address and port we listen on, or the SOCKS front's."""

    address: str
    port: int
    forwarded: bool = True  # False: through the SOCKS front (address and port are its own), nothing to listen on
    named: bool = False  # launched programs resolve the service's host name to `address` (their hosts view)


class Placement:
    """The places taken so far under one method, and where the next service goes.

    local: 127.0.0.1; its own port where free, else another; a log server that keeps its port is named (launched
    programs reach it by its ECF_LOGHOST name), a moved one cannot be. hosts: its host's address (the next of `net`
    for a new host), named, with its own port where free. socks: log servers through the SOCKS front, ecFlow
    servers as under hosts.

    A service whose own port is taken moves to `pick_port(address)`, except at a hosts or socks start (`moves`
    False): there its own address is this profile's, so a taken port means another tunnel of it runs (PortInUse)."""

    def __init__(
        self,
        method: Method,
        net: str,
        *,
        is_free: Callable[[str, int], bool],
        pick_port: Callable[[str], int],
        moves: bool = True,
        addresses: Mapping[str, str] | None = None,
        taken: Iterable[tuple[str, int]] = (),
        socks_port: int | None = None,
    ) -> None:
        self.method = method
        self.net = net
        self.is_free = is_free
        self.pick_port = pick_port
        self.moves = moves
        self.addresses = dict(addresses or {})  # Centre host -> its loopback address (hosts, socks)
        self.taken = set(taken)
        self.socks_port = socks_port
        self.unbound: list[str] = []  # new addresses this machine cannot listen on yet (macOS): check_aliases

    def place(self, kind: Kind, host: str, port: int, what: str) -> Spot:
        """Where the service `host`:`port` goes; `what` names it in a PortInUse ("server NAME")."""
        if kind == "logserver" and through_socks(self.method):
            if self.socks_port is None:
                raise EcflowRemoteError(f"{what} is to be reached through a SOCKS proxy, but the tunnel has none")
            return Spot(LOOPBACK, self.socks_port, forwarded=False)
        if by_centre_names(self.method):
            address = self.addresses.get(host) or next_alias(self.addresses.values(), self.net)
            if host not in self.addresses and not _bindable(address):
                self.unbound.append(address)
            self.addresses[host] = address
        else:
            address = LOOPBACK
        local = port
        # On an address not on lo0 yet (macOS) no port is free: check_aliases says what to do instead.
        if address not in self.unbound and ((address, port) in self.taken or not self.is_free(address, port)):
            if not self.moves:
                raise PortInUse(
                    f"{address}:{port} for {what} is in use{held_by(address, port)}: is another tunnel (or "
                    "ecflow-remote) running? See `ecflow-remote status`, or stop the other program."
                )
            local = self.pick_port(address)
        self.taken.add((address, local))
        named = by_centre_names(self.method) or (kind == "logserver" and local == port)
        return Spot(address, local, named=named)


# ------------------------------------------------------------------------------------------------ wanted services

_NAME = re.compile(r"[A-Za-z0-9_.:@+-]{1,128}")
_HOST = re.compile(r"[A-Za-z0-9_.-]{1,253}")


@dataclass(frozen=True)
class Wanted:
    """A Centre service a running tunnel should carry: a found log server, or a system list's ecFlow server. Its
    JSON row is the one form it crosses a process boundary in (ui → supervisor, finder → supervisor)."""

    kind: Kind
    name: str
    host: str
    port: int
    used_by: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "used_by": list(self.used_by),
        }

    @classmethod
    def from_json(cls, row: object) -> Wanted:
        """A row back; ValueError naming what is wrong (no name, host or port a forward could not take)."""
        if not isinstance(row, dict):
            raise ValueError("a server is not an object")
        name, host, port, used = row.get("name"), row.get("host"), row.get("port"), row.get("used_by", [])
        kind = row.get("kind", "server")
        if kind not in ("server", "logserver"):
            raise ValueError(f"bad kind {kind!r}")
        if not (isinstance(name, str) and _NAME.fullmatch(name)):
            raise ValueError(f"bad server name {name!r}")
        if not (isinstance(host, str) and _HOST.fullmatch(host)):
            raise ValueError(f"bad host {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"bad port {port!r}")
        if not (isinstance(used, list) and all(isinstance(u, str) and len(u) < 4096 for u in used)):
            raise ValueError("bad used_by")
        return cls("server" if kind == "server" else "logserver", name, host, port, tuple(used))

    def valid(self) -> bool:
        """Whether from_json takes this one back (a definition's ECF_LOGHOST may name anything)."""
        try:
            return Wanted.from_json(self.to_json()) == self
        except ValueError:
            return False
