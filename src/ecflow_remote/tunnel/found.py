"""Endpoints that join a running tunnel: log servers the profile servers' definitions name (ECF_LOGHOST and
ECF_LOGPORT), and ecFlow servers that only a system server list names (asked for by `ui`).

Pure placement (`merge`: where each new endpoint listens under the tunnel's method), the typed request `ui` sends
the supervisor (inbox.py), and the `Finder` that keeps one incremental watch per profile server
(ecflow_ui's news/sync: after the first whole definition a round costs one small request per server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from ecflow_remote.access.socks import Credentials
from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.net import same_host
from ecflow_remote.plan import Endpoint, Plan
from ecflow_remote.profile.model import Profile
from ecflow_remote.safefile import write_atomic
from ecflow_remote.tunnel import files
from ecflow_remote.tunnel.state import RunFiles

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import Defs
    from ecflow_remote.clients.ecflow.logservers import LogServerUse
    from ecflow_remote.clients.ecflow.watch import Watch
    from ecflow_remote.tunnel.clients import Clients

REQUEST_PREFIX: Final = "join-"  # request files in the run directory: join-<token>.json
MAX_REQUEST: Final = 1024 * 1024
MAX_SERVERS: Final = 500
FIND_TIMEOUT: Final = 30.0
_NAME = re.compile(r"[A-Za-z0-9_.:@+-]{1,128}")
_HOST = re.compile(r"[A-Za-z0-9_.-]{1,253}")


@dataclass(frozen=True)
class Wanted:
    """A Centre service the tunnel should carry: a found log server, or a system list's ecFlow server."""

    kind: Literal["logserver", "server"]
    name: str
    host: str
    port: int
    used_by: tuple[str, ...] = ()


def logservers_wanted(uses: Sequence[LogServerUse]) -> list[Wanted]:
    """find_logservers' answer as wanted endpoints, each used by "server /suite" pairs."""
    return [
        Wanted("logserver", f"{u.host}:{u.port}", u.host, u.port, tuple(f"{srv} /{suite}" for srv, suite in u.suites))
        for u in uses
    ]


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
    """A new plan: `plan` with every wanted service it lacks placed for its method, and who uses each one updated.

    local: 127.0.0.1, the service's own port where free (log servers keeping theirs resolve there by name);
    hosts: the host's alias address (the next one of `net` for a new host) with its own port where free;
    socks: log servers through the SOCKS front (nothing to listen on), ecFlow servers as under hosts (proxychains
    cannot carry ecFlow's sockets). `relay_user`: gateway.ecflow_user, presented for system servers too."""
    endpoints = list(plan.endpoints)
    hosts = dict(plan.hosts)
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
        if plan.method == "socks" and want.kind == "logserver":
            assert plan.socks_port is not None
            e = Endpoint("logserver", name, want.host, want.port, "127.0.0.1", plan.socks_port, False)
            endpoints.append(replace(e, origin=origin, used_by=want.used_by))
            continue
        taken = {(e.local_host, e.local_port) for e in endpoints if e.forwarded}
        if plan.method == "local":
            address = "127.0.0.1"
        else:
            address = hosts.get(want.host) or _next_alias(hosts.values(), net)
            hosts[want.host] = address
        port = want.port
        if (address, port) in taken or not is_free(address, port):
            port = pick_port(address)
        if plan.method == "local" and want.kind == "logserver" and port == want.port:
            hosts.setdefault(want.host, address)
        e = Endpoint(want.kind, name, want.host, want.port, address, port, relay_user=user)
        endpoints.append(replace(e, origin=origin, used_by=want.used_by))
    return replace(plan, endpoints=endpoints, hosts=hosts)


def _next_alias(used: Iterable[str], net: str) -> str:
    numbers = [int(a.rsplit(".", 1)[1]) for a in used if a.startswith(net)]
    following = max(numbers, default=0) + 1
    if following > 254:
        raise ValueError(f"no loopback address left in {net}0/24 for another Centre host")
    return f"{net}{following}"


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


