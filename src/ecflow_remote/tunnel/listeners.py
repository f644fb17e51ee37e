"""The supervisor's loopback listeners (forwards, the user-name relay, the SOCKS front, the web proxy) on one loop
thread.

They stay up for the supervisor's whole life: ssh reconnects under them, so no other account can take a port
meanwhile, and `upstreams` says what carries their connections now (the agent, ssh's sockets, or nothing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ecflow_remote.access import handover, pipe, relay, socks, webproxy
from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.portowner import held_by
from ecflow_remote.profile.model import Profile
from ecflow_remote.profile.webtable import domains


@dataclass(frozen=True)
class Web:
    """Where the web proxy listens and serves its PAC file, and the file with its password (where it asks one)."""

    proxy: str
    pac: str
    auth: Path | None


class Listeners:
    """Every listener of one tunnel, the loop thread they run on, and what carries their connections."""

    def __init__(self) -> None:
        self.io: pipe.LoopThread | None = None
        self.servers: list[pipe.PipeServer] = []
        self.upstreams = pipe.Upstreams()
        # Custom users' passwords as the relay sends them (crypt()ed), by server name: in memory only.
        self.passwords: Mapping[str, str] = {}

    def start(
        self,
        plan: Plan,
        credentials: socks.Credentials | None,
        profile: Path,
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        """A listener for every forwarded endpoint and, for the socks method, the password-checking SOCKS front on
        socks_port; EcflowRemoteError naming the address when one is in use (nothing is left listening).
        `passwords`: what the relay presents for custom users (relay.Presented.password), by server name."""
        self.io = pipe.LoopThread()
        self.passwords = dict(passwords or {})
        try:
            self.add(plan.forwards)
            if plan.socks_port is not None and credentials is not None:
                front = socks.SocksFront(("127.0.0.1", plan.socks_port), None, credentials, self.io)
                front.upstreams = self.upstreams
                self.servers.append(front.start())
        except OSError as e:
            self.stop()
            raise EcflowRemoteError(_in_use(plan, e, profile)) from None

    def start_web(self, profile: Profile, rundir: Path) -> Web:
        """The web proxy for the profile's Centre names, on 127.0.0.1 ([web] port, else the kernel's choice): its
        own uid only on Linux, elsewhere a password made now (in a 0600 run file); EcflowRemoteError when the port
        is in use."""
        assert self.io is not None
        credentials = None if pipe.PipeServer.check_peers else socks.Credentials.new()
        port = profile.web.port or 0
        proxy = webproxy.WebProxy(("127.0.0.1", port), domains(profile), credentials, self.io)
        proxy.upstreams = self.upstreams
        try:
            self.servers.append(proxy.start())
        except OSError as e:
            raise EcflowRemoteError(
                f"127.0.0.1:{port} (web.port) is in use ({e.strerror or e}{held_by('127.0.0.1', port)}): set another "
                f"port in {profile.path}, or "
                "remove the key for a free one."
            ) from None
        auth = credentials.write(rundir, webproxy.CREDENTIALS_NAME) if credentials else None
        return Web(proxy.url, proxy.pac_url, auth)

    def add(self, endpoints: Sequence[Endpoint]) -> None:
        """Listeners for more forwarded endpoints (through the relay where a server has an ecflow_user or a custom
        user); OSError (a port taken since it was chosen) after stopping the ones this call started."""
        assert self.io is not None
        # ssh's master takes the plain forwards over (handover.py): ecFlow's clients read the answer by its length,
        # and a log server's EOF still reaches its client (ssh drains and closes a stdio forward on the far EOF).
        # Two endpoints at one host:port (a profile refuses two servers there, but a log server may share an ecFlow
        # server's, and under hosts both get that host's address and its port) are one listener: a second would
        # find the address taken.
        routes = dict.fromkeys(
            pipe.PipeRoute((e.local_host, e.local_port), (e.host, e.port), handoff=True)
            for e in endpoints
            if not e.relay_user
        )
        relayed = dict.fromkeys(
            relay.RelayRoute((e.local_host, e.local_port), (e.host, e.port), presented, e.protocol == "http")
            for e in endpoints
            if (presented := relay.presented_for(e, self.passwords)) is not None
        )
        servers: list[pipe.PipeServer] = []
        if routes:
            servers.append(handover.HandoverForwards(list(routes), self.io))
        if relayed:
            servers.append(relay.Relay(list(relayed), io=self.io))
        started: list[pipe.PipeServer] = []
        try:
            for server in servers:
                server.upstreams = self.upstreams
                started.append(server.start())
        except OSError:
            for server in started:
                server.stop()
            raise
        self.servers += started

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.servers = []
        if self.io is not None:
            self.io.stop()
            self.io = None


def _in_use(plan: Plan, error: OSError, profile: Path) -> str:
    why = error.strerror or str(error)
    found = re.search(r"\('([^']+)', (\d+)\)", str(error))  # asyncio names the address in a failed bind
    address = (found.group(1), int(found.group(2))) if found else None
    if plan.socks_port is not None and address == ("127.0.0.1", plan.socks_port):
        return (
            f"127.0.0.1:{plan.socks_port} (gateway.socks_port) is in use ({why}{held_by(*address)}): another SOCKS "
            "proxy or tunnel "
            f"runs there. Stop it, or set socks_port in {profile} to a free port."
        )
    where = f"{address[0]}:{address[1]}" if address else "a local endpoint of the tunnel"
    holder = held_by(*address) if address else ""
    return (
        f"{where} is in use ({why}{holder}): is another tunnel (or ecflow-remote) running? See `ecflow-remote "
        "status`, or stop the other program."
    )