def rewrite_files(
    profile: Profile,
    plan: Plan,
    rundir: Path,
    credentials: Credentials | None,
    old: RunFiles,
) -> tuple[RunFiles, list[str]]:
    """The launched programs' files again for a plan with new names (the hosts view; the opt-in system block):
    programs launched from now on see them. The run files, and problems for the status warnings."""
    run_files = old.merged(files.write_support_files(profile, plan, rundir, credentials))
    if not old.system_hosts:
        return run_files, []
    try:
        added, warnings = files.install_system_hosts(profile, plan, rundir.name)
    except EcflowRemoteError as e:
        return run_files, [f"the names found since up are not in {old.system_hosts}: {e}"]
    return run_files.merged(added), warnings


# ------------------------------------------------------------------------------------------------ requests


def request_path(rundir: Path) -> Path:
    return rundir / f"{REQUEST_PREFIX}{secrets.token_hex(8)}.json"


def request_bytes(servers: Sequence[Wanted]) -> bytes:
    """A request: the version-1 document the supervisor reads (inbox.py, or a request file)."""
    rows = [
        {"kind": w.kind, "name": w.name, "host": w.host, "port": w.port, "used_by": list(w.used_by)} for w in servers
    ]
    return json.dumps({"version": 1, "servers": rows}).encode()


def write_request(rundir: Path, servers: Sequence[Wanted]) -> Path:
    """A request file, for a supervisor from before the inbox (upgraded while it ran: inbox.ask): a 0600 file in
    the 0700 run directory, written whole before it appears under its name; the supervisor removes it once it has
    answered."""
    path = request_path(rundir)
    write_atomic(path, request_bytes(servers), mode=0o600)
    return path


def parse_request(data: bytes) -> list[Wanted]:
    """A request file's servers; ValueError naming what is wrong (the supervisor then warns and drops the file)."""
    if len(data) > MAX_REQUEST:
        raise ValueError(f"over {MAX_REQUEST} bytes")
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("servers"), list):
        raise ValueError("not a version 1 request")
    rows = doc["servers"]
    if len(rows) > MAX_SERVERS:
        raise ValueError(f"over {MAX_SERVERS} servers")
    wanted: list[Wanted] = []
    for row in rows:
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
        wanted.append(Wanted(kind, name, host, port, tuple(used)))
    return wanted


def ask_by_file(
    rundir: Path, servers: Sequence[Wanted], timeout: float = 10.0, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Write a request file and wait until the supervisor has answered it (its state then has the endpoints); False
    if it did not within `timeout`. Only for a supervisor without an inbox (inbox.ask)."""
    if not servers:
        return True
    path = write_request(rundir, servers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if not path.exists():
            return True
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        path.unlink()
    return False


# ------------------------------------------------------------------------------------------------ the finder


class Finder:
    """Learns which log servers the profile servers' definitions name (in a process of its own: logfinder.py): the
    first round fetches each whole definition, later rounds only what changed (a NEWS request when nothing did).
    The last tree of a server that does not answer is kept: a found log server is not forgotten for a restart."""

    def __init__(self) -> None:
        self.watches: dict[str, Watch] = {}
        self.trees: dict[str, Defs] = {}

    async def round(self, clients: Clients, servers: Sequence[str]) -> dict[str, Defs]:
        await asyncio.gather(*(self._poll(clients, name) for name in servers))
        return {name: self.trees[name] for name in servers if name in self.trees}

    async def _poll(self, clients: Clients, name: str) -> None:
        watch = self.watches.get(name)
        try:
            async with asyncio.timeout(FIND_TIMEOUT):
                if watch is None:
                    client = clients.ecflow(name, read_timeout=FIND_TIMEOUT)
                    watch = await client.watch().__aenter__()
                    self.watches[name] = watch
                else:
                    await watch.poll()
        except Exception:  # a server down, refusing or in maintenance: its last tree stands, a new watch next time
            self.watches.pop(name, None)
            return
        self.trees[name] = watch.defs


def uncarried_note(endpoints: Sequence[Endpoint], why: str) -> str:
    """Why found endpoints are not reachable: ssh could not add their forwards (plain transport, no agent)."""
    names = ", ".join(f"{e.host}:{e.port}" for e in endpoints)
    return f"found {names}, which ssh could not forward ({why}); the next round tries again"
